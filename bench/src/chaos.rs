//! Chaos runs on real processes: load against a local cluster while a seeded
//! schedule kills (SIGKILL) and restarts servers, partitions replicas and slows
//! links; afterwards everything heals, the replicas must converge to one state
//! digest, and the clients' history must be linearizable.
//!
//! Sharded MDLin deployments get the same faults shard by shard, chained
//! multi-dispatch clients, and the MDL checker; like EPaxos, MDLin replicas
//! need their votes to rejoin, so they run durable and restart on their log.
//! A protocol whose replicas cannot rejoin at all ([`protocols::Rejoin::Never`])
//! is killed for good instead ([`Kills::Permanent`]): at most a minority of
//! each shard, in the second half of the run.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use genericsmr::messages::{fault, FaultRequest, StatusReply};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::driver::{Mode, Progress, Spec};
use crate::local::{ClusterSpec, LocalCluster};
use crate::workload::Mix;

/// What a chaos run deploys and offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// `paxos`, `epaxos` or `mdlin`.
    pub protocol: String,
    /// Replicas per shard.
    pub replicas: usize,
    /// Shards (MDLin; 1 for the others).
    pub shards: usize,
    /// Operations per request (MDLin chains them; 1 for the others).
    pub fanout: usize,
    /// Give servers a durable log and restart killed ones on it.
    pub durable: bool,
    /// Closed-loop clients.
    pub clients: usize,
    /// Keys they use.
    pub keys: u64,
    /// Percentage of GETs.
    pub reads: f64,
    /// Seed of the schedule and the workload.
    pub seed: u64,
    /// Seconds of faults.
    pub duration_s: f64,
}

impl Deployment {
    /// Refuses what the protocols cannot do: only multi-dispatch protocols
    /// take shards and fanouts, a protocol without a durable log cannot run
    /// durable, and EPaxos and MDLin replicas need their votes after a kill.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mdlin = self.is_mdlin();
        anyhow::ensure!(
            self.shards >= 1 && self.replicas >= 1,
            "--shards and --replicas must be at least 1"
        );
        anyhow::ensure!(
            self.replicas * self.shards <= genericsmr::MAX_REPLICAS,
            "--shards times --replicas must be at most {}",
            genericsmr::MAX_REPLICAS
        );
        let caps = protocols::caps(&self.protocol);
        anyhow::ensure!(
            mdlin || (self.shards == 1 && self.fanout == 1),
            "--shards and --fanout are for multi-dispatch protocols (mdlin)"
        );
        anyhow::ensure!(self.fanout >= 1, "--fanout must be at least 1");
        anyhow::ensure!(
            caps.durable || !self.durable,
            "{} keeps no durable log: run it with --no-durable (its kills are for good)",
            self.protocol
        );
        anyhow::ensure!(
            self.durable || caps.rejoin != protocols::Rejoin::NeedsVotes,
            "{} replicas need their votes after a kill: drop --no-durable",
            self.protocol
        );
        Ok(())
    }

    /// Whether the deployment runs a multi-dispatch protocol (MDLin:
    /// chained multi-dispatch clients, MDL checker).
    pub fn is_mdlin(&self) -> bool {
        protocols::caps(&self.protocol).multi_dispatch
    }

    /// What the schedule does with killed replicas: replicas of a protocol
    /// that cannot rejoin at all ([`protocols::Rejoin::Never`]) are killed
    /// for good; the others restart.
    pub fn kills(&self) -> Kills {
        if protocols::caps(&self.protocol).rejoin == protocols::Rejoin::Never {
            Kills::Permanent
        } else {
            Kills::Restart {
                durable: self.durable,
            }
        }
    }

    /// MDLin: keys in groups of `fanout` (each request's chain uses the keys
    /// of one group, one after the other), so that the MDL checker searches
    /// many small components. One component of every key would hold every
    /// operation of the run, and an operation stalled by a fault for a
    /// second or more while the others go on at thousands per second
    /// outlasts the search's window (the verdict is then undecided). Every
    /// client still reads and writes every group's keys.
    pub fn key_groups(&self) -> u64 {
        if self.is_mdlin() {
            (self.keys / self.fanout.max(1) as u64).max(1)
        } else {
            0
        }
    }

    /// The schedule's plan.
    pub fn plan(&self) -> Plan {
        Plan {
            seed: self.seed,
            duration: Duration::from_secs_f64(self.duration_s),
            kills: self.kills(),
        }
    }

    /// The local cluster: servers with fault control; logs in `log_dir`.
    pub fn cluster(&self, bin_dir: PathBuf, log_dir: PathBuf) -> ClusterSpec {
        ClusterSpec {
            replicas: self.replicas,
            shards: self.shards,
            protocol: self.protocol.clone(),
            server_flags: vec!["--batch".into(), "--control".into()],
            master_flags: Vec::new(),
            durable: self.durable,
            bin_dir,
            log_dir: Some(log_dir),
            data_root: None,
            start_order: Vec::new(),
            slot_flags: Vec::new(),
        }
    }

    /// The load: closed-loop clients with unique values, running a second
    /// past the schedule. EPaxos clients spread over the replicas; MDLin
    /// clients dispatch each request's operations at once, chained.
    pub fn load(&self) -> Spec {
        Spec {
            mode: Mode::Closed { window: 1 },
            clients: self.clients,
            duration_s: self.duration_s + 1.0,
            warmup_s: 0.0,
            cooldown_s: 0.0,
            mix: Mix {
                reads_pct: self.reads,
                keys: self.keys,
                key_groups: self.key_groups(),
                ..Mix::default()
            },
            seed: self.seed,
            attempt_timeout_ms: 500,
            op_timeout_ms: 5_000,
            wan: None,
            spread: protocols::caps(&self.protocol).leaderless,
            fanout: self.fanout,
            multi_dispatch: self.is_mdlin(),
        }
    }
}

/// One thing the schedule did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Action {
    /// Seconds since the start of the run.
    pub at_s: f64,
    /// What, in words.
    pub what: String,
}

/// The end state of the replicas after the run healed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Convergence {
    /// Whether every replica reached the same executed index and state digest.
    pub converged: bool,
    /// Each replica's executed index and digest, as `id:executed:digest`.
    pub replicas: Vec<String>,
}

/// One fault that took effect, and the load's progress while it held: a
/// run whose faults all stalled the clients would prove little.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Window {
    /// The fault, in words.
    pub what: String,
    /// Seconds since the start of the run when it took effect.
    pub from_s: f64,
    /// Seconds since the start of the run when it was undone.
    pub to_s: f64,
    /// Operations acknowledged to clients while it held.
    pub ops_ok: u64,
}

/// What a chaos schedule did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    /// Everything done, in order.
    pub actions: Vec<Action>,
    /// Faults the schedule chose to inject.
    pub faults_planned: usize,
    /// Faults that took effect (every one does, or the run fails).
    pub faults_applied: usize,
    /// One per applied fault, in the order applied.
    pub windows: Vec<Window>,
    /// Replicas killed for good ([`Kills::Permanent`]), still down at the end.
    pub down: Vec<usize>,
}

/// Attempts at a fault request before the run fails: a replica busy
/// restarting its links may miss one deadline.
const FAULT_ATTEMPTS: usize = 3;

/// What the schedule does with a replica it killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kills {
    /// Restart it 0.3 to 2 s later on its old ports; with `durable`, on its
    /// durable log (else it recovers its state from the others).
    Restart {
        /// Restart on the replica's durable log.
        durable: bool,
    },
    /// Leave it down for the rest of the run, for protocols whose replicas
    /// cannot rejoin ([`protocols::Rejoin::Never`]: the server refuses to
    /// restart them). Such kills only come in the second half of the run, so
    /// that every shard first sees the faults it recovers from.
    Permanent,
}

/// What a chaos schedule is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Seed of every choice.
    pub seed: u64,
    /// How long faults are injected.
    pub duration: Duration,
    /// What becomes of killed replicas.
    pub kills: Kills,
}

/// Runs the fault schedule on `cluster` for `plan.duration`, from
/// `plan.seed`; then heals everything and returns the cluster with what was
/// done. Faults act per shard: at most F replicas of any shard (of N per
/// shard) are impaired at once, so that every shard can always make
/// progress; partitions cut a replica off from the rest of its shard. With
/// one shard this is the plain group schedule. `progress` is the load's, to
/// count the operations acknowledged during each fault. A fault request that
/// fails (after retries), or a restart that fails, fails the run: a skipped
/// fault would leave a run that claims to test more than it did.
pub fn schedule(
    mut cluster: LocalCluster,
    plan: Plan,
    progress: &Progress,
) -> anyhow::Result<(LocalCluster, Run)> {
    let start = Instant::now();
    let duration = plan.duration;
    let mut rng = SmallRng::seed_from_u64(plan.seed);
    let n = cluster.n();
    let f = (cluster.per_shard() - 1) / 2;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a runtime for fault requests")?;
    let mut run = Run {
        actions: Vec::new(),
        faults_planned: 0,
        faults_applied: 0,
        windows: Vec::new(),
        down: Vec::new(),
    };
    let ops_ok = || progress.done.load(Ordering::Relaxed);
    let fault_req = |c: &LocalCluster, id: usize, req: FaultRequest| -> anyhow::Result<()> {
        let addr = c.client_addr(id);
        let req = FaultRequest { nonce: 1, ..req };
        let mut last = None;
        for _ in 0..FAULT_ATTEMPTS {
            match rt.block_on(client::admin::fault(&addr, &req, Duration::from_secs(2))) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(anyhow!(
            "fault request {req:?} to replica {id} failed {FAULT_ATTEMPTS} times: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ))
    };
    let clear = FaultRequest {
        kind: fault::CLEAR,
        ..Default::default()
    };
    let durable = matches!(plan.kills, Kills::Restart { durable: true });
    // Undoes a fault and closes its window.
    let heal = |run: &mut Run,
                c: &mut LocalCluster,
                (r, window, what): (usize, usize, &'static str),
                note: &str|
     -> anyhow::Result<()> {
        match what {
            "restart" => c
                .restart(r, durable)
                .with_context(|| format!("restarting replica {r}"))?,
            _ => fault_req(c, r, clear.clone())?,
        }
        let at_s = start.elapsed().as_secs_f64();
        let w = &mut run.windows[window];
        w.to_s = at_s;
        w.ops_ok = ops_ok().saturating_sub(w.ops_ok);
        let done = if what == "restart" {
            "restart"
        } else {
            "clear faults on"
        };
        run.actions.push(Action {
            at_s,
            what: format!("{done} replica {r}{note}"),
        });
        Ok(())
    };
    // (replica, when to undo, its window, what to undo)
    let mut undo: Vec<(usize, Instant, usize, &'static str)> = Vec::new();
    // Replicas killed for good, with their windows.
    let mut dead: Vec<(usize, usize)> = Vec::new();
    while start.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1200)));
        let now = Instant::now();
        // Undo what is due.
        let (due, keep): (Vec<_>, Vec<_>) = undo.into_iter().partition(|(_, t, _, _)| *t <= now);
        undo = keep;
        for (r, _, w, what) in due {
            heal(&mut run, &mut cluster, (r, w, what), "")?;
        }
        if start.elapsed() >= duration {
            break;
        }
        // A replica still recovering lost state (restarted without a durable
        // log) is impaired too: more than F such replicas is beyond any promise.
        let recovering = |c: &LocalCluster, r: usize| {
            rt.block_on(client::admin::status(
                &c.client_addr(r),
                Duration::from_millis(500),
            ))
            .is_ok_and(|s| s.role == genericsmr::messages::role::RECOVERING)
        };
        let is_dead = |r: usize| dead.iter().any(|(d, _)| *d == r);
        let scheduled: Vec<usize> = undo.iter().map(|(r, _, _, _)| *r).collect();
        let busy: Vec<usize> = (0..n)
            .filter(|r| is_dead(*r) || scheduled.contains(r) || recovering(&cluster, *r))
            .collect();
        let in_shard =
            |v: &[usize], s: usize| v.iter().filter(|r| cluster.shard_of(**r) == s).count();
        // At most F replicas of a shard impaired at a time (one when F is 0,
        // as in a group of 1 or 2), so every shard can always make progress.
        let free: Vec<usize> = (0..n)
            .filter(|r| !busy.contains(r) && in_shard(&busy, cluster.shard_of(*r)) < f.max(1))
            .collect();
        if free.is_empty() {
            continue;
        }
        let r = free[rng.gen_range(0..free.len())];
        let shard = cluster.shard_of(r);
        let down = undo
            .iter()
            .filter(|(d, _, _, w)| *w == "restart" && cluster.shard_of(*d) == shard)
            .count()
            + dead
                .iter()
                .filter(|(d, _)| cluster.shard_of(*d) == shard)
                .count();
        let may_kill = match plan.kills {
            Kills::Restart { .. } => true,
            Kills::Permanent => start.elapsed() >= duration / 2,
        };
        let lasts = Duration::from_millis(rng.gen_range(300..2000));
        // Partitions cut a replica off from its own shard (MDLin leaders of
        // other shards still reach it: the case its fences are for); slow
        // links and dropping act on every link.
        let mates: u64 = (0..n)
            .filter(|i| *i != r && cluster.shard_of(*i) == shard)
            .fold(0, |b, i| b | 1 << i);
        let others: u64 = (0..n).filter(|i| *i != r).fold(0, |b, i| b | 1 << i);
        let (what, undo_by) = match rng.gen_range(0..4) {
            0 if down < f && may_kill => {
                run.faults_planned += 1;
                cluster.kill(r);
                match plan.kills {
                    Kills::Restart { .. } => (format!("kill -9 replica {r}"), "restart"),
                    Kills::Permanent => (
                        format!("kill -9 replica {r} (for good: it cannot rejoin)"),
                        "",
                    ),
                }
            }
            1 => {
                run.faults_planned += 1;
                let req = FaultRequest {
                    kind: fault::PARTITION,
                    peers: mates,
                    ..Default::default()
                };
                fault_req(&cluster, r, req)?;
                let from = if cluster.shards() > 1 {
                    format!("the rest of shard {shard}")
                } else {
                    "the others".to_string()
                };
                (
                    format!("partition replica {r} from {from} for {lasts:?}"),
                    "clear",
                )
            }
            2 => {
                run.faults_planned += 1;
                let ms = rng.gen_range(1..30);
                let req = FaultRequest {
                    kind: fault::LINK,
                    peers: others,
                    delay_us: ms * 1000,
                    jitter_us: ms * 200,
                    drop_ppm: 20_000,
                    ..Default::default()
                };
                fault_req(&cluster, r, req)?;
                (
                    format!("replica {r}: {ms} ms links with jitter and 2% loss for {lasts:?}"),
                    "clear",
                )
            }
            // Also a kill when F replicas of the shard are down already.
            _ => {
                run.faults_planned += 1;
                let req = FaultRequest {
                    kind: fault::PHASE,
                    code: 0,
                    delay_us: u64::MAX,
                    ..Default::default()
                };
                fault_req(&cluster, r, req)?;
                (
                    format!("replica {r} drops everything it receives for {lasts:?}"),
                    "clear",
                )
            }
        };
        run.faults_applied += 1;
        let at_s = start.elapsed().as_secs_f64();
        run.windows.push(Window {
            what: what.clone(),
            from_s: at_s,
            to_s: at_s,
            // The count at the start until the fault is undone.
            ops_ok: ops_ok(),
        });
        run.actions.push(Action { at_s, what });
        let window = run.windows.len() - 1;
        if undo_by.is_empty() {
            dead.push((r, window));
        } else {
            undo.push((r, now + lasts, window, undo_by));
        }
    }
    // Heal everything.
    for (r, _, w, what) in undo {
        heal(&mut run, &mut cluster, (r, w, what), " (end of run)")?;
    }
    // Replicas killed for good stay down; their windows close here.
    for (r, window) in dead {
        let at_s = start.elapsed().as_secs_f64();
        let w = &mut run.windows[window];
        w.to_s = at_s;
        w.ops_ok = ops_ok().saturating_sub(w.ops_ok);
        run.actions.push(Action {
            at_s,
            what: format!("replica {r} stays down (end of run)"),
        });
        run.down.push(r);
    }
    Ok((cluster, run))
}

/// Waits until the running replicas of every shard have executed the same
/// slots to the same state digest (shards hold different keys, so each is
/// compared within itself). Replicas left down by the schedule are listed as
/// `id:down` and not waited for.
pub async fn converge(cluster: &LocalCluster, limit: Duration) -> Convergence {
    let deadline = Instant::now() + limit;
    let running = cluster.running();
    loop {
        // (replica, its status): asked by address, so the ids are global.
        let mut st: Vec<(usize, StatusReply)> = Vec::new();
        for &i in &running {
            if let Ok(s) =
                client::admin::status(&cluster.client_addr(i), Duration::from_secs(1)).await
            {
                st.push((i, s));
            }
        }
        let mut replicas: Vec<String> = (0..cluster.n())
            .filter(|i| !running.contains(i))
            .map(|i| format!("{i}:down"))
            .collect();
        replicas.extend(
            st.iter()
                .map(|(i, s)| format!("{i}:{}:{:032x}", s.executed, s.digest())),
        );
        let same = st.len() == running.len()
            && (0..cluster.shards()).all(|shard| {
                let mine: Vec<&StatusReply> = st
                    .iter()
                    .filter(|(i, _)| cluster.shard_of(*i) == shard)
                    .map(|(_, s)| s)
                    .collect();
                mine.iter().all(|s| {
                    s.digest() == mine[0].digest()
                        && s.executed == mine[0].executed
                        && s.commit_index == s.executed
                })
            });
        if same || Instant::now() > deadline {
            return Convergence {
                converged: same,
                replicas,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The checker's verdict on a chaos history and the history's counts: MDL
/// (issue order, suffix closure) for multi-dispatch histories, plain
/// linearizability otherwise; a history that could not have shown a
/// violation is judged vacuous (see [`checker::HistoryStats::judge`]).
pub fn check_history(
    history: &[checker::history::Record],
    multi_dispatch: bool,
) -> (checker::Report, checker::HistoryStats) {
    let opts = checker::linear::Options::default();
    let mut report = if multi_dispatch {
        checker::check_mdl(history, &opts)
    } else {
        checker::check(history, &opts)
    };
    let stats = checker::HistoryStats::of(history);
    report.verdict = stats.judge(report.verdict);
    (report, stats)
}
