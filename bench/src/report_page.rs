//! `bench report DIR`: one self-contained HTML page for a run or a sweep,
//! with the summary table, the verdict of the history check and the plots
//! inline as SVG. Every number in a table names the field of `report.json`
//! (or `sweep.json`) it shows, so a test can check the page against it.

use std::path::{Path, PathBuf};

use crate::figures;
use crate::html::{Cell, Page};
use crate::outputs::{self, Output, RunDir, SweepDir};
use crate::report::Report;

/// Writes the page for the run or sweep in `dir` to `file` (default
/// `DIR/report.html`) and returns where.
pub fn write(dir: &Path, file: Option<&Path>) -> anyhow::Result<PathBuf> {
    let page = match outputs::open(dir)? {
        Output::Run(r) => run_page(&r)?,
        Output::Sweep(s) => sweep_page(&s)?,
    };
    let file = file.map_or_else(|| dir.join("report.html"), Path::to_path_buf);
    std::fs::write(&file, page)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
    Ok(file)
}

/// What a figure shows, for its caption.
pub fn caption(stem: &str) -> &'static str {
    match stem {
        "latency_percentiles" => "Latency by percentile: the x axis is 1/(1-p), so 90%, 99%, 99.9% and 99.99% are evenly spaced (the HdrHistogram convention); measured window only.",
        "latency_cdf" => "Cumulative distribution of latency, log latency axis; measured window only.",
        "throughput" => "Successful operations per second over the whole run; shaded: warm-up and cool-down, left out of the statistics; a last partial second is taken over its true length.",
        "latency_over_time" => "Mean latency of the operations completed in each second; shaded: warm-up and cool-down.",
        "throughput_latency" => "Each point is one step of the sweep; one colour per protocol, p50 solid, p99 dashed.",
        "steps_throughput" => "Throughput of each step, one colour per protocol.",
        "steps_latency" => "Request latency of each step, one colour per protocol, p50 solid, p99 dashed.",
        _ => "",
    }
}

/// The checker's verdict: (text, style class).
fn verdict(r: &Report) -> (String, &'static str) {
    let Some(c) = &r.checker else {
        return (
            "not checked: this run recorded no history (bench local records and checks one unless --no-check)".into(),
            "none",
        );
    };
    let v = c.get("verdict").and_then(|v| v.as_str()).unwrap_or("?");
    let why = c.get("vacuous").and_then(|v| v.as_str());
    let text = match why {
        Some(w) => format!("history check: {v} ({w})"),
        None => format!("history check: {v}"),
    };
    (text, if v == "ok" { "ok" } else { "bad" })
}

fn run_page(run: &RunDir) -> anyhow::Result<String> {
    let r = &run.report;
    let mut p = Page::new(&format!("bench report: {}", run.dir.display()));
    p.para(&format!(
        "{} with {} replicas{}; server flags: {}",
        r.protocol,
        r.replicas,
        if r.shards > 1 {
            format!(" in each of {} shards", r.shards)
        } else {
            String::new()
        },
        if r.server_flags.is_empty() {
            "none".into()
        } else {
            r.server_flags.join(" ")
        }
    ));
    let (text, class) = verdict(r);
    p.heading(2, "Verdict");
    p.badge("verdict", class, &text);
    if let Some(h) = &r.history {
        p.para(&format!(
            "The history: {} operations, {} reads ({} saw a value), {} writes of {} distinct values, {} keys ({} written more than once).",
            h.operations, h.reads, h.reads_with_value, h.writes, h.distinct_values, h.keys, h.overwritten_keys
        ));
    }
    p.heading(2, "Summary");
    let w = &r.workload;
    p.para(&format!(
        "{} clients, {} s of load ({} s warm-up and {} s cool-down left out), {}% reads, fan-out {}.",
        w.clients, w.duration_s, w.warmup_s, w.cooldown_s, w.mix.reads_pct, w.fanout
    ));
    let l = &r.latency_us;
    let row = |name: &str, c: Cell| vec![Cell::text(name), c];
    let rows = vec![
        row(
            "throughput (operations/s)",
            Cell::number(r.throughput_ops_s, 0, "/throughput_ops_s"),
        ),
        row(
            "throughput (requests/s)",
            Cell::number(r.throughput_requests_s, 0, "/throughput_requests_s"),
        ),
        row(
            "measured window (s)",
            Cell::number(r.measured_s, 2, "/measured_s"),
        ),
        row(
            "latency p50 (µs)",
            Cell::number(l.p50, 0, "/latency_us/p50"),
        ),
        row(
            "latency p90 (µs)",
            Cell::number(l.p90, 0, "/latency_us/p90"),
        ),
        row(
            "latency p99 (µs)",
            Cell::number(l.p99, 0, "/latency_us/p99"),
        ),
        row(
            "latency p99.9 (µs)",
            Cell::number(l.p999, 0, "/latency_us/p999"),
        ),
        row(
            "latency p99.99 (µs)",
            Cell::number(l.p9999, 0, "/latency_us/p9999"),
        ),
        row(
            "latency max (µs)",
            Cell::number(l.max, 0, "/latency_us/max"),
        ),
        row(
            "latency mean (µs)",
            Cell::number(l.mean, 0, "/latency_us/mean"),
        ),
        row("operations ok", Cell::number(r.ops_ok as f64, 0, "/ops_ok")),
        row(
            "operations failed",
            Cell::number(r.ops_failed as f64, 0, "/ops_failed"),
        ),
        row(
            "operations timed out",
            Cell::number(r.ops_timed_out as f64, 0, "/ops_timed_out"),
        ),
    ];
    p.table("summary", &["measure", "value"], &rows);
    if !r.by_site.is_empty() {
        p.heading(3, "By client site");
        let rows: Vec<Vec<Cell>> = r
            .by_site
            .iter()
            .enumerate()
            .map(|(i, s)| {
                vec![
                    Cell::text(&s.site),
                    Cell::number(s.ops as f64, 0, format!("/by_site/{i}/ops")),
                    Cell::number(s.latency_us.p50, 0, format!("/by_site/{i}/latency_us/p50")),
                    Cell::number(s.latency_us.p99, 0, format!("/by_site/{i}/latency_us/p99")),
                    match s.model_us {
                        Some(m) => Cell::number(m, 0, format!("/by_site/{i}/model_us")),
                        None => Cell::text("-"),
                    },
                ]
            })
            .collect();
        p.table(
            "by_site",
            &["site", "operations", "p50 (µs)", "p99 (µs)", "model (µs)"],
            &rows,
        );
    }
    p.heading(2, "Plots");
    for (stem, chart) in figures::run_charts(run) {
        p.figure(&format!("fig-{stem}"), &chart.svg()?, caption(stem));
    }
    Ok(p.finish())
}

fn sweep_page(s: &SweepDir) -> anyhow::Result<String> {
    let mut p = Page::new(&format!("bench report: {}", s.dir.display()));
    p.para(&format!(
        "A sweep of {} runs over {}.",
        s.rows.len(),
        s.protocols().join(", ")
    ));
    p.heading(2, "Verdict");
    let checked: Vec<_> = s
        .rows
        .iter()
        .filter_map(|r| r.report.checker.as_ref())
        .collect();
    if checked.is_empty() {
        p.badge(
            "verdict",
            "none",
            "not checked: the steps of a sweep record no history (run bench local, which checks by default, or give --history)",
        );
    } else {
        let bad = checked
            .iter()
            .filter(|c| c.get("verdict").and_then(|v| v.as_str()) != Some("ok"))
            .count();
        p.badge(
            "verdict",
            if bad == 0 { "ok" } else { "bad" },
            &format!(
                "history check: {} of {} checked steps ok",
                checked.len() - bad,
                checked.len()
            ),
        );
    }
    p.heading(2, "Summary");
    let rows: Vec<Vec<Cell>> = s
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let r = &row.report;
            let l = &r.latency_us;
            vec![
                Cell::text(&row.protocol),
                Cell::text(&row.step),
                Cell::number(
                    r.throughput_ops_s,
                    0,
                    format!("/{i}/report/throughput_ops_s"),
                ),
                Cell::number(l.p50, 0, format!("/{i}/report/latency_us/p50")),
                Cell::number(l.p99, 0, format!("/{i}/report/latency_us/p99")),
                Cell::number(l.p999, 0, format!("/{i}/report/latency_us/p999")),
                Cell::number(r.ops_ok as f64, 0, format!("/{i}/report/ops_ok")),
                Cell::number(r.ops_failed as f64, 0, format!("/{i}/report/ops_failed")),
                Cell::number(
                    r.ops_timed_out as f64,
                    0,
                    format!("/{i}/report/ops_timed_out"),
                ),
            ]
        })
        .collect();
    p.table(
        "summary",
        &[
            "protocol",
            "step",
            "throughput (operations/s)",
            "p50 (µs)",
            "p99 (µs)",
            "p99.9 (µs)",
            "ok",
            "failed",
            "timed out",
        ],
        &rows,
    );
    p.heading(2, "Plots");
    for (stem, chart) in figures::sweep_charts(s) {
        p.figure(&format!("fig-{stem}"), &chart.svg()?, caption(stem));
    }
    Ok(p.finish())
}
