//! EPaxos on real processes: no acknowledged write is lost when a replica is
//! killed and restarted under a mixed workload, and a replica that was down
//! while its peers forgot what it needs catches up by snapshot.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::driver::{Mode, Spec};
use bench::route::Route;
use bench::workload::Mix;
use client::{Client, ClientConfig};
use common::{bounded, bounded_for, Cluster, Opts};

/// The catch-up runs execute three horizons of instances per command leader
/// (393,216 at the default) while the other tests of this file run beside
/// them on two cores: 13-35 s alone, over 90 s in one loaded CI run.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(300);

fn epaxos(durable: bool, extra: &[&str]) -> Opts {
    Opts {
        durable,
        protocol: Some("epaxos"),
        extra: extra.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Eight closed-loop clients spread over three durable replicas, on five
/// keys: half gets, the rest puts of values unique to their (client, seq),
/// swaps and deletes. One replica is killed with SIGKILL and restarted. The
/// history must be linearizable, and every replica must have applied exactly
/// the operations acknowledged: a put answered at commit and then skipped
/// where the client's next command (acknowledging it) executed first would
/// show as a read of an older value, and as one applied command too few.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_across_a_kill_and_restart() {
    bounded(async {
        let mut c = Cluster::start(3, epaxos(true, &[]));
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let addrs = (0..3).map(|i| c.client_addr(i)).collect();
        let run = tokio::spawn(common::checked_workload(
            addrs,
            8,
            5,
            stop.clone(),
            answered.clone(),
        ));
        // Operations before, during and after the outage.
        common::wait_for_more(&answered, 400, "operations before the kill").await;
        let victim = 2;
        c.kill(victim);
        common::wait_for_more(&answered, 400, "operations while a replica is down").await;
        c.restart(victim, true);
        common::wait_for(
            Duration::from_secs(20),
            "the restarted replica to serve",
            || async { c.status(victim).await.map(|_| ()) },
        )
        .await;
        common::wait_for_more(&answered, 400, "operations after the restart").await;
        stop.store(true, Ordering::Relaxed);
        let done = run.await.expect("workload");
        assert!(done.acked > 300, "too little work: {}", done.acked);
        assert!(
            done.reads_with_value > 50,
            "too few reads saw a value: {}",
            done.reads_with_value
        );
        let unknown = done.history.len() - done.acked;
        common::assert_linearizable(&done.history);
        c.converged(Duration::from_secs(20)).await;
        for r in 0..3 {
            let s = c.status(r).await.expect("status");
            if unknown == 0 {
                assert_eq!(
                    s.applied as usize, done.acked,
                    "replica {r} applied {} commands, {} were acknowledged",
                    s.applied, done.acked
                );
            }
        }
    })
    .await
}

/// One replica of `n` is killed; the others execute several times the
/// horizon in instances per command leader (so they forget what it needs),
/// then it restarts. Within 10 s its executed count and digest equal the
/// others', and a write sent through it succeeds and is read back elsewhere.
async fn catches_up_past_the_horizon(n: usize, batch: bool, horizon: Option<u64>) {
    let mut extra = vec!["--sync", "off"];
    if batch {
        extra.push("--batch");
    }
    let h = horizon.map(|h| h.to_string());
    if let Some(h) = &h {
        extra.extend(["--gc-horizon", h.as_str()]);
    }
    let horizon = horizon.unwrap_or(1 << 16);
    let mut c = Cluster::start(n, epaxos(true, &extra));
    let down = n - 1;
    c.kill(down);
    // Instances per live command leader: a flood spread over the live
    // replicas until each has run several horizons' worth.
    let target = 3 * horizon * (n as u64 - 1);
    // Spread over the live replicas only: a client of the dead one would
    // spend its time on timeouts.
    let live = (0..down).map(|i| c.client_addr(i)).collect();
    let route = Arc::new(Route::with_replicas(live));
    // Without batching every command is an instance, and a flood makes them
    // fastest; with batching, one closed-loop client per replica keeps one
    // command per instance.
    let (mode, clients, duration_s) = if batch {
        (Mode::Closed { window: 1 }, n - 1, 1.0)
    } else {
        (
            Mode::Flood {
                total: target * 5 / 4,
            },
            2 * (n - 1),
            0.0,
        )
    };
    let spec = Spec {
        mode,
        clients,
        duration_s,
        warmup_s: 0.0,
        cooldown_s: 0.0,
        mix: Mix {
            keys: 10_000,
            ..Mix::default()
        },
        seed: 7,
        attempt_timeout_ms: 1000,
        op_timeout_ms: 20_000,
        wan: None,
        spread: true,
        fanout: 1,
        multi_dispatch: false,
    };
    let mut rounds = 0;
    let load = Instant::now();
    loop {
        let st = c.status(0).await.expect("status");
        if st.executed >= target {
            break;
        }
        rounds += 1;
        assert!(
            rounds < 40,
            "the load is too slow: {} of {target} instances",
            st.executed
        );
        bench::driver::run(&spec, route.clone(), false, Arc::default())
            .await
            .expect("load runs");
    }
    eprintln!(
        "n={n} batch={batch} horizon={horizon}: {target} instances in {:.1} s",
        load.elapsed().as_secs_f64()
    );
    c.restart(down, true);
    let t0 = Instant::now();
    common::wait_for(
        Duration::from_secs(10),
        "the restarted replica to catch up",
        || async {
            let a = c.status(0).await?;
            let b = c.status(down).await?;
            (a.executed == b.executed && a.digest() == b.digest() && a.executed >= target)
                .then_some(())
        },
    )
    .await;
    eprintln!(
        "n={n} batch={batch} horizon={horizon}: caught up {:.2} s after restart",
        t0.elapsed().as_secs_f64()
    );
    // A write through the restarted replica, read back through another.
    let mut cfg = ClientConfig::with_replicas(vec![c.client_addr(down)]);
    cfg.timeout = Duration::from_secs(10);
    let cl = Client::connect(cfg).await.expect("client");
    cl.put("after-restart", format!("through-{down}"))
        .await
        .expect("a write through the restarted replica");
    let other = Client::connect(ClientConfig::with_replicas(vec![c.client_addr(0)]))
        .await
        .expect("client");
    assert_eq!(
        other.get("after-restart").await.expect("read").as_deref(),
        Some(format!("through-{down}").as_bytes())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_catch_up_past_the_default_horizon() {
    bounded_for(CATCH_UP_LIMIT, catches_up_past_the_horizon(3, false, None)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_batching_replicas_catch_up_past_the_horizon() {
    bounded_for(
        CATCH_UP_LIMIT,
        catches_up_past_the_horizon(3, true, Some(1024)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_replicas_catch_up_past_the_horizon() {
    bounded_for(
        CATCH_UP_LIMIT,
        catches_up_past_the_horizon(5, false, Some(1024)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_batching_replicas_catch_up_past_the_horizon() {
    bounded_for(
        CATCH_UP_LIMIT,
        catches_up_past_the_horizon(5, true, Some(1024)),
    )
    .await
}
