//! The master can go away and come back: the replicas serve without it, a
//! master restarted with its `--state` file completes the deployment with a
//! majority, a replica that was down meanwhile rejoins under its id, and the
//! `client` binary needs no master at all when given `--replicas`.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::admin;
use common::{bounded_for, wait_for, wait_for_more, Cluster, Opts};

/// Each scenario kills and restarts two processes under load on two shared cores.
const LIMIT: Duration = Duration::from_secs(150);

/// Under a checked workload spread over all replicas: replica `down` is
/// killed, then the master (kill -9); the load goes on without the master;
/// the master restarts on its port with its state file while `down` is still
/// down, and completes with the other two; later `down` restarts, rejoins
/// under its id and catches up. The history must be linearizable and not
/// vacuous.
async fn master_restarts_while_a_replica_is_down(protocol: &'static str, durable: bool) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("master.state");
    let mut c = Cluster::start(
        3,
        Opts {
            protocol: Some(protocol),
            durable,
            master_flags: vec!["--state".into(), state.display().to_string()],
            ..Default::default()
        },
    );
    assert!(state.exists(), "the master wrote no state file");
    let down = if protocol == "paxos" {
        (c.leader().await + 1) % 3
    } else {
        2
    };
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let addrs = (0..3).map(|i| c.client_addr(i)).collect();
    let run = tokio::spawn(common::checked_workload(
        addrs,
        6,
        5,
        stop.clone(),
        done.clone(),
    ));
    wait_for_more(&done, 100, "operations before the kills").await;
    c.kill(down);
    wait_for_more(&done, 100, "operations with a replica down").await;
    c.kill_master();
    wait_for_more(&done, 200, "operations without the master").await;
    c.restart_master();
    // The restarted master knows all three from its file and completes with two.
    let info = wait_for(
        Duration::from_secs(30),
        "the restarted master to complete with the majority",
        || async {
            let i = admin::cluster(&c.master_addr, Duration::from_secs(1))
                .await
                .ok()?;
            let live = i.replicas.iter().filter(|r| r.alive).count();
            (i.complete && live == 2).then_some(i)
        },
    )
    .await;
    assert_eq!(info.replicas.len(), 3);
    let d = info
        .replicas
        .iter()
        .find(|r| r.id as usize == down)
        .expect("the down replica is known");
    assert!(!d.alive);
    assert_eq!(d.client_addr(), c.client_addr(down));
    if protocol == "paxos" {
        // The leader is reported again (from the replicas' pongs).
        wait_for(
            Duration::from_secs(30),
            "a leader at the master",
            || async {
                admin::cluster(&c.master_addr, Duration::from_secs(1))
                    .await
                    .ok()?
                    .leader_of(0)
            },
        )
        .await;
    }
    wait_for_more(&done, 100, "operations after the master restart").await;
    // The down replica comes back (checked by `restart`: under its old id).
    c.restart(down, durable);
    let up = (0..3).find(|i| *i != down).unwrap();
    let target = c.status(up).await.expect("status").executed;
    let caught_up = wait_for(
        Duration::from_secs(40),
        "the rejoined replica to catch up",
        || async {
            let s = c.status(down).await?;
            (s.executed >= target).then_some(s.executed)
        },
    )
    .await;
    wait_for_more(&done, 100, "operations after the rejoin").await;
    stop.store(true, Ordering::Relaxed);
    let h = run.await.expect("workload");
    println!(
        "{protocol}: {} operations, {} acknowledged, {} reads saw a value; replica {down} executed {caught_up} (target {target})",
        h.history.len(),
        h.acked,
        h.reads_with_value
    );
    assert!(h.acked >= 600, "too little work: {}", h.acked);
    assert!(
        h.reads_with_value > 50,
        "too few reads saw a value: {}",
        h.reads_with_value
    );
    common::assert_linearizable(&h.history);
    let info = admin::cluster(&c.master_addr, Duration::from_secs(2))
        .await
        .expect("master answers");
    assert!(info.replicas.iter().all(|r| r.alive), "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paxos_master_restart_with_a_replica_down() {
    bounded_for(
        LIMIT,
        master_restarts_while_a_replica_is_down("paxos", false),
    )
    .await
}

/// EPaxos replicas need the master for nothing once started: the load goes
/// on while it is dead; the restarted replica (with its durable log) needs it
/// only to register.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epaxos_master_restart_with_a_replica_down() {
    bounded_for(
        LIMIT,
        master_restarts_while_a_replica_is_down("epaxos", true),
    )
    .await
}

/// The `client` binary, given only replica addresses (in an order that is not
/// the id order, a follower first), puts and gets with no master running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_binary_works_without_a_master() {
    bounded_for(LIMIT, async {
        let mut c = Cluster::start(3, Opts::default());
        let l = c.leader().await;
        c.kill_master();
        let bin: PathBuf = PathBuf::from(env!("CARGO_BIN_EXE_server"))
            .parent()
            .unwrap()
            .to_path_buf();
        bench::local::ensure_built(&bin, &["client"]).unwrap();
        let mut order: Vec<usize> = (0..3).filter(|i| *i != l).rev().collect();
        order.push(l);
        let list = order
            .iter()
            .map(|i| c.client_addr(*i))
            .collect::<Vec<_>>()
            .join(",");
        let run = |args: &[&str]| {
            let out = std::process::Command::new(bin.join("client"))
                .arg("--replicas")
                .arg(&list)
                .args(args)
                .output()
                .expect("client runs");
            assert!(
                out.status.success(),
                "client {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        run(&["put", "no-master-key", "no-master-value"]);
        let got = run(&["get", "no-master-key"]);
        assert!(got.contains("no-master-value"), "get printed {got:?}");
        // `bench run --replicas` routes the same way: ids and leader from the replicas.
        let addrs = order.iter().map(|i| c.client_addr(*i)).collect();
        let route = bench::route::Route::discover(addrs)
            .await
            .expect("discover");
        for i in 0..3 {
            assert_eq!(route.addr(i), Some(c.client_addr(i)));
        }
        assert_eq!(route.target().await, Some(l));
    })
    .await
}
