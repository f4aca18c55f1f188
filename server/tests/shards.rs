//! Sharded deployments on real processes: three Multi-Paxos groups of three
//! replicas behind one master, keys routed to their shard by the client
//! library, the CLI and the load generator, and one shard's leader killed
//! under load.

mod common;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::driver::{Mode, Progress, Spec};
use bench::route::Route;
use bench::workload::Mix;
use common::{bounded, wait_for, Cluster, Opts};
use genericsmr::command::Command;
use genericsmr::shard::shard_of;
use genericsmr::state::StateMachine;

fn sharded(extra: &[&str]) -> Cluster {
    Cluster::start(
        3,
        Opts {
            shards: 3,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )
}

/// Keys of every shard are written and read back through the client library;
/// afterwards each replica holds exactly its own shard's keys: its key count
/// and state digest equal those of a state machine that applied only the
/// writes of that shard. The CLI finds the right shard too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shard_holds_exactly_its_keys() {
    bounded(async {
        let c = sharded(&[]);
        let leaders = c.shard_leaders().await;
        for (s, l) in leaders.iter().enumerate() {
            assert_eq!(l / 3, s, "shard {s} is led by a replica of its own");
        }
        let cl = c.client().await;
        assert_eq!(cl.shards(), 3);
        let mut expected: Vec<StateMachine> = (0..3).map(|_| StateMachine::default()).collect();
        let mut count = [0u64; 3];
        for i in 0..60u64 {
            let (k, v) = (format!("key-{i}"), format!("value-{i}"));
            cl.put(k.clone(), v.clone()).await.expect("put");
            let s = shard_of(k.as_bytes(), 3) as usize;
            expected[s].execute(&Command::put(1, i + 1, k, v));
            count[s] += 1;
        }
        assert!(
            count.iter().all(|n| *n > 0),
            "keys in every shard: {count:?}"
        );
        for i in 0..60u64 {
            let got = cl.get(format!("key-{i}")).await.expect("get");
            assert_eq!(got.as_deref(), Some(format!("value-{i}").as_bytes()));
        }
        let o = cl
            .cas("key-7", Some("value-7".into()), "swapped")
            .await
            .unwrap();
        assert!(o.flag);
        let s7 = shard_of(b"key-7", 3) as usize;
        expected[s7].execute(&Command::cas(
            1,
            1000,
            "key-7",
            Some("value-7".into()),
            "swapped",
        ));
        wait_for(
            Duration::from_secs(20),
            "every replica to hold exactly its shard's keys",
            || async {
                for g in 0..c.n() {
                    let st = c.status(g).await?;
                    let s = g / 3;
                    if st.keys != count[s] || st.digest() != expected[s].digest() {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;

        // The CLI: a put goes to its shard, `leader` names every shard's leader,
        // `status` lists every replica with its shard.
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_server"))
            .parent()
            .unwrap()
            .to_path_buf();
        bench::local::ensure_built(&bin, &["client"]).unwrap();
        let cli = |args: &[&str]| {
            let out = std::process::Command::new(bin.join("client"))
                .args(["--master", &c.master_addr, "--timeout-ms", "10000"])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "client {args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(cli(&["put", "from-cli", "yes"]).trim(), "OK");
        assert_eq!(
            cl.get("from-cli").await.unwrap().as_deref(),
            Some(&b"yes"[..])
        );
        assert_eq!(cli(&["get", "key-3"]).trim(), "value-3");
        let leader = cli(&["leader"]);
        for (s, l) in leaders.iter().enumerate() {
            assert!(leader.contains(&format!("shard {s}: {l} ")), "{leader}");
        }
        let status = cli(&["status"]);
        assert!(status.contains("3 shards of 3"), "{status}");
        let rows = status.lines().filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u8>().is_ok())
        });
        assert_eq!(rows.count(), 9, "{status}");
        assert_eq!(status.matches(" leader ").count(), 3, "{status}");
    })
    .await
}

/// Load over all three shards with a recorded history; shard 1's leader is
/// killed with SIGKILL. The master elects a new leader for shard 1 only (the
/// leaders of shards 0 and 2 never change, sampled throughout), shard 1's keys
/// are served again, and the history is linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_shards_leader_reelects_that_shard_only() {
    bounded(async {
        let mut c = sharded(&["--batch"]);
        let before = c.shard_leaders().await;
        let route = Arc::new(Route::with_master(&c.master_addr).await.unwrap());
        assert_eq!(route.shards(), 3);
        let spec = Spec {
            mode: Mode::Closed { window: 1 },
            clients: 6,
            duration_s: 60.0,
            warmup_s: 0.0,
            cooldown_s: 0.0,
            mix: Mix {
                reads_pct: 50.0,
                keys: 30,
                ..Mix::default()
            },
            seed: 11,
            attempt_timeout_ms: 300,
            op_timeout_ms: 10_000,
            wan: None,
            spread: false,
            fanout: 1,
            multi_dispatch: false,
        };
        let progress = Arc::new(Progress::default());
        // The driver's clock starts a little after this one: an operation it
        // records as invoked later than t (by this clock) really was.
        let load_started = Instant::now();
        let load = {
            let (route, progress) = (route.clone(), progress.clone());
            tokio::spawn(async move { bench::driver::run(&spec, route, true, progress).await })
        };
        let done = || progress.done.load(Ordering::Relaxed);
        wait_for(Duration::from_secs(20), "load before the kill", || async {
            (done() >= 300).then_some(())
        })
        .await;

        // Sample every shard's leader at the master until the test ends.
        let master = c.master_addr.clone();
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let seen: Arc<parking_lot::Mutex<Vec<Vec<Option<u8>>>>> = Arc::default();
        let sampler = {
            let (sampling, seen) = (sampling.clone(), seen.clone());
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    if let Ok(info) = client::admin::cluster(&master, Duration::from_secs(1)).await
                    {
                        seen.lock()
                            .push((0..3).map(|s| info.leader_of(s)).collect::<Vec<_>>());
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        wait_for(Duration::from_secs(10), "a first sample", || async {
            (!seen.lock().is_empty()).then_some(())
        })
        .await;
        let victim = before[1];
        c.kill(victim);
        let killed_at = Instant::now();
        let kill_ns = load_started.elapsed().as_nanos() as u64;
        let after = wait_for(Duration::from_secs(20), "a new leader of shard 1", || async {
            let l = c.shard_leaders().await;
            (l[1] != victim).then_some(l)
        })
        .await;
        let failover = killed_at.elapsed();
        assert_eq!(after[1] / 3, 1, "shard 1's new leader is one of its replicas");
        let base = done();
        wait_for(Duration::from_secs(20), "load after the failover", || async {
            (done() >= base + 300).then_some(())
        })
        .await;
        progress.stop.store(true, Ordering::Relaxed);
        let out = load.await.unwrap().expect("the load ran");
        sampling.store(false, Ordering::Relaxed);
        sampler.await.unwrap();
        let seen = seen.lock().clone();
        assert!(seen.len() >= 2, "the master was sampled before and after the kill");
        for leaders in &seen {
            assert_eq!(leaders[0], Some(before[0] as u8), "shard 0 kept its leader");
            assert_eq!(leaders[2], Some(before[2] as u8), "shard 2 kept its leader");
        }
        assert_eq!((after[0], after[2]), (before[0], before[2]));

        // Shard 1's keys were served after the failover.
        let served_late = out
            .history
            .iter()
            .filter(|r| shard_of(r.key.as_bytes(), 3) == 1)
            .filter(|r| r.outcome == bench::history::Outcome::Ok)
            .filter(|r| r.invoke_ns > kill_ns + failover.as_nanos() as u64)
            .count();
        assert!(served_late > 0, "shard 1 serves again after its failover");
        let verdict = checker::check(&out.history, &checker::linear::Options::default());
        assert_eq!(
            verdict.verdict,
            checker::Verdict::Ok,
            "{:?}",
            verdict.violation
        );
        eprintln!(
            "failover of shard 1 seen by the master after {failover:?}; {} samples; {} operations checked",
            seen.len(),
            verdict.operations
        );
    })
    .await
}
