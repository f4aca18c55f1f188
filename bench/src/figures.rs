//! The standard plots of a run or a sweep, built from its files
//! ([`crate::outputs`]) so `bench local`, `bench report` and `bench compare`
//! draw the same pictures. Each plot takes several runs, so comparing is
//! overlaying.

use std::path::Path;

use crate::outputs::{RunDir, SweepDir, SweepRow};
use crate::plot::palette::protocol_slot;
use crate::plot::{Axis, Band, Chart, Dash, Series};

/// A run to draw, with its legend name and palette slot.
pub struct Drawn<'a> {
    /// Legend name.
    pub name: String,
    /// Palette slot.
    pub colour: usize,
    /// The run.
    pub run: &'a RunDir,
}

impl<'a> Drawn<'a> {
    /// A run named and coloured after its protocol.
    pub fn by_protocol(run: &'a RunDir) -> Drawn<'a> {
        let r = &run.report;
        let mut name = format!("{} x{}", r.protocol, r.replicas);
        if r.shards > 1 {
            name.push_str(&format!(" x{} shards", r.shards));
        }
        Drawn {
            name,
            colour: protocol_slot(&r.protocol),
            run,
        }
    }
}

/// A latency unit for values up to `max_us` microseconds: its name and how
/// many microseconds it holds.
pub fn latency_unit(max_us: f64) -> (&'static str, f64) {
    if max_us >= 5_000.0 {
        ("ms", 1e3)
    } else {
        ("µs", 1.0)
    }
}

/// Latency against percentile on a 1/(1-p) axis up to 99.99%, one colour
/// per run; with a fan-out, requests solid and operations dashed.
pub fn spectrum(runs: &[Drawn]) -> Chart {
    let max = runs
        .iter()
        .flat_map(|d| d.run.spectrum.iter().chain(&d.run.op_spectrum))
        .map(|p| p.1)
        .fold(0.0, f64::max);
    let min = runs
        .iter()
        .flat_map(|d| d.run.spectrum.iter().chain(&d.run.op_spectrum))
        .map(|p| p.1)
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min);
    let (unit, div) = latency_unit(max);
    // A log axis once the tail is far above the body, else the body is flat.
    let y = if max / min.max(1e-9) > 20.0 {
        Axis::log(format!("latency ({unit}, log scale)"))
    } else {
        Axis::linear(format!("latency ({unit})")).from_zero()
    };
    let mut c = Chart::new(
        "Latency by percentile",
        Axis::percentile("percentile (1/(1-p) scale)"),
        y,
    );
    for d in runs {
        let scaled = |pts: &[(f64, f64)]| pts.iter().map(|(p, v)| (*p, v / div)).collect();
        let fanout = !d.run.op_spectrum.is_empty();
        let name = if fanout {
            format!("{}, requests", d.name)
        } else {
            d.name.clone()
        };
        c.series
            .push(Series::new(name, d.colour, scaled(&d.run.spectrum)));
        if fanout {
            c.series.push(
                Series::new(
                    format!("{}, operations", d.name),
                    d.colour,
                    scaled(&d.run.op_spectrum),
                )
                .dash(Dash::Dashed),
            );
        }
    }
    c
}

/// The latency CDF: percentile against latency on a log axis.
pub fn cdf(runs: &[Drawn]) -> Chart {
    let max = runs
        .iter()
        .flat_map(|d| d.run.spectrum.iter())
        .map(|p| p.1)
        .fold(0.0, f64::max);
    let (unit, div) = latency_unit(max);
    let mut c = Chart::new(
        "Latency CDF",
        Axis::log(format!("latency ({unit}, log scale)")),
        Axis::linear("percentile (%)").from_zero(),
    );
    for d in runs {
        c.series.push(Series::new(
            d.name.clone(),
            d.colour,
            d.run.spectrum.iter().map(|(p, v)| (v / div, *p)).collect(),
        ));
        if !d.run.op_spectrum.is_empty() {
            c.series.push(
                Series::new(
                    format!("{}, operations", d.name),
                    d.colour,
                    d.run
                        .op_spectrum
                        .iter()
                        .map(|(p, v)| (v / div, *p))
                        .collect(),
                )
                .dash(Dash::Dashed),
            );
        }
    }
    c
}

/// When the load of a run ends, seconds since its start.
fn load_end(run: &RunDir) -> f64 {
    let r = &run.report;
    if r.workload.duration_s > 0.0 {
        r.workload.duration_s
    } else {
        r.elapsed_s
    }
}

/// Shortest part of a second that still gets a point: a shorter tail
/// interval says little and its rate is noise.
const MIN_INTERVAL_S: f64 = 0.25;

/// Per-second points of a run, at the middle of each interval, with the
/// last interval's rate taken over its true length (or dropped when it is
/// shorter than [`MIN_INTERVAL_S`]), so a partial second is no drop.
fn per_second(
    run: &RunDir,
    f: impl Fn(&crate::outputs::SecondRow, f64) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let end = load_end(run);
    run.seconds
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let from = i as f64;
            let len = (end - from).min(1.0);
            if len < MIN_INTERVAL_S {
                return None;
            }
            Some((from + len / 2.0, f(s, len)?))
        })
        .collect()
}

/// The warm-up and cool-down of the first run, shaded.
fn windows(c: &mut Chart, runs: &[Drawn]) {
    let Some(d) = runs.first() else { return };
    let w = &d.run.report.workload;
    if w.duration_s <= 0.0 {
        return;
    }
    c.bands.push(Band {
        from: 0.0,
        to: w.warmup_s,
    });
    c.bands.push(Band {
        from: w.duration_s - w.cooldown_s,
        to: w.duration_s,
    });
    c.bands_label = "warm-up and cool-down (not measured)".into();
}

/// Operations per second over the run, warm-up and cool-down shaded,
/// seconds with failures or time-outs marked.
pub fn throughput_over_time(runs: &[Drawn]) -> Chart {
    let mut c = Chart::new(
        "Throughput over time",
        Axis::linear("time since start (s)").integer(),
        Axis::linear("throughput (operations/s)")
            .integer()
            .from_zero(),
    );
    windows(&mut c, runs);
    for d in runs {
        let pts = per_second(d.run, |s, len| Some(s.ok as f64 / len));
        c.series
            .push(Series::new(d.name.clone(), d.colour, pts.clone()));
        let bad = per_second(d.run, |s, len| {
            (s.failed + s.timed_out > 0).then_some(s.ok as f64 / len)
        });
        c.marks.extend(bad);
    }
    c.marks_label = "seconds with failures or time-outs".into();
    c
}

/// Mean latency of each second over the run, warm-up and cool-down shaded.
pub fn latency_over_time(runs: &[Drawn]) -> Chart {
    let max = runs
        .iter()
        .flat_map(|d| d.run.seconds.iter())
        .map(|s| s.mean_latency_us)
        .fold(0.0, f64::max);
    let (unit, div) = latency_unit(max);
    let mut c = Chart::new(
        "Latency over time (mean of each second)",
        Axis::linear("time since start (s)").integer(),
        Axis::linear(format!("mean latency ({unit})")).from_zero(),
    );
    windows(&mut c, runs);
    for d in runs {
        let pts = per_second(d.run, |s, _| (s.ok > 0).then_some(s.mean_latency_us / div));
        c.series.push(Series::new(d.name.clone(), d.colour, pts));
    }
    c
}

/// The plots of one run: (file stem, chart).
pub fn run_charts(run: &RunDir) -> Vec<(&'static str, Chart)> {
    let d = [Drawn::by_protocol(run)];
    vec![
        ("latency_percentiles", spectrum(&d)),
        ("latency_cdf", cdf(&d)),
        ("throughput", throughput_over_time(&d)),
        ("latency_over_time", latency_over_time(&d)),
    ]
}

/// A sweep to draw: its rows, a legend prefix (empty for one sweep) and
/// the palette slot of each protocol.
pub struct DrawnSweep<'a> {
    /// Prepended to every legend entry (compare: which sweep).
    pub prefix: String,
    /// The sweep.
    pub sweep: &'a SweepDir,
    /// `None`: each protocol in its own colour; `Some(k)`: the sweep's
    /// protocols take slots k, k+1, ... (compare: a colour per sweep and protocol).
    pub first_slot: Option<usize>,
}

impl DrawnSweep<'_> {
    fn groups(&self) -> Vec<(String, usize, Vec<&SweepRow>)> {
        self.sweep
            .protocols()
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let rows = self.sweep.rows.iter().filter(|r| r.protocol == p).collect();
                let name = format!("{}{p}", self.prefix);
                let slot = self.first_slot.map_or_else(|| protocol_slot(&p), |k| k + i);
                (name, slot, rows)
            })
            .collect()
    }
}

/// The latency unit for the highest p99 of some sweeps.
fn sweep_unit(sweeps: &[DrawnSweep]) -> (&'static str, f64) {
    let max = sweeps
        .iter()
        .flat_map(|s| s.sweep.rows.iter())
        .map(|r| r.report.latency_us.p99)
        .fold(0.0, f64::max);
    latency_unit(max)
}

/// Throughput against latency, one colour per protocol, p50 solid, p99 dashed.
pub fn throughput_latency(sweeps: &[DrawnSweep]) -> Chart {
    let (unit, div) = sweep_unit(sweeps);
    let mut c = Chart::new(
        "Throughput and latency",
        Axis::linear("throughput (operations/s)")
            .integer()
            .from_zero(),
        Axis::linear(format!("request latency ({unit})")).from_zero(),
    );
    percentile_lines(&mut c, sweeps, div, |r| Some(r.report.throughput_ops_s));
    c
}

/// p50 (solid) and p99 (dashed) request latency of every protocol of
/// every sweep, in `div` microseconds, against `x` of each step.
fn percentile_lines(
    c: &mut Chart,
    sweeps: &[DrawnSweep],
    div: f64,
    x: impl Fn(&SweepRow) -> Option<f64>,
) {
    for s in sweeps {
        for (name, colour, rows) in s.groups() {
            for (stat, dash) in [("p50", Dash::Solid), ("p99", Dash::Dashed)] {
                let pts = rows
                    .iter()
                    .filter_map(|r| {
                        let l = &r.report.latency_us;
                        let v = if stat == "p50" { l.p50 } else { l.p99 };
                        Some((x(r)?, v / div))
                    })
                    .collect();
                c.series.push(
                    Series::new(format!("{name} {stat}"), colour, pts)
                        .dash(dash)
                        .dots(),
                );
            }
        }
    }
}

/// The x axis for what a sweep stepped.
fn step_axis(kind: &str) -> Axis {
    match kind {
        "conflicts" => Axis::linear("conflicting commands (%)").from_zero(),
        "fanout" => Axis::log("fan-out (operations per request, log scale)"),
        "clients" => Axis::log("closed-loop clients (log scale)"),
        "rate" => Axis::log("offered load (requests/s, log scale)"),
        other => Axis::linear(other.to_string()),
    }
}

/// The x axis of the per-step plots, ticked at the steps when they are few.
fn steps_axis(kind: &str, sweeps: &[DrawnSweep]) -> Axis {
    let mut values: Vec<f64> = sweeps
        .iter()
        .flat_map(|s| s.sweep.rows.iter())
        .filter_map(|r| Some(r.parameter()?.1))
        .collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    let axis = step_axis(kind);
    if values.len() <= 10 {
        axis.ticks_at(&values)
    } else {
        axis
    }
}

/// The parameter a sweep stepped, when every row names one of one kind.
fn stepped(sweeps: &[DrawnSweep]) -> Option<String> {
    let mut kind = None;
    for r in sweeps.iter().flat_map(|s| s.sweep.rows.iter()) {
        let (k, _) = r.parameter()?;
        if kind.get_or_insert(k.to_string()) != k {
            return None;
        }
    }
    kind
}

/// Throughput against the stepped parameter, one line per protocol.
pub fn steps_throughput(sweeps: &[DrawnSweep]) -> Option<Chart> {
    let kind = stepped(sweeps)?;
    let mut c = Chart::new(
        "Throughput by step",
        steps_axis(&kind, sweeps),
        Axis::linear("throughput (operations/s)")
            .integer()
            .from_zero(),
    );
    for s in sweeps {
        for (name, colour, rows) in s.groups() {
            let pts = rows
                .iter()
                .filter_map(|r| Some((r.parameter()?.1, r.report.throughput_ops_s)))
                .collect();
            c.series.push(Series::new(name, colour, pts).dots());
        }
    }
    Some(c)
}

/// p50 and p99 request latency against the stepped parameter.
pub fn steps_latency(sweeps: &[DrawnSweep]) -> Option<Chart> {
    let kind = stepped(sweeps)?;
    let (unit, div) = sweep_unit(sweeps);
    let y = if kind == "fanout" {
        Axis::log(format!("request latency ({unit}, log scale)"))
    } else {
        Axis::linear(format!("request latency ({unit})")).from_zero()
    };
    let mut c = Chart::new("Latency by step", steps_axis(&kind, sweeps), y);
    percentile_lines(&mut c, sweeps, div, |r| Some(r.parameter()?.1));
    Some(c)
}

/// The plots of one sweep: (file stem, chart).
pub fn sweep_charts(sweep: &SweepDir) -> Vec<(&'static str, Chart)> {
    let d = [DrawnSweep {
        prefix: String::new(),
        sweep,
        first_slot: None,
    }];
    let mut out = vec![("throughput_latency", throughput_latency(&d))];
    if let Some(c) = steps_throughput(&d) {
        out.push(("steps_throughput", c));
    }
    if let Some(c) = steps_latency(&d) {
        out.push(("steps_latency", c));
    }
    out
}

/// Writes each chart as `<dir>/<stem>.png` and `.svg`.
pub fn write_all(dir: &Path, charts: &[(&str, Chart)]) -> anyhow::Result<()> {
    for (stem, c) in charts {
        c.write(&dir.join(stem))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{Mode, Spec};
    use crate::outputs::SecondRow;

    fn run(duration_s: f64, elapsed_s: f64, ok: &[u64]) -> RunDir {
        let spec = Spec {
            duration_s,
            warmup_s: 0.5,
            cooldown_s: 0.5,
            ..Spec::sample(Mode::Closed { window: 1 })
        };
        let d = crate::report::Deployment {
            protocol: "paxos".into(),
            replicas: 3,
            shards: 1,
            server_flags: Vec::new(),
        };
        let m = crate::stats::merge(&[]);
        RunDir {
            dir: "x".into(),
            report: crate::report::Report::new(d, &spec, &m, duration_s - 1.0, elapsed_s),
            seconds: ok
                .iter()
                .map(|ok| SecondRow {
                    ok: *ok,
                    failed: 0,
                    timed_out: 0,
                    mean_latency_us: 100.0,
                })
                .collect(),
            spectrum: Vec::new(),
            op_spectrum: Vec::new(),
        }
    }

    fn points(r: &RunDir) -> Vec<(f64, f64)> {
        throughput_over_time(&[Drawn::by_protocol(r)]).series[0]
            .points
            .clone()
    }

    #[test]
    fn a_partial_last_second_is_no_drop() {
        // Load ends at 3 s; a few answers arrive just after it.
        let p = points(&run(3.0, 3.05, &[100, 100, 100, 2]));
        assert_eq!(p, [(0.5, 100.0), (1.5, 100.0), (2.5, 100.0)]);
        // Load ends at 3.5 s: the last half second at its own rate.
        let p = points(&run(3.5, 3.5, &[100, 100, 100, 50]));
        assert_eq!(p[3], (3.25, 100.0));
        // Warm-up and cool-down are shaded.
        let c = throughput_over_time(&[Drawn::by_protocol(&run(3.5, 3.5, &[1, 1, 1, 1]))]);
        let b: Vec<(f64, f64)> = c.bands.iter().map(|b| (b.from, b.to)).collect();
        assert_eq!(b, [(0.0, 0.5), (3.0, 3.5)]);
    }
}
