//! The sweeps an experiment runs, as `bench sweep` arguments, and what
//! they cost in time.

/// One `bench sweep`.
#[derive(Debug, Clone)]
pub struct SweepPlan {
    /// Its folder under `runs/`, and its name in the results.
    pub label: String,
    /// Protocols compared (each gets every step).
    pub protocols: Vec<&'static str>,
    /// The sweep's step flag and values, e.g. `--fanout-steps` and 1, 2, 4.
    pub steps: (&'static str, Vec<f64>),
    /// Every other flag (cluster and workload).
    pub flags: Vec<String>,
    /// Load of each step, seconds.
    pub duration_s: f64,
    /// Warm-up of each step, seconds.
    pub warmup_s: f64,
    /// Cool-down of each step, seconds.
    pub cooldown_s: f64,
    /// Servers started for each protocol (for the estimate).
    pub servers: usize,
}

/// Seconds a cluster takes to start and stop, in all and per server
/// (measured: the full runs take their load time and a few seconds more).
const START_S: f64 = 1.0;
const START_PER_SERVER_S: f64 = 0.05;
/// Seconds between two steps of a sweep (reports, plots).
const STEP_OVERHEAD_S: f64 = 0.1;

impl SweepPlan {
    /// A sweep of `protocols` over `steps` with `flags`.
    pub fn new(
        label: impl Into<String>,
        protocols: &[&'static str],
        steps: (&'static str, &[f64]),
        flags: &[&str],
    ) -> SweepPlan {
        SweepPlan {
            label: label.into(),
            protocols: protocols.to_vec(),
            steps: (steps.0, steps.1.to_vec()),
            flags: flags.iter().map(|s| s.to_string()).collect(),
            duration_s: 10.0,
            warmup_s: 1.0,
            cooldown_s: 0.5,
            servers: 3,
        }
    }

    /// The same sweep with each step's load timing.
    pub fn timing(mut self, duration_s: f64, warmup_s: f64, cooldown_s: f64) -> SweepPlan {
        self.duration_s = duration_s;
        self.warmup_s = warmup_s;
        self.cooldown_s = cooldown_s;
        self
    }

    /// The same sweep, noting how many servers each cluster has.
    pub fn servers(mut self, n: usize) -> SweepPlan {
        self.servers = n;
        self
    }

    /// Runs: one per protocol and step.
    pub fn runs(&self) -> usize {
        self.protocols.len() * self.steps.1.len()
    }

    /// About how long it takes, seconds.
    pub fn estimate_s(&self) -> f64 {
        let starts =
            self.protocols.len() as f64 * (START_S + START_PER_SERVER_S * self.servers as f64);
        starts + self.runs() as f64 * (self.duration_s + STEP_OVERHEAD_S)
    }

    /// The `bench sweep` arguments (without `--out`).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["--protocol".to_string(), self.protocols.join(",")];
        a.push(self.steps.0.into());
        a.push(
            self.steps
                .1
                .iter()
                .map(|v| crate::plot::axis::number(*v, false))
                .collect::<Vec<_>>()
                .join(","),
        );
        a.extend(self.flags.iter().cloned());
        for (flag, v) in [
            ("--duration", self.duration_s),
            ("--warmup", self.warmup_s),
            ("--cooldown", self.cooldown_s),
        ] {
            a.push(flag.into());
            a.push(format!("{}s", crate::plot::axis::number(v, false)));
        }
        a
    }

    /// The command line, for the tables' notes.
    pub fn command(&self) -> String {
        format!("bench sweep {}", self.args().join(" "))
    }
}

/// The sweeps of an experiment, and how often each runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The sweeps, in order.
    pub sweeps: Vec<SweepPlan>,
    /// Repetitions of the whole set (tables take medians).
    pub repeats: usize,
}

impl Plan {
    /// Runs in all.
    pub fn runs(&self) -> usize {
        self.sweeps.iter().map(SweepPlan::runs).sum::<usize>() * self.repeats
    }

    /// About how long it takes, seconds.
    pub fn estimate_s(&self) -> f64 {
        self.sweeps.iter().map(SweepPlan::estimate_s).sum::<f64>() * self.repeats as f64
    }

    /// Every step's load set to `d` seconds, warm-up and cool-down shrunk to fit.
    pub fn set_step_duration(&mut self, d: f64) {
        for s in &mut self.sweeps {
            s.warmup_s = s.warmup_s.min(d * 0.3);
            s.cooldown_s = s.cooldown_s.min(d * 0.1);
            s.duration_s = d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_sweep_arguments_and_a_cost() {
        let s = SweepPlan::new(
            "s3",
            &["paxos", "mdlin"],
            ("--fanout-steps", &[1.0, 32.0]),
            &["--shards", "3"],
        )
        .timing(3.0, 1.5, 0.2);
        assert_eq!(
            s.command(),
            "bench sweep --protocol paxos,mdlin --fanout-steps 1,32 --shards 3 --duration 3s --warmup 1.5s --cooldown 0.2s"
        );
        let mut p = Plan {
            sweeps: vec![s],
            repeats: 3,
        };
        assert_eq!(p.runs(), 12);
        assert!(p.estimate_s() > 36.0);
        p.set_step_duration(1.0);
        assert_eq!(p.sweeps[0].warmup_s, 0.3);
        assert_eq!(p.sweeps[0].cooldown_s, 0.1);
    }
}
