//! The classic failure scenarios, injected through the control API of real
//! processes (servers started with --control).

mod common;

use std::time::{Duration, Instant};

use client::admin;
use common::{bounded, wait_for, Cluster, Opts};
use genericsmr::messages::{fault, role, FaultRequest};

async fn apply(c: &Cluster, replica: usize, req: FaultRequest) {
    admin::fault(
        &c.client_addr(replica),
        &FaultRequest { nonce: 1, ..req },
        Duration::from_secs(2),
    )
    .await
    .expect("fault request applied");
}

fn bit(i: usize) -> u64 {
    1 << i
}

/// Per-phase delays on one follower: the others commit normally, and it
/// converges once the delay has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_phase_delays_on_one_replica() {
    bounded(async {
        let c = Cluster::start(3, Opts::controlled());
        let l = c.leader().await;
        let slow = (l + 1) % 3;
        let accept = admin::message_code("accept").unwrap();
        let commit_short = admin::message_code("commitshort").unwrap();
        apply(
            &c,
            slow,
            FaultRequest {
                kind: fault::PHASE,
                code: accept,
                delay_us: 1_500_000,
                ..Default::default()
            },
        )
        .await;
        apply(
            &c,
            slow,
            FaultRequest {
                kind: fault::PHASE,
                code: commit_short,
                delay_us: 2_000_000,
                ..Default::default()
            },
        )
        .await;
        let cl = c.client().await;
        let t = Instant::now();
        for i in 0..50 {
            cl.put(format!("k{i}"), "v").await.unwrap();
        }
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "the others must commit without waiting: {:?}",
            t.elapsed()
        );
        let lagging = c.status(slow).await.unwrap();
        assert!(
            lagging.executed < 50,
            "the delayed replica cannot have executed everything yet"
        );
        // After the delays it converges, with no new writes.
        c.converged(Duration::from_secs(10)).await;
    })
    .await
}

/// Drop-all on one replica: progress. On two: no progress, clients get errors;
/// clearing the faults restores progress without any restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_all_on_one_then_two_replicas() {
    bounded(async {
        let c = Cluster::start(3, Opts::controlled());
        let l = c.leader().await;
        let (f1, f2) = ((l + 1) % 3, (l + 2) % 3);
        let drop_all = FaultRequest {
            kind: fault::PHASE,
            code: 0,
            delay_us: u64::MAX,
            ..Default::default()
        };
        apply(&c, f1, drop_all.clone()).await;
        let cl = c.client_with_timeout(Duration::from_millis(1500)).await;
        cl.put("one-down", "ok")
            .await
            .expect("progress with one replica dropping everything");
        apply(&c, f2, drop_all).await;
        assert!(
            cl.put("two-down", "x").await.is_err(),
            "no success without a majority"
        );
        apply(
            &c,
            f1,
            FaultRequest {
                kind: fault::CLEAR,
                ..Default::default()
            },
        )
        .await;
        apply(
            &c,
            f2,
            FaultRequest {
                kind: fault::CLEAR,
                ..Default::default()
            },
        )
        .await;
        let cl = c.client().await;
        cl.put("after", "ok")
            .await
            .expect("progress resumes once the faults are cleared");
        c.converged(Duration::from_secs(10)).await;
    })
    .await
}

/// Holding the leader's next Accept to one follower reorders it behind later
/// ones; after the release every replica holds the same log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_next_message_reorders_and_release_converges() {
    bounded(async {
        let c = Cluster::start(3, Opts::controlled());
        let l = c.leader().await;
        let f = (l + 1) % 3;
        let accept = admin::message_code("accept").unwrap();
        apply(
            &c,
            l,
            FaultRequest {
                kind: fault::HOLD,
                peers: bit(f),
                code: accept,
                ..Default::default()
            },
        )
        .await;
        let cl = c.client().await;
        for i in 0..20 {
            cl.put(format!("k{i}"), format!("{i}")).await.unwrap();
        }
        apply(
            &c,
            l,
            FaultRequest {
                kind: fault::RELEASE,
                peers: bit(f),
                ..Default::default()
            },
        )
        .await;
        c.converged(Duration::from_secs(10)).await;
        let (a, b) = (c.committed_slots(l).await, c.committed_slots(f).await);
        assert_eq!(a, b);
    })
    .await
}

/// Crash and restore through the API (the process keeps running): the
/// restored replica catches up by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_restore_through_the_api_with_catch_up() {
    bounded(async {
        let c = Cluster::start(3, Opts::controlled());
        let l = c.leader().await;
        let f = (l + 2) % 3;
        apply(
            &c,
            f,
            FaultRequest {
                kind: fault::CRASH,
                ..Default::default()
            },
        )
        .await;
        assert!(
            c.status(f).await.is_none(),
            "a crashed replica answers nobody"
        );
        let cl = c.client().await;
        for i in 0..100 {
            cl.put(format!("k{i}"), "v").await.unwrap();
        }
        apply(
            &c,
            f,
            FaultRequest {
                kind: fault::RESTORE,
                ..Default::default()
            },
        )
        .await;
        c.converged(Duration::from_secs(10)).await;
        assert!(
            c.status(f).await.unwrap().catchup_fetched > 0,
            "it fetched what it missed"
        );
    })
    .await
}

/// SetLeader moves leadership, and every replica reports the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_leader_moves_leadership_everywhere() {
    bounded(async {
        let c = Cluster::start(3, Opts::controlled());
        let l = c.leader().await;
        let next = (l + 1) % 3;
        admin::set_leader(&c.client_addr(next), Duration::from_secs(10))
            .await
            .unwrap();
        wait_for(
            Duration::from_secs(10),
            "every replica to report the new leader",
            || async {
                for i in 0..3 {
                    let s = c.status(i).await?;
                    if s.leader != Some(next as u8) || (i == next) != (s.role == role::LEADER) {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
        c.client().await.put("k", "v").await.unwrap();
    })
    .await
}

/// A leader cut off by a partition keeps proposing; a new leader is chosen on
/// the majority side. After healing the old leader steps down, and the
/// entries it could not get chosen are never executed anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_leader_behind_a_partition_steps_down_and_its_entries_are_never_executed() {
    bounded(async {
        let c = Cluster::start(3, Opts::controlled());
        let old = c.leader().await;
        let (f1, f2) = ((old + 1) % 3, (old + 2) % 3);
        c.client().await.put("before", "1").await.unwrap();
        apply(
            &c,
            old,
            FaultRequest {
                kind: fault::PARTITION,
                peers: bit(f1) | bit(f2),
                ..Default::default()
            },
        )
        .await;
        // A client that only knows the old leader: its writes cannot be chosen.
        let mut cfg = client::ClientConfig::with_replicas(vec![c.client_addr(old)]);
        cfg.timeout = Duration::from_millis(1200);
        let cut_off = client::Client::connect(cfg).await.unwrap();
        for i in 0..3 {
            assert!(cut_off.put(format!("stale{i}"), "lost").await.is_err());
        }
        assert!(
            c.status(old).await.unwrap().log_len > c.status(old).await.unwrap().commit_index,
            "unchosen entries"
        );
        // The majority side gets a new leader and moves on.
        admin::set_leader(&c.client_addr(f1), Duration::from_secs(10))
            .await
            .unwrap();
        let cl = c.client().await;
        cl.put("after", "2").await.unwrap();
        // Heal: the old leader steps down.
        apply(
            &c,
            old,
            FaultRequest {
                kind: fault::HEAL,
                ..Default::default()
            },
        )
        .await;
        wait_for(
            Duration::from_secs(10),
            "the old leader to step down",
            || async {
                let s = c.status(old).await?;
                (s.role == role::FOLLOWER).then_some(())
            },
        )
        .await;
        cl.put("after-heal", "3").await.unwrap();
        c.converged(Duration::from_secs(10)).await;
        for i in 0..3 {
            assert_eq!(
                cl.get(format!("stale{i}")).await.unwrap(),
                None,
                "an unchosen entry was executed"
            );
        }
        // No slot is chosen with two values; a commit the executed counts do
        // not show (a no-op after the last write) may still be on its way, so
        // equal logs are awaited.
        wait_for(
            Duration::from_secs(10),
            "every replica to hold the same chosen log",
            || async {
                let logs = [
                    c.committed_slots(0).await,
                    c.committed_slots(1).await,
                    c.committed_slots(2).await,
                ];
                for l in &logs[1..] {
                    for (slot, hash) in l {
                        if let Some(h) = logs[0].get(slot) {
                            assert_eq!(h, hash, "slot {slot} chosen with two values: {logs:?}");
                        }
                    }
                }
                logs.iter().all(|l| *l == logs[0]).then_some(())
            },
        )
        .await;
    })
    .await
}

/// Without --control, fault and leadership requests are refused (the
/// connection is closed) and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_control_faults_and_set_leader_are_refused() {
    bounded(async {
        let c = Cluster::start(3, Opts::default());
        let l = c.leader().await;
        let f = (l + 1) % 3;
        let r = admin::fault(
            &c.client_addr(l),
            &FaultRequest {
                kind: fault::CRASH,
                ..Default::default()
            },
            Duration::from_secs(2),
        )
        .await;
        assert!(
            r.is_err(),
            "a server without --control accepted a fault: {r:?}"
        );
        assert!(
            admin::set_leader(&c.client_addr(f), Duration::from_millis(1500))
                .await
                .is_err()
        );
        assert_eq!(
            c.status(l).await.unwrap().role,
            role::LEADER,
            "nothing changed"
        );
        c.client().await.put("k", "v").await.unwrap();
    })
    .await
}
