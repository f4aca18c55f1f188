//! `bench compare DIR...`: several runs and sweeps overlaid. Runs (of `bench
//! local` or `bench run`) share the latency-percentile, CDF and time plots,
//! one colour per run; sweeps share the throughput-latency and per-step
//! plots, one colour per sweep and protocol, p50 solid and p99 dashed. A
//! table (CSV, Markdown) and a page (`compare.html`) hold the figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::figures::{self, Drawn, DrawnSweep};
use crate::html::{Cell, Page};
use crate::outputs::{self, Output, RunDir, SweepDir};
use crate::plot::Chart;
use crate::report::Report;

/// What `bench compare` wrote.
pub struct Compared {
    /// Files written, plots included.
    pub files: Vec<PathBuf>,
    /// The Markdown table.
    pub table: String,
}

/// A short name for each input folder: its last path components, as few
/// as keep the names apart.
fn names(dirs: &[PathBuf]) -> Vec<String> {
    let parts: Vec<Vec<String>> = dirs
        .iter()
        .map(|d| {
            d.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    let tail = |p: &Vec<String>, k: usize| p[p.len().saturating_sub(k)..].join("/");
    let longest = parts.iter().map(Vec::len).max().unwrap_or(1);
    let k = (1..=longest)
        .find(|k| {
            let names: Vec<String> = parts.iter().map(|p| tail(p, *k)).collect();
            names
                .iter()
                .all(|n| names.iter().filter(|m| *m == n).count() == 1)
        })
        .unwrap_or(longest);
    parts.iter().map(|p| tail(p, k)).collect()
}

/// One row of the comparison table.
fn row(input: &str, what: &str, r: &Report) -> [String; 7] {
    let l = &r.latency_us;
    [
        input.to_string(),
        what.to_string(),
        format!("{:.0}", r.throughput_ops_s),
        format!("{:.0}", l.p50),
        format!("{:.0}", l.p99),
        format!("{:.0}", l.p999),
        r.checker
            .as_ref()
            .and_then(|c| c.get("verdict").and_then(|v| v.as_str()).map(String::from))
            .unwrap_or_else(|| "not checked".into()),
    ]
}

const HEADER: [&str; 7] = [
    "input",
    "protocol / step",
    "throughput (operations/s)",
    "p50 (µs)",
    "p99 (µs)",
    "p99.9 (µs)",
    "history check",
];

/// Overlays the runs and sweeps in `dirs`, writing into `out`.
pub fn compare(dirs: &[PathBuf], out: &Path) -> anyhow::Result<Compared> {
    anyhow::ensure!(!dirs.is_empty(), "bench compare needs at least one folder");
    let names = names(dirs);
    let mut runs: Vec<(String, RunDir)> = Vec::new();
    let mut sweeps: Vec<(String, SweepDir)> = Vec::new();
    for (d, n) in dirs.iter().zip(&names) {
        match outputs::open(d)? {
            Output::Run(r) => runs.push((n.clone(), *r)),
            Output::Sweep(s) => sweeps.push((n.clone(), s)),
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    let mut rows: Vec<[String; 7]> = Vec::new();
    let mut charts: Vec<(&'static str, Chart)> = Vec::new();
    if !runs.is_empty() {
        let drawn: Vec<Drawn> = runs
            .iter()
            .enumerate()
            .map(|(i, (n, r))| Drawn {
                name: format!("{n}: {}", r.report.protocol),
                colour: i,
                run: r,
            })
            .collect();
        charts.push(("latency_percentiles", figures::spectrum(&drawn)));
        charts.push(("latency_cdf", figures::cdf(&drawn)));
        charts.push(("throughput", figures::throughput_over_time(&drawn)));
        charts.push(("latency_over_time", figures::latency_over_time(&drawn)));
        for (n, r) in &runs {
            rows.push(row(n, &r.report.protocol, &r.report));
        }
    }
    if !sweeps.is_empty() {
        let mut slot = 0;
        let drawn: Vec<DrawnSweep> = sweeps
            .iter()
            .map(|(n, s)| {
                let d = DrawnSweep {
                    prefix: format!("{n}: "),
                    sweep: s,
                    first_slot: Some(slot),
                };
                slot += s.protocols().len();
                d
            })
            .collect();
        charts.push(("throughput_latency", figures::throughput_latency(&drawn)));
        if let Some(c) = figures::steps_throughput(&drawn) {
            charts.push(("steps_throughput", c));
        }
        if let Some(c) = figures::steps_latency(&drawn) {
            charts.push(("steps_latency", c));
        }
        for (n, s) in &sweeps {
            for r in &s.rows {
                rows.push(row(n, &format!("{} {}", r.protocol, r.step), &r.report));
            }
        }
    }
    figures::write_all(out, &charts)?;
    let mut files: Vec<PathBuf> = charts
        .iter()
        .flat_map(|(s, _)| [out.join(format!("{s}.png")), out.join(format!("{s}.svg"))])
        .collect();
    let mut csv = HEADER.join(",") + "\n";
    let mut md = format!(
        "| {} |\n|{}\n",
        HEADER.join(" | "),
        "---|".repeat(HEADER.len())
    );
    for r in &rows {
        let _ = writeln!(
            csv,
            "{}",
            r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",")
        );
        let _ = writeln!(md, "| {} |", r.join(" | "));
    }
    for (name, text) in [("compare.csv", &csv), ("compare.md", &md)] {
        std::fs::write(out.join(name), text)?;
        files.push(out.join(name));
    }
    let mut page = Page::new("bench compare");
    page.para(&format!(
        "Inputs: {}.",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| r.iter().map(Cell::text).collect())
        .collect();
    page.table("summary", &HEADER, &cells);
    for (stem, c) in &charts {
        page.figure(
            &format!("fig-{stem}"),
            &c.svg()?,
            crate::report_page::caption(stem),
        );
    }
    std::fs::write(out.join("compare.html"), page.finish())?;
    files.push(out.join("compare.html"));
    Ok(Compared { files, table: md })
}

/// A CSV field, quoted when it holds a comma or a quote.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn inputs_are_named_by_as_few_components_as_keep_them_apart() {
        let d = |s: &str| std::path::PathBuf::from(s);
        assert_eq!(super::names(&[d("/a/x"), d("/b/y")]), ["x", "y"]);
        assert_eq!(
            super::names(&[d("/t/s3/rep-1"), d("/t/s9/rep-1")]),
            ["s3/rep-1", "s9/rep-1"]
        );
    }
}
