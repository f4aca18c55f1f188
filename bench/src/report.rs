//! The files a run leaves in its output folder: `report.json`, `timeseries.csv`,
//! `latency.hgrm` and the plots. The JSON schema is documented in docs/bench.md.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::driver::Spec;
use crate::stats::{Latency, Merged};

/// Version of the `report.json` schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The contents of `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Protocol measured.
    pub protocol: String,
    /// Replicas in the group (in each shard, when sharded).
    pub replicas: usize,
    /// Number of shards (1: one group).
    #[serde(default = "one")]
    pub shards: usize,
    /// Flags the servers ran with (local runs).
    pub server_flags: Vec<String>,
    /// The offered load.
    pub workload: Spec,
    /// Length of the measured window, seconds (warm-up and cool-down excluded).
    pub measured_s: f64,
    /// Wall-clock length of the whole run, seconds.
    pub elapsed_s: f64,
    /// Successful operations per second in the measured window.
    pub throughput_ops_s: f64,
    /// Successful application requests (of `workload.fanout` operations
    /// each) per second in the measured window.
    #[serde(default)]
    pub throughput_requests_s: f64,
    /// Latency of successful application requests, microseconds (with a
    /// fan-out of 1, of operations).
    pub latency_us: Latency,
    /// Latency of successful operations, microseconds.
    #[serde(default)]
    pub op_latency_us: Latency,
    /// Successful operations in the window.
    pub ops_ok: u64,
    /// Operations that certainly failed, in the window.
    pub ops_failed: u64,
    /// Operations given up on without an answer (may have taken effect), in the window.
    pub ops_timed_out: u64,
    /// Successful application requests in the window.
    #[serde(default)]
    pub requests_ok: u64,
    /// Requests that ended with an operation that certainly failed, in the window.
    #[serde(default)]
    pub requests_failed: u64,
    /// Requests that ended with an operation given up on, in the window.
    #[serde(default)]
    pub requests_timed_out: u64,
    /// Replies received for operations already answered.
    pub ops_duplicate: u64,
    /// Open-loop arrivals shed in the window: they waited past
    /// `--max-wait-ms` for room in their client's window and were never
    /// sent (the offered load the replicas could not start on).
    #[serde(default)]
    pub requests_shed: u64,
    /// The linearizability checker's verdict, when a history was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checker: Option<serde_json::Value>,
    /// What the checked history let the checker see (reads, writes, distinct
    /// values, overwritten keys), so an `ok` can be weighed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<checker::HistoryStats>,
    /// With an emulated WAN: latency at each client site.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_site: Vec<SiteLatency>,
    /// Every change of a shard's leader the master reported during the run
    /// (polled every 250 ms; runs with a master only). A run whose leaders
    /// moved measured failovers too, whether a fault or an overload caused
    /// them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leader_changes: Vec<LeaderChange>,
}

/// A shard's leader as the master named it, changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaderChange {
    /// Seconds from the start of the load.
    pub t_s: f64,
    /// The shard.
    pub shard: usize,
    /// The leader before (`None`: none known).
    pub from: Option<u8>,
    /// The leader after (`None`: none known, e.g. while it fails over).
    pub to: Option<u8>,
}

/// Latency seen by the clients at one site of an emulated WAN.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SiteLatency {
    /// Site name.
    pub site: String,
    /// Successful operations of its clients in the window.
    pub ops: u64,
    /// Their latency, microseconds.
    pub latency_us: Latency,
    /// What the protocol's latency model predicts for this site, microseconds
    /// (Multi-Paxos: the round trip to the leader plus the leader's round trip
    /// to its nearest majority).
    pub model_us: Option<f64>,
}

fn one() -> usize {
    1
}

/// The deployment a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// Protocol measured.
    pub protocol: String,
    /// Replicas per shard.
    pub replicas: usize,
    /// Number of shards.
    pub shards: usize,
    /// Flags the servers ran with.
    pub server_flags: Vec<String>,
}

impl Report {
    /// Builds the report of a run.
    pub fn new(
        d: Deployment,
        workload: &Spec,
        m: &Merged,
        measured_s: f64,
        elapsed_s: f64,
    ) -> Report {
        let per_s = |x: u64| {
            if measured_s > 0.0 {
                x as f64 / measured_s
            } else {
                0.0
            }
        };
        Report {
            schema_version: SCHEMA_VERSION,
            protocol: d.protocol,
            replicas: d.replicas,
            shards: d.shards,
            server_flags: d.server_flags,
            workload: workload.clone(),
            measured_s,
            elapsed_s,
            throughput_ops_s: per_s(m.ops_ok),
            throughput_requests_s: per_s(m.ok),
            latency_us: Latency::of(&m.hist),
            op_latency_us: Latency::of(&m.op_hist),
            ops_ok: m.ops_ok,
            ops_failed: m.ops_failed,
            ops_timed_out: m.ops_timed_out,
            requests_ok: m.ok,
            requests_failed: m.failed,
            requests_timed_out: m.timed_out,
            ops_duplicate: m.duplicates,
            requests_shed: m.shed,
            checker: None,
            history: None,
            by_site: Vec::new(),
            leader_changes: Vec::new(),
        }
    }

    /// A one-screen summary.
    pub fn summary(&self) -> String {
        let l = &self.latency_us;
        let mut s = String::new();
        let shards = if self.shards > 1 {
            format!(" x{} shards", self.shards)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "{} x{}{shards}  {}",
            self.protocol,
            self.replicas,
            self.server_flags.join(" ")
        );
        let fanout = self.workload.fanout > 1;
        let _ = writeln!(
            s,
            "  throughput   {:>12.0} ops/s over {:.1} s",
            self.throughput_ops_s, self.measured_s
        );
        if fanout {
            let _ = writeln!(
                s,
                "               {:>12.0} requests/s ({} operations each, {})",
                self.throughput_requests_s,
                self.workload.fanout,
                if self.workload.multi_dispatch {
                    "chained, all at once"
                } else {
                    "one at a time"
                }
            );
        }
        let line = |s: &mut String, name: &str, l: &Latency| {
            let _ = writeln!(s, "  {name:<12} p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  p99.99 {:.0}  max {:.0}  mean {:.0}",
                l.p50, l.p90, l.p99, l.p999, l.p9999, l.max, l.mean);
        };
        if fanout {
            line(&mut s, "request us", l);
            line(&mut s, "op us", &self.op_latency_us);
        } else {
            line(&mut s, "latency us", l);
        }
        let _ = writeln!(
            s,
            "  operations   ok {}  failed {}  timed out {}  duplicate replies {}",
            self.ops_ok, self.ops_failed, self.ops_timed_out, self.ops_duplicate
        );
        if self.requests_shed > 0 {
            let _ = writeln!(
                s,
                "  shed         {} arrivals waited past --max-wait-ms for room and were never sent",
                self.requests_shed
            );
        }
        if fanout {
            let _ = writeln!(
                s,
                "  requests     ok {}  failed {}  timed out {}",
                self.requests_ok, self.requests_failed, self.requests_timed_out
            );
        }
        if !self.by_site.is_empty() {
            let _ = writeln!(
                s,
                "  {:<12} {:>8} {:>12} {:>12} {:>12}",
                "site", "ops", "p50 ms", "model ms", "p99 ms"
            );
            for b in &self.by_site {
                let model = b.model_us.map_or("-".into(), |m| format!("{:.1}", m / 1e3));
                let _ = writeln!(
                    s,
                    "  {:<12} {:>8} {:>12.1} {:>12} {:>12.1}",
                    b.site,
                    b.ops,
                    b.latency_us.p50 / 1e3,
                    model,
                    b.latency_us.p99 / 1e3
                );
            }
        }
        if let Some(first) = self.leader_changes.first() {
            let fmt = |l: Option<u8>| l.map_or("none".to_string(), |l| l.to_string());
            let _ = writeln!(
                s,
                "  leaders      moved {} time{} (first at {:.1} s, shard {}: {} -> {}): these figures include failovers",
                self.leader_changes.len(),
                if self.leader_changes.len() == 1 { "" } else { "s" },
                first.t_s,
                first.shard,
                fmt(first.from),
                fmt(first.to)
            );
        }
        if let Some(c) = &self.checker {
            let verdict = c.get("verdict").and_then(|v| v.as_str()).unwrap_or("?");
            let why = c.get("vacuous").and_then(|v| v.as_str());
            let secs = c.get("check_s").and_then(|v| v.as_f64()).unwrap_or(0.0);
            let _ = match why {
                Some(why) => writeln!(s, "  checker      {verdict}: {why} ({secs:.2} s)"),
                None => writeln!(s, "  checker      {verdict} ({secs:.2} s)"),
            };
        }
        if let Some(h) = &self.history {
            let _ = writeln!(
                s,
                "  history      {} ops, {} reads ({} saw a value), {} writes of {} distinct values, {} keys ({} overwritten)",
                h.operations,
                h.reads,
                h.reads_with_value,
                h.writes,
                h.distinct_values,
                h.keys,
                h.overwritten_keys
            );
        }
        s
    }
}

/// The standard HdrHistogram percentile distribution (values in microseconds).
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if h.is_empty() {
        return s;
    }
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            format!("{:.2}", 1.0 / (1.0 - q))
        } else {
            "inf".into()
        };
        let _ = writeln!(
            s,
            "{:>12.3} {:>14.12} {:>10} {:>14}",
            v.value_iterated_to() as f64 / 1e3,
            q,
            v.count_since_last_iteration(),
            inv
        );
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1e3,
        h.stdev() / 1e3
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1e3,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    s
}

/// `second,ok_ops,failed_ops,timed_out_ops,mean_latency_us` per second of the run.
pub fn timeseries_csv(m: &Merged) -> String {
    let mut s = String::from("second,ok_ops,failed_ops,timed_out_ops,mean_latency_us\n");
    for (i, b) in m.series.iter().enumerate() {
        let mean = if b.ok > 0 {
            b.latency_sum_ns as f64 / b.ok as f64 / 1e3
        } else {
            0.0
        };
        let _ = writeln!(s, "{i},{},{},{},{mean:.1}", b.ok, b.failed, b.timed_out);
    }
    s
}

/// Writes every file of one run into `out`.
pub fn write_run(out: &Path, report: &Report, m: &Merged) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(out.join("timeseries.csv"), timeseries_csv(m))?;
    std::fs::write(out.join("latency.hgrm"), hgrm(&m.hist))?;
    if report.workload.fanout > 1 {
        std::fs::write(out.join("op_latency.hgrm"), hgrm(&m.op_hist))?;
    }
    // The plots are drawn from the files, as `bench report` draws them.
    let run = crate::outputs::open_run(out)?;
    crate::figures::write_all(out, &crate::figures::run_charts(&run))
}

/// Prints a violation's witness as a table and writes it to `file` as
/// history lines, which `bench check` reads again (and finds violating on
/// their own).
pub fn write_counterexample(
    cx: &checker::linear::Counterexample,
    file: &Path,
) -> anyhow::Result<()> {
    let f = std::fs::File::create(file).map_err(|e| {
        anyhow::anyhow!("cannot write the counterexample to {}: {e}", file.display())
    })?;
    checker::history::write(std::io::BufWriter::new(f), &cx.operations)?;
    print!("counterexample: {}", cx.table());
    println!(
        "  (in {}; `bench check` it to see it fail on its own)",
        file.display()
    );
    Ok(())
}
