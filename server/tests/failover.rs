//! Leader and follower crashes under load (kill -9 of real processes).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::Client;
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
        // No slot holds two different values on any two replicas.
        let logs = [
            c.committed_slots(0).await,
            c.committed_slots(1).await,
            c.committed_slots(2).await,
        ];
        for (i, a) in logs.iter().enumerate() {
            for b in &logs[i + 1..] {
                for (slot, h) in a {
                    if let Some(h2) = b.get(slot) {
                        assert_eq!(h, h2, "slot {slot} differs between replicas");
                    }
                }
            }
        }
        assert!(
            logs.iter().all(|l| l.len() as u64 >= n as u64),
            "every replica holds every slot"
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
        c.signal(old, "STOP");
        let t = Instant::now();
        cl.put("during", "freeze")
            .await
            .expect("a new leader takes over");
        let gap = t.elapsed();
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
        for (slot, h) in &logs[new] {
            for l in &logs {
                assert_eq!(l.get(slot).unwrap_or(h), h, "slot {slot} differs");
            }
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
