//! What the load generator sends: operation mix, key choice, value size.

use bytes::Bytes;
use genericsmr::command::Command;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};

/// The key hit by the conflicting share of commands (as in the EPaxos experiments).
pub const HOT_KEY: &str = "hot";

/// Bytes the longest value encoding takes: `c`, the client id as 16 hex
/// digits, `-s`, the sequence number in at most 16 hex digits, `-`
/// (see [`unique_value`]). A smaller `value_size` could not keep values unique.
pub const MIN_VALUE_SIZE: usize = 1 + 16 + 2 + 16 + 1;

/// A workload that cannot be generated as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    /// The value size leaves no room for the writer's client id and sequence number.
    #[error(
        "--value-size {0} is too small: values name their writer (client id and seq), \
         which needs at least {MIN_VALUE_SIZE} bytes"
    )]
    ValueTooSmall(usize),
}

/// The value client `client` writes with its operation `seq`, `size` bytes
/// long: `c<client, 16 hex digits>-s<seq, hex>-` and then `v` filler.
///
/// Every value of a run is unique and names its writer, so a read in the
/// history shows exactly which write it saw and a lost or stale write can be
/// told apart from the current one. `size` below [`MIN_VALUE_SIZE`] may
/// truncate the name (callers check with [`Mix::validate`]).
pub fn unique_value(client: u64, seq: u64, size: usize) -> Bytes {
    let mut v = format!("c{client:016x}-s{seq:x}-").into_bytes();
    v.resize(size, b'v');
    Bytes::from(v)
}

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
    /// With G > 0 (and no `conflicts_pct` or `zipf`), key `k<i>` belongs to
    /// group `i mod G`, and all operations of a request (see
    /// [`Generator::begin_request`]) use keys of one group, taking its keys in
    /// turn from a random one. A chain of multi-dispatched operations then
    /// ties at most one group's keys together, so the MDL checker searches G
    /// small components instead of one big one (chaos runs, whose stalled
    /// operations would otherwise outlast the search's window). 0: off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub key_groups: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            reads_pct: 0.0,
            conflicts_pct: None,
            keys: 100_000,
            zipf: 0.0,
            value_size: MIN_VALUE_SIZE,
            key_groups: 0,
        }
    }
}

impl Mix {
    /// Refuses a mix whose values could not all be unique.
    pub fn validate(&self) -> Result<(), MixError> {
        if self.value_size < MIN_VALUE_SIZE {
            return Err(MixError::ValueTooSmall(self.value_size));
        }
        Ok(())
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
    /// With `key_groups`: the current request's group and the index (in
    /// the group) of its next key.
    group: Option<(u64, u64)>,
}

impl Generator {
    /// A generator for client number `client_tag` of `clients`, in an
    /// experiment seeded with `seed`.
    pub fn new(mix: &Mix, seed: u64, client_tag: u64, clients: usize) -> Self {
        let zipf = (mix.zipf > 0.0 && mix.conflicts_pct.is_none())
            .then(|| Zipf::new(mix.keys.max(1), mix.zipf).ok())
            .flatten();
        Generator {
            mix: mix.clone(),
            rng: SmallRng::seed_from_u64(seed ^ client_tag.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            zipf,
            client_tag,
            private_keys: (mix.keys / clients.max(1) as u64).max(1),
            group: None,
        }
    }

    /// Keys in each group (with `key_groups`).
    fn group_size(&self) -> u64 {
        (self.mix.keys / self.mix.key_groups.max(1)).max(1)
    }

    /// Starts a request: with `key_groups`, its operations use keys of one
    /// group, chosen now. Without, nothing changes (and no random number is
    /// drawn, so runs without groups are as before).
    pub fn begin_request(&mut self) {
        if self.mix.key_groups > 0 {
            let g = self.rng.gen_range(0..self.mix.key_groups);
            let j = self.rng.gen_range(0..self.group_size());
            self.group = Some((g, j));
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
        if self.mix.key_groups > 0 && self.zipf.is_none() {
            let groups = self.mix.key_groups;
            let size = self.group_size();
            // An operation outside a request gets a group of its own.
            let (g, j) = match self.group {
                Some(x) => x,
                None => (self.rng.gen_range(0..groups), self.rng.gen_range(0..size)),
            };
            self.group = self.group.map(|_| (g, (j + 1) % size));
            return Bytes::from(format!("k{}", g + groups * (j % size)));
        }
        let k = match &self.zipf {
            Some(z) => z.sample(&mut self.rng) as u64 - 1,
            None => self.rng.gen_range(0..self.mix.keys.max(1)),
        };
        Bytes::from(format!("k{k}"))
    }

    /// The next command, as operation `seq` of session `client`; a put
    /// writes [`unique_value`]`(client, seq, ..)`.
    pub fn next_command(&mut self, client: u64, seq: u64) -> Command {
        let key = self.key();
        if self
            .rng
            .gen_bool((self.mix.reads_pct / 100.0).clamp(0.0, 1.0))
        {
            Command::get(client, seq, key)
        } else {
            let value = unique_value(client, seq, self.mix.value_size);
            Command::put(client, seq, key, value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genericsmr::command::Op;

    #[test]
    fn conflict_share_hits_the_hot_key() {
        let mix = Mix {
            conflicts_pct: Some(25.0),
            ..Default::default()
        };
        let mut g = Generator::new(&mix, 1, 3, 8);
        let hot = (0..20_000)
            .filter(|_| g.next_command(3, 1).key == HOT_KEY.as_bytes())
            .count();
        assert!((4500..5500).contains(&hot), "{hot}");
        let mix = Mix {
            conflicts_pct: Some(0.0),
            ..Default::default()
        };
        let mut a = Generator::new(&mix, 1, 1, 8);
        let mut b = Generator::new(&mix, 1, 2, 8);
        let mut keys = std::collections::HashSet::new();
        for s in 0..100_000 {
            let (x, y) = (a.next_command(1, s), b.next_command(2, s));
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
    fn a_request_keeps_to_one_key_group_and_every_group_is_used() {
        let mix = Mix {
            keys: 50,
            key_groups: 25,
            ..Default::default()
        };
        let mut g = Generator::new(&mix, 3, 1, 4);
        let mut groups = std::collections::HashSet::new();
        for _ in 0..2_000 {
            g.begin_request();
            let keys: Vec<u64> = (0..2)
                .map(|s| {
                    let k = g.next_command(1, s).key;
                    let k = std::str::from_utf8(&k).expect("ASCII");
                    k[1..].parse().expect("k<number>")
                })
                .collect();
            assert!(keys.iter().all(|k| *k < 50), "{keys:?}");
            // Both in one group, and not the same key: the chain crosses keys.
            assert_eq!(keys[0] % 25, keys[1] % 25, "{keys:?}");
            assert_ne!(keys[0], keys[1]);
            groups.insert(keys[0] % 25);
        }
        assert_eq!(groups.len(), 25);
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
        for s in 0..10_000 {
            let (x, y) = (a.next_command(1, s), b.next_command(1, s));
            assert_eq!(x, y);
            reads += (x.op == Op::Get) as usize;
        }
        assert!((4500..5500).contains(&reads));
    }

    #[test]
    fn values_are_unique_name_their_writer_and_fit() {
        let mix = Mix::default();
        let mut seen = std::collections::HashSet::new();
        for client in [1u64, 0xdead_beef, u64::MAX] {
            let mut g = Generator::new(&mix, 1, client, 4);
            for seq in (1..2_000).chain([u64::MAX - 1, u64::MAX]) {
                let c = g.next_command(client, seq);
                if c.op != Op::Put {
                    continue;
                }
                assert_eq!(c.value.len(), mix.value_size);
                let text = std::str::from_utf8(&c.value).expect("ASCII");
                let name = format!("c{client:016x}-s{seq:x}-");
                assert!(text.starts_with(&name), "{text}");
                assert!(seen.insert(c.value.clone()), "{text} written twice");
            }
        }
        // The longest name exactly fills the minimum size.
        assert_eq!(
            unique_value(u64::MAX, u64::MAX, MIN_VALUE_SIZE),
            format!("c{:016x}-s{:x}-", u64::MAX, u64::MAX).as_bytes()
        );
        assert!(mix.validate().is_ok());
        let small = Mix {
            value_size: MIN_VALUE_SIZE - 1,
            ..mix
        };
        let err = small.validate().unwrap_err().to_string();
        assert!(err.contains(&MIN_VALUE_SIZE.to_string()), "{err}");
    }
}
