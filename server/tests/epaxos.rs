//! EPaxos on real processes: a command leader killed under load.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{bounded, Cluster, Opts};
use parking_lot::Mutex;

/// Two writers send to one replica (the one the master names); it is killed
/// with SIGKILL. Its in-flight instances are recovered by the others, the
/// clients' retries complete, every acknowledged write survives, and after the
/// killed replica restarts from its durable log all three converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_leader_kill_under_load_loses_nothing() {
    bounded(leader_kill(Vec::new())).await
}

/// The same with thrifty sends (PreAccept to a fast quorum only, Accept to a
/// majority) and batching.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_leader_kill_with_thrifty_and_batching() {
    bounded(leader_kill(vec!["--thrifty".into(), "--batch".into()])).await
}

async fn leader_kill(extra: Vec<String>) {
    {
        let mut c = Cluster::start(
            3,
            Opts {
                durable: true,
                protocol: Some("epaxos"),
                extra,
                ..Default::default()
            },
        );
        let target = admin_leader(&c).await;
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let mut tasks = Vec::new();
        for name in ["a", "b"] {
            let (cl, stop, acked) = (c.client().await, stop.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (k, v) = (format!("{name}-{i}"), format!("{i}"));
                    cl.put(k.clone(), v.clone()).await.expect("writes go on");
                    acked.lock().push((k, v));
                    i += 1;
                }
            }));
        }
        let wait_more = |n: usize| {
            let acked = acked.clone();
            async move {
                let base = acked.lock().len();
                common::wait_for(Duration::from_secs(20), "writes", || async {
                    (acked.lock().len() >= base + n).then_some(())
                })
                .await
            }
        };
        wait_more(100).await;
        c.kill(target);
        wait_more(100).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        let cl = c.client().await;
        let all = acked.lock().clone();
        assert!(all.len() >= 200);
        for (k, v) in all {
            assert_eq!(
                cl.get(k.clone()).await.unwrap().as_deref(),
                Some(v.as_bytes()),
                "lost acknowledged write {k}"
            );
        }
        c.restart(target, true);
        c.converged(Duration::from_secs(20)).await;
    }
}

/// The replica the master hands clients to.
async fn admin_leader(c: &Cluster) -> usize {
    common::wait_for(
        Duration::from_secs(10),
        "the master to name a replica",
        || async {
            let info = client::admin::cluster(&c.master_addr, Duration::from_secs(1))
                .await
                .ok()?;
            info.leader.map(|l| l as usize)
        },
    )
    .await
}
