//! Compaction of the shared Multi-Paxos log on real processes, for both
//! protocols on it (Multi-Paxos, and MDLin's shard journal): with a low
//! `--gc-horizon` the durable replicas keep their data folders bounded while
//! load runs, and a follower killed with SIGKILL, whose missing slots the
//! others compacted away while it was down, catches up through a snapshot
//! after its restart.

mod common;

use std::time::Duration;

use common::{bounded_for, folder_and_snapshot_bytes, Cluster, Opts, FOLDER_SLACK};

/// Slots kept, and executed between compactions.
const HORIZON: u64 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_restarted_behind_the_compaction_point_catches_up_by_snapshot() {
    behind_the_compaction_point("paxos").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mdlin_follower_restarted_behind_the_compaction_point_catches_up_by_snapshot() {
    behind_the_compaction_point("mdlin").await
}

/// One group of three replicas of `protocol`, durable, compacting every
/// [`HORIZON`] slots.
async fn behind_the_compaction_point(protocol: &'static str) {
    bounded_for(Duration::from_secs(180), async {
        let root = tempfile::tempdir().expect("temp dir");
        let h = HORIZON.to_string();
        // MDLin's snapshots also carry the timestamps it keeps for late
        // coordination requests, for `keep-ms` (30 s by default): kept
        // short here, so that the bound below is about the journal.
        let keep: &[&str] = match protocol {
            "mdlin" => &["--param", "keep-ms=200"],
            _ => &[],
        };
        let mut c = Cluster::start(
            3,
            Opts {
                durable: true,
                extra: ["--sync", "off", "--gc-horizon", h.as_str()]
                    .iter()
                    .chain(keep)
                    .map(|s| s.to_string())
                    .collect(),
                data_root: Some(root.path().to_path_buf()),
                protocol: Some(protocol),
                ..Default::default()
            },
        );
        let l = c.leader().await;
        let f = (l + 1) % 3;
        let cl = c.client().await;
        for i in 0..10 {
            cl.put(format!("snap-k{i}"), format!("before-{i}"))
                .await
                .expect("put");
        }
        c.converged(Duration::from_secs(20)).await;
        c.kill(f);
        // Far past what the others keep: 1500 slots, 16 keys, unique values,
        // so the store (and every snapshot) stays small while the log would
        // grow by every slot.
        let live: Vec<usize> = (0..3).filter(|i| *i != f).collect();
        let (mut peak, mut over) = (0, None);
        for i in 0..1500u64 {
            cl.put(format!("snap-k{}", i % 16), format!("during-{i}"))
                .await
                .expect("put");
            if i % 100 == 99 {
                for &r in &live {
                    let (all, snap) =
                        folder_and_snapshot_bytes(&root.path().join(format!("slot{r}")));
                    peak = peak.max(all);
                    // A compaction may wait until the log matches the last
                    // snapshot (--snapshot-ratio): twice the snapshot, plus slack.
                    if all > 2 * snap + FOLDER_SLACK {
                        over.get_or_insert((r, all, snap));
                    }
                }
            }
        }
        let leader = c.status(l).await.expect("leader status");
        assert!(leader.executed >= 1510, "executed {}", leader.executed);
        // A log of every slot would hold over 1500 records of ~100 bytes.
        assert!(
            over.is_none(),
            "(replica, folder, snapshot) bytes: {over:?}: the log is not compacted"
        );
        c.restart(f, true);
        let digest = c.converged(Duration::from_secs(30)).await;
        let s = c.status(f).await.expect("follower status");
        assert_eq!(digest, leader.digest());
        assert_eq!(s.executed, leader.executed);
        // Slot by slot it would fetch nearly all 1500: the others no longer
        // hold them, so the bulk came in one snapshot.
        assert!(
            s.catchup_fetched < 4 * HORIZON,
            "fetched {} slots one by one",
            s.catchup_fetched
        );
        println!(
            "{protocol}: peak folder {peak} bytes; follower fetched {} slots, replayed {} records",
            s.catchup_fetched, s.replayed
        );
        let dir = root.path().join(format!("slot{f}"));
        let snaps: Vec<_> = std::fs::read_dir(&dir)
            .expect("data folder")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
            .collect();
        assert_eq!(snaps.len(), 1, "the installed snapshot is on disk");
        let (all, snap) = folder_and_snapshot_bytes(&dir);
        assert!(
            all <= 2 * snap + FOLDER_SLACK,
            "{all} bytes, snapshot {snap}"
        );
        // It serves writes again, and the value is read back elsewhere.
        cl.put("snap-last", "snap-after-restart")
            .await
            .expect("put");
        // (A failover on a loaded machine may add a no-op slot: `>=`.)
        c.converged(Duration::from_secs(20)).await;
        for r in 0..3 {
            let st = c.status(r).await.expect("status");
            assert!(st.executed > leader.executed, "replica {r}");
        }
        let v = c.client().await.get("snap-last").await.expect("get");
        assert_eq!(v.as_deref(), Some(&b"snap-after-restart"[..]));
    })
    .await
}
