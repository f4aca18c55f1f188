//! `client`: read and write keys, find the leader, inspect replicas.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use client::faults::{FaultCmd, Schedule};
use client::{admin, Client, ClientConfig};

/// Command-line client for a replica group.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Examples:\n  client --master 127.0.0.1:7087 put greeting hello\n  client --master 127.0.0.1:7087 get greeting\n  client --master 127.0.0.1:7087 cas greeting hello bonjour\n  client --master 127.0.0.1:7087 cas --absent fresh-key v1\n  client --master 127.0.0.1:7087 leader\n  client --master 127.0.0.1:7087 status\n  client --master 127.0.0.1:7087 state 2\n  client --master 127.0.0.1:7087 set-leader 2            (servers started with --control)\n  client --master 127.0.0.1:7087 fault partition 0 1,2\n  client --master 127.0.0.1:7087 fault link 0 1,2 --delay-ms 10 --jitter-ms 2 --drop 1\n  client --master 127.0.0.1:7087 fault phase 2 accept 20s\n  client --master 127.0.0.1:7087 fault clear 0\n  client --master 127.0.0.1:7087 schedule faults.toml     (time-ordered fault steps)\n  client --master 127.0.0.1:7087 --direct fault crash 1   (to the replica, not through the master)\n  client --replicas 127.0.0.1:8070,127.0.0.1:8071,127.0.0.1:8072 get greeting\n  client --master 127.0.0.1:7087          (interactive prompt; type 'help')\n\nOn a sharded deployment (master --shards S) each command goes to the leader of its key's\nshard; replica ids are global (shard s holds ids s*N .. s*N+N-1), `leader` prints every\nshard's leader and `status` every replica with its shard."
)]
struct Args {
    /// Master address (HOST:PORT); finds the replicas and the leader through it.
    #[arg(long, env = "SMR_MASTER")]
    master: Option<String>,
    /// Replica client addresses (comma-separated), to work without a master.
    #[arg(long, value_delimiter = ',')]
    replicas: Vec<String>,
    /// With --master, send state, set-leader and fault requests straight to the
    /// replica instead of through the master.
    #[arg(long)]
    direct: bool,
    /// How long one command may take, retries included, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Set KEY to VALUE.
    Put { key: String, value: String },
    /// Print the value of KEY.
    Get { key: String },
    /// Remove KEY.
    Delete { key: String },
    /// Set KEY to NEW if it holds OLD (with --absent: if it does not exist; then give only KEY NEW).
    Cas {
        /// Require the key to be absent instead of holding OLD.
        #[arg(long)]
        absent: bool,
        key: String,
        /// OLD NEW, or NEW alone with --absent.
        values: Vec<String>,
    },
    /// Print the leader's id and client address (every shard's, on a sharded deployment).
    Leader,
    /// Print every replica's status (role, ballot, commit index, digest).
    Status,
    /// Print one replica's internal state: status and the digests of its latest log slots.
    State {
        /// Replica id.
        replica: u8,
    },
    /// Make a replica take over leadership (SetLeader; servers need --control).
    SetLeader {
        /// Replica id.
        replica: u8,
    },
    /// Inject or clear a fault on a replica (servers need --control).
    #[command(subcommand)]
    Fault(FaultCmd),
    /// Run a time-ordered fault schedule (TOML; see docs/faults.md), printing each step.
    Schedule {
        /// The schedule file.
        file: std::path::PathBuf,
    },
}

fn parse_line(line: &str) -> Result<Option<Cmd>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let s = |i: usize| {
        words
            .get(i)
            .map(|w| w.to_string())
            .ok_or_else(|| "missing argument (type 'help')".to_string())
    };
    Ok(Some(match words.first().copied() {
        None => return Ok(None),
        Some("put") => Cmd::Put {
            key: s(1)?,
            value: s(2)?,
        },
        Some("get") => Cmd::Get { key: s(1)? },
        Some("delete") | Some("del") => Cmd::Delete { key: s(1)? },
        Some("cas") if words.get(1) == Some(&"--absent") => Cmd::Cas {
            absent: true,
            key: s(2)?,
            values: vec![s(3)?],
        },
        Some("cas") => Cmd::Cas {
            absent: false,
            key: s(1)?,
            values: vec![s(2)?, s(3)?],
        },
        Some("leader") => Cmd::Leader,
        Some("status") => Cmd::Status,
        Some(w) => return Err(format!("unknown command '{w}' (type 'help')")),
    }))
}

fn show(v: &Option<Bytes>) -> String {
    match v {
        Some(b) => String::from_utf8_lossy(b).into_owned(),
        None => "(absent)".into(),
    }
}

async fn run(c: &Client, a: &Args, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Put { key, value } => {
            c.put(key, value).await?;
            println!("OK");
        }
        Cmd::Get { key } => println!("{}", show(&c.get(key).await?)),
        Cmd::Delete { key } => {
            c.delete(key).await?;
            println!("OK");
        }
        Cmd::Cas {
            absent,
            key,
            values,
        } => {
            let (old, new) = match (absent, values.as_slice()) {
                (true, [new]) => (None, new.clone()),
                (false, [old, new]) => (Some(Bytes::from(old.clone())), new.clone()),
                _ => bail!("cas takes KEY OLD NEW, or --absent KEY NEW"),
            };
            let o = c.cas(key, old, new).await?;
            if o.flag {
                println!("swapped");
            } else {
                println!("not swapped; current value: {}", show(&o.value));
            }
        }
        Cmd::Leader if c.shards() > 1 => {
            let mut missing = Vec::new();
            for (s, l) in c.leaders().await?.into_iter().enumerate() {
                match l {
                    Some((id, addr)) => println!("shard {s}: {id} {addr}"),
                    None => missing.push(s.to_string()),
                }
            }
            if !missing.is_empty() {
                bail!(
                    "the master knows no leader of shard {} right now",
                    missing.join(", ")
                );
            }
        }
        Cmd::Leader => {
            let (id, addr) = c.leader().await?;
            println!("{id} {addr}");
        }
        Cmd::Status => status(a).await?,
        Cmd::State { replica } => {
            let to = target(a, replica).await?;
            let t = Duration::from_secs(2);
            let s = admin::status(to.clone(), t).await?;
            println!("{s:#?}");
            let from = s.log_len.saturating_sub(10);
            for d in admin::log(to, from, 10, t).await?.slots {
                println!(
                    "slot {:>8}  {}  {:016x}",
                    d.slot,
                    if d.committed {
                        "committed"
                    } else {
                        "accepted "
                    },
                    d.hash
                );
            }
        }
        Cmd::SetLeader { replica } => {
            let to = target(a, replica).await?;
            let s = admin::set_leader(to, Duration::from_millis(a.timeout_ms)).await?;
            println!("replica {replica} leads with ballot {}", s.ballot);
        }
        Cmd::Fault(f) => fault(a, f).await?,
        Cmd::Schedule { file } => schedule(a, &file).await?,
    }
    Ok(())
}

async fn status(a: &Args) -> anyhow::Result<()> {
    let t = Duration::from_secs(2);
    // (global id, shard, client address); the id is unknown without a master.
    let mut sharded = false;
    let addrs: Vec<(Option<u8>, usize, String)> = match &a.master {
        Some(m) => {
            let info = admin::cluster(m, t).await?;
            let name = |l: Option<u8>| l.map_or("unknown".to_string(), |l| l.to_string());
            if info.shard_count() == 1 {
                println!(
                    "master {m}: {} of {} {} replicas registered, leader {}{}",
                    info.replicas.len(),
                    info.n,
                    info.protocol,
                    name(info.leader),
                    if info.reply_after_exec {
                        ", replies after execution"
                    } else {
                        ""
                    }
                );
            } else {
                sharded = true;
                let leaders: Vec<String> = (0..info.shard_count())
                    .map(|s| format!("{s}:{}", name(info.leader_of(s))))
                    .collect();
                println!(
                    "master {m}: {} of {} replicas registered ({} shards of {}), leaders by shard {}",
                    info.replicas.len(),
                    info.shard_count() * info.n as usize,
                    info.shard_count(),
                    info.n,
                    leaders.join(" ")
                );
            }
            info.replicas
                .iter()
                .map(|r| (Some(r.id), info.shard_of_replica(r.id), r.client_addr()))
                .collect()
        }
        None => a.replicas.iter().map(|r| (None, 0, r.clone())).collect(),
    };
    let shard_col = |s: &str| {
        if sharded {
            format!("{s:<6}")
        } else {
            String::new()
        }
    };
    println!(
        "{:<4} {}{:<22} {:<10} {:>8} {:>10} {:>10} {:>8}  digest",
        "id",
        shard_col("shard"),
        "address",
        "role",
        "ballot",
        "committed",
        "executed",
        "keys"
    );
    for (id, shard, addr) in addrs {
        let shard = shard_col(&shard.to_string());
        match admin::status(&addr, t).await {
            Ok(s) => {
                let role = ["follower", "candidate", "leader", "recovering"]
                    .get(s.role as usize)
                    .copied()
                    .unwrap_or("?");
                println!(
                    "{:<4} {shard}{:<22} {:<10} {:>8} {:>10} {:>10} {:>8}  {:032x}",
                    id.unwrap_or(s.replica),
                    addr,
                    role,
                    s.ballot,
                    s.commit_index,
                    s.executed,
                    s.keys,
                    s.digest()
                );
            }
            Err(e) => {
                let id = id.map_or("?".to_string(), |i| i.to_string());
                println!("{id:<4} {shard}{addr:<22} unreachable: {e}")
            }
        }
    }
    Ok(())
}

const HELP: &str = "commands: put KEY VALUE | get KEY | delete KEY | cas KEY OLD NEW | cas --absent KEY NEW | leader | status | quit";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    client::pipe::end_quietly_on_closed_pipe();
    genericsmr::logging::init("warn");
    let mut a = Args::parse();
    if a.master.is_none() && a.replicas.is_empty() {
        bail!("give --master HOST:PORT (or --replicas A,B,C) so the client can find the group");
    }
    let mut cfg = match &a.master {
        Some(m) => ClientConfig::with_master(m.clone()),
        None => ClientConfig::with_replicas(a.replicas.clone()),
    };
    cfg.timeout = Duration::from_millis(a.timeout_ms);
    cfg.attempt_timeout = cfg.attempt_timeout.min(cfg.timeout);
    let c = Client::connect(cfg)
        .await
        .context("cannot reach the group")?;
    if let Some(cmd) = a.cmd.take() {
        return run(&c, &a, cmd).await;
    }
    let stdin = std::io::stdin();
    let interactive = std::io::IsTerminal::is_terminal(&stdin);
    if interactive {
        println!("connected as client {:016x}; {HELP}", c.id());
    }
    loop {
        if interactive {
            print!("> ");
            std::io::stdout().flush()?;
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        match line.trim() {
            "quit" | "exit" => return Ok(()),
            "help" => println!("{HELP}"),
            l => match parse_line(l) {
                Ok(None) => {}
                Ok(Some(cmd)) => {
                    if let Err(e) = run(&c, &a, cmd).await {
                        println!("error: {e:#}");
                    }
                }
                Err(e) => println!("{e}"),
            },
        }
    }
}

/// Where control requests for replica `id` go: through the master, or with
/// `--direct` (or `--replicas`) to its client address.
async fn target(a: &Args, id: u8) -> anyhow::Result<admin::Target> {
    let t = Duration::from_secs(2);
    if let Some(m) = &a.master {
        if !a.direct {
            return Ok(admin::Target::ViaMaster {
                master: m.clone(),
                replica: id,
            });
        }
        let info = admin::cluster(m, t).await?;
        return info
            .replicas
            .iter()
            .find(|r| r.id == id)
            .map(|r| admin::Target::Direct(r.client_addr()))
            .ok_or_else(|| anyhow::anyhow!("the master knows no replica {id}"));
    }
    for addr in &a.replicas {
        if admin::status(addr, t).await.is_ok_and(|s| s.replica == id) {
            return Ok(admin::Target::Direct(addr.clone()));
        }
    }
    bail!("no replica in --replicas answers as replica {id}")
}

async fn schedule(a: &Args, file: &std::path::Path) -> anyhow::Result<()> {
    let s = Schedule::load(file)?;
    let mut targets = Vec::new();
    for id in 0..=s.max_replica().unwrap_or(0) {
        targets.push(target(a, id).await?);
    }
    println!("running {} steps from {}", s.steps.len(), file.display());
    let done = client::faults::run(
        &s,
        |r| targets[r as usize].clone(),
        |o| {
            let t = o.at.as_secs_f64();
            match &o.error {
                None => println!("{t:>8.3}s  {}: ok", o.text),
                Some(e) => println!("{t:>8.3}s  {}: FAILED: {e}", o.text),
            }
        },
    )
    .await;
    let failed = done.iter().filter(|o| o.error.is_some()).count();
    if failed > 0 {
        bail!("{failed} of {} steps failed", done.len());
    }
    Ok(())
}

async fn fault(a: &Args, f: FaultCmd) -> anyhow::Result<()> {
    let replica = f.replica();
    let r = admin::fault(
        target(a, replica).await?,
        &f.request()?,
        Duration::from_secs(2),
    )
    .await?;
    println!(
        "replica {replica}: ok (crashed: {}, faults active: {})",
        r.crashed, r.active
    );
    Ok(())
}
