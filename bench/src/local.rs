//! A local cluster of real processes: one `master` and N `server`s (or S
//! shards of N) on 127.0.0.1 with ephemeral ports. Used by `bench local` and
//! by the process-level tests. Every process is killed when the cluster is
//! dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Replicas in the group (in each shard).
    pub replicas: usize,
    /// Number of shards (1: one group). Slot `i` of `replicas * shards` runs
    /// a server of shard `i / replicas`.
    pub shards: usize,
    /// `--protocol` of every server.
    pub protocol: String,
    /// Extra flags for every server.
    pub server_flags: Vec<String>,
    /// Extra flags for the master, such as `--liveness-timeout-ms`: tests on
    /// a loaded machine want a more patient master than a benchmark does.
    pub master_flags: Vec<String>,
    /// Give every server `--durable --data-dir` in the cluster's folder.
    pub durable: bool,
    /// Folder holding the `master` and `server` binaries.
    pub bin_dir: PathBuf,
    /// Where process logs go (`master.log`, `server-I.log`); discarded when `None`.
    pub log_dir: Option<PathBuf>,
    /// Where the servers' data folders live (`slot0`, `slot1`, ...); a temporary
    /// folder when `None`. Give the same folder to a later cluster to restart a
    /// whole group, master included, on its durable state.
    pub data_root: Option<PathBuf>,
    /// The order in which the servers of slots `0..replicas * shards` start
    /// (and so register); empty means slot order.
    pub start_order: Vec<usize>,
    /// More flags for the server of each slot. When given, slot `i` also
    /// gets `--id i`, so that the flags meant for replica `i` (a WAN row)
    /// reach it whatever the registration order; without them servers get
    /// their ids in registration (start) order.
    pub slot_flags: Vec<Vec<String>>,
}

/// A child process whose stdout lines are collected in the background.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Proc {
    fn spawn(cmd: &mut Command, name: &str, log_dir: Option<&Path>) -> anyhow::Result<Proc> {
        let stderr = match log_dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(d.join(format!("{name}.log")))?;
                Stdio::from(f)
            }
            None if std::env::var_os("TEST_LOGS").is_some() => Stdio::inherit(),
            None => Stdio::null(),
        };
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
        let out = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            child,
            lines: rx,
            name: name.to_string(),
        })
    }

    /// Waits for a stdout line starting with `prefix`.
    fn expect_line(&mut self, prefix: &str, limit: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Ok(l),
                Ok(_) => {}
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "{} did not print '{prefix}…' within {limit:?}{}",
                        self.name,
                        status
                            .map(|s| format!(" (it exited: {s}; see its log)"))
                            .unwrap_or_default()
                    )
                }
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

struct Replica {
    proc: Option<Proc>,
    peer_port: u16,
    client_port: u16,
    data_dir: PathBuf,
    /// The slot's own flags, kept for restarts.
    slot_flags: Vec<String>,
}

/// A running local cluster.
pub struct LocalCluster {
    master_addr: String,
    /// `None` while the master is killed.
    master: Option<Proc>,
    replicas: Vec<Replica>,
    spec: ClusterSpec,
    _dir: tempfile::TempDir,
}

const START_LIMIT: Duration = Duration::from_secs(30);

fn parse_ports(line: &str) -> anyhow::Result<(u16, u16)> {
    // "listening: peers on HOST:P, clients on HOST:C"
    let port = |s: &str| -> anyhow::Result<u16> {
        Ok(s.trim_end_matches(',')
            .rsplit(':')
            .next()
            .unwrap_or("")
            .parse()?)
    };
    let w: Vec<&str> = line.split_whitespace().collect();
    anyhow::ensure!(w.len() >= 7, "unexpected server output: {line}");
    Ok((port(w[3])?, port(w[6])?))
}

impl LocalCluster {
    /// Starts the master and the servers and waits until every server serves.
    pub fn start(spec: ClusterSpec) -> anyhow::Result<LocalCluster> {
        for b in ["master", "server"] {
            let p = spec.bin_dir.join(b);
            anyhow::ensure!(
                p.exists(),
                "{} not found; build it with `cargo build --release --bins`",
                p.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let data_root = spec
            .data_root
            .clone()
            .unwrap_or_else(|| dir.path().to_path_buf());
        let log = spec.log_dir.as_deref();
        let shards = spec.shards.max(1);
        let total = spec.replicas * shards;
        anyhow::ensure!(
            spec.replicas >= 1 && total <= genericsmr::MAX_REPLICAS,
            "a deployment has 1 to {} replicas in all; {shards} shards of {} is {total}",
            genericsmr::MAX_REPLICAS,
            spec.replicas
        );
        let mut master = Proc::spawn(
            Command::new(spec.bin_dir.join("master"))
                .args([
                    "--port",
                    "0",
                    "--replicas",
                    &spec.replicas.to_string(),
                    "--shards",
                    &shards.to_string(),
                ])
                .args(&spec.master_flags),
            "master",
            log,
        )?;
        let l = master.expect_line("master listening on", START_LIMIT)?;
        let master_addr = l
            .split_whitespace()
            .nth(3)
            .context("master address")?
            .to_string();
        // Each server starts once the previous one listens, so servers register
        // in `start_order` (the master hands out ids in registration order).
        let order: Vec<usize> = if spec.start_order.is_empty() {
            (0..total).collect()
        } else {
            spec.start_order.clone()
        };
        anyhow::ensure!(
            order.len() == total && order.iter().all(|i| *i < total),
            "start_order must name every slot once"
        );
        let mut started = Vec::new();
        for i in order {
            let data_dir = data_root.join(format!("slot{i}"));
            let mut cmd = Self::server_cmd(
                &spec,
                &master_addr,
                i / spec.replicas,
                (0, 0),
                spec.durable.then_some(data_dir.as_path()),
            );
            let own: Vec<String> = match spec.slot_flags.get(i) {
                Some(flags) => ["--id".to_string(), i.to_string()]
                    .into_iter()
                    .chain(flags.iter().cloned())
                    .collect(),
                None => Vec::new(),
            };
            cmd.args(&own);
            let mut p = Proc::spawn(&mut cmd, &format!("server-slot{i}"), log)?;
            let ports = parse_ports(&p.expect_line("listening:", START_LIMIT)?)?;
            started.push((p, data_dir, ports, own));
        }
        let mut replicas: Vec<Option<Replica>> = (0..total).map(|_| None).collect();
        for (mut p, data_dir, (peer_port, client_port), slot_flags) in started {
            let reg = p.expect_line("registered as replica", START_LIMIT)?;
            let id: usize = reg
                .split_whitespace()
                .nth(3)
                .context("replica id")?
                .parse()?;
            p.expect_line(&format!("replica {id} serving"), START_LIMIT)?;
            p.name = format!("server-{id}");
            anyhow::ensure!(id < total, "the master assigned id {id} of {total}");
            replicas[id] = Some(Replica {
                proc: Some(p),
                peer_port,
                client_port,
                data_dir,
                slot_flags,
            });
        }
        let replicas = replicas
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .context("a replica id was assigned twice")?;
        Ok(LocalCluster {
            master_addr,
            master: Some(master),
            replicas,
            spec,
            _dir: dir,
        })
    }

    fn server_cmd(
        spec: &ClusterSpec,
        master: &str,
        shard: usize,
        (peer, client): (u16, u16),
        data_dir: Option<&Path>,
    ) -> Command {
        let mut c = Command::new(spec.bin_dir.join("server"));
        c.args([
            "--master",
            master,
            "--port",
            &peer.to_string(),
            "--client-port",
            &client.to_string(),
        ]);
        if spec.shards > 1 {
            c.args(["--shard", &shard.to_string()]);
        }
        c.args(["--protocol", &spec.protocol]);
        if let Some(d) = data_dir {
            c.arg("--durable").arg("--data-dir").arg(d);
        }
        c.args(&spec.server_flags);
        c
    }

    /// The master's `host:port`.
    pub fn master_addr(&self) -> &str {
        &self.master_addr
    }

    /// Number of replicas (of every shard).
    pub fn n(&self) -> usize {
        self.replicas.len()
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.spec.shards.max(1)
    }

    /// Replicas per shard.
    pub fn per_shard(&self) -> usize {
        self.spec.replicas
    }

    /// The shard of replica `id`.
    pub fn shard_of(&self, id: usize) -> usize {
        id / self.spec.replicas.max(1)
    }

    /// Client address of replica `id`.
    pub fn client_addr(&self, id: usize) -> String {
        format!("127.0.0.1:{}", self.replicas[id].client_port)
    }

    /// Peer address of replica `id`.
    pub fn peer_addr(&self, id: usize) -> String {
        format!("127.0.0.1:{}", self.replicas[id].peer_port)
    }

    /// The data folder of replica `id` (used with `durable`).
    pub fn data_dir(&self, id: usize) -> &Path {
        &self.replicas[id].data_dir
    }

    /// Ids (global) of the replicas whose process runs.
    pub fn running(&self) -> Vec<usize> {
        (0..self.n())
            .filter(|i| self.replicas[*i].proc.is_some())
            .collect()
    }

    /// Kills replica `id` with SIGKILL.
    pub fn kill(&mut self, id: usize) {
        if let Some(mut p) = self.replicas[id].proc.take() {
            p.kill();
        }
    }

    /// Sends a signal such as `STOP` or `CONT` to replica `id`.
    pub fn signal(&self, id: usize, sig: &str) -> anyhow::Result<()> {
        let p = self.replicas[id]
            .proc
            .as_ref()
            .context("replica is not running")?;
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(p.child.id().to_string())
            .status()?;
        anyhow::ensure!(st.success(), "kill -{sig} failed");
        Ok(())
    }

    /// Sends a signal such as `STOP` or `CONT` to the master.
    pub fn signal_master(&self, sig: &str) -> anyhow::Result<()> {
        let p = self.master.as_ref().context("the master is not running")?;
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(p.child.id().to_string())
            .status()?;
        anyhow::ensure!(st.success(), "kill -{sig} failed");
        Ok(())
    }

    /// Kills the master with SIGKILL; the replicas keep running.
    pub fn kill_master(&mut self) {
        if let Some(mut p) = self.master.take() {
            p.kill();
        }
    }

    /// Starts the master again on its old address with its old flags (so with
    /// the same `--state FILE`, if the spec's master flags name one).
    pub fn restart_master(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.master.is_none(), "the master is running");
        let port = self
            .master_addr
            .rsplit(':')
            .next()
            .context("master address")?
            .to_string();
        let mut p = Proc::spawn(
            Command::new(self.spec.bin_dir.join("master"))
                .args([
                    "--port",
                    &port,
                    "--replicas",
                    &self.spec.replicas.to_string(),
                    "--shards",
                    &self.spec.shards.max(1).to_string(),
                ])
                .args(&self.spec.master_flags),
            "master",
            self.spec.log_dir.as_deref(),
        )?;
        p.expect_line("master listening on", START_LIMIT)?;
        self.master = Some(p);
        Ok(())
    }

    /// Restarts replica `id` on its old ports, with its durable log when `durable`.
    pub fn restart(&mut self, id: usize, durable: bool) -> anyhow::Result<()> {
        anyhow::ensure!(self.replicas[id].proc.is_none(), "replica {id} is running");
        let r = &self.replicas[id];
        let dd = durable.then_some(r.data_dir.as_path());
        let mut cmd = Self::server_cmd(
            &self.spec,
            &self.master_addr,
            self.shard_of(id),
            (r.peer_port, r.client_port),
            dd,
        );
        cmd.args(&r.slot_flags);
        let mut p = Proc::spawn(
            &mut cmd,
            &format!("server-{id}"),
            self.spec.log_dir.as_deref(),
        )?;
        let reg = p.expect_line("registered as replica", START_LIMIT)?;
        anyhow::ensure!(
            reg.contains(&format!("replica {id} ")),
            "restarted replica got another id: {reg}"
        );
        p.expect_line(&format!("replica {id} serving"), START_LIMIT)?;
        self.replicas[id].proc = Some(p);
        Ok(())
    }
}

/// The folder of the running executable (where `master` and `server` live next to `bench`).
pub fn own_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("executable has no folder")?
        .to_path_buf())
}

/// Makes sure the named binaries of this workspace exist in `bin_dir`, building
/// them with cargo when not (a test run of one package builds only its own).
pub fn ensure_built(bin_dir: &Path, names: &[&str]) -> anyhow::Result<()> {
    for name in names {
        if bin_dir.join(name).exists() {
            continue;
        }
        let release = bin_dir.ends_with("release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", name, "--bin", name]);
        if release {
            cmd.arg("--release");
        }
        let st = cmd
            .status()
            .with_context(|| format!("running cargo to build {name}"))?;
        anyhow::ensure!(st.success(), "building {name} failed");
    }
    Ok(())
}
