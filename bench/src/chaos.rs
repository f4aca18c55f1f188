//! Chaos runs on real processes: load against a local cluster while a seeded
//! schedule kills (SIGKILL) and restarts servers, partitions replicas and slows
//! links; afterwards everything heals, the replicas must converge to one state
//! digest, and the clients' history must be linearizable.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use genericsmr::messages::{fault, FaultRequest, StatusReply};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::driver::Progress;
use crate::local::LocalCluster;

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
}

/// Attempts at a fault request before the run fails: a replica busy
/// restarting its links may miss one deadline.
const FAULT_ATTEMPTS: usize = 3;

/// Runs the fault schedule on `cluster` for `duration`, from `seed`, at most F
/// replicas down at once; then heals everything and returns the cluster with
/// what was done. `progress` is the load's, to count the operations
/// acknowledged during each fault. A fault request that fails (after
/// retries), or a restart that fails, fails the run: a skipped fault would
/// leave a run that claims to test more than it did.
pub fn schedule(
    mut cluster: LocalCluster,
    seed: u64,
    duration: Duration,
    durable: bool,
    progress: &Progress,
) -> anyhow::Result<(LocalCluster, Run)> {
    let start = Instant::now();
    let mut rng = SmallRng::seed_from_u64(seed);
    let n = cluster.n();
    let f = (n - 1) / 2;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a runtime for fault requests")?;
    let mut run = Run {
        actions: Vec::new(),
        faults_planned: 0,
        faults_applied: 0,
        windows: Vec::new(),
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
        let scheduled: Vec<usize> = undo.iter().map(|(r, _, _, _)| *r).collect();
        let busy: Vec<usize> = (0..n)
            .filter(|r| scheduled.contains(r) || recovering(&cluster, *r))
            .collect();
        let down = undo.iter().filter(|(_, _, _, w)| *w == "restart").count();
        let free: Vec<usize> = (0..n).filter(|r| !busy.contains(r)).collect();
        // At most F replicas impaired at a time, so the group can always make progress.
        if free.is_empty() || busy.len() >= f.max(1) {
            continue;
        }
        let r = free[rng.gen_range(0..free.len())];
        let lasts = Duration::from_millis(rng.gen_range(300..2000));
        let others: u64 = (0..n).filter(|i| *i != r).fold(0, |b, i| b | 1 << i);
        let (what, undo_by) = match rng.gen_range(0..4) {
            0 if down < f => {
                run.faults_planned += 1;
                cluster.kill(r);
                (format!("kill -9 replica {r}"), "restart")
            }
            1 => {
                run.faults_planned += 1;
                let req = FaultRequest {
                    kind: fault::PARTITION,
                    peers: others,
                    ..Default::default()
                };
                fault_req(&cluster, r, req)?;
                (
                    format!("partition replica {r} from the others for {lasts:?}"),
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
            // Also a kill when F replicas are down already.
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
        undo.push((r, now + lasts, run.windows.len() - 1, undo_by));
    }
    // Heal everything.
    for (r, _, w, what) in undo {
        heal(&mut run, &mut cluster, (r, w, what), " (end of run)")?;
    }
    Ok((cluster, run))
}

/// Waits until every replica has executed the same slots to the same digest.
pub async fn converge(cluster: &LocalCluster, limit: Duration) -> Convergence {
    let deadline = Instant::now() + limit;
    loop {
        let mut st: Vec<StatusReply> = Vec::new();
        for i in 0..cluster.n() {
            if let Ok(s) =
                client::admin::status(&cluster.client_addr(i), Duration::from_secs(1)).await
            {
                st.push(s);
            }
        }
        let replicas = st
            .iter()
            .map(|s| format!("{}:{}:{:032x}", s.replica, s.executed, s.digest()))
            .collect();
        let same = st.len() == cluster.n()
            && st.iter().all(|s| {
                s.digest() == st[0].digest()
                    && s.executed == st[0].executed
                    && s.commit_index == s.executed
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
