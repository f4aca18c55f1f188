//! `bench reproduce NAME`: one command per published experiment. Each runs
//! its sweeps (real `bench sweep` processes, so a table cell is exactly what
//! `bench sweep` measures), repeated for the full run, and writes its tables
//! (CSV and Markdown, the published value beside ours and why they differ),
//! its plots and `reproduce.json`.
//!
//! - [`plan`]: the sweeps an experiment runs, and what they cost;
//! - [`results`]: the sweeps read back, medians over repetitions;
//! - [`table`]: a table as CSV and Markdown;
//! - one file per experiment.

mod epaxos_conflicts;
mod epaxos_wan;
mod mdlin_singledc;
mod mdlin_wan;
pub mod plan;
mod ratio;
pub mod results;
pub mod table;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;

use crate::plot::Chart;
pub use plan::{Plan, SweepPlan};
pub use results::Results;
pub use table::Table;

/// One experiment.
pub struct Experiment {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it reproduces.
    pub about: &'static str,
    /// The sweeps of the full run (`false`) or of `--quick` (`true`).
    pub plan: fn(bool) -> Plan,
    /// Its tables, from the results.
    pub tables: fn(&Results) -> anyhow::Result<Vec<Table>>,
    /// Its plots: (file stem, chart).
    pub plots: fn(&Results) -> Vec<(String, Chart)>,
}

/// Every experiment.
pub const EXPERIMENTS: &[Experiment] = &[
    epaxos_conflicts::EXPERIMENT,
    epaxos_wan::EXPERIMENT,
    mdlin_singledc::EXPERIMENT,
    mdlin_wan::EXPERIMENT,
];

/// How to run an experiment.
#[derive(Debug, Clone)]
pub struct Options {
    /// The short version.
    pub quick: bool,
    /// Output folder.
    pub out: PathBuf,
    /// Each step's load, overriding the plan's (warm-up and cool-down shrink with it).
    pub step_duration_s: Option<f64>,
    /// Run nothing: make the tables and plots again from the sweeps an
    /// earlier run left in `out/runs/` (e.g. after a change to a plot).
    pub replot: bool,
    /// Run only the sweeps with these labels (empty: all).
    pub only: Vec<String>,
    /// The `bench` binary that runs the sweeps (the running one).
    pub bench: PathBuf,
}

impl Options {
    /// The command line that runs `name` with these options (output folder aside).
    pub fn command(&self, name: &str) -> String {
        let mut c = format!("bench reproduce {name}");
        if self.quick {
            c.push_str(" --quick");
        }
        if !self.only.is_empty() {
            c.push_str(&format!(" --only {}", self.only.join(",")));
        }
        if self.replot {
            c.push_str(" --replot");
        }
        if let Some(d) = self.step_duration_s {
            c.push_str(&format!(
                " --step-duration {}s",
                crate::plot::axis::number(d, false)
            ));
        }
        c
    }
}

/// What a reproduction wrote.
#[derive(Debug, Clone)]
pub struct Done {
    /// The Markdown of every table.
    pub markdown: String,
    /// Files written, relative to the output folder.
    pub files: Vec<String>,
    /// Wall-clock seconds it took.
    pub elapsed_s: f64,
}

/// The experiment called `name`.
pub fn find(name: &str) -> anyhow::Result<&'static Experiment> {
    EXPERIMENTS
        .iter()
        .find(|e| e.name == name)
        .with_context(|| {
            format!(
                "no experiment '{name}'; there are: {}",
                EXPERIMENTS
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Runs the experiment `name` and writes its files into `opts.out`.
pub fn run(name: &str, opts: &Options) -> anyhow::Result<Done> {
    let e = find(name)?;
    let mut plan = (e.plan)(opts.quick);
    if let Some(d) = opts.step_duration_s {
        plan.set_step_duration(d);
    }
    if !opts.only.is_empty() {
        let labels: Vec<&str> = plan.sweeps.iter().map(|s| s.label.as_str()).collect();
        for o in &opts.only {
            anyhow::ensure!(
                labels.contains(&o.as_str()),
                "{} has no sweep '{o}'; it has: {}",
                e.name,
                labels.join(", ")
            );
        }
        plan.sweeps.retain(|s| opts.only.contains(&s.label));
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let start = Instant::now();
    if !opts.replot {
        eprintln!(
            "{}{}: {} sweeps, {} runs, about {:.1} min",
            e.name,
            if opts.quick { " (quick)" } else { "" },
            plan.sweeps.len() * plan.repeats,
            plan.runs(),
            plan.estimate_s() / 60.0
        );
    }
    let mut results = Results::default();
    let total = plan.sweeps.len() * plan.repeats;
    let mut k = 0;
    if opts.replot {
        reload(&mut results, &plan, &opts.out)?;
    }
    for rep in (0..plan.repeats).filter(|_| !opts.replot) {
        for s in &plan.sweeps {
            k += 1;
            let dir = opts
                .out
                .join("runs")
                .join(&s.label)
                .join(format!("rep-{}", rep + 1));
            eprintln!(
                "[{k}/{total}] {} repetition {} of {} ({:.0} s elapsed)",
                s.label,
                rep + 1,
                plan.repeats,
                start.elapsed().as_secs_f64()
            );
            run_sweep(&opts.bench, s, &dir)?;
            results.add(&s.label, crate::outputs::open_sweep(&dir)?);
        }
    }
    let tables = (e.tables)(&results)?;
    let mut files = Vec::new();
    let mut elapsed_s = start.elapsed().as_secs_f64();
    let mut command = opts.command(e.name);
    let mut made = format!("`{command}` in {elapsed_s:.0} s");
    if opts.replot {
        // The run that measured, not the redrawing, made the numbers.
        let old = std::fs::read_to_string(opts.out.join("reproduce.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .context("--replot needs the reproduce.json of the run that measured")?;
        elapsed_s = old["elapsed_s"].as_f64().unwrap_or(f64::NAN);
        command = old["command"].as_str().unwrap_or("?").to_string();
        made = format!(
            "`{command}` in {elapsed_s:.0} s; tables and plots redrawn by `{}`",
            opts.command(e.name)
        );
    }
    let mut md = format!(
        "# {}\n\n{}\n\nMade by {} ({} runs in all, {} repetition{} of each sweep; medians over repetitions). Sweeps run: {}.\n\n",
        e.name,
        e.about,
        made,
        plan.runs(),
        plan.repeats,
        if plan.repeats == 1 { "" } else { "s" },
        plan.sweeps
            .iter()
            .map(|s| format!("`{}`", s.command()))
            .collect::<Vec<_>>()
            .join("; ")
    );
    for t in &tables {
        let csv = format!("{}.csv", t.id);
        write(&opts.out, &csv, &t.csv())?;
        files.push(csv);
        md.push_str(&t.markdown());
        md.push('\n');
    }
    let mdname = format!("{}.md", e.name);
    write(&opts.out, &mdname, &md)?;
    files.push(mdname);
    for (stem, chart) in (e.plots)(&results) {
        chart.write(&opts.out.join(&stem))?;
        files.push(format!("{stem}.png"));
        files.push(format!("{stem}.svg"));
    }
    let meta = serde_json::json!({
        "experiment": e.name,
        "quick": opts.quick,
        "command": command,
        "elapsed_s": elapsed_s,
        "runs": plan.runs(),
        "repeats": plan.repeats,
        "estimate_s": plan.estimate_s(),
        "sweeps": plan.sweeps.iter().map(|s| serde_json::json!({
            "label": s.label,
            "command": s.command(),
        })).collect::<Vec<_>>(),
        "files": files,
    });
    write(
        &opts.out,
        "reproduce.json",
        &serde_json::to_string_pretty(&meta)?,
    )?;
    files.push("reproduce.json".into());
    Ok(Done {
        markdown: md,
        files,
        elapsed_s,
    })
}

/// Reads back every repetition of every sweep an earlier run left.
fn reload(results: &mut Results, plan: &Plan, out: &Path) -> anyhow::Result<()> {
    for s in &plan.sweeps {
        for rep in 0..plan.repeats {
            let dir = out
                .join("runs")
                .join(&s.label)
                .join(format!("rep-{}", rep + 1));
            if dir.join("sweep.json").is_file() {
                results.add(&s.label, crate::outputs::open_sweep(&dir)?);
            }
        }
        anyhow::ensure!(
            !results.sweeps(&s.label).is_empty(),
            "--replot: no sweep {} in {} (run the experiment first)",
            s.label,
            out.join("runs").display()
        );
    }
    Ok(())
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))
}

/// Runs one `bench sweep` into `dir`, its output in `dir/sweep.log`.
fn run_sweep(bench: &Path, s: &SweepPlan, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log_path = dir.join("sweep.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let status = Command::new(bench)
        .arg("sweep")
        .args(s.args())
        .arg("--out")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("cannot start {}", bench.display()))?;
    anyhow::ensure!(
        status.success(),
        "`bench {}` failed ({status}); its output is in {}",
        s.command(),
        log_path.display()
    );
    Ok(())
}
