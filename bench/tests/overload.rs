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
