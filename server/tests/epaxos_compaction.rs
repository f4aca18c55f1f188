//! EPaxos compaction on real processes: with `--durable --gc-horizon 64`
//! every replica's data folder (log, snapshot file, identity) stays bounded
//! over thousands of writes, a replica killed while the others forget what it
//! needs comes back through a snapshot, and a replica killed and restarted
//! from its compacted log comes back with the same digest.

mod common;

use std::time::Duration;

use common::{bounded_for, folder_bytes, Cluster, Opts};

/// Instances kept per leader, and executed between compactions.
const HORIZON: u64 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_folders_stay_bounded_and_restarts_from_compacted_logs_agree() {
    bounded_for(Duration::from_secs(240), async {
        let root = tempfile::tempdir().expect("temp dir");
        let h = HORIZON.to_string();
        let mut c = Cluster::start(
            3,
            Opts {
                durable: true,
                protocol: Some("epaxos"),
                extra: ["--sync", "off", "--gc-horizon", h.as_str()]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                data_root: Some(root.path().to_path_buf()),
                ..Default::default()
            },
        );
        let folder = |r: usize| root.path().join(format!("slot{r}"));
        let cl = c.client().await;
        let mut peak = [0u64; 3];
        let measure = |live: &[usize], peak: &mut [u64; 3]| {
            for &r in live {
                peak[r] = peak[r].max(folder_bytes(&folder(r)));
            }
        };
        // 16 keys and values unique per write: the store stays small while a
        // log of every instance would grow by each one (~120 bytes a record,
        // two or three records an instance).
        for i in 0..1500u64 {
            cl.put(format!("ep-k{}", i % 16), format!("first-{i}"))
                .await
                .expect("put");
            if i % 100 == 99 {
                measure(&[0, 1, 2], &mut peak);
            }
        }
        c.converged(Duration::from_secs(20)).await;
        // Replica 2 sleeps while the others run far past the horizon.
        c.kill(2);
        for i in 0..1500u64 {
            cl.put(format!("ep-k{}", i % 16), format!("second-{i}"))
                .await
                .expect("put");
            if i % 100 == 99 {
                measure(&[0, 1], &mut peak);
            }
        }
        c.restart(2, true);
        let digest = c.converged(Duration::from_secs(30)).await;
        let s0 = c.status(0).await.expect("status");
        assert!(s0.executed >= 3000, "executed {}", s0.executed);
        measure(&[0, 1, 2], &mut peak);
        println!("peak data folders {peak:?} bytes");
        for (r, p) in peak.iter().enumerate() {
            assert!(*p < 40_000, "replica {r}'s data folder reached {p} bytes");
            let snap = std::fs::read_dir(folder(r))
                .expect("data folder")
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().ends_with(".snap"));
            assert!(snap, "replica {r} has a snapshot file");
        }
        // Killed and restarted from its snapshot file and compacted log.
        let before = c.status(1).await.expect("status");
        c.kill(1);
        c.restart(1, true);
        let again = common::wait_for(
            Duration::from_secs(20),
            "the restarted replica to serve",
            || async { c.status(1).await },
        )
        .await;
        assert_eq!(again.digest(), before.digest(), "replica 1 came back alike");
        assert_eq!(again.executed, before.executed);
        assert!(
            again.replayed < 8 * HORIZON,
            "replayed {} records: the log was not compacted",
            again.replayed
        );
        assert_eq!(digest, before.digest());
        // And it serves: a write through the cluster reaches every replica.
        cl.put("ep-last", "after-restarts").await.expect("put");
        let end = c.converged(Duration::from_secs(20)).await;
        assert_ne!(end, digest);
        println!(
            "replica 1 replayed {} records after 3000 writes",
            again.replayed
        );
    })
    .await
}
