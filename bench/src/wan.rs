//! Wide-area latency matrices: sites and the round-trip times between them,
//! from a TOML file or a preset. Replica `i` (its global id, in a sharded
//! deployment) sits at site `i % sites` and
//! client `c` at site `c % sites`, unless the file places them (`replicas` and
//! `clients`, lists of site names used in turn). Every message between two
//! sites is delayed by half their round-trip time (servers delay peer
//! messages, `bench` delays client messages), since kernel netem is not
//! available here.

use serde::Deserialize;

use crate::driver::WanClients;

/// A latency matrix.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Matrix {
    /// Where the numbers come from.
    #[serde(default)]
    pub source: String,
    /// Site names.
    pub sites: Vec<String>,
    /// Round-trip times in milliseconds, `rtt_ms[a][b]` from site a to site b.
    pub rtt_ms: Vec<Vec<f64>>,
    /// Where the replicas sit: replica `i` at site `replicas[i % len]`
    /// (empty: at site `i % sites`).
    #[serde(default)]
    pub replicas: Vec<String>,
    /// Where the clients sit: client `c` at site `clients[c % len]` (empty:
    /// at site `c % sites`).
    #[serde(default)]
    pub clients: Vec<String>,
}

/// The presets shipped with `bench`.
pub const PRESETS: [(&str, &str); 3] = [
    ("epaxos5", include_str!("../presets/epaxos5.toml")),
    ("mdlin-edge", include_str!("../presets/mdlin-edge.toml")),
    ("mdlin-dc", include_str!("../presets/mdlin-dc.toml")),
];

impl Matrix {
    /// A preset by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> anyhow::Result<Matrix> {
        let text = match PRESETS.iter().find(|(n, _)| *n == name_or_path) {
            Some((_, t)) => t.to_string(),
            None => std::fs::read_to_string(name_or_path).map_err(|e| {
                let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                anyhow::anyhow!(
                    "'{name_or_path}' is neither a preset ({}) nor a readable file: {e}",
                    names.join(", ")
                )
            })?,
        };
        let m: Matrix = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("latency matrix {name_or_path}: {e}"))?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let n = self.sites.len();
        anyhow::ensure!(n > 0, "a latency matrix needs at least one site");
        anyhow::ensure!(
            self.rtt_ms.len() == n && self.rtt_ms.iter().all(|r| r.len() == n),
            "rtt_ms must be {n} rows of {n} numbers"
        );
        for (a, row) in self.rtt_ms.iter().enumerate() {
            for (b, v) in row.iter().enumerate() {
                anyhow::ensure!(
                    v.is_finite() && *v >= 0.0,
                    "rtt_ms[{a}][{b}] = {v} is not a non-negative number"
                );
            }
        }
        for name in self.replicas.iter().chain(&self.clients) {
            anyhow::ensure!(
                self.sites.contains(name),
                "'{name}' is placed but is not one of the sites ({})",
                self.sites.join(", ")
            );
        }
        Ok(())
    }

    fn site_index(&self, name: &str) -> usize {
        self.sites.iter().position(|s| s == name).unwrap_or(0)
    }

    /// The site of replica `i`.
    pub fn replica_site(&self, i: usize) -> usize {
        match self.replicas.len() {
            0 => i % self.sites.len(),
            k => self.site_index(&self.replicas[i % k]),
        }
    }

    /// The sites clients occupy, in turn.
    pub fn client_sites(&self) -> Vec<usize> {
        match self.clients.len() {
            0 => (0..self.sites.len()).collect(),
            _ => self.clients.iter().map(|c| self.site_index(c)).collect(),
        }
    }

    /// One-way delay in milliseconds between replicas `a` and `b`.
    pub fn one_way_ms(&self, a: usize, b: usize) -> f64 {
        self.rtt_ms[self.replica_site(a)][self.replica_site(b)] / 2.0
    }

    /// Server flags that give replica `i` of `n` its one-way delays to every peer.
    pub fn server_flags(&self, i: usize, n: usize) -> Vec<String> {
        let delays: Vec<String> = (0..n)
            .map(|j| format!("{}", self.one_way_ms(i, j)))
            .collect();
        vec![format!("--link-delays-ms={}", delays.join(","))]
    }

    /// Where the clients of a group of `n` replicas sit, and their delays.
    pub fn clients(&self, n: usize) -> WanClients {
        let sites = self.client_sites();
        WanClients {
            sites: sites.iter().map(|s| self.sites[*s].clone()).collect(),
            one_way_ms: sites
                .iter()
                .map(|s| {
                    (0..n)
                        .map(|r| self.rtt_ms[*s][self.replica_site(r)] / 2.0)
                        .collect()
                })
                .collect(),
            replica_rtt_ms: (0..n)
                .map(|a| (0..n).map(|b| 2.0 * self.one_way_ms(a, b)).collect())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_loads_and_model_matches_hand_arithmetic() {
        let m = Matrix::load("epaxos5").unwrap();
        assert_eq!(m.sites.len(), 5);
        let w = m.clients(5);
        // Leader in Virginia: its nearest majority of 5 needs 2 others, California (72.2) and Ireland (80.5).
        assert!((w.paxos_model_ms(0, 0, 5) - 80.5).abs() < 1e-9);
        assert!((w.paxos_model_ms(4, 0, 5) - (145.3 + 80.5)).abs() < 1e-9);
        assert_eq!(
            m.server_flags(1, 5),
            vec!["--link-delays-ms=36.1,0,9.65,76.6,51.25".to_string()]
        );
        assert!(Matrix::load("nope")
            .unwrap_err()
            .to_string()
            .contains("epaxos5"));
    }

    #[test]
    fn mdlin_presets_place_replicas_and_clients() {
        // Edge clients: 90 ms to the leader, whose majority is 90 ms away.
        let e = Matrix::load("mdlin-edge").unwrap();
        let w = e.clients(3);
        assert_eq!(w.sites, vec!["clients".to_string()]);
        assert!((w.paxos_model_ms(0, 0, 3) - 180.0).abs() < 1e-9);
        assert_eq!(
            e.server_flags(0, 3),
            vec!["--link-delays-ms=0,45,45".to_string()]
        );
        // Datacenter clients: 2 ms to the leader.
        let d = Matrix::load("mdlin-dc").unwrap();
        assert!((d.clients(3).paxos_model_ms(0, 0, 3) - 92.0).abs() < 1e-9);
        // Shard leaders: 2 ms apart at the edge, 90 ms apart with datacenter clients.
        let (a, b) = (d.site_index("leader-a"), d.site_index("leader-b"));
        assert_eq!(e.rtt_ms[a][b], 2.0);
        assert_eq!(d.rtt_ms[a][b], 90.0);
        // Three shards of three: each shard's first replica at its own leader site.
        let c = e.site_index("leader-c");
        assert_eq!(
            (e.replica_site(0), e.replica_site(3), e.replica_site(6)),
            (a, b, c)
        );
        let w9 = e.clients(9);
        for s in 0..3 {
            let members = s * 3..s * 3 + 3;
            assert!((w9.paxos_model_in(0, s * 3, members) - 180.0).abs() < 1e-9);
        }
        let d9 = d.clients(9);
        assert!((d9.paxos_model_in(0, 6, 6..9) - 92.0).abs() < 1e-9);
        let bad = "sites = [\"x\"]\nrtt_ms = [[0.0]]\nreplicas = [\"y\"]\n";
        std::fs::write(std::env::temp_dir().join("wan-bad.toml"), bad).unwrap();
        let err = Matrix::load(std::env::temp_dir().join("wan-bad.toml").to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("'y'"), "{err}");
    }
}
