//! A load above capacity must not be turned into resends: a busy replica
//! whose queue holds a request past the attempt timeout still answers, so
//! the client keeps its connection (resending only the oldest request, at
//! most once per timeout), instead of reconnecting and resending everything
//! outstanding, which the replica then orders and answers a second time.

use std::sync::Arc;

use bench::driver::{Mode, Progress, Spec};
use bench::route::Route;
use bench::workload::Mix;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_leader_keeps_its_connection_and_is_not_sent_everything_again() {
    // Every wait below is bounded: the run by its own timeouts and the
    // 60 s cap around it.
    // MDLin (one operation per slot) with one slot at a time over 2 ms
    // links: about 200 operations a second, a tenth of what is offered, so
    // requests wait in the leader's queue well past the attempt timeout.
    let c = common::cluster("mdlin", &["--pipeline", "1", "--link-delay-ms", "2"]);
    let spec = Spec {
        mode: Mode::Open {
            rate: 2000.0,
            max_in_flight: bench::driver::OPEN_WINDOW,
            max_wait_ms: bench::driver::OPEN_MAX_WAIT_MS,
        },
        clients: 1,
        duration_s: 2.0,
        warmup_s: 0.0,
        cooldown_s: 0.0,
        mix: Mix::default(),
        seed: 5,
        attempt_timeout_ms: 100,
        op_timeout_ms: 30_000,
        wan: None,
        spread: false,
        fanout: 1,
        multi_dispatch: false,
    };
    let route = Arc::new(Route::with_master(c.master_addr()).await.unwrap());
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        bench::driver::run(&spec, route, false, Arc::new(Progress::default())),
    )
    .await
    .expect("the run ends")
    .expect("the run works");
    let ok: u64 = run.clients.iter().map(|s| s.ok).sum();
    let dup: u64 = run.clients.iter().map(|s| s.duplicates).sum();
    println!("{ok} answered, {dup} answered twice");
    // Giving up every busy connection, the client answered 21 here: the
    // replies to what it had sent went to connections it had closed.
    assert!(
        ok >= 100,
        "the client saw only {ok} answers: it gave up connections that were busy, not gone"
    );
    // Four seconds of run and drain: at most one resend per 100 ms.
    assert!(
        dup <= 60,
        "{dup} requests answered twice (with {ok} answered once): the client resent what the leader still held"
    );
}

/// A load far above capacity must still be served at capacity: arrivals that
/// waited too long for room in the client's window are shed, not sent so late
/// that every answer comes after the client gave up on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_far_above_capacity_is_served_at_capacity_not_answered_too_late() {
    // About 200 operations a second (one slot at a time over 2 ms links),
    // offered ten times that, for 4 s, with a 1 s operation timeout. Every
    // wait is bounded by the run's own timeouts and the 60 s cap around it.
    let c = common::cluster("mdlin", &["--pipeline", "1", "--link-delay-ms", "2"]);
    // OVERLOAD_MAX_WAIT_MS=0 turns shedding off, to watch this test fail.
    let max_wait_ms = std::env::var("OVERLOAD_MAX_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let spec = Spec {
        mode: Mode::Open {
            rate: 2000.0,
            max_in_flight: 32,
            max_wait_ms,
        },
        clients: 1,
        duration_s: 4.0,
        warmup_s: 0.0,
        cooldown_s: 0.0,
        mix: Mix::default(),
        seed: 6,
        attempt_timeout_ms: 500,
        op_timeout_ms: 1_000,
        wan: None,
        spread: false,
        fanout: 1,
        multi_dispatch: false,
    };
    let route = Arc::new(Route::with_master(c.master_addr()).await.unwrap());
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        bench::driver::run(&spec, route, false, Arc::new(Progress::default())),
    )
    .await
    .expect("the run ends")
    .expect("the run works");
    let m = bench::stats::merge(&run.clients);
    println!(
        "{} answered, {} timed out, {} shed, {} answered too late; per second: {:?}",
        m.ok,
        m.timed_out,
        m.shed,
        m.duplicates,
        m.series.iter().map(|s| s.ok).collect::<Vec<_>>()
    );
    // Sending every arrival however late, the client saw 200 to 300 answers
    // here, nearly all in the first second: after that each request went out
    // older than the operation timeout and was given up on before its answer.
    assert!(
        m.ok >= 450,
        "only {} answered in 4 s at a capacity of about 200/s: requests went out too late to be answered in time",
        m.ok
    );
    let last = m.series.get(3).map_or(0, |s| s.ok);
    assert!(
        last >= 80,
        "the fourth second answered {last}: the run fell to answering nothing"
    );
    assert!(
        m.shed > 3_000,
        "most of the 8,000 arrivals are shed: {}",
        m.shed
    );
}

/// Requests given up on are counted as requests too, not only as
/// operations, with multi-dispatch (MDLin's default in `bench local`): a
/// request whose every operation timed out has no delivery time, and was
/// counted at time 0, outside the measured window, so `requests_timed_out`
/// read 0 while `ops_timed_out` read millions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_given_up_on_are_counted_with_multi_dispatch() {
    // About 200 operations a second offered 2,000 for 2 s, with a 300 ms
    // operation timeout: many time out. Bounded by the run's own timeouts
    // and the 60 s cap around it.
    let c = common::cluster("mdlin", &["--pipeline", "1", "--link-delay-ms", "2"]);
    let spec = Spec {
        mode: Mode::Open {
            rate: 2000.0,
            max_in_flight: 512,
            max_wait_ms: 0,
        },
        clients: 1,
        duration_s: 2.0,
        warmup_s: 0.2,
        cooldown_s: 0.0,
        mix: Mix::default(),
        seed: 7,
        attempt_timeout_ms: 1_000,
        op_timeout_ms: 300,
        wan: None,
        spread: false,
        fanout: 1,
        multi_dispatch: true,
    };
    let route = Arc::new(Route::with_master(c.master_addr()).await.unwrap());
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        bench::driver::run(&spec, route, false, Arc::new(Progress::default())),
    )
    .await
    .expect("the run ends")
    .expect("the run works");
    let m = bench::stats::merge(&run.clients);
    println!(
        "requests: {} ok, {} timed out; operations: {} ok, {} timed out",
        m.ok, m.timed_out, m.ops_ok, m.ops_timed_out
    );
    assert!(
        m.ops_timed_out > 100,
        "the load times operations out: {}",
        m.ops_timed_out
    );
    assert_eq!(
        (m.ok, m.timed_out),
        (m.ops_ok, m.ops_timed_out),
        "one operation per request: requests and operations count alike"
    );
}
