//! The conformance suite on real processes: one list of scenarios, each run
//! against every registered protocol (`protocols::all()`) whose declared
//! capabilities it needs. No scenario belongs to one protocol, and a new
//! protocol is tested by adding it to the registry.
//!
//! Every scenario runs closed-loop clients (`common::checked_workload`:
//! unique values naming their writer, half reads, swaps and deletes) on
//! three replicas, does its damage under load, and ends the same way: the
//! history must be able to show a violation (reads that saw values, keys
//! written twice), it must be linearizable, and every running replica must
//! converge to one state digest.
//!
//! `CONFORMANCE_PROTOCOLS=paxos,epaxos` limits the protocols (to chase one);
//! `CONFORMANCE_SERVER_FLAGS="--broken forget-accepts"` adds server flags to
//! every cluster, to see a scenario catch a deliberately broken replica
//! (docs/broken.md).

mod common;

use std::time::Duration;

use common::{bounded_for, folder_and_snapshot_bytes, Cluster, Load, Opts, FOLDER_SLACK};
use genericsmr::messages::{fault, FaultRequest};
use protocols::{Caps, Info, Rejoin};

/// One scenario's time limit, over every protocol it runs against.
const LIMIT: Duration = Duration::from_secs(240);

/// Clients of every scenario's workload.
const CLIENTS: usize = 4;

/// Keys of every scenario's workload (few: every key is written and read often).
const KEYS: u64 = 6;

/// The protocols a scenario runs against: every registered one for which
/// `applies` holds, narrowed by `CONFORMANCE_PROTOCOLS`.
fn protocols_for(applies: fn(&Caps) -> bool) -> Vec<Info> {
    let only = std::env::var("CONFORMANCE_PROTOCOLS").ok();
    protocols::all()
        .into_iter()
        .filter(|i| applies(&i.caps))
        .filter(|i| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|p| p == i.name))
        })
        .collect()
}

/// Whether a killed replica can come back with its durable log.
fn restarts(c: &Caps) -> bool {
    c.durable && c.rejoin != Rejoin::Never
}

/// Three replicas of `p` (durable if it can be), with `extra` server flags.
fn cluster(p: &Info, extra: &[&str]) -> Cluster {
    let more = std::env::var("CONFORMANCE_SERVER_FLAGS").unwrap_or_default();
    let extra = extra
        .iter()
        .map(|s| s.to_string())
        .chain(more.split_whitespace().map(String::from));
    Cluster::start(
        3,
        Opts {
            protocol: Some(p.name),
            durable: p.caps.durable,
            extra: extra.collect(),
            ..Default::default()
        },
    )
}

/// The replica a scenario treats as "the leader": the one that leads, or
/// for a leaderless protocol replica 0 (a command leader with clients on it).
async fn leader(c: &Cluster, p: &Info) -> usize {
    if p.caps.leaderless {
        0
    } else {
        c.leader().await
    }
}

/// Runs `body` for each protocol `applies` selects, within [`LIMIT`].
async fn for_each<F, Fut>(scenario: &str, applies: fn(&Caps) -> bool, body: F)
where
    F: Fn(Info) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let ps = protocols_for(applies);
    assert!(!ps.is_empty() || std::env::var_os("CONFORMANCE_PROTOCOLS").is_some());
    bounded_for(LIMIT, async {
        for p in ps {
            let t = std::time::Instant::now();
            body(p).await;
            println!(
                "{scenario} / {}: passed in {:.1} s",
                p.name,
                t.elapsed().as_secs_f64()
            );
        }
    })
    .await
}

/// A leader (for a leaderless protocol, a command leader) is killed under
/// load; the others go on, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_under_load() {
    for_each(
        "leader killed",
        |_| true,
        |p| async move {
            let mut c = cluster(&p, &[]);
            let l = leader(&c, &p).await;
            let load = Load::start(&c, CLIENTS, KEYS);
            load.more(200, "load before the kill").await;
            c.kill(l);
            load.more(300, "load after the leader's death").await;
            load.finish(&format!("leader killed / {}", p.name)).await;
            c.converged(Duration::from_secs(30)).await;
        },
    )
    .await
}

/// A follower (for a leaderless protocol, any replica but 0) is killed
/// under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_killed_under_load() {
    for_each(
        "follower killed",
        |_| true,
        |p| async move {
            let mut c = cluster(&p, &[]);
            let l = leader(&c, &p).await;
            let f = (l + 1) % 3;
            let load = Load::start(&c, CLIENTS, KEYS);
            load.more(200, "load before the kill").await;
            c.kill(f);
            load.more(300, "load after the follower's death").await;
            load.finish(&format!("follower killed / {}", p.name)).await;
            c.converged(Duration::from_secs(30)).await;
        },
    )
    .await
}

/// A follower killed under load restarts on its durable log and catches up
/// with what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_the_durable_log_catches_up() {
    for_each("durable restart", restarts, |p| async move {
        let mut c = cluster(&p, &[]);
        let f = (leader(&c, &p).await + 1) % 3;
        let load = Load::start(&c, CLIENTS, KEYS);
        load.more(150, "load before the kill").await;
        c.kill(f);
        load.more(300, "load while it is down").await;
        c.restart(f, true);
        c.converged(Duration::from_secs(30)).await;
        load.more(150, "load after the restart").await;
        load.finish(&format!("durable restart / {}", p.name)).await;
        let d = c.converged(Duration::from_secs(30)).await;
        assert!(
            c.running().contains(&f),
            "{}: replica {f} did not come back",
            p.name
        );
        assert_ne!(d, 0, "{}: empty state", p.name);
    })
    .await
}

/// A follower falls behind what the others compacted (64 entries kept),
/// restarts, and catches up (by snapshot where the protocol compacts).
/// Meanwhile the live replicas' data folders stay bounded: at most twice
/// their snapshot (what a compaction may wait for, `--snapshot-ratio`)
/// plus [`FOLDER_SLACK`], where 1,500 operations of log would be far more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_past_compaction_then_a_restart() {
    for_each("lag past compaction", restarts, |p| async move {
        let mut c = cluster(&p, &["--gc-horizon", "64"]);
        let f = (leader(&c, &p).await + 1) % 3;
        let load = Load::start(&c, CLIENTS, KEYS);
        load.more(100, "load before the kill").await;
        c.kill(f);
        let live: Vec<usize> = (0..3).filter(|r| *r != f).collect();
        let (mut peak, mut over) = (0, None);
        for _ in 0..15 {
            load.more(100, "load past the horizon").await;
            for &r in &live {
                let (all, snap) = folder_and_snapshot_bytes(c.data_dir(r));
                peak = peak.max(all);
                if all > 2 * snap + FOLDER_SLACK && over.is_none_or(|(_, a, _)| all > a) {
                    over = Some((r, all, snap));
                }
            }
        }
        println!(
            "lag past compaction / {}: peak data folder {peak} bytes",
            p.name
        );
        if let Some((r, all, snap)) = over {
            panic!(
                "{}: replica {r}'s data folder reached {all} bytes with a snapshot of {snap}: \
                 the log is not compacted",
                p.name
            );
        }
        c.restart(f, true);
        c.converged(Duration::from_secs(40)).await;
        load.more(100, "load after the restart").await;
        load.finish(&format!("lag past compaction / {}", p.name))
            .await;
        c.converged(Duration::from_secs(30)).await;
    })
    .await
}

/// Every replica is killed at once under load, then all restart on their
/// durable logs: everything acknowledged before is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_killed_at_once_then_all_restarted() {
    for_each("whole group killed", restarts, |p| async move {
        let mut c = cluster(&p, &[]);
        let load = Load::start(&c, CLIENTS, KEYS);
        load.more(300, "load before the kills").await;
        for i in 0..3 {
            c.kill(i);
        }
        for i in 0..3 {
            c.restart(i, true);
        }
        load.more(300, "load after the restarts").await;
        load.finish(&format!("whole group killed / {}", p.name))
            .await;
        c.converged(Duration::from_secs(30)).await;
    })
    .await
}

/// With a majority gone nothing is acknowledged (beyond what was in flight
/// when they died), and service resumes when they come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_majority_blocks_without_lying_then_recovers() {
    for_each("majority lost", restarts, |p| async move {
        let mut c = cluster(&p, &[]);
        let l = leader(&c, &p).await;
        let load = Load::start(&c, CLIENTS, KEYS);
        load.more(200, "load before the kills").await;
        let others: Vec<usize> = (0..3).filter(|i| *i != l).collect();
        for &i in &others {
            c.kill(i);
        }
        // What was in flight may still be answered; then nothing is.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = load.answered();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let during = load.answered() - before;
        assert!(
            during == 0,
            "{}: {during} operations answered with one replica of three",
            p.name
        );
        for &i in &others {
            c.restart(i, true);
        }
        load.more(300, "load after the majority came back").await;
        load.finish(&format!("majority lost / {}", p.name)).await;
        c.converged(Duration::from_secs(30)).await;
    })
    .await
}

/// The leader (or a command leader) is cut off from the others while
/// clients still reach it; the rest go on; after the heal all converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_then_heal() {
    for_each(
        "partition",
        |_| true,
        |p| async move {
            let c = cluster(&p, &["--control"]);
            let l = leader(&c, &p).await;
            let load = Load::start(&c, CLIENTS, KEYS);
            load.more(200, "load before the partition").await;
            let others: u64 = (0..3).filter(|i| *i != l).map(|i| 1u64 << i).sum();
            fault_at(&c, l, fault::PARTITION, others).await;
            load.more(300, "load during the partition").await;
            fault_at(&c, l, fault::HEAL, 0).await;
            load.more(200, "load after the heal").await;
            load.finish(&format!("partition / {}", p.name)).await;
            c.converged(Duration::from_secs(30)).await;
        },
    )
    .await
}

async fn fault_at(c: &Cluster, replica: usize, kind: u8, peers: u64) {
    client::admin::fault(
        &c.client_addr(replica),
        &FaultRequest {
            nonce: 1,
            kind,
            peers,
            ..Default::default()
        },
        Duration::from_secs(2),
    )
    .await
    .expect("fault request applied");
}

/// Garbage on every replica's client and peer ports closes only that
/// connection: the replicas keep serving under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_every_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for_each(
        "garbage",
        |_| true,
        |p| async move {
            let c = cluster(&p, &[]);
            let load = Load::start(&c, CLIENTS, KEYS);
            load.more(100, "load before the garbage").await;
            let info = client::admin::cluster(&c.master_addr, Duration::from_secs(2))
                .await
                .expect("cluster info");
            let garbage: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
            for r in &info.replicas {
                for addr in [r.peer_addr(), c.client_addr(r.id as usize)] {
                    let mut s = tokio::net::TcpStream::connect(&addr)
                        .await
                        .expect("connect");
                    s.write_all(&garbage).await.expect("write");
                    let mut buf = [0u8; 64];
                    let closed = tokio::time::timeout(Duration::from_secs(10), async {
                        while !matches!(s.read(&mut buf).await, Ok(0) | Err(_)) {}
                    })
                    .await;
                    assert!(
                        closed.is_ok(),
                        "{}: {addr} kept a garbage connection",
                        p.name
                    );
                }
            }
            load.more(200, "load after the garbage").await;
            load.finish(&format!("garbage / {}", p.name)).await;
            c.converged(Duration::from_secs(30)).await;
        },
    )
    .await
}

/// `bench chaos`: kills, restarts, partitions and slow links under load,
/// with the history checked (MDL for multi-dispatch protocols) and the
/// replicas' digests compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_with_the_history_checked() {
    for_each(
        "chaos",
        |_| true,
        |p| async move {
            let bin_dir = std::path::PathBuf::from(env!("CARGO_BIN_EXE_server"))
                .parent()
                .expect("binary folder")
                .to_path_buf();
            bench::local::ensure_built(&bin_dir, &["master", "bench"]).expect("binaries");
            let out = tempfile::tempdir().expect("tempdir");
            let run = tokio::process::Command::new(bin_dir.join("bench"))
                .args([
                    "chaos",
                    "--protocol",
                    p.name,
                    "--duration",
                    "6s",
                    "--seed",
                    "7",
                ])
                .args(["--clients", "4", "--out"])
                .arg(out.path())
                .kill_on_drop(true)
                .output()
                .await
                .expect("bench chaos runs");
            let stdout = String::from_utf8_lossy(&run.stdout);
            assert!(
                run.status.success(),
                "{}: bench chaos failed:\n{stdout}\n{}",
                p.name,
                String::from_utf8_lossy(&run.stderr)
            );
            assert!(stdout.contains("converged"), "{}: {stdout}", p.name);
        },
    )
    .await
}
