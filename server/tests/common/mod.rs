//! Test harness: a real `master` and real `server` processes on 127.0.0.1 with
//! ephemeral ports, killed with SIGKILL and restarted on the same ports.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bench::local::{ClusterSpec, LocalCluster};

use client::{admin, Client, ClientConfig};
use genericsmr::messages::{role, StatusReply};

/// Every test gives up after this long.
pub const TEST_LIMIT: Duration = Duration::from_secs(90);

/// The master's liveness timeout in tests: on a loaded machine a replica can
/// be slow for longer than the master's 600 ms default without being down,
/// and a spurious failover would disturb tests that do not expect one.
pub const LIVENESS_TIMEOUT_MS: u64 = 3000;

/// The master's own default, for tests that measure or wait on fast failover.
pub const FAST_LIVENESS_TIMEOUT_MS: u64 = 600;

/// Options for the servers of a cluster.
#[derive(Clone, Default)]
pub struct Opts {
    /// Run with --durable and a data dir per replica.
    pub durable: bool,
    /// Extra server flags.
    pub extra: Vec<String>,
    /// Keep the servers' data here (to restart a whole cluster on it).
    pub data_root: Option<PathBuf>,
    /// Order in which the servers start and register (empty: slot order).
    pub start_order: Vec<usize>,
    /// The protocol (default: paxos).
    pub protocol: Option<&'static str>,
    /// Shards of `n` replicas each (0 or 1: one group).
    pub shards: usize,
    /// The master's liveness timeout in ms (`None`: [`LIVENESS_TIMEOUT_MS`]).
    pub liveness_timeout_ms: Option<u64>,
    /// More flags for the master (kept for its restarts), such as `--state FILE`.
    pub master_flags: Vec<String>,
}

impl Opts {
    /// Servers started with --control (faults, SetLeader).
    pub fn controlled() -> Opts {
        Opts {
            extra: vec!["--control".into()],
            ..Default::default()
        }
    }
}

/// A running cluster of real processes (see `bench::local`), plus the async
/// queries the tests make of it.
pub struct Cluster {
    pub master_addr: String,
    local: LocalCluster,
}

impl Cluster {
    /// Starts a master and `n` servers (`n` per shard with `opts.shards`) and
    /// waits until they serve.
    pub fn start(n: usize, opts: Opts) -> Cluster {
        let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_server"))
            .parent()
            .unwrap()
            .to_path_buf();
        bench::local::ensure_built(&bin_dir, &["master"]).unwrap();
        let local = LocalCluster::start(ClusterSpec {
            replicas: n,
            shards: opts.shards.max(1),
            protocol: opts.protocol.unwrap_or("paxos").into(),
            server_flags: opts.extra,
            master_flags: [
                "--liveness-timeout-ms".into(),
                opts.liveness_timeout_ms
                    .unwrap_or(LIVENESS_TIMEOUT_MS)
                    .to_string(),
            ]
            .into_iter()
            .chain(opts.master_flags)
            .collect(),
            durable: opts.durable,
            bin_dir,
            log_dir: None,
            data_root: opts.data_root,
            start_order: opts.start_order,
            slot_flags: Vec::new(),
        })
        .expect("cluster starts");
        Cluster {
            master_addr: local.master_addr().to_string(),
            local,
        }
    }

    /// Number of replicas (of every shard).
    pub fn n(&self) -> usize {
        self.local.n()
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.local.shards()
    }

    /// Replicas per shard.
    pub fn per_shard(&self) -> usize {
        self.local.per_shard()
    }

    /// The client address of replica `id`.
    pub fn client_addr(&self, id: usize) -> String {
        self.local.client_addr(id)
    }

    /// Kills replica `id` with SIGKILL.
    pub fn kill(&mut self, id: usize) {
        self.local.kill(id)
    }

    /// The data folder of replica `id` (durable clusters).
    pub fn data_dir(&self, id: usize) -> &std::path::Path {
        self.local.data_dir(id)
    }

    /// Kills the master with SIGKILL.
    pub fn kill_master(&mut self) {
        self.local.kill_master()
    }

    /// Starts the master again on its old port with its old flags.
    pub fn restart_master(&mut self) {
        self.local.restart_master().unwrap()
    }

    /// Sends a signal (e.g. "STOP", "CONT") to replica `id`.
    pub fn signal(&self, id: usize, sig: &str) {
        self.local.signal(id, sig).unwrap()
    }

    /// Restarts replica `id` on its old ports (and data dir, when `durable`).
    pub fn restart(&mut self, id: usize, durable: bool) {
        self.local.restart(id, durable).unwrap()
    }

    /// Ids of running replicas.
    pub fn running(&self) -> Vec<usize> {
        self.local.running()
    }

    /// A client session through the master.
    pub async fn client(&self) -> Client {
        self.client_with_timeout(Duration::from_secs(10)).await
    }

    /// A client session with the given command timeout.
    pub async fn client_with_timeout(&self, t: Duration) -> Client {
        let mut cfg = ClientConfig::with_master(self.master_addr.clone());
        cfg.timeout = t;
        cfg.attempt_timeout = Duration::from_millis(500).min(t);
        Client::connect(cfg).await.expect("client connects")
    }

    /// Status of replica `id`.
    pub async fn status(&self, id: usize) -> Option<StatusReply> {
        admin::status(&self.client_addr(id), Duration::from_secs(2))
            .await
            .ok()
    }

    /// Every shard's leader as the master names it, once each shard has one
    /// that reports leading; returns them by shard (global ids).
    pub async fn shard_leaders(&self) -> Vec<usize> {
        wait_for(
            Duration::from_secs(20),
            "a leader in every shard",
            || async {
                let info = admin::cluster(&self.master_addr, Duration::from_secs(1))
                    .await
                    .ok()?;
                let mut out = Vec::new();
                for s in 0..info.shard_count() {
                    let l = info.leader_of(s)? as usize;
                    let st = self.status(l).await?;
                    if st.role != role::LEADER {
                        return None;
                    }
                    out.push(l);
                }
                Some(out)
            },
        )
        .await
    }

    /// Waits until some replica reports being leader; returns its id.
    pub async fn leader(&self) -> usize {
        wait_for(Duration::from_secs(20), "a leader", || async {
            for i in 0..self.n() {
                if !self.running().contains(&i) {
                    continue;
                }
                if let Some(s) = self.status(i).await {
                    if s.role == role::LEADER {
                        return Some(i);
                    }
                }
            }
            None
        })
        .await
    }

    /// Waits until every running replica has executed everything the leader
    /// committed and all digests agree; returns that digest.
    pub async fn converged(&self, limit: Duration) -> u128 {
        wait_for(limit, "all running replicas to converge", || async {
            let mut seen = Vec::new();
            for i in self.running() {
                seen.push(self.status(i).await?);
            }
            let first = seen.first()?;
            let ok = seen.iter().all(|s| {
                s.digest() == first.digest()
                    && s.executed == first.executed
                    && s.commit_index == s.executed
            });
            ok.then(|| first.digest())
        })
        .await
    }

    /// Committed slot digests of replica `id`, as slot -> hash.
    pub async fn committed_slots(&self, id: usize) -> std::collections::BTreeMap<u64, u64> {
        let mut out = std::collections::BTreeMap::new();
        let mut from = 0;
        loop {
            let r = admin::log(&self.client_addr(id), from, 65_536, Duration::from_secs(5))
                .await
                .expect("log");
            if r.slots.is_empty() {
                return out;
            }
            for s in &r.slots {
                if s.committed {
                    out.insert(s.slot, s.hash);
                }
            }
            from = r.slots.last().unwrap().slot + 1;
        }
    }
}

/// Polls `f` every 20 ms until it yields a value or `limit` passes (then panics).
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a test body with its own time limit (for the few tests whose load is
/// large by design and shares two cores with the rest of the suite).
pub async fn bounded_for<F: std::future::Future<Output = ()>>(limit: Duration, f: F) {
    tokio::time::timeout(limit, f)
        .await
        .expect("test exceeded its time limit");
}

/// Runs a test body with the global time limit.
pub async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_LIMIT, f)
        .await
        .expect("test exceeded its time limit");
}

/// What a checked workload did.
pub struct Checked {
    /// The history, one record per operation.
    pub history: Vec<checker::history::Record>,
    /// Operations acknowledged.
    pub acked: usize,
    /// Reads that returned a value (each names its writer).
    pub reads_with_value: usize,
}

/// Closed-loop clients, client `c` sending first to replica `c % n` (and on to
/// the next on a timeout): on `keys` keys, half gets, the rest puts of a
/// value unique to (client, seq), swaps and deletes. Runs until `stop` is set,
/// then returns the history. Every value names its writer, so a lost or stale
/// write shows up in the reads. `done` counts the operations answered so
/// far, for a test to wait on.
pub async fn checked_workload(
    addrs: Vec<String>,
    clients: usize,
    keys: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Checked {
    use bytes::Bytes;
    use checker::history::{Outcome as H, Record};
    use genericsmr::command::Command;
    use std::sync::atomic::Ordering;

    let n = addrs.len();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..clients {
        let mut list = addrs.clone();
        list.rotate_left(k % n);
        let mut cfg = ClientConfig::with_replicas(list);
        cfg.timeout = Duration::from_secs(20);
        cfg.attempt_timeout = Duration::from_millis(300);
        let cl = Client::connect(cfg).await.expect("client connects");
        let (stop, done) = (stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (k as u64 + 1);
            let mut last: std::collections::HashMap<u64, Bytes> = Default::default();
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key_no = x % keys;
                let key = format!("k{key_no}");
                let id = cl.id();
                let cmd = match (x >> 20) % 10 {
                    0..=4 => Command::get(id, 0, key),
                    5..=7 => Command::put(id, 0, key, Bytes::new()),
                    8 => Command::cas(id, 0, key, last.get(&key_no).cloned(), Bytes::new()),
                    _ => Command::delete(id, 0, key),
                };
                let mut cmd = cl.prepare(cmd);
                if matches!(
                    cmd.op,
                    genericsmr::command::Op::Put | genericsmr::command::Op::Cas
                ) {
                    cmd.value = Bytes::from(format!("c{}-s{}", cmd.client, cmd.seq));
                }
                let t0 = start.elapsed().as_nanos() as u64;
                let r = cl.submit(cmd.clone()).await;
                let t1 = start.elapsed().as_nanos() as u64;
                match r {
                    Ok(o) => {
                        done.fetch_add(1, Ordering::Relaxed);
                        if cmd.op == genericsmr::command::Op::Get {
                            match &o.value {
                                Some(v) => last.insert(key_no, v.clone()),
                                None => last.remove(&key_no),
                            };
                        }
                        out.push(Record::of(&cmd, t0, Some((t1, &o)), H::Ok))
                    }
                    Err(_) => out.push(Record::of(&cmd, t0, None, H::Unknown)),
                }
            }
            out
        }));
    }
    let mut history = Vec::new();
    for t in tasks {
        history.extend(t.await.expect("client task"));
    }
    history.sort_by_key(|r| r.invoke_ns);
    let acked = history.iter().filter(|r| r.outcome == H::Ok).count();
    let reads_with_value = history
        .iter()
        .filter(|r| r.op == "get" && r.outcome == H::Ok && r.value.is_some())
        .count();
    Checked {
        history,
        acked,
        reads_with_value,
    }
}

/// Bytes of every file in `dir` (a replica's data folder).
pub fn folder_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// What a compacted data folder may hold besides twice its snapshot: the
/// records of a few horizons of 64 entries, the identity file. A log of
/// 1,500 operations takes well over 100,000 bytes.
pub const FOLDER_SLACK: u64 = 40_000;

/// Bytes of every file in `dir`, and of its snapshot files.
pub fn folder_and_snapshot_bytes(dir: &std::path::Path) -> (u64, u64) {
    let snap: u64 = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    (folder_bytes(dir), snap)
}

/// Checks a history for linearizability; panics with the counterexample.
pub fn assert_linearizable(history: &[checker::history::Record]) {
    let r = checker::check(history, &checker::linear::Options::default());
    assert_eq!(
        r.verdict,
        checker::Verdict::Ok,
        "history of {} operations: {:?}",
        history.len(),
        r.violation.map(|v| v.explanation)
    );
}

/// Waits until `counter` has grown by `n` from where it stands now.
pub async fn wait_for_more(counter: &std::sync::atomic::AtomicUsize, n: usize, what: &str) {
    let base = counter.load(std::sync::atomic::Ordering::Relaxed);
    wait_for(Duration::from_secs(30), what, || async {
        (counter.load(std::sync::atomic::Ordering::Relaxed) >= base + n).then_some(())
    })
    .await
}

/// A [`checked_workload`] running against every replica of a cluster.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<Checked>,
}

impl Load {
    /// Starts `clients` clients on `keys` keys, client `k` first at replica `k % n`.
    pub fn start(c: &Cluster, clients: usize, keys: u64) -> Load {
        let addrs = (0..c.n()).map(|i| c.client_addr(i)).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = tokio::spawn(checked_workload(
            addrs,
            clients,
            keys,
            stop.clone(),
            done.clone(),
        ));
        Load { stop, done, task }
    }

    /// Waits until `n` more operations are answered.
    pub async fn more(&self, n: usize, what: &str) {
        wait_for_more(&self.done, n, what).await
    }

    /// Operations answered so far.
    pub fn answered(&self) -> usize {
        self.done.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the clients and checks their history: able to show a violation
    /// (reads that saw values, keys written twice), and linearizable.
    pub async fn finish(self, what: &str) -> Checked {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let checked = self.task.await.expect("workload");
        let stats = checker::HistoryStats::of(&checked.history);
        println!("{what}: {stats:?}");
        assert!(
            stats.vacuous().is_none(),
            "{what}: the history cannot show a violation: {:?}",
            stats.vacuous()
        );
        assert_linearizable(&checked.history);
        checked
    }
}
