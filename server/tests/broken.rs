//! Deliberately broken replicas that the linearizability checker must catch.
//!
//! Each broken variant (`server --broken NAME`, which only a build with the
//! `broken` feature accepts; the server's tests get it through a
//! dev-dependency, see server/Cargo.toml) runs under the scenario that
//! exposes it, and the checker must find a violation within
//! [`ATTEMPTS`] short runs, or more while [`PATIENCE`] lasts:
//!
//! - `follower-reads` (Multi-Paxos): a follower answers reads from its own
//!   state machine; the leader's links to it are slowed, so it is stale.
//! - `forget-accepts` (Multi-Paxos, durable): votes are acknowledged without
//!   being written; every replica is killed with SIGKILL under load and
//!   restarted, and forgets the acknowledged writes.
//! - `drop-dependency` (EPaxos): a voter leaves its own latest conflicting
//!   instance out of the dependencies; with few keys and clients on every
//!   replica, replicas execute conflicting writes in different orders.
//!
//! A control runs each scenario without `--broken` and must be linearizable:
//! the scenario catches the broken code, not noise. Every history must be
//! able to show a violation (reads present, keys overwritten and read).
//!
//! `BROKEN_TESTS_CHECKER_OFF=1` replaces the check with a stub that says
//! "linearizable": every `*_is_caught` test must then fail (and the controls
//! pass), which shows the tests depend on the checker and on nothing else.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use checker::history::{Outcome as H, Record};
use checker::{HistoryStats, Verdict};
use client::{admin, Client, ClientConfig};
use common::{bounded_for, Cluster, Opts};
use genericsmr::command::{Command, Op};
use genericsmr::messages::{fault, FaultRequest};

/// Runs of a scenario a test always makes before it gives up on catching its
/// broken variant.
const ATTEMPTS: usize = 3;

/// How long a test goes on starting further runs after [`ATTEMPTS`]. Whether
/// a run exposes `drop-dependency` depends on timing (two conflicting writes
/// must cross, and each must run before the other commits on its leader), so
/// on a loaded machine a run catches it only about half the time; the catch
/// rate per second of load is what stays steady.
const PATIENCE: Duration = Duration::from_secs(80);

/// Each test's time limit: [`PATIENCE`] plus a last run of a few seconds,
/// on two cores shared with the rest of the suite.
const LIMIT: Duration = Duration::from_secs(150);

/// One client of a workload: where it sends first (then on to the others on
/// a timeout or a redirect) and what share of its operations are reads.
struct Plan {
    addrs: Vec<String>,
    /// Reads per ten operations (10: reads only).
    reads_in_ten: u64,
}

/// Closed-loop clients following `plans` on `keys` keys: gets, and puts of a
/// value unique to (client, seq), so every read names its writer. Runs until
/// `stop` is set; `wrote` counts answered puts (readers served locally by a
/// broken follower answer far faster than writers). Times count from
/// `start`. Returns the history.
async fn workload(
    plans: Vec<Plan>,
    keys: u64,
    stop: Arc<AtomicBool>,
    wrote: Arc<AtomicUsize>,
    start: Instant,
) -> Vec<Record> {
    let mut tasks = Vec::new();
    for (k, plan) in plans.into_iter().enumerate() {
        let mut cfg = ClientConfig::with_replicas(plan.addrs);
        cfg.timeout = Duration::from_secs(20);
        cfg.attempt_timeout = Duration::from_millis(300);
        let cl = Client::connect(cfg).await.expect("client connects");
        let (stop, wrote) = (stop.clone(), wrote.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (k as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = format!("k{}", x % keys);
                let cmd = if (x >> 20) % 10 < plan.reads_in_ten {
                    cl.prepare(Command::get(cl.id(), 0, key))
                } else {
                    let mut c = cl.prepare(Command::put(cl.id(), 0, key, Bytes::new()));
                    c.value = Bytes::from(format!("c{}-s{}", c.client, c.seq));
                    c
                };
                let t0 = start.elapsed().as_nanos() as u64;
                let r = cl.submit(cmd.clone()).await;
                let t1 = start.elapsed().as_nanos() as u64;
                out.push(match r {
                    Ok(o) => {
                        if cmd.op == Op::Put {
                            wrote.fetch_add(1, Ordering::Relaxed);
                        }
                        Record::of(&cmd, t0, Some((t1, &o)), H::Ok)
                    }
                    Err(_) => Record::of(&cmd, t0, None, H::Unknown),
                });
            }
            out
        }));
    }
    let mut history = Vec::new();
    for t in tasks {
        history.extend(t.await.expect("client task"));
    }
    history.sort_by_key(|r| r.invoke_ns);
    history
}

/// The checker's verdict on `history` and its counterexample, after making
/// sure the history could show a violation at all. With
/// `BROKEN_TESTS_CHECKER_OFF=1`, a stub that always says `Ok`.
fn verdict(history: &[Record]) -> (Verdict, Option<String>) {
    let stats = HistoryStats::of(history);
    assert!(
        stats.vacuous().is_none(),
        "the history cannot show a violation: {:?} ({stats:?})",
        stats.vacuous()
    );
    if std::env::var_os("BROKEN_TESTS_CHECKER_OFF").is_some_and(|v| v == "1") {
        return (Verdict::Ok, None);
    }
    let r = checker::check(history, &checker::linear::Options::default());
    let why = r
        .violation
        .map(|v| format!("key {}: {}", v.key, v.explanation));
    (r.verdict, why)
}

/// Runs `scenario` (one fresh cluster per run) until the checker finds a
/// violation: at least [`ATTEMPTS`] times, then while [`PATIENCE`] lasts;
/// returns the run that caught it.
async fn caught<F, Fut>(name: &str, mut scenario: F) -> usize
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<Record>>,
{
    let began = Instant::now();
    let mut attempt = 0;
    while attempt < ATTEMPTS || began.elapsed() < PATIENCE {
        attempt += 1;
        let t = Instant::now();
        let history = scenario().await;
        let (v, why) = verdict(&history);
        println!(
            "{name}: attempt {attempt}: {v:?} on {} operations ({:?}) in {:.1} s",
            history.len(),
            HistoryStats::of(&history),
            t.elapsed().as_secs_f64()
        );
        if v == Verdict::Violation {
            println!(
                "{name}: caught on attempt {attempt}: {}",
                why.unwrap_or_default()
            );
            return attempt;
        }
    }
    panic!(
        "{name}: the checker found no violation in {attempt} runs ({:.0} s)",
        began.elapsed().as_secs_f64()
    );
}

/// The control: the same scenario on correct replicas is linearizable.
async fn control<Fut: std::future::Future<Output = Vec<Record>>>(name: &str, scenario: Fut) {
    let history = scenario.await;
    let (v, why) = verdict(&history);
    println!(
        "{name} control: {v:?} on {} operations ({:?})",
        history.len(),
        HistoryStats::of(&history)
    );
    assert_eq!(v, Verdict::Ok, "{name} control: {why:?}");
}

fn flags(f: &[&str]) -> Vec<String> {
    f.iter().map(|s| s.to_string()).collect()
}

/// Starts the workload, runs `during` while it goes on, then stops it and
/// returns the history.
async fn with_load(
    plans: Vec<Plan>,
    keys: u64,
    during: impl std::future::Future<Output = ()>,
    wrote: Arc<AtomicUsize>,
) -> Vec<Record> {
    let stop = Arc::new(AtomicBool::new(false));
    let run = tokio::spawn(workload(plans, keys, stop.clone(), wrote, Instant::now()));
    during.await;
    stop.store(true, Ordering::Relaxed);
    run.await.expect("workload")
}

// ---------------------------------------------------------------- follower-reads

/// Multi-Paxos with every message from the leader to one follower delayed by
/// 200 ms: two writers at the leader (half reads), two readers at that
/// follower, on three keys. A follower serving reads itself answers with
/// values 200 ms old; a correct one redirects the readers to the leader.
async fn stale_follower(broken: bool) -> Vec<Record> {
    let mut extra = vec!["--control"];
    if broken {
        extra.extend(["--broken", "follower-reads"]);
    }
    let c = Cluster::start(
        3,
        Opts {
            extra: flags(&extra),
            ..Default::default()
        },
    );
    let l = c.leader().await;
    let f = (l + 1) % 3;
    let slow = FaultRequest {
        nonce: 1,
        kind: fault::LINK,
        peers: 1 << f,
        delay_us: 200_000,
        ..Default::default()
    };
    admin::fault(&c.client_addr(l), &slow, Duration::from_secs(2))
        .await
        .expect("the leader takes the slow link");
    let order = |first: usize| {
        let mut a: Vec<String> = (0..3).map(|i| c.client_addr(i)).collect();
        a.rotate_left(first);
        a
    };
    let plans = vec![
        Plan {
            addrs: order(l),
            reads_in_ten: 5,
        },
        Plan {
            addrs: order(l),
            reads_in_ten: 5,
        },
        Plan {
            addrs: order(f),
            reads_in_ten: 10,
        },
        Plan {
            addrs: order(f),
            reads_in_ten: 10,
        },
    ];
    let wrote = Arc::new(AtomicUsize::new(0));
    let d = wrote.clone();
    with_load(
        plans,
        3,
        async move { common::wait_for_more(&d, 150, "writes with a stale follower").await },
        wrote,
    )
    .await
}

/// A follower that serves reads from its own state is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_reads_are_caught() {
    bounded_for(LIMIT, async {
        caught("follower-reads", || stale_follower(true)).await;
    })
    .await
}

/// Control: the same stale follower, redirecting reads, is linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_follower_control_is_linearizable() {
    bounded_for(LIMIT, control("follower-reads", stale_follower(false))).await
}

// ---------------------------------------------------------------- forget-accepts

/// Durable Multi-Paxos under four clients on eight keys (half reads): after
/// 150 answered writes every replica is killed with SIGKILL, the clients
/// finish the operation they have in flight, and the replicas restart on
/// their data folders. Then one read of every key: votes never written are
/// forgotten, and with them acknowledged writes (the operations in flight
/// at the kill can overwrite four keys at most, so the reads of the other
/// four show it).
async fn whole_group_crash(broken: bool) -> Vec<Record> {
    const KEYS: u64 = 8;
    let mut extra = vec![];
    if broken {
        extra.extend(["--broken", "forget-accepts"]);
    }
    let mut c = Cluster::start(
        3,
        Opts {
            durable: true,
            extra: flags(&extra),
            ..Default::default()
        },
    );
    c.leader().await;
    let all: Vec<String> = (0..3).map(|i| c.client_addr(i)).collect();
    let addrs = |k: usize| {
        let mut a = all.clone();
        a.rotate_left(k % 3);
        a
    };
    let plans = (0..4)
        .map(|k| Plan {
            addrs: addrs(k),
            reads_in_ten: 5,
        })
        .collect();
    let epoch = Instant::now();
    let wrote = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let run = tokio::spawn(workload(plans, KEYS, stop.clone(), wrote.clone(), epoch));
    common::wait_for_more(&wrote, 150, "writes before the crash").await;
    for i in 0..3 {
        c.kill(i);
    }
    stop.store(true, Ordering::Relaxed);
    for i in 0..3 {
        c.restart(i, true);
    }
    let mut history = run.await.expect("workload");
    let mut cfg = ClientConfig::with_replicas(addrs(0));
    cfg.timeout = Duration::from_secs(20);
    cfg.attempt_timeout = Duration::from_millis(300);
    let cl = Client::connect(cfg).await.expect("client connects");
    for k in 0..KEYS {
        let cmd = cl.prepare(Command::get(cl.id(), 0, format!("k{k}")));
        let t0 = epoch.elapsed().as_nanos() as u64;
        let r = cl.submit(cmd.clone()).await;
        let t1 = epoch.elapsed().as_nanos() as u64;
        history.push(match r {
            Ok(o) => Record::of(&cmd, t0, Some((t1, &o)), H::Ok),
            Err(_) => Record::of(&cmd, t0, None, H::Unknown),
        });
    }
    history
}

/// Votes acknowledged but never written are caught after a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_accepts_are_caught() {
    bounded_for(LIMIT, async {
        caught("forget-accepts", || whole_group_crash(true)).await;
    })
    .await
}

/// Control: the same crash of a correct durable group is linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_group_crash_control_is_linearizable() {
    bounded_for(LIMIT, control("forget-accepts", whole_group_crash(false))).await
}

// ---------------------------------------------------------------- drop-dependency

/// EPaxos under high conflict: nine closed-loop clients, three on each replica,
/// on four keys, 80% reads, every link 5 ms long, until 1200 writes are
/// answered. Writes to one key led by different replicas overlap all the
/// time; without a dependency between them, replicas may apply them in
/// different orders, and the reads at each replica show it. (The links are
/// slowed so that the overlap windows are wide enough on localhost.)
async fn high_conflict(broken: bool) -> Vec<Record> {
    let mut extra = vec!["--link-delay-ms", "5"];
    if broken {
        extra.extend(["--broken", "drop-dependency"]);
    }
    let c = Cluster::start(
        3,
        Opts {
            protocol: Some("epaxos"),
            extra: flags(&extra),
            ..Default::default()
        },
    );
    let plans = (0..9)
        .map(|k| {
            let mut a: Vec<String> = (0..3).map(|i| c.client_addr(i)).collect();
            a.rotate_left(k % 3);
            Plan {
                addrs: a,
                reads_in_ten: 8,
            }
        })
        .collect();
    let wrote = Arc::new(AtomicUsize::new(0));
    let d = wrote.clone();
    with_load(
        plans,
        4,
        async move { common::wait_for_more(&d, 1200, "conflicting writes").await },
        wrote,
    )
    .await
}

/// Dropped dependencies are caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_dependencies_are_caught() {
    bounded_for(LIMIT, async {
        caught("drop-dependency", || high_conflict(true)).await;
    })
    .await
}

/// Control: the same conflicting load on correct replicas is linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_conflict_control_is_linearizable() {
    bounded_for(LIMIT, control("drop-dependency", high_conflict(false))).await
}
