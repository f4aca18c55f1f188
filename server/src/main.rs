//! `server`: one replica. Binds its peer and client ports, registers with the
//! master, replays its durable log if any, then runs the chosen protocol's
//! core in the shared runtime. Protocols come from the one registry (the
//! `protocols` crate); nothing here names one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use genericsmr::durable::{DurableLog, SyncPolicy};
use genericsmr::effects::{Driver, Effects};
use genericsmr::master_link;
use genericsmr::messages::Register;
use genericsmr::protocol::{Boot, Protocol, Rejoin, Settings};
use genericsmr::rpc_table::RpcTable;
use genericsmr::runtime;
use genericsmr::transport::{Transport, TransportConfig};
use genericsmr::ReplicaId;

/// One replica of a state-machine-replication group.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Examples:\n  server --master 127.0.0.1:7087 --port 7070 --protocol paxos\n  server --master 127.0.0.1:7087 --port 7071 --durable --data-dir /tmp/smr/r1 --sync batch\n  server --master 127.0.0.1:7087 --port 0 --client-port 0 --batch --thrifty\n  server --master 127.0.0.1:7087 --port 7072 --control --link-delay-ms 1   (a test bed: faults, 1 ms links)\n  server --master 127.0.0.1:7087 --port 7073 --shard 1   (a replica of shard 1; the master runs with --shards)\n  server --master 127.0.0.1:7087 --port 7074 --protocol epaxos --durable --data-dir /tmp/smr/r4 --gc-horizon 4096   (forget executed instances sooner; a peer further behind gets a snapshot)\n\nThe peer port is --port; clients connect to --client-port (default: port + 1000).\nStart the master first; the server waits until all replicas (of every shard) have registered.\nIf the master goes away the server keeps serving, and re-registers under its id once the master is back."
)]
struct Args {
    /// Master address (HOST:PORT).
    #[arg(long)]
    master: String,
    /// Address to bind and to advertise to peers and clients.
    #[arg(long, default_value = "127.0.0.1")]
    addr: String,
    /// Port for replica-to-replica traffic (0 picks a free one).
    #[arg(long, default_value_t = 7070)]
    port: u16,
    /// Port for clients (default: --port + 1000, or a free one when --port is 0).
    #[arg(long)]
    client_port: Option<u16>,
    /// Ask the master for this replica id, a global id (shard s holds ids s*N .. s*N+N-1);
    /// with --durable the id is also kept in the data folder, and reused on restart.
    #[arg(long)]
    id: Option<ReplicaId>,
    /// The shard this replica belongs to, in a deployment whose master runs with --shards.
    /// The replica replicates that shard's keys with the shard's other replicas only.
    #[arg(long, default_value_t = 0)]
    shard: u8,
    /// Replication protocol (`bench protocols` describes each).
    #[arg(long, default_value = protocols::DEFAULT, value_parser = clap::builder::PossibleValuesParser::new(protocols::NAMES))]
    protocol: String,
    /// Persist promises and votes in a checksummed log, fsynced before the replies that depend on them.
    #[arg(long, requires = "data_dir")]
    durable: bool,
    /// Folder of the durable log.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// When the durable log is fsynced: always (each record), batch (once per burst of messages), off.
    #[arg(long, default_value = "batch")]
    sync: SyncPolicy,
    /// Send phase-2 messages to a bare majority only.
    #[arg(long)]
    thrifty: bool,
    /// MDLin: when a shard leader answers a successor's coordination request:
    /// `fast` (at commit + coordination, the published protocol) or `safe`
    /// (once the operation's position is chosen; slower, simpler failover).
    /// (Short for `--param coord=MODE`.)
    #[arg(long)]
    coord: Option<String>,
    /// MDLin: an operation still uncoordinated after this long fails, in
    /// milliseconds, default 3000. (Short for `--param coord-timeout-ms=MS`.)
    #[arg(long)]
    coord_timeout_ms: Option<u64>,
    /// A setting only one protocol has, NAME=VALUE (repeatable); the
    /// protocol refuses names it does not know. docs/protocols.md lists them.
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Batch proposals that arrive together into one log slot.
    #[arg(long)]
    batch: bool,
    /// Most commands in one batched slot.
    #[arg(long, default_value_t = 4096)]
    batch_max: usize,
    /// Reply to writes after execution (with their outcome) instead of at commit.
    #[arg(long)]
    reply_after_exec: bool,
    /// Threads serving network I/O.
    #[arg(long, default_value_t = 1)]
    io_threads: usize,
    /// Largest frame accepted from the network, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_frame: usize,
    /// Most client requests queued for the protocol before the server stops
    /// reading client sockets until it catches up: under a load above what it
    /// serves, clients wait in TCP instead of the replica's memory growing.
    /// 0: no bound.
    #[arg(long, default_value_t = genericsmr::transport::DEFAULT_CLIENT_QUEUE)]
    client_queue: usize,
    /// Most commands (a batch counts each) a Multi-Paxos or MDLin leader has
    /// proposed and not yet seen chosen before it stops taking client
    /// requests until some are (they wait in the client queue, then in
    /// TCP); for EPaxos, most commands in
    /// its own instances not yet executed, and most proposals waiting for an
    /// instance. Default 8192.
    #[arg(long)]
    pipeline: Option<u64>,
    /// Accept fault injection and leadership requests from clients (`client fault ...`,
    /// `client set-leader`). Off by default: never expose it outside a test bed.
    #[arg(long)]
    control: bool,
    /// One-way delay added to every message to a peer, in milliseconds (WAN emulation).
    #[arg(long, default_value_t = 0.0)]
    link_delay_ms: f64,
    /// One-way delay to each replica by global id, in milliseconds, e.g. 0,36.1,9.65 (a row of
    /// a WAN latency matrix; bench local --wan sets it). Entries for replicas of other shards
    /// are unused.
    #[arg(long, value_delimiter = ',')]
    link_delays_ms: Vec<f64>,
    /// Largest command accepted from a client, in bytes (at most a quarter of --max-frame).
    #[arg(long, default_value_t = 1 << 20)]
    max_command: usize,
    /// EPaxos: executed instances kept per command leader for peers that still
    /// ask about them (the garbage-collection horizon); a peer further behind
    /// is sent a snapshot instead. Multi-Paxos: executed slots kept in memory,
    /// and how many more are executed between compactions (each compaction
    /// also rewrites a durable log to a snapshot file plus what lies above it).
    #[arg(long, default_value_t = 1 << 16)]
    gc_horizon: u64,
    /// Compaction also runs by size, in MiB: Multi-Paxos once the executed
    /// commands it holds in memory reach this (a quarter is kept), EPaxos
    /// once it wrote this much durable log since the last compaction (and it
    /// keeps executed commands for lagging peers up to a quarter of it).
    /// Batches make slots and instances large, so a bound in entries alone
    /// bounds neither memory nor files.
    #[arg(long, default_value_t = 64)]
    compact_mb: usize,
    /// Multi-Paxos and MDLin: a durable compaction waits until the log
    /// executed since the last one holds this percentage of the last
    /// snapshot's size, so snapshot writes stay in proportion to the log
    /// however large the state is (0: compact at every threshold).
    #[arg(long, default_value_t = 100)]
    snapshot_ratio: u32,
    /// Bytes of snapshot in one message when a peer catches up by snapshot
    /// (at most half of --max-frame).
    #[arg(long, default_value_t = 1 << 20)]
    snapshot_chunk: usize,
    /// Gaps the dedup table keeps per client (sequence
    /// numbers the client acknowledged that have not run here yet) before it
    /// gives up the lowest.
    #[arg(long, default_value_t = 1024)]
    max_gaps: usize,
    /// Sequence numbers past what a client acknowledged whose results the
    /// dedup table keeps in a ring per client: a client with up to this many
    /// requests unacknowledged has every retry answered from it.
    #[arg(long, default_value_t = 1 << 16)]
    dedup_ring: u64,
    /// Results the dedup table keeps per client past its ring (--dedup-ring
    /// numbers after what the client acknowledged: a client far ahead of its
    /// acknowledgements, such as an open-loop load above capacity). Past it a
    /// result is not kept: a retry of that command is answered stale, never
    /// run twice.
    #[arg(long, default_value_t = 4096)]
    max_far: usize,
    /// Run a deliberately broken replica (for tests only): `follower-reads` and
    /// `forget-accepts` (with --durable) break Multi-Paxos, `drop-dependency`
    /// breaks EPaxos (docs/broken.md). Refused unless the server was built
    /// with the `broken` feature, as only its tests build it.
    #[arg(long)]
    broken: Option<String>,
    /// Multi-Paxos and MDLin (per shard): a follower that hears nothing from its leader for a random
    /// time between this and twice this runs an election, in milliseconds (0:
    /// no elections; leaders then change only when the master or an operator
    /// asks). Keep it far above the 50 ms heartbeat plus the worst pause a
    /// loaded machine can cause.
    #[arg(long, default_value_t = 1000)]
    election_timeout_ms: u64,
    /// Multi-Paxos and MDLin: when the master says it lost the leader, a follower
    /// campaigns once it has not heard the leader itself for this long, in
    /// milliseconds (a few 50 ms heartbeats; a leader still heard is never
    /// deposed this way).
    #[arg(long, default_value_t = 200)]
    election_hint_quiet_ms: u64,
    /// How long to keep trying to reach the master at start, in seconds.
    #[arg(long, default_value_t = 30)]
    master_patience_s: u64,
}

fn main() -> anyhow::Result<()> {
    genericsmr::logging::init("info");
    let a = Args::parse();
    if a.batch_max == 0 {
        bail!("--batch-max must be at least 1");
    }
    if a.gc_horizon == 0 {
        bail!("--gc-horizon must be at least 1");
    }
    if a.snapshot_chunk == 0 || a.snapshot_chunk > a.max_frame / 2 {
        bail!(
            "--snapshot-chunk must be between 1 and half of --max-frame ({} bytes)",
            a.max_frame / 2
        );
    }
    if a.max_command > a.max_frame / 4 {
        bail!("--max-command must be at most a quarter of --max-frame ({} bytes), so that a batch always fits in a frame", a.max_frame / 4);
    }
    let info = protocols::info(&a.protocol).context(protocols::unknown(&a.protocol))?;
    if a.durable && !info.caps.durable {
        bail!(
            "{} keeps no durable log; start it without --durable",
            info.name
        );
    }
    // Settings the protocol refuses (an unknown --param, a --broken variant
    // it lacks) are reported now, not after registering with the master.
    protocols::visit(info.name, Validate(settings(&a, 0, 1, 1)))
        .context(protocols::unknown(info.name))??;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.io_threads.max(1))
        .enable_all()
        .build()?;
    let bind = |port: u16| {
        let addr = a.addr.clone();
        rt.block_on(async move { tokio::net::TcpListener::bind((addr.as_str(), port)).await })
            .with_context(|| format!("cannot listen on {}:{port}; pick another port", a.addr))
    };
    let peer_l = bind(a.port)?;
    let peer_port = peer_l.local_addr()?.port();
    let client_port = a.client_port.unwrap_or(if a.port == 0 {
        0
    } else {
        a.port.wrapping_add(1000)
    });
    let client_l = bind(client_port)?;
    let client_port = client_l.local_addr()?.port();
    println!(
        "listening: peers on {}:{peer_port}, clients on {}:{client_port}",
        a.addr, a.addr
    );

    // A durable replica registers under the id its data folder belongs to.
    let recorded = match (&a.durable, &a.data_dir) {
        (true, Some(dir)) => genericsmr::durable::read_identity(dir)?,
        _ => None,
    };
    if let (Some(r), Some(i)) = (recorded, a.id) {
        if r != i {
            bail!(
                "--id {i} conflicts with {}: that data folder belongs to replica {r}",
                a.data_dir
                    .as_deref()
                    .unwrap_or_else(|| std::path::Path::new("?"))
                    .display()
            );
        }
    }
    let mut req = Register {
        id: a.id.or(recorded),
        host: a.addr.clone(),
        peer_port,
        client_port,
        protocol: a.protocol.clone(),
        shard: a.shard,
        reply_after_exec: a.reply_after_exec,
    };
    let (reg, master_stream) = rt
        .block_on(master_link::register(
            &a.master,
            &req,
            Duration::from_secs(a.master_patience_s),
        ))
        .context("registration with the master failed")?;
    let me = reg.id;
    let shards = (reg.shards as usize).max(1);
    let total = reg.replicas.len();
    if total == 0 || total % shards != 0 {
        bail!(
            "the master described {total} replicas in {shards} shards; that is not a whole number of replicas per shard"
        );
    }
    let n = total / shards;
    let shard = genericsmr::shard::shard_of_replica(me, n);
    if shard != a.shard as usize {
        bail!(
            "the master gave id {me}, which belongs to shard {shard}, not --shard {}",
            a.shard
        );
    }
    // The protocol core runs over this shard's replicas, with local ids.
    let local = genericsmr::shard::local_id(me, n);
    let base = genericsmr::shard::global_id(shard, 0, n);
    // Some protocols' shard leaders talk to each other: their mesh spans every replica.
    let mesh = if info.caps.sharded_mesh {
        0..total
    } else {
        genericsmr::shard::members(shard, n)
    };
    let peers = mesh
        .clone()
        .map(|g| {
            reg.replicas
                .iter()
                .find(|r| r.id as usize == g)
                .map(|r| r.peer_addr())
                .with_context(|| format!("the master's replica list lacks replica {g}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    req.id = Some(me);
    let span = tracing::info_span!("replica", id = me);
    let _g = span.enter();
    tracing::info!(n, shards, shard, local, rejoin = reg.rejoin, "registered");
    let rejoin = if reg.rejoin { " (rejoining)" } else { "" };
    if shards == 1 {
        println!("registered as replica {me} of {n}{rejoin}");
    } else {
        println!(
            "registered as replica {me} of {total} (shard {shard} of {shards}, local id {local} of {n}){rejoin}"
        );
    }

    let (core_id, base) = if info.caps.sharded_mesh {
        (me, 0)
    } else {
        (local, base)
    };
    let mut records = Vec::new();
    let log = match (&a.durable, &a.data_dir) {
        (true, Some(dir)) => {
            if recorded.is_none() {
                genericsmr::durable::write_identity(dir, me)?;
            }
            let path = dir.join(format!("{}-replica-{me}.log", a.protocol));
            let (log, replay) = DurableLog::open(&path, a.sync)?;
            tracing::info!(records = replay.records.len(), "replayed the durable log");
            println!(
                "replayed {} records from {}",
                replay.records.len(),
                path.display()
            );
            records = replay.records;
            Some((log, path))
        }
        _ => None,
    };
    // A replica the group knows from before that has no votes on disk (no
    // durable log, or an empty or new one) may have forgotten promises.
    let boot = if !records.is_empty() {
        Boot::Durable(records)
    } else if reg.rejoin {
        match info.caps.rejoin {
            Rejoin::Recovers => Boot::Amnesia,
            Rejoin::NeedsVotes if a.durable => Boot::Amnesia,
            Rejoin::NeedsVotes => bail!(
                "a {} replica cannot rejoin without its votes: restart it with --durable and its old --data-dir",
                info.name
            ),
            Rejoin::Never => bail!(
                "a {} replica keeps no durable log, so it cannot rejoin with its votes: start a fresh deployment",
                info.name
            ),
        }
    } else {
        Boot::Fresh
    };
    let settings = settings(&a, core_id, n, shards);
    let path = log.as_ref().map(|(_, p)| p.clone());
    let handle = rt.handle().clone();
    let serve = Serve {
        settings,
        boot,
        durable: log.is_some(),
        start: Box::new(move |table: RpcTable| {
            let mut tcfg = TransportConfig::new(core_id, peers);
            tcfg.id_offset = base;
            tcfg.max_frame = a.max_frame;
            tcfg.control = a.control;
            tcfg.client_queue = a.client_queue;
            let transport = Transport::start(&handle, tcfg, Arc::new(table), peer_l, client_l);
            if a.link_delay_ms > 0.0 {
                let d = Duration::from_secs_f64(a.link_delay_ms / 1e3);
                transport
                    .faults()
                    .set_link(u64::MAX, d, Duration::ZERO, 0.0, 0.0);
            }
            for (g, ms) in a.link_delays_ms.iter().enumerate() {
                let in_shard = mesh.contains(&g);
                if *ms > 0.0 && in_shard && g != me as usize {
                    let d = Duration::from_secs_f64(ms / 1e3);
                    transport.faults().set_link(
                        1 << (g - base as usize),
                        d,
                        Duration::ZERO,
                        0.0,
                        0.0,
                    );
                }
            }
            master_link::keep_link(
                &handle,
                transport.clone(),
                a.master.clone(),
                req,
                master_stream,
            );
            println!("replica {me} serving");
            Driver::new(transport, log.map(|(l, _)| l))
        }),
    };
    protocols::visit(info.name, serve)
        .context(protocols::unknown(info.name))?
        .map_err(|e| match path {
            Some(p) => e.context(format!("durable log {}", p.display())),
            None => e,
        })
}

/// `--param NAME=VALUE`.
fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, not {s:?}"))
}

/// What the flags ask of the protocol core of replica `id` (its id in the
/// core) of `n` per shard.
fn settings(a: &Args, id: ReplicaId, n: usize, shards: usize) -> Settings {
    let ms = |v: u64| v.saturating_mul(1_000_000);
    let mut params = Vec::new();
    if let Some(c) = &a.coord {
        params.push(("coord".to_string(), c.clone()));
    }
    if let Some(t) = a.coord_timeout_ms {
        params.push(("coord-timeout-ms".to_string(), t.to_string()));
    }
    params.extend(a.params.iter().cloned());
    Settings {
        id,
        n,
        shards,
        durable: a.durable,
        thrifty: a.thrifty,
        batch: a.batch,
        batch_max: Some(a.batch_max),
        reply_after_exec: a.reply_after_exec,
        max_command: Some(a.max_command),
        max_frame: Some(a.max_frame),
        gc_horizon: Some(a.gc_horizon),
        compact_bytes: Some(a.compact_mb.max(1) << 20),
        snapshot_ratio: Some(a.snapshot_ratio),
        window: None,
        pipeline: a.pipeline,
        snapshot_chunk: Some(a.snapshot_chunk),
        snapshot_timeout_ns: None,
        max_gaps: Some(a.max_gaps),
        max_far: Some(a.max_far),
        dedup_ring: Some(a.dedup_ring),
        election_timeout_ns: Some(ms(a.election_timeout_ms)),
        hint_quiet_ns: Some(ms(a.election_hint_quiet_ms)),
        record_commits: false,
        broken: a.broken.clone(),
        params,
    }
}

/// Boots a throwaway replica of one to see that the protocol takes the settings.
struct Validate(Settings);

impl protocols::Visit for Validate {
    type Out = anyhow::Result<()>;

    fn visit<P: Protocol>(self) -> anyhow::Result<()> {
        P::boot(&self.0, Boot::Fresh, 0, &mut Effects::without_persistence())?;
        Ok(())
    }
}

/// Boots the chosen protocol's core, starts the transport with its message
/// codes registered, and runs it in the shared runtime.
struct Serve {
    settings: Settings,
    boot: Boot,
    durable: bool,
    /// Starts the transport (and the master link) on the filled rpc table.
    start: Box<dyn FnOnce(RpcTable) -> Driver>,
}

impl protocols::Visit for Serve {
    type Out = anyhow::Result<()>;

    fn visit<P: Protocol>(self) -> anyhow::Result<()> {
        let mut fx = if self.durable {
            Effects::default()
        } else {
            Effects::without_persistence()
        };
        let core = P::boot(&self.settings, self.boot, 0, &mut fx)?;
        let mut table = RpcTable::new();
        let lanes = runtime::register::<P>(&mut table);
        let driver = (self.start)(table);
        runtime::run(core, lanes, driver, fx)
            .context("the durable log failed; stopping so as not to vote without it")?;
        Ok(())
    }
}
