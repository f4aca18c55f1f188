//! MDLin on real processes: three shards of three replicas, multi-dispatch
//! clients whose requests chain several operations across shards, and one
//! shard's leader killed with SIGKILL under load. Every run's history must be
//! MDL (the black-box checker) and every operation must have taken effect at
//! most once.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::driver::{Mode, Progress, Spec};
use bench::history::Outcome;
use bench::route::Route;
use bench::workload::Mix;
use common::{bounded, wait_for, Cluster, Opts};
use genericsmr::shard::shard_of;

fn mdlin(coord: &str) -> Cluster {
    Cluster::start(
        3,
        Opts {
            shards: 3,
            protocol: Some("mdlin"),
            extra: vec![format!("--coord={coord}")],
            ..Default::default()
        },
    )
}

/// Kills shard 1's leader while clients keep chains of `fanout` operations in
/// flight; checks failover, progress after it, and the history.
async fn leader_kill_under_chains(coord: &str, fanout: usize) {
    let mut c = mdlin(coord);
    let before = c.shard_leaders().await;
    let route = Arc::new(Route::with_master(&c.master_addr).await.unwrap());
    let spec = Spec {
        mode: Mode::Closed { window: 1 },
        clients: 4,
        duration_s: 60.0,
        warmup_s: 0.0,
        cooldown_s: 0.0,
        mix: Mix {
            reads_pct: 50.0,
            keys: 24,
            ..Mix::default()
        },
        seed: 5,
        attempt_timeout_ms: 300,
        op_timeout_ms: 15_000,
        wan: None,
        spread: false,
        fanout,
        multi_dispatch: true,
    };
    let progress = Arc::new(Progress::default());
    let load_started = Instant::now();
    let load = {
        let (route, progress) = (route.clone(), progress.clone());
        tokio::spawn(async move { bench::driver::run(&spec, route, true, progress).await })
    };
    let done = || progress.done.load(Ordering::Relaxed);
    wait_for(Duration::from_secs(20), "load before the kill", || async {
        (done() >= 200).then_some(())
    })
    .await;
    let victim = before[1];
    c.kill(victim);
    let killed_at = Instant::now();
    let kill_ns = load_started.elapsed().as_nanos() as u64;
    let after = wait_for(
        Duration::from_secs(20),
        "a new leader of shard 1",
        || async {
            let l = c.shard_leaders().await;
            (l[1] != victim).then_some(l)
        },
    )
    .await;
    let failover = killed_at.elapsed();
    assert_eq!(
        after[1] / 3,
        1,
        "shard 1's new leader is one of its replicas"
    );
    let base = done();
    wait_for(
        Duration::from_secs(30),
        "load after the failover",
        || async { (done() >= base + 200).then_some(()) },
    )
    .await;
    progress.stop.store(true, Ordering::Relaxed);
    let out = load.await.unwrap().expect("the load ran");

    let late = out
        .history
        .iter()
        .filter(|r| shard_of(r.key.as_bytes(), 3) == 1 && r.outcome == Outcome::Ok)
        .filter(|r| r.invoke_ns > kill_ns + failover.as_nanos() as u64)
        .count();
    assert!(late > 0, "shard 1 serves again after its failover");
    let chained = out.history.iter().filter(|r| r.pred.is_some()).count();
    assert!(
        fanout == 1 || chained > out.history.len() / 2,
        "operations were chained"
    );
    let verdict = checker::check_mdl(&out.history, &checker::linear::Options::default());
    assert_eq!(
        verdict.verdict,
        checker::Verdict::Ok,
        "{coord}: {:?}",
        verdict.violation
    );
    let digests = wait_for(Duration::from_secs(10), "replicas converge", || async {
        let mut by_shard = vec![Vec::new(); 3];
        for id in c.running() {
            let st = c.status(id).await?;
            by_shard[id / 3].push((st.applied, st.digest()));
        }
        by_shard
            .iter()
            .all(|v| v.windows(2).all(|w| w[0] == w[1]))
            .then_some(by_shard)
    })
    .await;
    // Exactly once: each shard applied every successful operation, no failed
    // one, and nothing twice: between the ok count and ok + unknown.
    for (s, reps) in digests.iter().enumerate() {
        let of = |o: Outcome| {
            out.history
                .iter()
                .filter(|r| shard_of(r.key.as_bytes(), 3) as usize == s && r.outcome == o)
                .count() as u64
        };
        let (ok, unknown) = (of(Outcome::Ok), of(Outcome::Unknown));
        let applied = reps[0].0;
        assert!(
            ok <= applied && applied <= ok + unknown,
            "shard {s}: applied {applied}, ok {ok}, unknown {unknown}"
        );
    }
    eprintln!(
        "{coord}, fanout {fanout}: failover seen after {failover:?}; {} operations, verdict {:?} ({} states); per shard (applied, digest) {:?}",
        out.history.len(),
        verdict.verdict,
        verdict.states,
        digests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_mode_survives_a_shard_leader_kill_with_chains_of_8() {
    bounded(leader_kill_under_chains("fast", 8)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_mode_survives_a_shard_leader_kill_with_chains_of_32() {
    bounded(leader_kill_under_chains("safe", 32)).await
}

/// The election timeout `a_dead_shard_leader_is_replaced_without_the_master`
/// gives the servers (the default is 1 s).
const ELECTION_MS: u64 = 400;

/// The master is killed, then shard 1's leader: the shard's survivors elect a
/// leader themselves within about two election timeouts, and a client that
/// knows only the shard's replica addresses (following their leader hints)
/// writes and reads a key of shard 1 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_shard_leader_is_replaced_without_the_master() {
    common::bounded_for(Duration::from_secs(60), async {
        let mut c = Cluster::start(
            3,
            Opts {
                shards: 3,
                protocol: Some("mdlin"),
                extra: vec![
                    "--election-timeout-ms".into(),
                    ELECTION_MS.to_string(),
                ],
                ..Default::default()
            },
        );
        let before = c.shard_leaders().await;
        // Let the followers hear a few heartbeats from the first leaders.
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.kill_master();
        let victim = before[1];
        c.kill(victim);
        let killed = Instant::now();
        let new = wait_for(Duration::from_secs(10), "a new leader of shard 1", || async {
            for id in (3..6).filter(|i| *i != victim) {
                let st = c.status(id).await?;
                if st.role == genericsmr::messages::role::LEADER {
                    return Some(id);
                }
            }
            None
        })
        .await;
        let took = killed.elapsed();
        // The survivors' timers fire between one and two timeouts after the
        // last heartbeat; then one round trip, plus our polling and some room
        // for a loaded machine.
        let bound = Duration::from_millis(2 * ELECTION_MS + 600);
        assert!(took <= bound, "shard 1 elected {new} after {took:?}, more than {bound:?}");
        let key = (0..)
            .map(|i| format!("e{i}"))
            .find(|k| shard_of(k.as_bytes(), 3) == 1)
            .expect("some key lands on shard 1");
        let mut cfg = client::ClientConfig::with_replicas((3..6).map(|i| c.client_addr(i)).collect());
        cfg.timeout = Duration::from_secs(10);
        cfg.attempt_timeout = Duration::from_millis(300);
        let cl = client::Client::connect(cfg).await.expect("client connects");
        let put = cl.prepare(genericsmr::command::Command::put(
            cl.id(),
            0,
            key.clone(),
            bytes::Bytes::from_static(b"after"),
        ));
        cl.submit(put).await.expect("shard 1 takes a write again");
        let get = cl.prepare(genericsmr::command::Command::get(cl.id(), 0, key));
        let got = cl.submit(get).await.expect("shard 1 serves a read again");
        assert_eq!(got.value.as_deref(), Some(&b"after"[..]));
        eprintln!("shard 1 elected replica {new} {took:?} after its leader was killed, with the master gone");
    })
    .await;
}
