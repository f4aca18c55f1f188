//! Reading back what `bench local` and `bench sweep` wrote: a run folder
//! (`report.json`, `timeseries.csv`, `latency.hgrm`) or a sweep folder
//! (`sweep.json` and one run folder per step). `bench report`, `bench
//! compare` and `bench reproduce` work from these files alone.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::report::Report;

/// Largest output file read back (a run's files are kilobytes).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// One second of a run's time series (`timeseries.csv`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecondRow {
    /// Operations answered with success.
    pub ok: u64,
    /// Operations that certainly failed.
    pub failed: u64,
    /// Operations given up on.
    pub timed_out: u64,
    /// Mean latency of the successful ones, microseconds (0 without any).
    pub mean_latency_us: f64,
}

/// A run folder read back.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The folder.
    pub dir: PathBuf,
    /// `report.json`.
    pub report: Report,
    /// `timeseries.csv`, one row per second since the start.
    pub seconds: Vec<SecondRow>,
    /// `latency.hgrm`: (percentile 0..100, latency in microseconds), rising.
    pub spectrum: Vec<(f64, f64)>,
    /// `op_latency.hgrm` (runs with a fan-out above 1): the same for operations.
    pub op_spectrum: Vec<(f64, f64)>,
}

/// One step of a sweep.
#[derive(Debug, Clone, Deserialize)]
pub struct SweepRow {
    /// Protocol of the step.
    pub protocol: String,
    /// Step name, e.g. `conflicts-25` or `fanout-8`.
    pub step: String,
    /// Its report.
    pub report: Report,
}

impl SweepRow {
    /// What the sweep stepped (`conflicts`, `fanout`, `clients`, `rate`) and
    /// the step's value, from its name.
    pub fn parameter(&self) -> Option<(&str, f64)> {
        let (kind, v) = self.step.rsplit_once('-')?;
        Some((kind, v.parse().ok()?))
    }
}

/// A sweep folder read back.
#[derive(Debug, Clone)]
pub struct SweepDir {
    /// The folder.
    pub dir: PathBuf,
    /// `sweep.json`: every step of every protocol, in the order run.
    pub rows: Vec<SweepRow>,
}

impl SweepDir {
    /// The protocols swept, in the order run.
    pub fn protocols(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rows {
            if !out.contains(&r.protocol) {
                out.push(r.protocol.clone());
            }
        }
        out
    }

    /// The run folder of a step (`<sweep>/<protocol>/<step>`).
    pub fn step_dir(&self, r: &SweepRow) -> PathBuf {
        self.dir.join(&r.protocol).join(&r.step)
    }
}

/// What a folder holds.
#[derive(Debug, Clone)]
pub enum Output {
    /// One run (`bench local` or `bench run`).
    Run(Box<RunDir>),
    /// A sweep (`bench sweep`).
    Sweep(SweepDir),
}

/// Reads the run or sweep in `dir`.
pub fn open(dir: &Path) -> anyhow::Result<Output> {
    if dir.join("sweep.json").is_file() {
        return Ok(Output::Sweep(open_sweep(dir)?));
    }
    if dir.join("report.json").is_file() {
        return Ok(Output::Run(Box::new(open_run(dir)?)));
    }
    anyhow::bail!(
        "{} holds neither report.json (a run of bench local) nor sweep.json (bench sweep)",
        dir.display()
    )
}

/// Reads a sweep folder.
pub fn open_sweep(dir: &Path) -> anyhow::Result<SweepDir> {
    let path = dir.join("sweep.json");
    let rows: Vec<SweepRow> = serde_json::from_str(&read(&path)?)
        .with_context(|| format!("{} is not a sweep.json", path.display()))?;
    Ok(SweepDir {
        dir: dir.to_path_buf(),
        rows,
    })
}

/// Reads a run folder.
pub fn open_run(dir: &Path) -> anyhow::Result<RunDir> {
    let path = dir.join("report.json");
    let report: Report = serde_json::from_str(&read(&path)?)
        .with_context(|| format!("{} is not a report.json", path.display()))?;
    let ts = dir.join("timeseries.csv");
    let seconds = if ts.is_file() {
        parse_timeseries(&read(&ts)?).with_context(|| format!("reading {}", ts.display()))?
    } else {
        Vec::new()
    };
    let hgrm = |name: &str| -> anyhow::Result<Vec<(f64, f64)>> {
        let hg = dir.join(name);
        if !hg.is_file() {
            return Ok(Vec::new());
        }
        parse_hgrm(&read(&hg)?).with_context(|| format!("reading {}", hg.display()))
    };
    Ok(RunDir {
        dir: dir.to_path_buf(),
        report,
        seconds,
        spectrum: hgrm("latency.hgrm")?,
        op_spectrum: hgrm("op_latency.hgrm")?,
    })
}

/// A file's text, refusing one too large to be an output of `bench`.
pub fn read(path: &Path) -> anyhow::Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    anyhow::ensure!(
        len <= MAX_FILE_BYTES,
        "{} has {len} bytes, more than the {MAX_FILE_BYTES} an output of bench has",
        path.display()
    );
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `second,ok_ops,failed_ops,timed_out_ops,mean_latency_us` rows.
pub fn parse_timeseries(text: &str) -> anyhow::Result<Vec<SecondRow>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        anyhow::ensure!(f.len() == 5, "line {}: expected 5 fields", i + 1);
        let int = |s: &str| {
            s.trim()
                .parse::<u64>()
                .with_context(|| format!("line {}: '{s}' is not a count", i + 1))
        };
        out.push(SecondRow {
            ok: int(f[1])?,
            failed: int(f[2])?,
            timed_out: int(f[3])?,
            mean_latency_us: f[4]
                .trim()
                .parse()
                .with_context(|| format!("line {}: '{}' is not a latency", i + 1, f[4]))?,
        });
    }
    Ok(out)
}

/// The (percentile, microseconds) points of an HdrHistogram percentile
/// distribution (`latency.hgrm`, values in microseconds).
pub fn parse_hgrm(text: &str) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 || line.trim_start().starts_with('#') || f[0] == "Value" {
            continue;
        }
        let v: f64 = f[0]
            .parse()
            .with_context(|| format!("line {}: '{}' is not a value", i + 1, f[0]))?;
        let q: f64 = f[1]
            .parse()
            .with_context(|| format!("line {}: '{}' is not a percentile", i + 1, f[1]))?;
        anyhow::ensure!(
            (0.0..=1.0).contains(&q) && v.is_finite() && v >= 0.0,
            "line {}: percentile {q} or value {v} out of range",
            i + 1
        );
        out.push((q * 100.0, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_and_timeseries_parse_and_bad_lines_are_errors() {
        let h = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n     100.000 0.000000000000          1           1.00\n     250.500 0.990000000000         99         100.00\n#[Mean    =      120.000, StdDeviation   =       10.000]\n";
        assert_eq!(parse_hgrm(h).unwrap(), vec![(0.0, 100.0), (99.0, 250.5)]);
        assert!(parse_hgrm("  1.0 7.5 1 1\n").is_err());
        let t = "second,ok_ops,failed_ops,timed_out_ops,mean_latency_us\n0,10,0,1,250.5\n";
        let rows = parse_timeseries(t).unwrap();
        assert_eq!(rows[0].ok, 10);
        assert_eq!(rows[0].timed_out, 1);
        let e = parse_timeseries("h\n0,x,0,0,1\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
    }
}
