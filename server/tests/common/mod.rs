//! Test harness: a real `master` and real `server` processes on 127.0.0.1 with
//! ephemeral ports, killed with SIGKILL and restarted on the same ports.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use client::{admin, Client, ClientConfig};
use genericsmr::messages::{role, StatusReply};

/// Every test gives up after this long.
pub const TEST_LIMIT: Duration = Duration::from_secs(90);

fn bin(name: &str) -> PathBuf {
    let server = PathBuf::from(env!("CARGO_BIN_EXE_server"));
    let p = server.with_file_name(name);
    if !p.exists() {
        // `cargo test -p server` alone does not build the master binary.
        let profile = if server.parent().is_some_and(|d| d.ends_with("release")) {
            "--release"
        } else {
            "--quiet"
        };
        let st = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", name, "--bin", name, profile])
            .status()
            .expect("run cargo build");
        assert!(st.success(), "building {name} failed");
    }
    p
}

/// A child process whose stdout lines are collected in the background.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("TEST_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("spawn process");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines: rx }
    }

    /// Waits for a stdout line starting with `prefix`.
    fn expect_line(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(e) => panic!("no line starting with '{prefix}' within {limit:?}: {e}"),
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Options for the servers of a cluster.
#[derive(Clone, Default)]
pub struct Opts {
    /// Run with --durable and a data dir per replica.
    pub durable: bool,
    /// Extra server flags.
    pub extra: Vec<String>,
}

struct Replica {
    proc: Option<Proc>,
    peer_port: u16,
    client_port: u16,
}

/// A running cluster.
pub struct Cluster {
    pub master_addr: String,
    _master: Proc,
    replicas: Vec<Replica>,
    pub dir: tempfile::TempDir,
    opts: Opts,
}

fn server_cmd(
    master: &str,
    peer: u16,
    client: u16,
    durable_dir: Option<PathBuf>,
    extra: &[String],
) -> Command {
    let mut c = Command::new(bin("server"));
    c.args([
        "--master",
        master,
        "--port",
        &peer.to_string(),
        "--client-port",
        &client.to_string(),
    ]);
    if let Some(d) = durable_dir {
        c.arg("--durable").arg("--data-dir").arg(d);
    }
    c.args(extra);
    c
}

fn parse_ports(line: &str) -> (u16, u16) {
    // "listening: peers on 127.0.0.1:P, clients on 127.0.0.1:C"
    let port = |s: &str| {
        s.rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches(',')
            .parse::<u16>()
            .unwrap()
    };
    let parts: Vec<&str> = line.split_whitespace().collect();
    (port(parts[3]), port(parts[6]))
}

impl Cluster {
    /// Starts a master and `n` servers and waits until a leader is serving.
    pub fn start(n: usize, opts: Opts) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut master = Proc::spawn(Command::new(bin("master")).args([
            "--port",
            "0",
            "--replicas",
            &n.to_string(),
        ]));
        let l = master.expect_line("master listening on", Duration::from_secs(20));
        let master_addr = l.split_whitespace().nth(3).unwrap().to_string();
        let mut procs = Vec::new();
        for i in 0..n {
            let dd = opts.durable.then(|| dir.path().join(format!("slot{i}")));
            let p = Proc::spawn(&mut server_cmd(&master_addr, 0, 0, dd, &opts.extra));
            procs.push((p, i));
        }
        let mut replicas: Vec<Option<Replica>> = (0..n).map(|_| None).collect();
        for (mut p, _) in procs {
            let (peer_port, client_port) =
                parse_ports(&p.expect_line("listening:", Duration::from_secs(20)));
            let reg = p.expect_line("registered as replica", Duration::from_secs(20));
            let id: usize = reg.split_whitespace().nth(3).unwrap().parse().unwrap();
            p.expect_line("replica", Duration::from_secs(20));
            replicas[id] = Some(Replica {
                proc: Some(p),
                peer_port,
                client_port,
            });
        }
        Cluster {
            master_addr,
            _master: master,
            replicas: replicas.into_iter().map(Option::unwrap).collect(),
            dir,
            opts,
        }
    }

    /// Group size.
    pub fn n(&self) -> usize {
        self.replicas.len()
    }

    /// The client address of replica `id`.
    pub fn client_addr(&self, id: usize) -> String {
        format!("127.0.0.1:{}", self.replicas[id].client_port)
    }

    /// Kills replica `id` with SIGKILL.
    pub fn kill(&mut self, id: usize) {
        if let Some(mut p) = self.replicas[id].proc.take() {
            p.kill();
        }
    }

    /// Sends a signal (e.g. "STOP", "CONT") to replica `id`.
    pub fn signal(&self, id: usize, sig: &str) {
        let pid = self.replicas[id].proc.as_ref().expect("running").child.id();
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Restarts replica `id` on its old ports (and data dir, when `durable`).
    pub fn restart(&mut self, id: usize, durable: bool) {
        assert!(self.replicas[id].proc.is_none(), "replica {id} is running");
        let r = &self.replicas[id];
        let dd = durable.then(|| self.data_dir_of(id));
        let mut p = Proc::spawn(&mut server_cmd(
            &self.master_addr,
            r.peer_port,
            r.client_port,
            dd,
            &self.opts.extra,
        ));
        let reg = p.expect_line("registered as replica", Duration::from_secs(20));
        assert!(
            reg.contains(&format!("replica {id} ")),
            "restarted replica got another id: {reg}"
        );
        p.expect_line(&format!("replica {id} serving"), Duration::from_secs(20));
        self.replicas[id].proc = Some(p);
    }

    /// The data dir of replica `id` (finds the slot folder holding its log).
    fn data_dir_of(&self, id: usize) -> PathBuf {
        for i in 0..self.n() {
            let d = self.dir.path().join(format!("slot{i}"));
            if d.join(format!("paxos-replica-{id}.log")).exists() {
                return d;
            }
        }
        self.dir.path().join(format!("slot-for-{id}"))
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

    /// Waits until some replica reports being leader; returns its id.
    pub async fn leader(&self) -> usize {
        wait_for(Duration::from_secs(20), "a leader", || async {
            for i in 0..self.n() {
                if self.replicas[i].proc.is_some() {
                    if let Some(s) = self.status(i).await {
                        if s.role == role::LEADER {
                            return Some(i);
                        }
                    }
                }
            }
            None
        })
        .await
    }

    /// Ids of running replicas.
    pub fn running(&self) -> Vec<usize> {
        (0..self.n())
            .filter(|i| self.replicas[*i].proc.is_some())
            .collect()
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

/// Runs a test body with the global time limit.
pub async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_LIMIT, f)
        .await
        .expect("test exceeded its time limit");
}
