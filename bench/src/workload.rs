//! What the load generator sends: operation mix, key choice, value size.

use bytes::Bytes;
use genericsmr::command::{Command, Op};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};

/// The key hit by the conflicting share of commands (as in the EPaxos experiments).
pub const HOT_KEY: &str = "hot";

/// The command mix of an experiment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mix {
    /// Percentage of commands that are GETs (the rest are PUTs).
    pub reads_pct: f64,
    /// When set, this percentage of commands goes to one hot key and the rest to
    /// keys private to each client, so exactly this share can conflict.
    pub conflicts_pct: Option<f64>,
    /// Size of the key space: shared by all clients, or with `conflicts_pct`
    /// split among them (each gets `keys / clients` private keys), so a run
    /// with and one without conflicts touch as many keys.
    pub keys: u64,
    /// Zipf exponent over the shared key space; 0 means uniform.
    pub zipf: f64,
    /// Bytes per written value.
    pub value_size: usize,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            reads_pct: 0.0,
            conflicts_pct: None,
            keys: 100_000,
            zipf: 0.0,
            value_size: 16,
        }
    }
}

/// Generates the commands of one client, deterministically from a seed.
pub struct Generator {
    mix: Mix,
    rng: SmallRng,
    zipf: Option<Zipf<f64>>,
    client_tag: u64,
    /// Private keys of this client (with `conflicts_pct`).
    private_keys: u64,
    value: Bytes,
}

impl Generator {
    /// A generator for client number `client_tag` of `clients`, in an
    /// experiment seeded with `seed`.
    pub fn new(mix: &Mix, seed: u64, client_tag: u64, clients: usize) -> Self {
        let zipf = (mix.zipf > 0.0 && mix.conflicts_pct.is_none())
            .then(|| Zipf::new(mix.keys.max(1), mix.zipf).ok())
            .flatten();
        let value = Bytes::from(vec![b'v'; mix.value_size]);
        Generator {
            mix: mix.clone(),
            rng: SmallRng::seed_from_u64(seed ^ client_tag.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            zipf,
            client_tag,
            private_keys: (mix.keys / clients.max(1) as u64).max(1),
            value,
        }
    }

    fn key(&mut self) -> Bytes {
        if let Some(pct) = self.mix.conflicts_pct {
            if self.rng.gen_bool((pct / 100.0).clamp(0.0, 1.0)) {
                return Bytes::from_static(HOT_KEY.as_bytes());
            }
            let k = self.rng.gen_range(0..self.private_keys);
            return Bytes::from(format!("c{}-{k}", self.client_tag));
        }
        let k = match &self.zipf {
            Some(z) => z.sample(&mut self.rng) as u64 - 1,
            None => self.rng.gen_range(0..self.mix.keys.max(1)),
        };
        Bytes::from(format!("k{k}"))
    }

    /// The next command (client id and sequence number are filled in by the driver).
    pub fn next_command(&mut self) -> Command {
        let key = self.key();
        if self
            .rng
            .gen_bool((self.mix.reads_pct / 100.0).clamp(0.0, 1.0))
        {
            Command::get(0, 0, key)
        } else {
            let mut c = Command::put(0, 0, key, self.value.clone());
            c.op = Op::Put;
            c
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_share_hits_the_hot_key() {
        let mix = Mix {
            conflicts_pct: Some(25.0),
            ..Default::default()
        };
        let mut g = Generator::new(&mix, 1, 3, 8);
        let hot = (0..20_000)
            .filter(|_| g.next_command().key == HOT_KEY.as_bytes())
            .count();
        assert!((4500..5500).contains(&hot), "{hot}");
        let mix = Mix {
            conflicts_pct: Some(0.0),
            ..Default::default()
        };
        let mut a = Generator::new(&mix, 1, 1, 8);
        let mut b = Generator::new(&mix, 1, 2, 8);
        let mut keys = std::collections::HashSet::new();
        for _ in 0..100_000 {
            let (x, y) = (a.next_command(), b.next_command());
            assert!(!x.conflicts(&y));
            keys.insert(x.key);
        }
        // The key space is split among the 8 clients.
        let per = mix.keys / 8;
        assert!(
            (per * 99 / 100..=per).contains(&(keys.len() as u64)),
            "{}",
            keys.len()
        );
    }

    #[test]
    fn reads_share_and_determinism() {
        let mix = Mix {
            reads_pct: 50.0,
            zipf: 0.99,
            ..Default::default()
        };
        let mut a = Generator::new(&mix, 7, 1, 1);
        let mut b = Generator::new(&mix, 7, 1, 1);
        let mut reads = 0;
        for _ in 0..10_000 {
            let (x, y) = (a.next_command(), b.next_command());
            assert_eq!(x, y);
            reads += (x.op == Op::Get) as usize;
        }
        assert!((4500..5500).contains(&reads));
    }
}
