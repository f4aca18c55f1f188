//! Raft's PreVote and CheckQuorum on real processes (servers started with
//! --control, faults through the control API). Each scenario also runs
//! against the broken variant without the mechanism, which it must catch.

mod common;

use std::time::{Duration, Instant};

use client::admin;
use common::{bounded, wait_for, Cluster, Opts};
use genericsmr::messages::{fault, role, FaultRequest};

/// The election timeout these clusters run with, ms.
const T_MS: u64 = 1000;

fn raft(broken: Option<&str>) -> Cluster {
    let mut extra = vec!["--control".to_string()];
    if let Some(b) = broken {
        extra.extend(["--broken".to_string(), b.to_string()]);
    }
    Cluster::start(
        3,
        Opts {
            protocol: Some("raft"),
            durable: true,
            extra,
            ..Default::default()
        },
    )
}

async fn apply(c: &Cluster, replica: usize, kind: u8, peers: u64) {
    let req = FaultRequest {
        nonce: 1,
        kind,
        peers,
        ..Default::default()
    };
    admin::fault(&c.client_addr(replica), &req, Duration::from_secs(2))
        .await
        .expect("fault request applied");
}

/// The term in a status's ballot (`term << 8 | followed id`).
async fn term(c: &Cluster, i: usize) -> u64 {
    c.status(i).await.expect("status").ballot >> 8
}

/// A follower cut off until it campaigned, then for two more election
/// timeouts, comes back: (leader and term before, leader and term after).
async fn partitioned_follower_rejoins(broken: Option<&str>) -> ((usize, u64), (usize, u64)) {
    let c = raft(broken);
    let l = c.leader().await;
    let f = (l + 1) % 3;
    let cl = c.client().await;
    cl.put("before", "1").await.expect("put before");
    let before = (l, term(&c, l).await);
    let others = (0..3).filter(|i| *i != f).fold(0, |m, i| m | 1 << i);
    apply(&c, f, fault::PARTITION, others).await;
    wait_for(
        Duration::from_secs(10),
        "the cut-off follower to campaign",
        || async { (c.status(f).await?.role == role::CANDIDATE).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2 * T_MS)).await;
    apply(&c, f, fault::HEAL, 0).await;
    cl.put("after", "2").await.expect("put after");
    c.converged(Duration::from_secs(20)).await;
    let l2 = c.leader().await;
    (before, (l2, term(&c, l2).await))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_follower_rejoins_without_deposing_the_leader() {
    bounded(async {
        let (before, after) = partitioned_follower_rejoins(None).await;
        assert_eq!(before, after, "(leader, term) before and after");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pre_vote_the_rejoining_follower_deposes_the_leader() {
    bounded(async {
        let (before, after) = partitioned_follower_rejoins(Some("no-pre-vote")).await;
        assert!(after.1 > before.1, "a new term: {before:?} -> {after:?}");
    })
    .await
}

/// The leader is cut off from both followers: how long it goes on
/// claiming to lead (None: still after three election timeouts). The
/// majority side elects a leader, and after healing everything converges.
async fn cut_off_leader_leads_for(broken: Option<&str>) -> Option<Duration> {
    let c = raft(broken);
    let l = c.leader().await;
    c.client()
        .await
        .put("before", "1")
        .await
        .expect("put before");
    let others = (0..3).filter(|i| *i != l).fold(0, |m, i| m | 1 << i);
    apply(&c, l, fault::PARTITION, others).await;
    let cut = Instant::now();
    let mut led = None;
    while cut.elapsed() < Duration::from_millis(3 * T_MS) {
        if c.status(l).await.is_some_and(|s| s.role != role::LEADER) {
            led = Some(cut.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for(
        Duration::from_secs(20),
        "a leader on the majority side",
        || async {
            for i in (0..3).filter(|i| *i != l) {
                if c.status(i).await?.role == role::LEADER {
                    return Some(());
                }
            }
            None
        },
    )
    .await;
    apply(&c, l, fault::HEAL, 0).await;
    c.client().await.put("after", "2").await.expect("put after");
    c.converged(Duration::from_secs(20)).await;
    led
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_a_majority_steps_down_within_an_election_timeout() {
    bounded(async {
        let led = cut_off_leader_leads_for(None)
            .await
            .expect("it stepped down");
        // The timeout plus the 5 ms timer, the 10 ms poll and a loaded machine.
        assert!(
            led <= Duration::from_millis(T_MS + 250),
            "stepped down after {led:?}"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_check_quorum_a_cut_off_leader_keeps_leading() {
    bounded(async {
        assert_eq!(
            cut_off_leader_leads_for(Some("no-check-quorum")).await,
            None
        );
    })
    .await
}
