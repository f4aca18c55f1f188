//! Wide-area latency matrices: sites and the round-trip times between them,
//! from a TOML file or a preset. Replica `i` sits at site `i % sites`, and so
//! does client `c` at site `c % sites`; every message between two sites is
//! delayed by half their round-trip time (servers delay peer messages,
//! `bench` delays client messages), since kernel netem is not available here.

use serde::Deserialize;

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
}

/// The presets shipped with `bench`.
pub const PRESETS: [(&str, &str); 1] = [("epaxos5", include_str!("../presets/epaxos5.toml"))];

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
        Ok(())
    }

    /// The site of replica (or client) `i`.
    pub fn site_of(&self, i: usize) -> usize {
        i % self.sites.len()
    }

    /// One-way delay in milliseconds between the sites of `a` and `b`.
    pub fn one_way_ms(&self, a: usize, b: usize) -> f64 {
        self.rtt_ms[self.site_of(a)][self.site_of(b)] / 2.0
    }

    /// Server flags that give replica `i` of `n` its one-way delays to every peer.
    pub fn server_flags(&self, i: usize, n: usize) -> Vec<String> {
        let delays: Vec<String> = (0..n)
            .map(|j| format!("{}", self.one_way_ms(i, j)))
            .collect();
        vec![format!("--link-delays-ms={}", delays.join(","))]
    }

    /// The Multi-Paxos latency model for a client at `site` with the leader at
    /// replica `leader` of `n`: the round trip to the leader plus the leader's
    /// round trip to the nearest majority (its `n/2`-th nearest other replica).
    pub fn paxos_model_ms(&self, site: usize, leader: usize, n: usize) -> f64 {
        let ls = self.site_of(leader);
        let mut others: Vec<f64> = (0..n)
            .filter(|j| *j != leader)
            .map(|j| self.rtt_ms[ls][self.site_of(j)])
            .collect();
        others.sort_by(f64::total_cmp);
        let quorum_rtt = if n / 2 == 0 { 0.0 } else { others[n / 2 - 1] };
        self.rtt_ms[site][ls] + quorum_rtt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_loads_and_model_matches_hand_arithmetic() {
        let m = Matrix::load("epaxos5").unwrap();
        assert_eq!(m.sites.len(), 5);
        // Leader in Virginia: its nearest majority of 5 needs 2 others, California (72.2) and Ireland (80.5).
        assert!((m.paxos_model_ms(0, 0, 5) - 80.5).abs() < 1e-9);
        assert!((m.paxos_model_ms(4, 0, 5) - (145.3 + 80.5)).abs() < 1e-9);
        assert_eq!(
            m.server_flags(1, 5),
            vec!["--link-delays-ms=36.1,0,9.65,76.6,51.25".to_string()]
        );
        assert!(Matrix::load("nope")
            .unwrap_err()
            .to_string()
            .contains("epaxos5"));
    }
}
