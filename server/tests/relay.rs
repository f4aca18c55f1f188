//! Control requests through the master: state, faults, set-leader and fault
//! schedules reach a replica over its master link, on real processes.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use client::admin::{self, Target};
use common::{bounded, wait_for, Cluster, Opts};
use genericsmr::messages::{fault, role, FaultRequest};

fn via(c: &Cluster, replica: usize) -> Target {
    Target::ViaMaster {
        master: c.master_addr.clone(),
        replica: replica as u8,
    }
}

fn req(kind: u8) -> FaultRequest {
    FaultRequest {
        nonce: 7,
        kind,
        ..Default::default()
    }
}

/// Crash, restore, state and set-leader, all addressed to the master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_state_and_set_leader_through_the_master() {
    bounded(async {
        let c = Cluster::start(3, Opts::controlled());
        let l = c.leader().await;
        let f = (l + 1) % 3;
        let t = Duration::from_secs(2);
        let s = admin::status(via(&c, f), t).await.expect("status relayed");
        assert_eq!(
            s.replica as usize, f,
            "the master reached the right replica"
        );

        let r = admin::fault(via(&c, f), &req(fault::CRASH), t)
            .await
            .unwrap();
        assert!(r.crashed, "the relayed crash took effect");
        // The crashed replica drops status requests, relayed or not.
        assert!(admin::status(&c.client_addr(f), Duration::from_millis(300))
            .await
            .is_err());
        let cl = c.client().await;
        cl.put("while-crashed", "1").await.unwrap();
        let r = admin::fault(via(&c, f), &req(fault::RESTORE), t)
            .await
            .unwrap();
        assert!(!r.crashed);
        // It catches up by itself; its log is readable through the master.
        c.converged(Duration::from_secs(10)).await;
        let log = admin::log(via(&c, f), 0, 100, t).await.unwrap();
        assert!(log.slots.iter().any(|d| d.committed));

        let s = admin::set_leader(via(&c, f), Duration::from_secs(10))
            .await
            .expect("set-leader relayed");
        assert_eq!(s.replica as usize, f);
        wait_for(Duration::from_secs(10), "the master to follow", || async {
            let info = admin::cluster(&c.master_addr, t).await.ok()?;
            (info.leader == Some(f as u8)).then_some(())
        })
        .await;
        cl.put("after-set-leader", "2").await.unwrap();

        // A replica the master does not know is an error, not a hang.
        let e = admin::status(via(&c, 9), t).await.unwrap_err().to_string();
        assert!(e.contains("not connected"), "{e}");
    })
    .await
}

/// Without --control, a relayed fault is refused with a reason, and the
/// replica keeps its master link (it is not mistaken for a dead one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_faults_need_control_and_cost_nothing() {
    bounded(async {
        let c = Cluster::start(3, Opts::default());
        let l = c.leader().await;
        let t = Duration::from_secs(2);
        let e = admin::fault(via(&c, l), &req(fault::CRASH), t)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("--control"), "{e}");
        let s = admin::status(via(&c, l), t)
            .await
            .expect("status needs no --control");
        assert_eq!(s.role, role::LEADER, "nothing changed");
        let info = admin::cluster(&c.master_addr, t).await.unwrap();
        assert!(info.replicas.iter().all(|r| r.alive));
        assert_eq!(info.leader, Some(l as u8));
        c.client().await.put("k", "v").await.unwrap();
    })
    .await
}

/// `client schedule FILE` runs a time-ordered schedule through the master and
/// reports every step; the group keeps serving and converges afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_schedule_runs_in_order_from_the_cli() {
    bounded(async {
        let c = Cluster::start(3, Opts::controlled());
        let l = c.leader().await;
        let f = (l + 1) % 3;
        let dir = tempdir();
        let file = dir.join("faults.toml");
        std::fs::write(
            &file,
            format!(
                "[[step]]\nat = \"0s\"\ndo = \"partition {f} {l}\"\n\
                 [[step]]\nat = \"200ms\"\ndo = \"phase {f} accept 100ms\"\n\
                 [[step]]\nat = \"400ms\"\ndo = \"clear {f}\"\n\
                 [[step]]\nat = \"500ms\"\ndo = \"set-leader {f}\"\n"
            ),
        )
        .unwrap();
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_server"))
            .parent()
            .unwrap()
            .to_path_buf();
        bench::local::ensure_built(&bin, &["client"]).unwrap();
        let master = c.master_addr.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(bin.join("client"))
                .args(["--master", &master, "schedule"])
                .arg(&file)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(": ok")).collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].contains("partition") && lines[3].contains("set-leader"),
            "{text}"
        );
        assert_eq!(c.status(f).await.unwrap().role, role::LEADER);
        c.client().await.put("after-schedule", "1").await.unwrap();
        c.converged(Duration::from_secs(10)).await;

        // A schedule with a mistake is refused before anything runs.
        std::fs::write(
            dir.join("bad.toml"),
            "[[step]]\nat = \"1s\"\ndo = \"crash\"\n",
        )
        .unwrap();
        let out = std::process::Command::new(
            PathBuf::from(env!("CARGO_BIN_EXE_server")).with_file_name("client"),
        )
        .args(["--master", &c.master_addr, "schedule"])
        .arg(dir.join("bad.toml"))
        .output()
        .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("step 1"));
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("relay-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
