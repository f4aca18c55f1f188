//! Multi-Paxos replicas elect their own leaders: a dead leader is replaced
//! with the master gone, a leader cut off from the master alone keeps leading,
//! and steady load sees no election at all. Real processes, checked histories.

mod common;

use std::time::{Duration, Instant};

use client::admin;
use common::{bounded_for, wait_for, Cluster, Load, Opts};
use genericsmr::messages::{codes, fault, role, FaultRequest};

/// The election timeout these tests give the servers (the default is 1 s).
const ELECTION_MS: u64 = 400;

fn opts(election_ms: u64, control: bool) -> Opts {
    let mut extra = vec!["--election-timeout-ms".into(), election_ms.to_string()];
    if control {
        extra.push("--control".into());
    }
    Opts {
        extra,
        ..Default::default()
    }
}

/// A checked workload over every replica's address (clients follow the
/// replicas' NotLeader hints; they never ask the master).
/// The replica (of those running) that reports leading, with its ballot.
async fn leading(c: &Cluster, not: Option<usize>) -> Option<(usize, u64)> {
    for i in c.running() {
        if Some(i) == not {
            continue;
        }
        if let Some(s) = c.status(i).await {
            if s.role == role::LEADER {
                return Some((i, s.ballot));
            }
        }
    }
    None
}

/// One failover: kill the leader (after the master, when `without_master`)
/// under a checked workload; returns how long until another replica led.
async fn failover(without_master: bool, master_flags: Vec<String>) -> Duration {
    let mut c = Cluster::start(
        3,
        Opts {
            liveness_timeout_ms: Some(common::FAST_LIVENESS_TIMEOUT_MS),
            master_flags,
            ..opts(ELECTION_MS, false)
        },
    );
    let old = c.leader().await;
    let load = Load::start(&c, 3, 4);
    load.more(100, "operations before the faults").await;
    // A cluster in steady state, not one still starting: the master has had
    // two pings (100 ms apart) to hear every follower promise the leader's
    // ballot, and the followers' heartbeats have settled.
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.more(50, "operations in steady state").await;
    if without_master {
        c.kill_master();
        load.more(50, "operations with the master gone").await;
    }
    let killed = Instant::now();
    c.kill(old);
    let (new, _) = wait_for(Duration::from_secs(10), "a new leader", || {
        leading(&c, Some(old))
    })
    .await;
    let took = killed.elapsed();
    assert_ne!(new, old);
    load.more(100, "operations under the new leader").await;
    let h = load.finish("elections").await;
    assert!(h.acked > 50, "only {} operations acknowledged", h.acked);
    println!(
        "failover {} the master: replica {new} led {took:?} after replica {old} was killed; {} operations acknowledged",
        if without_master { "without" } else { "with" },
        h.acked
    );
    took
}

/// The master is killed, then the leader: the survivors elect a leader within
/// two election timeouts, the clients find it through the replicas' hints,
/// and no acknowledged write is lost. `ELECTION_ROUNDS` (default 1) runs
/// several clusters and prints the median.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_is_replaced_without_the_master() {
    let rounds: usize = std::env::var("ELECTION_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    bounded_for(Duration::from_secs(60 * rounds as u64), async {
        let mut took = Vec::new();
        for _ in 0..rounds {
            took.push(failover(true, Vec::new()).await);
        }
        took.sort();
        println!(
            "failover without the master over {rounds} runs: median {:?}, all {took:?}",
            took[rounds / 2]
        );
        // The survivors' timers fire between one and two timeouts after the
        // leader's last heartbeat; the rest is one round trip plus our polling,
        // with some room for a loaded machine.
        let bound = Duration::from_millis(2 * ELECTION_MS + 300);
        assert!(
            took[rounds / 2] <= bound,
            "failover took {took:?}, more than {bound:?}"
        );
    })
    .await;
}

/// For comparison (not run by default: `ELECTION_COMPARE=<rounds>`): the same
/// failover with the master alive, hinting a follower (the default), and
/// driving it as it used to (`master --master-failover`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_with_the_master_alive() {
    let Some(rounds) = std::env::var("ELECTION_COMPARE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return;
    };
    bounded_for(Duration::from_secs(60 * rounds as u64), async {
        for (what, flags) in [
            ("hinted by the master", vec![]),
            (
                "driven by the master",
                vec!["--master-failover".to_string()],
            ),
        ] {
            let mut took = Vec::new();
            for _ in 0..rounds {
                took.push(failover(false, flags.clone()).await);
            }
            took.sort();
            println!(
                "failover {what} over {rounds} runs: median {:?}, all {took:?}",
                took[rounds / 2]
            );
        }
    })
    .await;
}

/// The leader stops hearing the master's pings (a fault drops them: to the
/// master it is dead) but not its peers: it keeps leading at the same ballot,
/// the master keeps naming it, and an operator's set-leader through the master
/// still moves leadership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_master_is_not_deposed() {
    bounded_for(Duration::from_secs(60), async {
        let c = Cluster::start(
            3,
            Opts {
                liveness_timeout_ms: Some(common::FAST_LIVENESS_TIMEOUT_MS),
                ..opts(ELECTION_MS, true)
            },
        );
        let leader = c.leader().await;
        let ballot = c.status(leader).await.expect("status").ballot;
        let load = Load::start(&c, 3, 4);
        load.more(100, "operations before the cut").await;
        let cut = FaultRequest {
            nonce: 1,
            kind: fault::PHASE,
            code: codes::PING,
            delay_us: u64::MAX,
            ..Default::default()
        };
        admin::fault(&c.client_addr(leader), &cut, Duration::from_secs(2))
            .await
            .expect("cut the leader off from the master");
        // The cut works: the master soon counts the leader as down.
        wait_for(
            Duration::from_secs(10),
            "the master to lose the leader",
            || async {
                let info = admin::cluster(&c.master_addr, Duration::from_secs(2))
                    .await
                    .ok()?;
                let r = info.replicas.iter().find(|r| r.id as usize == leader)?;
                (!r.alive).then_some(())
            },
        )
        .await;
        // Long enough for the master to think it dead several times over, and
        // for the replicas' timers to fire several times, were heartbeats missing.
        let until = Instant::now()
            + Duration::from_millis(4 * common::FAST_LIVENESS_TIMEOUT_MS)
                .max(Duration::from_millis(4 * ELECTION_MS));
        while Instant::now() < until {
            load.more(20, "operations while cut off from the master")
                .await;
        }
        for i in 0..c.n() {
            let s = c.status(i).await.expect("status");
            assert_eq!(s.ballot, ballot, "replica {i}'s ballot moved");
            assert_eq!(s.leader, Some(leader as u8), "replica {i} follows another");
        }
        assert_eq!(
            c.status(leader).await.expect("status").role,
            role::LEADER,
            "the leader was deposed"
        );
        let info = admin::cluster(&c.master_addr, Duration::from_secs(2))
            .await
            .expect("cluster info");
        assert_eq!(
            info.leader,
            Some(leader as u8),
            "the master names another leader"
        );
        // An operator still moves leadership through the master.
        let next = (leader + 1) % c.n();
        admin::set_leader(
            admin::Target::ViaMaster {
                master: c.master_addr.clone(),
                replica: next as u8,
            },
            Duration::from_secs(10),
        )
        .await
        .expect("set-leader through the master");
        let (now, b) = wait_for(Duration::from_secs(10), "the new leader", || {
            leading(&c, Some(leader))
        })
        .await;
        assert_eq!(now, next);
        assert!(b > ballot);
        load.more(50, "operations under the new leader").await;
        let h = load.finish("elections").await;
        assert!(h.acked > 50, "only {} operations acknowledged", h.acked);
    })
    .await;
}

/// Sixty seconds of steady load with the default election timeout: no leader
/// change at all (the ballot every replica reports never moves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_load_sees_no_election() {
    let secs: u64 = std::env::var("ELECTION_STEADY_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    bounded_for(Duration::from_secs(secs + 60), async {
        // The production default timeout (no --election-timeout-ms).
        let c = Cluster::start(3, Opts::default());
        let leader = c.leader().await;
        let ballot = c.status(leader).await.expect("status").ballot;
        let load = Load::start(&c, 2, 16);
        let until = Instant::now() + Duration::from_secs(secs);
        let mut samples = 0;
        while Instant::now() < until {
            load.more(10, "steady operations").await;
            for i in 0..c.n() {
                let s = c.status(i).await.expect("status");
                assert_eq!(s.ballot, ballot, "replica {i}: the ballot moved after {samples} samples");
            }
            samples += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let h = load.finish("elections").await;
    assert!(h.acked > 50, "only {} operations acknowledged", h.acked);
        println!(
            "{secs} s of steady load: {} operations acknowledged, {samples} samples, 0 leader changes",
            h.acked
        );
    })
    .await;
}
