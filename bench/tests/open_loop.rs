//! Open-loop timing: a server stall shows up in the recorded latencies, because
//! latency counts from the intended send time. A closed loop hides it (one slow
//! operation), which is the coordinated omission the open loop exists to avoid.

use std::sync::Arc;
use std::time::Duration;

use bench::driver::{Mode, Progress, Spec};
use bench::local::LocalCluster;
use bench::route::Route;
use bench::workload::Mix;

mod common;

const STALL: Duration = Duration::from_millis(400);

fn cluster() -> LocalCluster {
    common::cluster("paxos", &[])
}

fn spec(mode: Mode, clients: usize) -> Spec {
    Spec {
        mode,
        clients,
        duration_s: 3.0,
        warmup_s: 0.0,
        cooldown_s: 0.0,
        mix: Mix::default(),
        seed: 3,
        attempt_timeout_ms: 5_000,
        op_timeout_ms: 20_000,
        wan: None,
        spread: false,
        fanout: 1,
        multi_dispatch: false,
    }
}

/// Freezes every replica for `STALL` about a second into the run, then measures.
async fn run_with_stall(c: &LocalCluster, spec: Spec) -> Vec<u64> {
    let route = Arc::new(Route::with_master(c.master_addr()).await.unwrap());
    let run = tokio::spawn(async move {
        bench::driver::run(&spec, route, true, Arc::new(Progress::default())).await
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for i in 0..c.n() {
        c.signal(i, "STOP").unwrap();
    }
    std::thread::sleep(STALL);
    for i in 0..c.n() {
        c.signal(i, "CONT").unwrap();
    }
    let out = run.await.unwrap().unwrap();
    out.history
        .iter()
        .filter_map(|r| r.return_ns.map(|t| t - r.invoke_ns))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_open_loop_latencies_but_hides_in_a_closed_loop() {
    let c = cluster();
    let big = |l: &Vec<u64>| l.iter().filter(|ns| **ns > 150_000_000).count();
    let open = run_with_stall(
        &c,
        spec(
            Mode::Open {
                rate: 1000.0,
                max_in_flight: bench::driver::OPEN_WINDOW,
                max_wait_ms: bench::driver::OPEN_MAX_WAIT_MS,
            },
            4,
        ),
    )
    .await;
    let closed = run_with_stall(&c, spec(Mode::Closed { window: 1 }, 1)).await;
    println!(
        "open loop: {} of {} ops above 150 ms; closed loop: {} of {}",
        big(&open),
        open.len(),
        big(&closed),
        closed.len()
    );
    // About 1000 ops/s were due during the 400 ms stall: a few hundred see it.
    assert!(
        big(&open) >= 100,
        "open loop hid the stall: {} slow ops",
        big(&open)
    );
    assert!(open.iter().max().unwrap() >= &300_000_000);
    // The closed loop's single client was waiting on one request: one slow op.
    assert!(big(&closed) <= 2, "closed loop: {}", big(&closed));
}
