//! The subcommands that work on what earlier runs wrote: `bench report`,
//! `bench compare` and `bench reproduce`. The work is in the library
//! (`bench::report_page`, `bench::compare`, `bench::reproduce`).

use std::path::PathBuf;

use clap::Args;

pub const REPORT_EXAMPLES: &str = "Examples:
  bench local --out run/p3 && bench report run/p3          writes run/p3/report.html
  bench sweep --protocol paxos,epaxos --conflicts-steps 0,100 --out run/s && bench report run/s
  bench report run/p3 --out /tmp/p3.html";

pub const COMPARE_EXAMPLES: &str = "Examples:
  bench compare run/paxos run/epaxos --out run/cmp        two runs of bench local, overlaid
  bench compare run/sweep-a run/sweep-b                   two sweeps: throughput-latency curves together
  bench compare run/p3 run/s --out run/both               runs and sweeps at once (each gets its plots)";

pub const REPRODUCE_EXAMPLES: &str = "Examples:
  bench reproduce --list                                  the experiments, and how long each takes
  bench reproduce mdlin-singledc --quick                  minutes on 2 cores; tables and plots in run/reproduce/mdlin-singledc
  bench reproduce epaxos-conflicts --quick --out /tmp/ec
  bench reproduce epaxos-wan                              the full run (three repetitions, medians)
  bench reproduce mdlin-wan --quick
  bench reproduce mdlin-singledc --quick --only shards-3 --step-duration 0.5s   a smoke test
  bench reproduce epaxos-wan --replot                     tables and plots again from run/reproduce/epaxos-wan/runs

Every experiment writes <NAME>.csv and <NAME>.md (published values beside ours, and why they
differ), its plots (.png and .svg), reproduce.json (what ran, how long) and the raw sweeps
under runs/; bench report and bench compare work on those.";

/// `bench report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run folder (bench local: report.json) or a sweep folder (bench sweep: sweep.json).
    pub dir: PathBuf,
    /// Where the page goes (default: DIR/report.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `bench compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Run or sweep folders to overlay.
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// Output folder (default: run/bench/compare-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `bench reproduce`.
#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// The experiment (see --list).
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// The short version: fewer and shorter steps, one repetition; a few minutes on 2 cores.
    #[arg(long)]
    pub quick: bool,
    /// Output folder (default: run/reproduce/NAME).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Length of each step's load, overriding the experiment's (e.g. 2s, for a smoke test).
    #[arg(long, value_parser = crate::bench_cli::parse_duration)]
    pub step_duration: Option<f64>,
    /// Run only these sweeps of the experiment (their labels, as under runs/:
    /// e.g. shards-3 or replicas-3); the tables show "-" for the rest.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Run nothing: make the tables and plots again from the sweeps a run left in DIR/runs/.
    #[arg(long)]
    pub replot: bool,
    /// List the experiments and what a run of each costs.
    #[arg(long)]
    pub list: bool,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn report(a: ReportArgs) -> anyhow::Result<()> {
    let file = bench::report_page::write(&a.dir, a.out.as_deref())?;
    println!("wrote {}", file.display());
    Ok(())
}

pub fn compare(a: CompareArgs) -> anyhow::Result<()> {
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from(format!("run/bench/compare-{}", now_secs())));
    let c = bench::compare::compare(&a.dirs, &out)?;
    print!("{}", c.table);
    println!(
        "files: {}",
        c.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

pub fn reproduce(a: ReproduceArgs) -> anyhow::Result<()> {
    use bench::reproduce::{Options, EXPERIMENTS};
    if a.list {
        for e in EXPERIMENTS {
            let (full, quick) = ((e.plan)(false), (e.plan)(true));
            println!(
                "{:<18} {}\n{:<18} full: {} runs, about {:.0} min; --quick: {} runs, about {:.1} min\n",
                e.name,
                e.about,
                "",
                full.runs(),
                full.estimate_s() / 60.0,
                quick.runs(),
                quick.estimate_s() / 60.0
            );
        }
        return Ok(());
    }
    let name = a.name.unwrap_or_default();
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from(format!("run/reproduce/{name}")));
    let opts = Options {
        quick: a.quick,
        out,
        step_duration_s: a.step_duration,
        only: a.only,
        replot: a.replot,
        bench: std::env::current_exe()?,
    };
    let done = bench::reproduce::run(&name, &opts)?;
    print!("{}", done.markdown);
    println!(
        "took {:.0} s; files in {}: {}",
        done.elapsed_s,
        opts.out.display(),
        done.files.join(", ")
    );
    Ok(())
}
