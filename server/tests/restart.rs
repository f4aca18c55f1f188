//! Restart and catch-up: with a durable log only the missing suffix is fetched,
//! without one everything is, and either way the replica converges without new
//! client writes.

mod common;

use std::time::Duration;

use common::{bounded, Cluster, Opts};

async fn write(c: &Cluster, prefix: &str, n: usize) {
    let cl = c.client().await;
    for i in 0..n {
        cl.put(format!("{prefix}{i}"), format!("{i}"))
            .await
            .unwrap();
    }
}

async fn restart_and_catch_up(durable: bool) {
    let mut c = Cluster::start(
        3,
        Opts {
            durable,
            ..Default::default()
        },
    );
    let l = c.leader().await;
    write(&c, "before-", 200).await;
    let f = (l + 1) % 3;
    c.converged(Duration::from_secs(10)).await;
    c.kill(f);
    write(&c, "while-down-", 100).await;
    let leader = c.status(l).await.unwrap();
    c.restart(f, durable);
    // No client writes from here on: the replica must fetch by itself.
    let digest = c.converged(Duration::from_secs(10)).await;
    assert_eq!(digest, leader.digest());
    let s = c.status(f).await.unwrap();
    println!(
        "durable={durable}: replayed {} records, fetched {} of {} slots",
        s.replayed, s.catchup_fetched, leader.commit_index
    );
    if durable {
        assert!(s.replayed >= 200, "replayed only {} records", s.replayed);
        // One command per slot: exactly the 100 slots committed while it was down.
        assert_eq!(
            s.catchup_fetched, 100,
            "fetched more than the missing suffix"
        );
    } else {
        assert_eq!(s.replayed, 0);
        assert_eq!(
            s.catchup_fetched, leader.commit_index,
            "a replica without a log fetches everything"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_restart_replays_and_fetches_only_the_missing_suffix() {
    bounded(restart_and_catch_up(true)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_without_log_fetches_everything() {
    bounded(restart_and_catch_up(false)).await
}

/// A whole durable group restarted (a new master, servers registering in any
/// order) keeps every acknowledged write: each server rejoins under the id its
/// data folder belongs to, not under whatever id its registration order gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_a_whole_durable_cluster_keeps_acknowledged_writes() {
    bounded(async {
        let data = tempfile::tempdir().unwrap();
        let opts = Opts {
            durable: true,
            data_root: Some(data.path().to_path_buf()),
            ..Default::default()
        };
        for round in 0..4 {
            // Alternate the registration order, which alone would hand out other ids.
            let order = if round % 2 == 0 {
                vec![0, 1, 2]
            } else {
                vec![2, 1, 0]
            };
            let c = Cluster::start(
                3,
                Opts {
                    start_order: order,
                    ..opts.clone()
                },
            );
            c.leader().await;
            if round > 0 {
                // Every server came back on its own votes (under another id it would replay nothing).
                for i in 0..3 {
                    let s = c.status(i).await.unwrap();
                    assert!(
                        s.replayed > 0,
                        "round {round}: replica {i} replayed no records"
                    );
                }
            }
            let cl = c.client().await;
            let want = (round > 0).then(|| bytes::Bytes::from(format!("v{}", round - 1)));
            assert_eq!(
                cl.get("k").await.unwrap(),
                want,
                "round {round} lost an acknowledged write"
            );
            cl.put("k", format!("v{round}")).await.unwrap();
        }
    })
    .await
}
