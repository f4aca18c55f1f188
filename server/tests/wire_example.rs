//! docs/wire.md is enough to write a client: examples/wire_client.py, written
//! from it alone in Python, runs its exchanges (GetCluster, Propose with a
//! put, get, cas and delete, not-leader hints, StatusRequest) against live
//! clusters. Any field the document gets wrong makes the script's decoding
//! fail (it refuses short bodies and trailing bytes).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{bounded_for, Cluster, Opts};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/wire_client.py")
}

/// Runs the script against the cluster of `master`; returns its stdout.
async fn run_script(master: &str, key: &str) -> String {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script()).arg(master).arg(key).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the example client finishes within 60 s")
        .expect("python3 runs (install CPython 3 to run this test)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the example client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_from_wire_md_works_against_paxos_and_epaxos() {
    assert!(
        Command::new("python3").arg("--version").output().is_ok(),
        "this test needs python3 on the PATH"
    );
    bounded_for(Duration::from_secs(180), async {
        for (protocol, after_exec) in [("paxos", false), ("epaxos", true)] {
            let mut opts = Opts {
                protocol: Some(protocol),
                ..Default::default()
            };
            if after_exec {
                opts.extra.push("--reply-after-exec".into());
            }
            let c = Cluster::start(3, opts);
            // Wait for the first leader (the replicas elect it).
            c.leader().await;
            let out = run_script(&c.master_addr, &format!("k-{protocol}")).await;
            assert!(out.contains(&format!("protocol {protocol}")), "{out}");
            // Paxos: the script starts at a follower and follows its hint
            // (more than one only if leadership moved meanwhile); EPaxos
            // takes the command wherever it lands.
            let hints: u32 = out
                .split("not-leader hints followed: ")
                .nth(1)
                .and_then(|t| t.split(')').next())
                .and_then(|n| n.parse().ok())
                .expect("the script reports the hints it followed");
            if protocol == "paxos" {
                assert!(hints >= 1, "{out}");
            } else {
                assert_eq!(hints, 0, "{out}");
            }
            assert!(
                out.contains(&format!(
                    "replies after execution: {}",
                    if after_exec { "True" } else { "False" }
                )),
                "{out}"
            );
            assert!(
                out.contains("swapped") && out.contains("not swapped"),
                "{out}"
            );
            assert!(out.contains("wire example passed"), "{out}");
            // The replica that served the last get had executed everything,
            // so the digest it printed is the one all replicas converge to.
            assert_eq!(
                out.lines().filter(|l| l.starts_with("replica")).count(),
                3,
                "{out}"
            );
            let digest = c.converged(Duration::from_secs(20)).await;
            assert!(out.contains(&format!("digest {digest:032x}")), "{out}");
            // What the script wrote last is what a Rust client reads.
            let last = out
                .lines()
                .find_map(|l| l.strip_prefix(&format!("final k-{protocol} = ")))
                .expect("the script's last put")
                .to_string();
            let client = c.client().await;
            let got = client.get(format!("k-{protocol}")).await.expect("a get");
            assert_eq!(got.as_deref(), Some(last.as_bytes()), "{out}");
            assert_ne!(digest, 0, "{out}");
        }
    })
    .await
}
