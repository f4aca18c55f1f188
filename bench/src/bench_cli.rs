//! Command-line interface of `bench`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bench::driver::{Mode, Progress, Spec};
use bench::local::{own_bin_dir, ClusterSpec, LocalCluster};
use bench::report::Report;
use bench::route::Route;
use bench::workload::Mix;
use checker::linear::{Initial, Options};
use clap::{Args, Parser, Subcommand};
use client::faults::{Schedule, StepOutcome};

/// Load generator and experiment runner.
#[derive(Parser, Debug)]
#[command(version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

const EXAMPLES: &str = "Examples:
  bench                                        default experiment: local 3-replica Multi-Paxos, 10 s closed loop
  bench local --replicas 5 --clients 64 --window 4 --duration 20s --out results/p5
  bench local --rate 50000 --duration 10s      open loop, Poisson arrivals
  bench local --flood 1000000 --clients 8      as many requests as the connections take
  bench local --conflicts 25 --reads 50 --history h.jsonl   (the history is checked; verdict in report.json)
  bench local --shards 3 --clients 32          3 Multi-Paxos groups of 3 replicas; each key goes to its shard's leader
  bench local --shards 3 --fanout 4 --history h.jsonl   requests of 4 operations, one at a time, over 3 shards
  bench run --master 10.0.0.1:7087 --clients 32 --duration 30s
  bench run --replicas 10.0.0.1:8070,10.0.0.2:8070,10.0.0.3:8070 --protocol epaxos --spread   no master needed
  bench sweep --protocol paxos --clients-steps 1,4,16,64
  bench check h.jsonl                          linearizability of a recorded history
  bench sim --protocol paxos --seeds 1..1000   the deterministic simulator; prints failing seeds
  bench sim --protocol mdlin --shards 3 --seeds 1..2000   sharded MDLin, both MDL checkers per seed
  bench sim --seed 17 --trace                  replay one seed, event by event
  bench chaos --duration 60s --seed 7          kills, restarts, partitions and slow links under load; then checks
  bench chaos --protocol mdlin --shards 2 --fanout 2 --duration 20s --seed 3   the same per shard, MDL-checked
  bench transport                              the transport's ceiling, no protocol
  bench report run/bench/123                   one HTML page: summary, check verdict, plots inline
  bench compare run/a run/b                    overlay runs or sweeps
  bench reproduce mdlin-singledc --quick       a published experiment: table and plots";

const CHAOS_EXAMPLES: &str = "Examples:
  bench chaos --duration 60s --seed 7                     Multi-Paxos, durable: kills and restarts, partitions, slow links
  bench chaos --protocol epaxos --duration 60s --seed 7
  bench chaos --protocol mdlin --shards 2 --fanout 2 --duration 20s --seed 3
                                 sharded MDLin, chained multi-dispatch clients, MDL checker;
                                 durable: killed replicas restart on their journals";

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start a local cluster, run the workload, stop the cluster, write the report.
    Local(LocalArgs),
    /// Drive an already running cluster.
    Run(RunArgs),
    /// Step the offered load (clients or open-loop rate) and draw the throughput-latency curve.
    Sweep(SweepArgs),
    /// Measure the transport itself (framed messages per second, round trip) with no protocol.
    Transport(TransportArgs),
    /// Load a local cluster while a seeded schedule kills, restarts, partitions and slows it;
    /// then check the history and compare the replicas' state digests.
    #[command(after_help = CHAOS_EXAMPLES)]
    Chaos(ChaosArgs),
    /// Run protocol cores in the deterministic simulator over many seeds (or replay one).
    Sim(SimArgs),
    /// Check a recorded history (JSON lines, see docs/bench.md) for linearizability.
    Check(CheckArgs),
    /// List the registered protocols and what each declares (docs/protocols.md).
    Protocols,
    /// Write one self-contained HTML page (summary, check verdict, SVG plots) for a run or a sweep.
    #[command(after_help = crate::results_cli::REPORT_EXAMPLES)]
    Report(crate::results_cli::ReportArgs),
    /// Overlay several runs or sweeps: shared plots, a table and a page.
    #[command(after_help = crate::results_cli::COMPARE_EXAMPLES)]
    Compare(crate::results_cli::CompareArgs),
    /// Run one of the published experiments and write its table (published values beside
    /// ours) and its plots.
    #[command(after_help = crate::results_cli::REPRODUCE_EXAMPLES)]
    Reproduce(crate::results_cli::ReproduceArgs),
    /// (internal) The echo server `bench transport` measures.
    #[command(hide = true)]
    TransportEcho {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

#[derive(Args, Debug)]
struct ChaosArgs {
    /// Protocol of the servers (mdlin: sharded, multi-dispatch clients, MDL checker).
    #[arg(long, default_value = protocols::DEFAULT, value_parser = clap::builder::PossibleValuesParser::new(protocols::NAMES))]
    protocol: String,
    /// Replicas (of each shard).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// MDLin: shards of --replicas replicas each.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// MDLin: operations per request, dispatched at once and chained (default 2).
    #[arg(long)]
    fanout: Option<usize>,
    /// How long the schedule runs.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: f64,
    /// Seed of the schedule and the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Closed-loop clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Keys they use (few keys: more contention for the checker).
    #[arg(long, default_value_t = 50)]
    keys: u64,
    /// Percentage of GETs.
    #[arg(long, default_value_t = 50.0)]
    reads: f64,
    /// Servers without a durable log (restarts then recover instead of
    /// replaying). EPaxos and MDLin refuse it: their replicas need their votes.
    #[arg(long)]
    no_durable: bool,
    /// Output folder (default: run/bench/chaos-<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct SimArgs {
    /// Protocol to simulate.
    #[arg(long, default_value = protocols::DEFAULT, value_parser = clap::builder::PossibleValuesParser::new(protocols::NAMES))]
    protocol: String,
    /// Seeds to run, as FIRST..LAST (inclusive) or one number.
    #[arg(long, default_value = "1..500", conflicts_with = "seed")]
    seeds: String,
    /// Replay one seed.
    #[arg(long)]
    seed: Option<u64>,
    /// With --seed: print every event.
    #[arg(long, requires = "seed")]
    trace: bool,
    /// Replicas.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Shards of --replicas replicas each (default: 2 for a multi-dispatch
    /// protocol such as MDLin, whose clients then chain operations across
    /// shards; 1 otherwise).
    #[arg(long)]
    shards: Option<usize>,
    /// Virtual time with faults (then everything heals and settles).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    duration: f64,
    /// Closed-loop simulated clients.
    #[arg(long, default_value_t = 3)]
    clients: usize,
    /// Keys they use.
    #[arg(long, default_value_t = 3)]
    keys: u64,
    /// Probability a message is lost.
    #[arg(long, default_value_t = 0.02)]
    drop: f64,
    /// Replicas restart without their persisted state (recovery instead of
    /// replay); a protocol that cannot recover without its votes (MDLin):
    /// crashed replicas stay down instead of restarting on their disks (half
    /// the multi-dispatch seeds do).
    #[arg(long)]
    no_durable: bool,
    /// No crashes.
    #[arg(long)]
    no_crashes: bool,
    /// No partitions.
    #[arg(long)]
    no_partitions: bool,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// The history file.
    history: PathBuf,
    /// Value of every key before the history: absent (a fresh cluster) or any (earlier data).
    #[arg(long, default_value = "absent", value_parser = ["absent", "any"])]
    initial: String,
    /// Search states per key before giving up on it (verdict "undecided").
    #[arg(long, default_value_t = 2_000_000)]
    max_states: usize,
    /// Where a violation's witness goes, as history lines `bench check` reads
    /// again (default: <history>.counterexample.jsonl beside the history).
    #[arg(long)]
    counterexample: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct TransportArgs {
    /// Messages to flood through the transport.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Concurrent connections for the flood.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// How long to measure the round trip of a lone message.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    rtt_duration: f64,
    /// Bytes per value in each message (at least 36, as for `local`).
    #[arg(long, default_value_t = bench::workload::MIN_VALUE_SIZE)]
    value_size: usize,
    /// Output folder (default: run/bench/transport-<time>).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// How to start the local cluster.
#[derive(Args, Debug, Clone)]
struct ClusterArgs {
    /// Protocol of the servers (sweep: several, comma-separated, each gets the same sweep).
    #[arg(long, default_value = protocols::DEFAULT, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(protocols::NAMES))]
    protocol: Vec<String>,
    /// Replicas in the group (in each shard, with --shards).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Shards: independent groups of --replicas replicas each, with keys
    /// spread over them by the shared key-to-shard map (at most 64 replicas in all).
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Adaptive batching on the servers (everything queued at once shares a slot; a lone request is never held back).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    batching: String,
    /// Thrifty servers (phase 2 to a bare majority).
    #[arg(long)]
    thrifty: bool,
    /// Durable servers (fsync per burst).
    #[arg(long)]
    durable: bool,
    /// The same one-way delay on every replica-to-replica link (WAN emulation), e.g. 1ms.
    #[arg(long, value_parser = parse_duration)]
    link_delay: Option<f64>,
    /// The same one-way delay between every client and every replica (with
    /// --link-delay: a fixed delay between all machines), e.g. 1ms.
    #[arg(long, value_parser = parse_duration, conflicts_with = "wan")]
    client_delay: Option<f64>,
    /// A wide-area latency matrix: a preset (epaxos5, mdlin-edge, mdlin-dc) or a TOML file
    /// (docs/bench.md). Replica i (global id, with --shards) and client c sit at sites i and
    /// c modulo the number of sites, unless the matrix places them.
    #[arg(long, conflicts_with = "link_delay")]
    wan: Option<String>,
    /// More server flags, as one string (e.g. "--reply-after-exec").
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    server_flags: String,
}

impl ClusterArgs {
    /// Replicas in all shards.
    fn total(&self) -> usize {
        self.replicas * self.shards.max(1)
    }

    fn spec(&self, out: &std::path::Path) -> anyhow::Result<ClusterSpec> {
        anyhow::ensure!(
            self.shards >= 1 && self.replicas >= 1 && self.total() <= genericsmr::MAX_REPLICAS,
            "--shards times --replicas ({} x {}) must be between 1 and {}",
            self.shards,
            self.replicas,
            genericsmr::MAX_REPLICAS
        );
        let mut flags: Vec<String> = self
            .server_flags
            .split_whitespace()
            .map(String::from)
            .collect();
        if self.batching == "on" {
            flags.push("--batch".into());
        }
        if self.thrifty {
            flags.push("--thrifty".into());
        }
        if let Some(d) = self.link_delay {
            flags.push(format!("--link-delay-ms={}", d * 1e3));
        }
        let slot_flags = match &self.wan {
            Some(w) => {
                let m = bench::wan::Matrix::load(w)?;
                (0..self.total())
                    .map(|i| m.server_flags(i, self.total()))
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(ClusterSpec {
            replicas: self.replicas,
            shards: self.shards,
            protocol: self
                .protocol
                .first()
                .cloned()
                .unwrap_or_else(|| protocols::DEFAULT.into()),
            server_flags: flags,
            master_flags: Vec::new(),
            durable: self.durable,
            bin_dir: own_bin_dir()?,
            log_dir: Some(out.join("logs")),
            data_root: None,
            start_order: Vec::new(),
            slot_flags,
        })
    }

    /// Where the clients sit, with a WAN matrix.
    fn wan_clients(&self) -> anyhow::Result<Option<bench::driver::WanClients>> {
        if let Some(d) = self.client_delay {
            let (ms, total) = (d * 1e3, self.total());
            let link = self.link_delay.map_or(0.0, |l| l * 1e3);
            return Ok(Some(bench::driver::WanClients {
                sites: vec!["clients".into()],
                one_way_ms: vec![vec![ms; total]],
                replica_rtt_ms: (0..total)
                    .map(|i| {
                        (0..total)
                            .map(|j| if i == j { 0.0 } else { 2.0 * link })
                            .collect()
                    })
                    .collect(),
            }));
        }
        let Some(w) = &self.wan else { return Ok(None) };
        Ok(Some(bench::wan::Matrix::load(w)?.clients(self.total())))
    }
}

pub(crate) fn parse_duration(s: &str) -> Result<f64, String> {
    let (num, unit) = s.trim().split_at(
        s.trim()
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(s.len()),
    );
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 10s, 500ms or 2m"))?;
    let k = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        _ => return Err(format!("unknown unit in '{s}': use ms, s or m")),
    };
    Ok(v * k)
}

/// The workload.
#[derive(Args, Debug, Clone)]
struct WorkloadArgs {
    /// How long to offer load (10s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: f64,
    /// Client sessions, each its own connection (one per shard, with shards) and tokio task.
    /// On this 2-core machine the tool drove 4,000 closed-loop clients against a local cluster (then per-connection
    /// system calls, not the generator's own work, set the pace); 8-256 is typical.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Each client sends to its own replica (the nearest one with --wan, else
    /// client i to replica i modulo the group), moving to the next when it
    /// fails: how leaderless protocols such as EPaxos are measured. Without it,
    /// every client sends to the leader the master names.
    #[arg(long)]
    spread: bool,
    /// Closed loop: requests each client keeps outstanding.
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// Open loop instead: total Poisson arrival rate, requests per second.
    #[arg(long, conflicts_with = "flood")]
    rate: Option<f64>,
    /// Open loop: most requests one client keeps in flight. Arrivals due while
    /// it is full wait and go out as replies make room, still timed from when
    /// they were due, so a rate above capacity shows as latency.
    #[arg(long, default_value_t = bench::driver::OPEN_WINDOW)]
    max_in_flight: usize,
    /// Open loop: an arrival that waits longer than this (milliseconds) for
    /// room in its client's window is shed: never sent, and reported as
    /// `requests_shed`. Sending it that late would only make the replicas
    /// answer after the client gave up (0: never shed).
    #[arg(long, default_value_t = bench::driver::OPEN_MAX_WAIT_MS)]
    max_wait_ms: u64,
    /// Flood instead: send this many requests as fast as the connections take them.
    #[arg(long)]
    flood: Option<u64>,
    /// Operations per application request, sent one at a time (operation i+1 after
    /// operation i's answer), each with its own key and type. report.json then gives
    /// request latency (latency_us) and operation latency (op_latency_us) apart.
    #[arg(long, default_value_t = 1)]
    fanout: usize,
    /// Percentage of GETs (reads give the linearizability check something to see).
    #[arg(long, default_value_t = 50.0)]
    reads: f64,
    /// Percentage of commands on one hot key (the rest never conflict).
    #[arg(long)]
    conflicts: Option<f64>,
    /// Key-space size (with --conflicts: split among the clients, each
    /// keeping keys/clients private keys).
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Zipf exponent over the key space (0: uniform).
    #[arg(long, default_value_t = 0.0)]
    zipf: f64,
    /// Bytes per value (at least 36: every value starts with its writer's
    /// client id and sequence number, so each is unique).
    #[arg(long, default_value_t = bench::workload::MIN_VALUE_SIZE)]
    value_size: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Left out of the statistics at the start.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: f64,
    /// Left out of the statistics at the end.
    #[arg(long, default_value = "0.5s", value_parser = parse_duration)]
    cooldown: f64,
    /// Resend an unanswered request after this long (milliseconds).
    #[arg(long, default_value_t = 1000)]
    attempt_timeout_ms: u64,
    /// Give up on a request after this long (milliseconds).
    #[arg(long, default_value_t = 10_000)]
    op_timeout_ms: u64,
    /// Record every operation to this JSON-lines file (and check it).
    #[arg(long)]
    history: Option<PathBuf>,
    /// `bench local`: do not record and check the history (by default it goes
    /// to <out>/history.jsonl and its verdict into report.json). An explicit
    /// --history is still recorded and checked.
    #[arg(long)]
    no_check: bool,
    /// Output folder (default: run/bench/<time>).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl WorkloadArgs {
    fn spec(&self) -> anyhow::Result<Spec> {
        let mode = match (self.rate, self.flood) {
            (Some(rate), _) => Mode::Open {
                rate,
                max_in_flight: self.max_in_flight,
                max_wait_ms: self.max_wait_ms,
            },
            (_, Some(total)) => Mode::Flood { total },
            _ => Mode::Closed {
                window: self.window.max(1),
            },
        };
        anyhow::ensure!(
            self.warmup + self.cooldown < self.duration || matches!(mode, Mode::Flood { .. }),
            "--warmup + --cooldown must be shorter than --duration"
        );
        anyhow::ensure!(self.fanout >= 1, "--fanout must be at least 1");
        let mix = Mix {
            reads_pct: self.reads,
            conflicts_pct: self.conflicts,
            keys: self.keys,
            zipf: self.zipf,
            value_size: self.value_size,
            key_groups: 0,
        };
        mix.validate()?;
        Ok(Spec {
            mode,
            clients: self.clients,
            duration_s: self.duration,
            warmup_s: if self.flood.is_some() {
                0.0
            } else {
                self.warmup
            },
            cooldown_s: if self.flood.is_some() {
                0.0
            } else {
                self.cooldown
            },
            mix,
            seed: self.seed,
            attempt_timeout_ms: self.attempt_timeout_ms,
            op_timeout_ms: self.op_timeout_ms,
            wan: None,
            spread: self.spread,
            fanout: self.fanout,
            multi_dispatch: false,
        })
    }

    fn out_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            PathBuf::from(format!("run/bench/{t}"))
        })
    }
}

#[derive(Args, Debug)]
struct LocalArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    load: WorkloadArgs,
    /// A time-ordered fault schedule (TOML, docs/faults.md) to run during the
    /// load; times count from the start of the load. Starts the servers with
    /// --control; the steps and their outcomes go to faults.json.
    #[arg(long)]
    faults: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Master of the running cluster (HOST:PORT).
    #[arg(
        long,
        required_unless_present = "replicas",
        conflicts_with = "replicas"
    )]
    master: Option<String>,
    /// Or, with no master: the client addresses of the replicas of one group,
    /// in any order (each is asked for its id; leader hints do the rest).
    #[arg(long, value_delimiter = ',')]
    replicas: Vec<String>,
    /// Name of the protocol, for the report.
    #[arg(long, default_value = "unknown")]
    protocol: String,
    #[command(flatten)]
    load: WorkloadArgs,
}

#[derive(Args, Debug)]
struct SweepArgs {
    /// Closed-loop client counts to step through (the default sweep).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64,256")]
    clients_steps: Vec<usize>,
    /// Open-loop rates to step through instead (operations per second).
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    /// Conflict percentages to step through instead, with the workload's
    /// clients and mode (e.g. 0,2,25,100 to compare EPaxos and Multi-Paxos).
    #[arg(long, value_delimiter = ',', conflicts_with = "rates")]
    conflicts_steps: Vec<f64>,
    /// Fan-outs to step through instead, with the workload's clients and mode
    /// (e.g. 1,2,4,8,16,32 with --protocol paxos,mdlin --shards 3: MDLin's
    /// request latency relative to single-dispatch Multi-Paxos, in ratio.csv).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["rates", "conflicts_steps"])]
    fanout_steps: Vec<usize>,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    load: WorkloadArgs,
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cmd = match cli.cmd {
        Some(c) => c,
        // No arguments: the default experiment.
        None => Cli::parse_from(["bench", "local"])
            .cmd
            .context("`bench local` parses")?,
    };
    // One thread for every client: no cross-thread wake-ups, so the generator
    // costs as little CPU as possible on a machine it shares with the replicas.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cmd {
        Cmd::Local(a) => {
            anyhow::ensure!(
                a.cluster.protocol.len() == 1,
                "bench local runs one protocol; use bench sweep to compare several"
            );
            let proto = a.cluster.protocol[0].clone();
            let out = a.load.out_dir();
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let mut spec = a.load.spec()?;
            spec.wan = a.cluster.wan_clients()?;
            let mut cs = a.cluster.spec(&out)?;
            let schedule = a.faults.as_deref().map(Schedule::load).transpose()?;
            if let Some(s) = &schedule {
                anyhow::ensure!(
                    s.max_replica()
                        .is_none_or(|r| (r as usize) < a.cluster.total()),
                    "the fault schedule names replica {} but the deployment has {} (ids 0..{})",
                    s.max_replica().unwrap_or(0),
                    a.cluster.total(),
                    a.cluster.total() - 1
                );
                let end = s.steps.last().map_or(0.0, |l| l.at.as_secs_f64());
                if end > spec.warmup_s + spec.duration_s {
                    eprintln!("warning: the fault schedule runs {end:.1}s, longer than the load");
                }
                cs.server_flags.push("--control".into());
            }
            let flags = cs.server_flags.clone();
            let cluster = LocalCluster::start(cs).context("starting the local cluster")?;
            let shape = if cluster.shards() > 1 {
                format!("{} shards of {}", cluster.shards(), cluster.per_shard())
            } else {
                cluster.n().to_string()
            };
            eprintln!(
                "cluster of {shape} {proto} replicas up (master {}); logs in {}",
                cluster.master_addr(),
                out.join("logs").display()
            );
            let master = cluster.master_addr().to_string();
            let target = Target {
                master: Some(&master),
                direct: Vec::new(),
                protocol: &proto,
                replicas: a.cluster.replicas,
                shards: cluster.shards(),
                server_flags: flags,
                fresh: true,
            };
            // Local runs are checked unless told not to: a run is only as
            // trustworthy as its history.
            let history = match (&a.load.history, a.load.no_check) {
                (Some(h), _) => Some(h.clone()),
                (None, false) => Some(out.join("history.jsonl")),
                (None, true) => None,
            };
            let run = experiment(target, &spec, history.as_deref(), &out);
            let r = match &schedule {
                None => rt.block_on(run),
                Some(s) => rt.block_on(async {
                    let (r, steps) = tokio::join!(run, run_faults(s, &master));
                    write_faults(&out, &steps)?;
                    r
                }),
            };
            drop(cluster); // stops every process, also when the run failed
            r.map(|_| ())
        }
        Cmd::Run(a) => {
            let out = a.load.out_dir();
            std::fs::create_dir_all(&out)?;
            let spec = a.load.spec()?;
            let target = match &a.master {
                Some(m) => {
                    let info = rt
                        .block_on(client::admin::cluster(m, Duration::from_secs(3)))
                        .with_context(|| format!("cannot reach the master at {m}; is the cluster running (scripts/cluster.sh start)?"))?;
                    Target {
                        master: Some(m),
                        direct: Vec::new(),
                        protocol: &a.protocol,
                        replicas: info.replicas.len() / info.shard_count(),
                        shards: info.shard_count(),
                        server_flags: Vec::new(),
                        fresh: false,
                    }
                }
                None => Target {
                    master: None,
                    direct: a.replicas.clone(),
                    protocol: &a.protocol,
                    replicas: a.replicas.len(),
                    shards: 1,
                    server_flags: Vec::new(),
                    fresh: false,
                },
            };
            rt.block_on(experiment(target, &spec, a.load.history.as_deref(), &out))
                .map(|_| ())
        }
        Cmd::Sweep(a) => sweep(&rt, a),
        Cmd::Check(a) => check_cmd(a),
        Cmd::Sim(a) => sim_cmd(a),
        Cmd::Protocols => {
            print!("{}", protocols_table());
            Ok(())
        }
        Cmd::Chaos(a) => chaos_cmd(&rt, a),
        Cmd::Report(a) => crate::results_cli::report(a),
        Cmd::Compare(a) => crate::results_cli::compare(a),
        Cmd::Reproduce(a) => crate::results_cli::reproduce(a),
        Cmd::TransportEcho { port } => bench::transport_bench::serve_echo(port),
        Cmd::Transport(a) => rt.block_on(transport(a)),
    }
}

/// Runs a fault schedule through the master, printing each step.
async fn run_faults(s: &Schedule, master: &str) -> Vec<StepOutcome> {
    let target = |replica| client::admin::Target::ViaMaster {
        master: master.to_string(),
        replica,
    };
    client::faults::run(s, target, |o| match &o.error {
        None => eprintln!("fault {:>7.3}s  {}", o.at.as_secs_f64(), o.text),
        Some(e) => eprintln!(
            "fault {:>7.3}s  {}: FAILED: {e}",
            o.at.as_secs_f64(),
            o.text
        ),
    })
    .await
}

/// Writes the steps of a fault schedule and their outcomes to `faults.json`.
fn write_faults(out: &std::path::Path, steps: &[StepOutcome]) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = steps
        .iter()
        .map(|o| {
            serde_json::json!({
                "at_s": o.at.as_secs_f64(),
                "step": o.text,
                "ok": o.error.is_none(),
                "error": o.error,
            })
        })
        .collect();
    let path = out.join("faults.json");
    std::fs::write(&path, serde_json::to_string_pretty(&rows)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Runs one experiment against the group at `master`, with a progress bar, and
/// writes its files into `out`. Ctrl-C ends the load early; the files are still written.
/// The group an experiment runs against.
struct Target<'a> {
    /// The master, or `None` to route among `direct` alone.
    master: Option<&'a str>,
    /// Client addresses of one group's replicas, used without a master.
    direct: Vec<String>,
    protocol: &'a str,
    /// Replicas per shard.
    replicas: usize,
    shards: usize,
    server_flags: Vec<String>,
    /// Started empty for this run (keys start absent for the checker).
    fresh: bool,
}

async fn experiment(
    t: Target<'_>,
    spec: &Spec,
    history: Option<&std::path::Path>,
    out: &std::path::Path,
) -> anyhow::Result<Report> {
    let Target {
        master,
        direct,
        protocol,
        replicas,
        shards,
        server_flags,
        fresh,
    } = t;
    let route = Arc::new(match master {
        Some(m) => Route::with_master(m)
            .await
            .context("asking the master for the replicas")?,
        None => Route::discover(direct)
            .await
            .context("asking the replicas for their ids")?,
    });
    // Multi-dispatch clients (MDLin): a request's operations go out at once, chained.
    let caps = protocols::caps(protocol);
    let spec = &Spec {
        multi_dispatch: caps.multi_dispatch,
        ..spec.clone()
    };
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(spec);
    let ticker = {
        let (progress, bar) = (progress.clone(), bar.clone());
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let mut last = (0u64, start);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = tokio::signal::ctrl_c() => {
                        eprintln!("interrupted: stopping the load and writing what was measured");
                        progress.stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                let done = progress.done.load(std::sync::atomic::Ordering::Relaxed);
                let errs = progress.errors.load(std::sync::atomic::Ordering::Relaxed);
                let rate = (done - last.0) as f64 / last.1.elapsed().as_secs_f64().max(1e-3);
                last = (done, std::time::Instant::now());
                match bar.length() {
                    Some(n) if n > 1_000 => bar.set_position(done.min(n)),
                    _ => bar.set_position((start.elapsed().as_secs_f64() * 10.0) as u64),
                }
                bar.set_message(format!("{rate:>9.0} ops/s  {done} done  {errs} errors"));
            }
        })
    };
    let changes = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let watcher = master.map(|m| tokio::spawn(watch_leaders(m.to_string(), changes.clone())));
    let res = bench::driver::run(spec, route, history.is_some(), progress).await;
    ticker.abort();
    if let Some(w) = watcher {
        w.abort();
    }
    let leader_changes = std::mem::take(&mut *changes.lock());
    bar.finish_and_clear();
    let res = res?;
    let m = bench::stats::merge(&res.clients);
    let measured = match spec.mode {
        Mode::Flood { .. } => res.elapsed_s,
        _ => spec.duration_s - spec.warmup_s - spec.cooldown_s,
    };
    let deployment = bench::report::Deployment {
        protocol: protocol.to_string(),
        replicas,
        shards,
        server_flags,
    };
    let mut report = Report::new(deployment, spec, &m, measured, res.elapsed_s);
    report.leader_changes = leader_changes;
    if let Some(w) = &spec.wan {
        let leaders = match master {
            Some(m) => client::admin::cluster(m, Duration::from_secs(2))
                .await
                .map(|i| (0..i.shard_count()).map(|s| i.leader_of(s)).collect())
                .unwrap_or_else(|_| vec![None; shards]),
            None => vec![None; shards],
        };
        for site in 0..w.sites.len() {
            let mine: Vec<_> = res
                .clients
                .iter()
                .enumerate()
                .filter(|(i, _)| w.site_of(*i) == site)
                .map(|(_, c)| c.clone())
                .collect();
            let ms = bench::stats::merge(&mine);
            // One operation's model per shard; operations spread evenly over the shards.
            let models: Option<Vec<f64>> = (0..shards)
                .map(|s| {
                    let members = genericsmr::shard::members(s, replicas);
                    if caps.multi_dispatch {
                        None
                    } else if caps.leaderless {
                        spec.spread.then(|| w.epaxos_model_in(site, members))
                    } else {
                        leaders
                            .get(s)
                            .copied()
                            .flatten()
                            .map(|l| w.paxos_model_in(site, l as usize, members))
                    }
                })
                .collect();
            let model_us = models.map(|m| m.iter().sum::<f64>() / m.len().max(1) as f64 * 1e3);
            report.by_site.push(bench::report::SiteLatency {
                site: w.sites[site].clone(),
                ops: ms.ops_ok,
                latency_us: bench::stats::Latency::of(&ms.op_hist),
                model_us,
            });
        }
    }
    if let Some(h) = history {
        let f =
            std::fs::File::create(h).with_context(|| format!("cannot write {}", h.display()))?;
        bench::history::write(std::io::BufWriter::new(f), &res.history)?;
        // A local cluster starts empty; a running one may hold earlier data.
        let initial = if fresh { Initial::Absent } else { Initial::Any };
        let opts = Options {
            initial,
            ..Default::default()
        };
        // Multi-dispatch histories need the MDL search (issue order, suffix closure).
        let t = std::time::Instant::now();
        let mut c = if spec.multi_dispatch {
            checker::check_mdl(&res.history, &opts)
        } else {
            checker::check(&res.history, &opts)
        };
        let check_s = t.elapsed().as_secs_f64();
        let stats = checker::HistoryStats::of(&res.history);
        c.verdict = stats.judge(c.verdict);
        if let Some(cx) = &c.violation {
            bench::report::write_counterexample(cx, &out.join("counterexample.jsonl"))?;
        }
        let mut v = serde_json::to_value(&c)?;
        v["check_s"] = check_s.into();
        if c.verdict == checker::Verdict::Vacuous {
            v["vacuous"] = stats.vacuous().into();
        }
        report.checker = Some(v);
        report.history = Some(stats);
    }
    bench::report::write_run(out, &report, &m)?;
    print!("{}", report.summary());
    println!("  files        {}/report.json, timeseries.csv, latency.hgrm, latency_percentiles, latency_cdf, throughput, latency_over_time (.png/.svg)", out.display());
    Ok(report)
}

/// Asks the master for every shard's leader every 250 ms, from the start of
/// the load until aborted, and records each change in `changes` (a shard's
/// first leader, named while the load starts, is not a change). A master
/// that does not answer in time is asked again; it changes nothing.
async fn watch_leaders(
    master: String,
    changes: Arc<parking_lot::Mutex<Vec<bench::report::LeaderChange>>>,
) {
    let start = std::time::Instant::now();
    let mut last: Option<Vec<Option<u8>>> = None;
    let mut known = Vec::new();
    loop {
        if let Ok(info) = client::admin::cluster(&master, Duration::from_millis(500)).await {
            let now: Vec<Option<u8>> = (0..info.shard_count()).map(|s| info.leader_of(s)).collect();
            known.resize(known.len().max(now.len()), false);
            if let Some(before) = &last {
                let t_s = start.elapsed().as_secs_f64();
                let mut c = changes.lock();
                for (shard, (from, to)) in before.iter().zip(&now).enumerate() {
                    known[shard] |= from.is_some();
                    if from != to && known[shard] {
                        c.push(bench::report::LeaderChange {
                            t_s,
                            shard,
                            from: *from,
                            to: *to,
                        });
                    }
                }
            }
            last = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn progress_bar(spec: &Spec) -> indicatif::ProgressBar {
    let len = match spec.mode {
        Mode::Flood { total } => total,
        _ => (spec.duration_s * 10.0) as u64,
    };
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

fn sweep(rt: &tokio::runtime::Runtime, a: SweepArgs) -> anyhow::Result<()> {
    let out = a.load.out_dir();
    std::fs::create_dir_all(&out)?;
    let mut rows = Vec::new();
    for proto in &a.cluster.protocol {
        let mut cargs = a.cluster.clone();
        cargs.protocol = vec![proto.clone()];
        let cs = cargs.spec(&out.join(proto))?;
        let flags = cs.server_flags.clone();
        let cluster =
            LocalCluster::start(cs).with_context(|| format!("starting a local {proto} cluster"))?;
        let steps: Vec<(String, Spec)> = if !a.fanout_steps.is_empty() {
            a.fanout_steps
                .iter()
                .map(|f| {
                    let mut s = a.load.spec()?;
                    anyhow::ensure!(*f >= 1, "--fanout-steps must be at least 1");
                    s.fanout = *f;
                    Ok((format!("fanout-{f}"), s))
                })
                .collect::<anyhow::Result<_>>()?
        } else if !a.conflicts_steps.is_empty() {
            a.conflicts_steps
                .iter()
                .map(|c| {
                    let mut s = a.load.spec()?;
                    s.mix.conflicts_pct = Some(*c);
                    Ok((format!("conflicts-{c}"), s))
                })
                .collect::<anyhow::Result<_>>()?
        } else if a.rates.is_empty() {
            a.clients_steps
                .iter()
                .map(|c| {
                    let mut s = a.load.spec()?;
                    s.clients = *c;
                    Ok((format!("clients-{c}"), s))
                })
                .collect::<anyhow::Result<_>>()?
        } else {
            a.rates
                .iter()
                .map(|r| {
                    let mut s = a.load.spec()?;
                    s.mode = Mode::Open {
                        rate: *r,
                        max_in_flight: a.load.max_in_flight,
                        max_wait_ms: a.load.max_wait_ms,
                    };
                    Ok((format!("rate-{r}"), s))
                })
                .collect::<anyhow::Result<_>>()?
        };
        for (name, mut spec) in steps {
            spec.wan = a.cluster.wan_clients()?;
            // Clients of a leader go to the leader whatever --spread says.
            spec.spread &= protocols::caps(proto).leaderless;
            eprintln!("{proto}: {name}");
            let dir = out.join(proto).join(&name);
            let target = Target {
                master: Some(cluster.master_addr()),
                direct: Vec::new(),
                protocol: proto,
                replicas: cluster.per_shard(),
                shards: cluster.shards(),
                server_flags: flags.clone(),
                fresh: false, // one cluster serves every step
            };
            let r = rt.block_on(experiment(target, &spec, None, &dir))?;
            rows.push((proto.clone(), name, r));
        }
        drop(cluster);
    }
    let mut csv = String::from("protocol,step,throughput_ops_s,p50_us,p90_us,p99_us,p999_us,max_us,ops_ok,ops_failed,ops_timed_out,leader_changes\n");
    for (p, step, r) in &rows {
        let l = &r.latency_us;
        csv.push_str(&format!(
            "{p},{step},{:.0},{:.1},{:.1},{:.1},{:.1},{:.1},{},{},{},{}\n",
            r.throughput_ops_s,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            r.ops_ok,
            r.ops_failed,
            r.ops_timed_out,
            r.leader_changes.len()
        ));
    }
    std::fs::write(out.join("sweep.csv"), &csv)?;
    let ratios = ratio_table(&rows);
    if !ratios.is_empty() {
        std::fs::write(out.join("ratio.csv"), &ratios)?;
        println!("\nrequest latency relative to the first protocol (p50):\n{ratios}");
    }
    let json: Vec<_> = rows
        .iter()
        .map(|(p, s, r)| serde_json::json!({"protocol": p, "step": s, "report": r}))
        .collect();
    std::fs::write(out.join("sweep.json"), serde_json::to_string_pretty(&json)?)?;
    // The plots are drawn from the files, as `bench report` draws them.
    let drawn = bench::outputs::open_sweep(&out)?;
    bench::figures::write_all(&out, &bench::figures::sweep_charts(&drawn))?;
    println!("\n{csv}\nfiles: {0}/sweep.csv, sweep.json, throughput_latency.png/.svg, steps_throughput and steps_latency .png/.svg (and one folder per run)", out.display());
    Ok(())
}

/// Each step's p50 request latency under every protocol after the first,
/// relative to the first protocol's at the same step (CSV; empty for one protocol).
fn ratio_table(rows: &[(String, String, Report)]) -> String {
    let Some(base) = rows.first().map(|r| r.0.clone()) else {
        return String::new();
    };
    let mut out = String::new();
    for (p, step, r) in rows.iter().filter(|r| r.0 != base) {
        let Some((_, _, b)) = rows.iter().find(|x| x.0 == base && &x.1 == step) else {
            continue;
        };
        if out.is_empty() {
            out.push_str("protocol,baseline,step,p50_us,baseline_p50_us,ratio\n");
        }
        let ratio = r.latency_us.p50 / b.latency_us.p50.max(1e-9);
        out.push_str(&format!(
            "{p},{base},{step},{:.0},{:.0},{ratio:.3}\n",
            r.latency_us.p50, b.latency_us.p50
        ));
    }
    out
}

async fn transport(a: TransportArgs) -> anyhow::Result<()> {
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("run/bench/transport-{}", std::process::id())));
    std::fs::create_dir_all(&out)?;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["transport-echo", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("echo server stdout")?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await??
        .context("echo server did not start")?;
    let addr = line.trim_start_matches("listening on ").to_string();
    let route = Arc::new(Route::with_replicas(vec![addr]));
    let mix = Mix {
        value_size: a.value_size,
        ..Default::default()
    };
    let base = Spec {
        mode: Mode::Flood { total: a.messages },
        clients: a.clients,
        duration_s: 0.0,
        warmup_s: 0.0,
        cooldown_s: 0.0,
        mix,
        seed: 1,
        attempt_timeout_ms: 5_000,
        op_timeout_ms: 30_000,
        wan: None,
        spread: false,
        fanout: 1,
        multi_dispatch: false,
    };
    let flood = bench::driver::run(&base, route.clone(), false, Arc::default()).await?;
    let fm = bench::stats::merge(&flood.clients);
    let rtt_spec = Spec {
        mode: Mode::Closed { window: 1 },
        clients: 1,
        duration_s: a.rtt_duration,
        warmup_s: 0.5_f64.min(a.rtt_duration / 4.0),
        ..base
    };
    let rtt = bench::driver::run(&rtt_spec, route, false, Arc::default()).await?;
    let rm = bench::stats::merge(&rtt.clients);
    let _ = child.kill().await;
    let rl = bench::stats::Latency::of(&rm.hist);
    let res = serde_json::json!({
        "messages_per_s": fm.ok as f64 / flood.elapsed_s,
        "messages": fm.ok,
        "clients": a.clients,
        "value_size": a.value_size,
        "rtt_us": rl,
    });
    std::fs::write(
        out.join("transport.json"),
        serde_json::to_string_pretty(&res)?,
    )?;
    println!("transport ceiling: {:.0} messages/s (request + reply, {} connections); lone round trip p50 {:.0} us, p99 {:.0} us",
        fm.ok as f64 / flood.elapsed_s, a.clients, rl.p50, rl.p99);
    println!("  file {}/transport.json", out.display());
    Ok(())
}

/// `bench check`: exit status 0 when linearizable, 1 on a violation, 2 when
/// undecided, 3 when vacuous (linearizable, but the history could not have
/// shown a violation).
fn check_cmd(a: CheckArgs) -> anyhow::Result<()> {
    let f = std::fs::File::open(&a.history)
        .with_context(|| format!("cannot open {}", a.history.display()))?;
    let records = checker::history::read(std::io::BufReader::new(f))?;
    let initial = if a.initial == "any" {
        Initial::Any
    } else {
        Initial::Absent
    };
    let opts = Options {
        initial,
        max_states: a.max_states,
    };
    // Chained operations (a `pred`) come from multi-dispatch clients: MDL applies.
    let mdl = records.iter().any(|r| r.pred.is_some());
    let t = std::time::Instant::now();
    let mut r = if mdl {
        checker::check_mdl(&records, &opts)
    } else {
        checker::check(&records, &opts)
    };
    let stats = checker::HistoryStats::of(&records);
    r.verdict = stats.judge(r.verdict);
    if let Some(why) = stats
        .vacuous()
        .filter(|_| r.verdict == checker::Verdict::Vacuous)
    {
        println!("vacuous: {why}");
    }
    println!(
        "{:?}{}: {} operations ({} constraining) on {} keys, {} search states, {:.2} s{}",
        r.verdict,
        if mdl {
            " (multi-dispatch linearizability)"
        } else {
            ""
        },
        r.operations,
        r.checked,
        r.keys,
        r.states,
        t.elapsed().as_secs_f64(),
        if r.keys_undecided > 0 {
            format!(", {} keys undecided (raise --max-states)", r.keys_undecided)
        } else {
            String::new()
        }
    );
    if let Some(v) = &r.violation {
        let file = a
            .counterexample
            .clone()
            .unwrap_or_else(|| a.history.with_extension("counterexample.jsonl"));
        bench::report::write_counterexample(v, &file)?;
    }
    match r.verdict {
        checker::Verdict::Ok => Ok(()),
        checker::Verdict::Violation => std::process::exit(1),
        checker::Verdict::Undecided => std::process::exit(2),
        checker::Verdict::Vacuous => std::process::exit(3),
    }
}

/// `bench protocols`: one line per registered protocol.
fn protocols_table() -> String {
    let mut out = String::from("protocol  leader     durable  rejoin without votes  what it is\n");
    for i in protocols::all() {
        let c = i.caps;
        let leader = match (c.leaderless, c.elects) {
            (true, _) => "none",
            (false, true) => "elected",
            (false, false) => "appointed",
        };
        let rejoin = match c.rejoin {
            protocols::Rejoin::Recovers => "recovers",
            protocols::Rejoin::NeedsVotes => "needs --durable",
            protocols::Rejoin::Never => "never",
        };
        out.push_str(&format!(
            "{:<9} {:<10} {:<8} {:<21} {}\n",
            i.name,
            leader,
            if c.durable { "yes" } else { "no" },
            rejoin,
            i.about
        ));
    }
    out
}

/// `bench sim`: exit status 0 when every seed passed, 1 otherwise.
fn sim_cmd(a: SimArgs) -> anyhow::Result<()> {
    let name = a.protocol.clone();
    protocols::visit(&name, SimRuns(a)).context(protocols::unknown(&name))?
}

/// `bench sim` on the protocol the registry finds.
struct SimRuns(SimArgs);

impl protocols::Visit for SimRuns {
    type Out = anyhow::Result<()>;
    fn visit<P: protocols::Protocol>(self) -> anyhow::Result<()> {
        sim_runs::<P>(self.0)
    }
}

/// The configuration of one `bench sim` seed: for a multi-dispatch
/// protocol, sharded deployments under the chained clients' chaos mix
/// (`sim::Config::chained_chaos`), judged by both MDL checkers; otherwise
/// closed-loop clients under random crashes, partitions and loss.
fn sim_config(a: &SimArgs, caps: protocols::Caps, seed: u64) -> sim::Config {
    let shards = a.shards.unwrap_or(if caps.multi_dispatch { 2 } else { 1 });
    if caps.multi_dispatch {
        let mut c = sim::Config::chained_chaos(seed, shards, a.replicas, !a.no_crashes, a.drop);
        c.clients = a.clients;
        c.keys = a.keys;
        if a.no_durable {
            // Crashed replicas stay down (they cannot rejoin without their votes).
            c.durable = false;
            c.restart_after_ns = None;
            c.triggers.retain(|t| !matches!(t.then, sim::Then::Outage));
        }
        return c;
    }
    sim::Config {
        n: a.replicas,
        shards,
        duration_ns: (a.duration * 1e9) as u64,
        clients: a.clients,
        keys: a.keys,
        drop: a.drop,
        crashes: !a.no_crashes,
        partitions: !a.no_partitions,
        durable: !a.no_durable,
        ..sim::Config::new(seed)
    }
}

fn sim_runs<R: protocols::Protocol>(a: SimArgs) -> anyhow::Result<()> {
    let shards = sim_config(&a, R::CAPS, 0).shards;
    anyhow::ensure!(
        shards >= 1 && shards * a.replicas <= genericsmr::MAX_REPLICAS,
        "--shards times --replicas must be between 1 and {}",
        genericsmr::MAX_REPLICAS
    );
    let config = |seed: u64| sim_config(&a, R::CAPS, seed);
    if let Some(seed) = a.seed {
        let r = sim::run::<R>(&config(seed), a.trace);
        let mut out = std::io::stdout().lock();
        for line in &r.trace {
            // A reader that stops early (`| head`) is not an error.
            if std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes()).is_err() {
                return Ok(());
            }
        }
        drop(out);
        print_sim(&r);
        if !r.ok() {
            std::process::exit(1);
        }
        return Ok(());
    }
    let (first, last) = match a.seeds.split_once("..") {
        Some((f, l)) => (f.trim().parse::<u64>()?, l.trim().parse::<u64>()?),
        None => {
            let s = a.seeds.trim().parse::<u64>()?;
            (s, s)
        }
    };
    anyhow::ensure!(first <= last, "--seeds FIRST..LAST needs FIRST <= LAST");
    let t = std::time::Instant::now();
    let mut failed = Vec::new();
    let (mut events, mut acked) = (0, 0);
    for seed in first..=last {
        let r = sim::run::<R>(&config(seed), false);
        events += r.events;
        acked += r.acked;
        if !r.ok() {
            print_sim(&r);
            failed.push(seed);
        }
    }
    println!(
        "{} seeds, {} failed{}; {events} events, {acked} operations acknowledged, {:.1} s",
        last - first + 1,
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" ({failed:?}; replay with bench sim --seed N --trace)")
        },
        t.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

fn print_sim(r: &sim::Report) {
    let what = match (&r.violation, &r.checker.violation) {
        (Some(v), _) => v.clone(),
        (None, Some(c)) => format!(
            "history not linearizable (MDL, for multi-dispatch clients): {}",
            c.explanation
        ),
        (None, None) if r.checker.verdict != checker::Verdict::Ok => {
            format!("checker: {:?}", r.checker.verdict)
        }
        _ => "ok".into(),
    };
    println!(
        "seed {}: {what} ({} events, {} operations acknowledged)",
        r.seed, r.events, r.acked
    );
}

/// `bench chaos`: exit status 0 when the replicas converged and the history
/// is linearizable (MDL for MDLin).
fn chaos_cmd(rt: &tokio::runtime::Runtime, a: ChaosArgs) -> anyhow::Result<()> {
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("run/bench/chaos-{}", a.seed)));
    let caps = protocols::caps(&a.protocol);
    let mdlin = caps.multi_dispatch;
    let d = bench::chaos::Deployment {
        protocol: a.protocol.clone(),
        replicas: a.replicas,
        shards: a.shards,
        fanout: a.fanout.unwrap_or(if caps.multi_dispatch { 2 } else { 1 }),
        durable: !a.no_durable && caps.durable,
        clients: a.clients,
        keys: a.keys,
        reads: a.reads,
        seed: a.seed,
        duration_s: a.duration,
    };
    d.validate()?;
    std::fs::create_dir_all(&out)?;
    let cluster = LocalCluster::start(d.cluster(own_bin_dir()?, out.join("logs")))
        .context("starting the local cluster")?;
    let master = cluster.master_addr().to_string();
    eprintln!(
        "chaos on {} {} replicas{} for {:.0} s, seed {} (logs in {})",
        a.replicas,
        a.protocol,
        if a.shards > 1 {
            format!(" in each of {} shards", a.shards)
        } else {
            String::new()
        },
        a.duration,
        a.seed,
        out.join("logs").display()
    );
    let load = d.load();
    let plan = d.plan();
    let progress = Arc::new(bench::driver::Progress::default());
    let chaos = {
        let progress = progress.clone();
        std::thread::spawn(move || bench::chaos::schedule(cluster, plan, &progress))
    };
    let res = rt.block_on(async {
        let route = Arc::new(Route::with_master(&master).await?);
        bench::driver::run(&load, route, true, progress).await
    })?;
    let (cluster, run) = chaos
        .join()
        .map_err(|_| anyhow::anyhow!("the chaos schedule panicked"))?
        .context("the chaos schedule")?;
    let actions = &run.actions;
    for x in actions {
        println!("{:>7.2} s  {}", x.at_s, x.what);
    }
    let conv = rt.block_on(bench::chaos::converge(&cluster, Duration::from_secs(30)));
    drop(cluster);
    let (verdict, stats) = bench::chaos::check_history(&res.history, mdlin);
    let m = bench::stats::merge(&res.clients);
    bench::history::write(
        std::io::BufWriter::new(std::fs::File::create(out.join("history.jsonl"))?),
        &res.history,
    )?;
    let summary = serde_json::json!({
        "protocol": a.protocol, "replicas": a.replicas, "shards": d.shards, "fanout": d.fanout,
        "seed": a.seed, "duration_s": a.duration, "durable": d.durable,
        "checker_kind": if mdlin { "mdl" } else { "linearizability" },
        "actions": actions, "faults_planned": run.faults_planned, "faults_applied": run.faults_applied,
        "windows": run.windows, "down": run.down, "convergence": conv, "checker": verdict,
        "history": stats,
        "ops_ok": m.ok, "ops_timed_out": m.timed_out, "ops_failed": m.failed,
    });
    std::fs::write(
        out.join("chaos.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    println!(
        "{} actions, {} of {} faults applied; {} operations acknowledged, {} unknown; replicas {}; {} checker: {:?} ({} operations on {} {}; {} reads, {} writes, {} distinct values)",
        actions.len(),
        run.faults_applied,
        run.faults_planned,
        m.ok,
        m.timed_out,
        if !conv.converged { "DID NOT converge" } else if d.shards > 1 { "converged to one state digest per shard" } else { "converged to one state digest" },
        if mdlin { "MDL" } else { "linearizability" },
        verdict.verdict,
        verdict.operations,
        verdict.keys,
        if mdlin { "key components" } else { "keys" },
        stats.reads,
        stats.writes,
        stats.distinct_values,
    );
    if let Some(v) = &verdict.violation {
        bench::report::write_counterexample(v, &out.join("counterexample.jsonl"))?;
    }
    println!(
        "files: {0}/chaos.json, {0}/history.jsonl, {0}/logs/",
        out.display()
    );
    if !conv.converged || verdict.verdict != checker::Verdict::Ok {
        std::process::exit(1);
    }
    Ok(())
}
