//! Concurrent writers, exactly-once retries: real processes on 127.0.0.1.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{bounded, Cluster, Opts};
use genericsmr::command::Command;
use genericsmr::state::KvStore;

/// Two clients write 1,000 keys each, concurrently (with a few writes in flight
/// per client and overwrites); every replica ends with exactly the expected state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_write_1000_keys_and_all_replicas_agree() {
    bounded(async {
        let c = Cluster::start(3, Opts::default());
        c.leader().await;
        let mut tasks = Vec::new();
        for w in 0..2u32 {
            let cl = c.client().await;
            tasks.push(tokio::spawn(async move {
                let mut inflight = tokio::task::JoinSet::new();
                for i in 0..1000u32 {
                    // Writer w owns keys w-*; the second half of its writes overwrite the first half.
                    let key = format!("w{w}-{}", i % 500);
                    let val = format!("v{i}");
                    let cl = cl.clone();
                    inflight.spawn(async move { cl.put(key, val).await });
                    if inflight.len() >= 8 {
                        inflight
                            .join_next()
                            .await
                            .unwrap()
                            .unwrap()
                            .expect("put acknowledged");
                    }
                    // Keep the overwrite after its first write: drain at the half-way point.
                    if i == 499 {
                        while let Some(r) = inflight.join_next().await {
                            r.unwrap().expect("put acknowledged");
                        }
                    }
                }
                while let Some(r) = inflight.join_next().await {
                    r.unwrap().expect("put acknowledged");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut expected = KvStore::default();
        for w in 0..2u32 {
            for i in 500..1000u32 {
                expected.apply(&Command::put(
                    1,
                    0,
                    format!("w{w}-{}", i % 500),
                    format!("v{i}"),
                ));
            }
        }
        let digest = c.converged(Duration::from_secs(10)).await;
        assert_eq!(
            digest,
            expected.digest(),
            "replicas agree with each other but not with the acknowledged writes"
        );
        let cl = c.client().await;
        assert_eq!(cl.get("w1-7").await.unwrap(), Some(Bytes::from("v507")));
        for i in c.running() {
            let s = c.status(i).await.unwrap();
            assert_eq!(s.keys, 1000);
            assert_eq!(
                s.applied, 2001,
                "replica {i}: 2000 writes and one read applied once each"
            );
        }
    })
    .await
}

/// A command retried with the same (client id, seq), even after another client
/// overwrote the key, is applied once and answered with its first outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_command_is_applied_once() {
    bounded(async {
        let mut c = Cluster::start(
            3,
            Opts {
                extra: vec!["--reply-after-exec".into()],
                ..Default::default()
            },
        );
        c.leader().await;
        let a = c.client().await;
        let b = c.client().await;
        a.put("k", "v0").await.unwrap();
        let cmd = Command::put(a.id() ^ 0x55, 1, "k", "mine");
        let first = a.submit(cmd.clone()).await.unwrap();
        assert_eq!(
            first.value,
            Some(Bytes::from("v0")),
            "first outcome: the value replaced"
        );
        b.put("k", "theirs").await.unwrap();
        let again = a.submit(cmd.clone()).await.unwrap();
        assert_eq!(again, first, "a retry gets the first outcome");
        assert_eq!(
            b.get("k").await.unwrap(),
            Some(Bytes::from("theirs")),
            "the retry must not re-apply"
        );
        // Also across a leader change.
        let l = c.leader().await;
        c.kill(l);
        let again = a.submit(cmd).await.unwrap();
        assert_eq!(again, first);
        assert_eq!(b.get("k").await.unwrap(), Some(Bytes::from("theirs")));
        let applied: Vec<u64> = {
            let mut v = Vec::new();
            for i in c.running() {
                v.push(c.status(i).await.unwrap().applied);
            }
            v
        };
        c.converged(Duration::from_secs(10)).await;
        // put v0, put mine, put theirs, get, get: five applied commands, the two retries skipped.
        for i in c.running() {
            let s = c.status(i).await.unwrap();
            assert_eq!(
                s.applied, 5,
                "replica {i} applied {} (earlier {applied:?})",
                s.applied
            );
        }
    })
    .await
}

/// A command that timed out stays unacknowledged: retried after later commands
/// of the same session succeeded, it is still applied (not skipped as stale
/// while being reported as a success).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_command_retried_later_is_applied() {
    bounded(async {
        let mut c = Cluster::start(
            3,
            Opts {
                durable: true,
                ..Default::default()
            },
        );
        let l = c.leader().await;
        let a = c.client_with_timeout(Duration::from_millis(1200)).await;
        a.put("warm", "1").await.unwrap();
        let (f1, f2) = ((l + 1) % 3, (l + 2) % 3);
        c.kill(f1);
        c.kill(f2);
        let x = a.prepare(Command::put(0, 0, "x", "1"));
        assert!(
            a.submit(x.clone()).await.is_err(),
            "no majority: no success"
        );
        c.restart(f1, true);
        c.restart(f2, true);
        // Later commands of the same session succeed first...
        for i in 0..5 {
            a.put(format!("later{i}"), "v").await.unwrap();
        }
        // ...then the timed-out one is retried, and must really be applied.
        a.submit(x).await.expect("the retry succeeds");
        assert_eq!(a.get("x").await.unwrap(), Some(Bytes::from("1")));
    })
    .await
}

/// Without a master, `--replicas` may list the replicas in any order, and
/// include one that is down: leader hints name replica ids, not positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_mode_finds_the_leader_in_any_order() {
    bounded(async {
        let c = Cluster::start(3, Opts::default());
        c.leader().await;
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let addrs = vec![dead, c.client_addr(2), c.client_addr(0), c.client_addr(1)];
        let mut cfg = client::ClientConfig::with_replicas(addrs);
        cfg.timeout = Duration::from_secs(5);
        let cl = client::Client::connect(cfg).await.unwrap();
        let t = std::time::Instant::now();
        cl.put("k", "v").await.unwrap();
        assert_eq!(cl.get("k").await.unwrap(), Some(Bytes::from("v")));
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "took {:?}",
            t.elapsed()
        );
        let (id, addr) = cl.leader().await.unwrap();
        assert_eq!(addr, c.client_addr(id as usize));
    })
    .await
}
