//! Majority loss: no false success while two of three replicas are down, and
//! every pending or retried write completes exactly once when one returns.

mod common;

use std::time::Duration;

use common::{bounded, Cluster, Opts};
use genericsmr::command::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_two_of_three_then_recover_exactly_once() {
    bounded(async {
        let mut c = Cluster::start(
            3,
            Opts {
                durable: true,
                ..Default::default()
            },
        );
        let l = c.leader().await;
        let ok = c.client().await;
        for i in 0..20 {
            ok.put(format!("k{i}"), "before").await.unwrap();
        }
        let (f1, f2) = ((l + 1) % 3, (l + 2) % 3);
        c.kill(f1);
        c.kill(f2);
        // Writes must not report success while the majority is gone.
        let short = c.client_with_timeout(Duration::from_millis(1500)).await;
        let cmds: Vec<Command> = (0..5)
            .map(|i| Command::put(short.id(), 100 + i, format!("p{i}"), format!("v{i}")))
            .collect();
        let mut pending = tokio::task::JoinSet::new();
        for cmd in cmds.clone() {
            let s = short.clone();
            pending.spawn(async move { s.submit(cmd).await });
        }
        while let Some(r) = pending.join_next().await {
            let r = r.unwrap();
            assert!(
                r.is_err(),
                "a write reported success without a majority: {r:?}"
            );
            println!("without a majority: {}", r.unwrap_err());
        }
        // A write issued now, with a long timeout, is pending when a replica returns.
        let long = c.client_with_timeout(Duration::from_secs(30)).await;
        let pending_write = tokio::spawn(async move { long.put("pending", "done").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !pending_write.is_finished(),
            "a write completed without a majority"
        );
        // One replica returns: the pending write completes, and retrying the
        // timed-out commands completes them, each applied once.
        c.restart(f1, true);
        pending_write
            .await
            .unwrap()
            .expect("the pending write completes once a majority is back");
        let patient = c.client().await;
        for cmd in &cmds {
            patient
                .submit(cmd.clone())
                .await
                .expect("write completes once a majority is back");
        }
        for cmd in &cmds {
            patient.submit(cmd.clone()).await.unwrap();
        }
        assert_eq!(
            patient.get("pending").await.unwrap().as_deref(),
            Some(&b"done"[..])
        );
        for (i, cmd) in cmds.iter().enumerate() {
            assert_eq!(
                patient.get(cmd.key.clone()).await.unwrap().as_deref(),
                Some(format!("v{i}").as_bytes())
            );
        }
        c.converged(Duration::from_secs(10)).await;
        for i in c.running() {
            let s = c.status(i).await.unwrap();
            // 20 puts before, 5 distinct commands however often sent, the pending put, 6 gets.
            assert_eq!(s.applied, 32, "replica {i} applied {} commands", s.applied);
        }
    })
    .await
}
