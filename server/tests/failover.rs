//! Leader and follower crashes under load (kill -9 of real processes).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{Client, ClientConfig};
use common::{bounded, Cluster, Opts};
use parking_lot::Mutex;

/// What one writer saw: acknowledged (key, value) pairs, completion times and errors.
#[derive(Default)]
struct Seen {
    acked: Vec<(String, String)>,
    ack_times: Vec<Instant>,
    errors: Vec<String>,
}

/// Starts a writer that puts unique keys one after another until `stop`.
fn writer(
    cl: Client,
    name: &'static str,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let (k, v) = (format!("{name}-{i}"), format!("{i}"));
            match cl.put(k.clone(), v.clone()).await {
                Ok(_) => {
                    let mut s = seen.lock();
                    s.acked.push((k, v));
                    s.ack_times.push(Instant::now());
                }
                Err(e) => seen.lock().errors.push(e.to_string()),
            }
            i += 1;
        }
    })
}

/// Waits until every writer has at least `n` more acknowledgements than now.
async fn progress(seen: &[Arc<Mutex<Seen>>], n: usize) {
    let base: Vec<usize> = seen.iter().map(|s| s.lock().acked.len()).collect();
    common::wait_for(
        Duration::from_secs(20),
        "writers to make progress",
        || async {
            seen.iter()
                .zip(&base)
                .all(|(s, b)| s.lock().acked.len() >= b + n)
                .then_some(())
        },
    )
    .await
}

/// Asserts that every log holds the same slots with the same values.
fn assert_same_slots(logs: &[BTreeMap<u64, u64>]) {
    for (i, l) in logs.iter().enumerate().skip(1) {
        for (slot, h) in &logs[0] {
            assert_eq!(l.get(slot), Some(h), "slot {slot}: replica {i} vs 0");
        }
        assert_eq!(
            l.len(),
            logs[0].len(),
            "replica {i} holds more slots than 0"
        );
    }
}

/// Kills the leader while two clients write; measures the longest gap between
/// acknowledgements, checks every acknowledged write survives and that no slot
/// differs between any two replicas (the old leader is restarted from its
/// durable log to compare it too). Rounds: `FAILOVER_ROUNDS` (default 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_under_load_loses_nothing() {
    bounded(async {
        let rounds: usize = std::env::var("FAILOVER_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let mut c = Cluster::start(
            3,
            Opts {
                durable: true,
                // The test measures the failover.
                liveness_timeout_ms: Some(common::FAST_LIVENESS_TIMEOUT_MS),
                ..Default::default()
            },
        );
        c.leader().await;
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Vec<Arc<Mutex<Seen>>> = (0..2).map(|_| Arc::default()).collect();
        let w = vec![
            writer(c.client().await, "a", stop.clone(), seen[0].clone()),
            writer(c.client().await, "b", stop.clone(), seen[1].clone()),
        ];
        let mut gaps = Vec::new();
        for _ in 0..rounds {
            progress(&seen, 50).await;
            let old = c.leader().await;
            let killed_at = Instant::now();
            c.kill(old);
            progress(&seen, 20).await;
            let new = c.leader().await;
            assert_ne!(new, old);
            // The gap: from the kill to the first acknowledgement after it, on each writer.
            let gap = seen
                .iter()
                .map(|s| {
                    s.lock()
                        .ack_times
                        .iter()
                        .find(|t| **t > killed_at)
                        .map(|t| *t - killed_at)
                        .unwrap()
                })
                .max()
                .unwrap();
            println!(
                "failover: writes resumed {:.0} ms after kill -9 of leader {old}",
                gap.as_secs_f64() * 1e3
            );
            assert!(gap < Duration::from_secs(5), "writes stalled for {gap:?}");
            gaps.push(gap);
            c.restart(old, true);
        }
        stop.store(true, Ordering::Relaxed);
        for t in w {
            t.await.unwrap();
        }
        gaps.sort();
        println!("failover gaps: {gaps:?}; median {:?}", gaps[gaps.len() / 2]);
        // Every acknowledged write is still there.
        let cl = c.client().await;
        let mut n = 0;
        for s in &seen {
            let acked = s.lock().acked.clone();
            for (k, v) in acked {
                assert_eq!(
                    cl.get(k.clone()).await.unwrap().as_deref(),
                    Some(v.as_bytes()),
                    "lost acknowledged write {k}"
                );
                n += 1;
            }
        }
        assert!(n > 100);
        c.converged(Duration::from_secs(10)).await;
        // Every replica holds every slot, each with the same value.
        let logs = [
            c.committed_slots(0).await,
            c.committed_slots(1).await,
            c.committed_slots(2).await,
        ];
        assert_same_slots(&logs);
        assert!(
            logs[0].len() as u64 >= n as u64,
            "the log holds every acknowledged write"
        );
    })
    .await
}

/// Killing a follower under load is invisible to clients.
async fn follower_kill(opts: Opts) {
    let mut c = Cluster::start(3, opts);
    let l = c.leader().await;
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arc<Mutex<Seen>>> = (0..2).map(|_| Arc::default()).collect();
    let w = vec![
        writer(c.client().await, "a", stop.clone(), seen[0].clone()),
        writer(c.client().await, "b", stop.clone(), seen[1].clone()),
    ];
    progress(&seen, 50).await;
    c.kill((l + 1) % 3);
    progress(&seen, 200).await;
    stop.store(true, Ordering::Relaxed);
    for t in w {
        t.await.unwrap();
    }
    for s in &seen {
        let s = s.lock();
        assert!(s.errors.is_empty(), "client errors: {:?}", s.errors);
    }
    c.converged(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_kill_under_load_causes_no_client_errors() {
    bounded(follower_kill(Opts::default())).await
}

/// The same with a bare-majority fan-out and batching: the leader must notice
/// that its chosen peer died and fall back to the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_kill_with_thrifty_and_batching() {
    let extra = vec!["--thrifty".to_string(), "--batch".to_string()];
    bounded(follower_kill(Opts {
        extra,
        ..Default::default()
    }))
    .await
}

/// A frozen leader (SIGSTOP keeps its sockets open, so only its missing pongs
/// give it away) is replaced after the master's liveness timeout. When it
/// resumes it still believes it leads; it must step down on the first refusal,
/// and nothing it proposed after the freeze may be executed anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_leader_is_replaced_and_steps_down_when_it_resumes() {
    bounded(async {
        let c = Cluster::start(
            3,
            Opts {
                // The test measures the failover.
                liveness_timeout_ms: Some(common::FAST_LIVENESS_TIMEOUT_MS),
                ..Default::default()
            },
        );
        let old = c.leader().await;
        let cl = c.client().await;
        for i in 0..20 {
            cl.put(format!("k{i}"), "1").await.unwrap();
        }
        // Clients that know only the leader: what they send after the freeze
        // waits in its socket until it resumes, and then it proposes it.
        let mut stuck = Vec::new();
        for _ in 0..3 {
            let mut cfg = ClientConfig::with_replicas(vec![c.client_addr(old)]);
            cfg.timeout = Duration::from_millis(1500);
            cfg.attempt_timeout = Duration::from_millis(500);
            stuck.push(Client::connect(cfg).await.expect("client connects"));
        }
        c.signal(old, "STOP");
        let t = Instant::now();
        cl.put("during", "freeze")
            .await
            .expect("a new leader takes over");
        let gap = t.elapsed();
        // A new leader exists; the frozen one cannot answer.
        let ghosts: Vec<String> = (0..stuck.len()).map(|i| format!("ghost-{i}")).collect();
        let mut sent = tokio::task::JoinSet::new();
        for (s, k) in stuck.iter().zip(&ghosts) {
            let (s, k) = (s.clone(), k.clone());
            sent.spawn(async move { s.put(k, "stale").await });
        }
        while let Some(r) = sent.join_next().await {
            let r = r.expect("ghost put task");
            assert!(r.is_err(), "the frozen leader answered: {r:?}");
        }
        println!(
            "frozen leader replaced: write acknowledged {:.0} ms after SIGSTOP",
            gap.as_secs_f64() * 1e3
        );
        assert!(gap < Duration::from_secs(5));
        let new = c.leader().await;
        assert_ne!(new, old);
        c.signal(old, "CONT");
        // It steps down and follows the new ballot.
        let nb = c.status(new).await.unwrap().ballot;
        common::wait_for(
            Duration::from_secs(10),
            "the old leader to step down",
            || async {
                let s = c.status(old).await?;
                (s.role == genericsmr::messages::role::FOLLOWER && s.ballot >= nb).then_some(())
            },
        )
        .await;
        for i in 0..20 {
            cl.put(format!("k{i}"), "2").await.unwrap();
        }
        c.converged(Duration::from_secs(10)).await;
        let logs = [
            c.committed_slots(0).await,
            c.committed_slots(1).await,
            c.committed_slots(2).await,
        ];
        assert_same_slots(&logs);
        // The proposals sent to the frozen leader were never executed: the
        // converged state lacks their keys.
        for k in &ghosts {
            assert_eq!(
                cl.get(k.clone()).await.unwrap(),
                None,
                "{k}, sent only to the frozen leader, was executed"
            );
        }
        for i in 0..20 {
            assert_eq!(
                cl.get(format!("k{i}")).await.unwrap().as_deref(),
                Some(&b"2"[..])
            );
        }
    })
    .await
}
