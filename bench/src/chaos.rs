//! Chaos runs on real processes: load against a local cluster while a seeded
//! schedule kills (SIGKILL) and restarts servers, partitions replicas and slows
//! links; afterwards everything heals, the replicas must converge to one state
//! digest, and the clients' history must be linearizable.

use std::time::{Duration, Instant};

use genericsmr::messages::{fault, FaultRequest, StatusReply};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

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

/// Runs the fault schedule on `cluster` for `duration`, from `seed`, at most F
/// replicas down at once; then heals everything and returns the cluster with
/// what was done.
pub fn schedule(
    mut cluster: LocalCluster,
    seed: u64,
    duration: Duration,
    durable: bool,
) -> (LocalCluster, Vec<Action>) {
    let start = Instant::now();
    let mut rng = SmallRng::seed_from_u64(seed);
    let n = cluster.n();
    let f = (n - 1) / 2;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for fault requests");
    let mut actions = Vec::new();
    let mut log = |what: String| {
        actions.push(Action {
            at_s: start.elapsed().as_secs_f64(),
            what,
        })
    };
    let fault_req = |c: &LocalCluster, id: usize, req: FaultRequest| {
        let addr = c.client_addr(id);
        rt.block_on(client::admin::fault(
            &addr,
            &FaultRequest { nonce: 1, ..req },
            Duration::from_secs(2),
        ))
        .is_ok()
    };
    // (replica, when to undo, what to undo)
    let mut undo: Vec<(usize, Instant, &'static str)> = Vec::new();
    while start.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1200)));
        let now = Instant::now();
        // Undo what is due.
        let (due, keep): (Vec<_>, Vec<_>) = undo.into_iter().partition(|(_, t, _)| *t <= now);
        undo = keep;
        for (r, _, what) in due {
            match what {
                "restart" => match cluster.restart(r, durable) {
                    Ok(()) => log(format!("restart replica {r}")),
                    Err(e) => log(format!("restart replica {r} failed: {e:#}")),
                },
                _ => {
                    let ok = fault_req(
                        &cluster,
                        r,
                        FaultRequest {
                            kind: fault::CLEAR,
                            ..Default::default()
                        },
                    );
                    log(format!(
                        "clear faults on replica {r}{}",
                        if ok { "" } else { " (no answer)" }
                    ));
                }
            }
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
        let scheduled: Vec<usize> = undo.iter().map(|(r, _, _)| *r).collect();
        let busy: Vec<usize> = (0..n)
            .filter(|r| scheduled.contains(r) || recovering(&cluster, *r))
            .collect();
        let down = undo.iter().filter(|(_, _, w)| *w == "restart").count();
        let free: Vec<usize> = (0..n).filter(|r| !busy.contains(r)).collect();
        // At most F replicas impaired at a time, so the group can always make progress.
        if free.is_empty() || busy.len() >= f.max(1) {
            continue;
        }
        let r = free[rng.gen_range(0..free.len())];
        let lasts = Duration::from_millis(rng.gen_range(300..2000));
        let others: u64 = (0..n).filter(|i| *i != r).fold(0, |b, i| b | 1 << i);
        match rng.gen_range(0..4) {
            0 if down < f => {
                cluster.kill(r);
                log(format!("kill -9 replica {r}"));
                undo.push((r, now + lasts, "restart"));
            }
            1 => {
                if fault_req(
                    &cluster,
                    r,
                    FaultRequest {
                        kind: fault::PARTITION,
                        peers: others,
                        ..Default::default()
                    },
                ) {
                    log(format!(
                        "partition replica {r} from the others for {lasts:?}"
                    ));
                    undo.push((r, now + lasts, "clear"));
                }
            }
            2 => {
                let ms = rng.gen_range(1..30);
                let req = FaultRequest {
                    kind: fault::LINK,
                    peers: others,
                    delay_us: ms * 1000,
                    jitter_us: ms * 200,
                    drop_ppm: 20_000,
                    ..Default::default()
                };
                if fault_req(&cluster, r, req) {
                    log(format!(
                        "replica {r}: {ms} ms links with jitter and 2% loss for {lasts:?}"
                    ));
                    undo.push((r, now + lasts, "clear"));
                }
            }
            _ => {
                let req = FaultRequest {
                    kind: fault::PHASE,
                    code: 0,
                    delay_us: u64::MAX,
                    ..Default::default()
                };
                if fault_req(&cluster, r, req) {
                    log(format!(
                        "replica {r} drops everything it receives for {lasts:?}"
                    ));
                    undo.push((r, now + lasts, "clear"));
                }
            }
        }
    }
    // Heal everything.
    for (r, _, what) in undo {
        if what == "restart" {
            match cluster.restart(r, durable) {
                Ok(()) => log(format!("restart replica {r} (end of run)")),
                Err(e) => log(format!("restart replica {r} failed: {e:#}")),
            }
        } else if fault_req(
            &cluster,
            r,
            FaultRequest {
                kind: fault::CLEAR,
                ..Default::default()
            },
        ) {
            log(format!("clear faults on replica {r} (end of run)"));
        }
    }
    (cluster, actions)
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
