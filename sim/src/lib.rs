//! # sim: deterministic simulation of protocol cores
//!
//! The same pure cores the servers run, driven by an in-memory network and
//! virtual time, everything drawn from one seed: a failing seed replays
//! exactly. The engine plays the network (delay, loss, duplication,
//! partitions), the disks (what a core persisted survives a crash when the run
//! is durable), the master (it asks a live, up-to-date replica to lead when no
//! leader is alive) and closed-loop clients that retry with the same
//! (client id, seq) and record a history.
//!
//! After every event it checks that no two replicas committed different values
//! in the same slot. At the end it heals everything, lets the group settle,
//! checks that every replica executed all it committed and that the replicas
//! converged (and, unless the protocol is leaderless, that one leads), and runs the linearizability checker on
//! the clients' history (which also catches a lost acknowledged write).
//!
//! Deployments may be sharded ([`Config::shards`]): S groups of N replicas,
//! keys mapped to shards by `genericsmr::shard::shard_of`. A protocol with a
//! sharded mesh (`Caps::sharded_mesh`) runs over every replica with global
//! ids; any other runs one independent group per shard with local ids.
//! Protocols with `Caps::multi_dispatch` can be driven by chained
//! multi-dispatch clients instead ([`Config::chains`], see [`chains`]),
//! whose histories the MDL checkers judge. Scripted faults ([`triggers`])
//! fire on what replicas send or reply, or at a time.
//!
//! A protocol plugs in by implementing [`genericsmr::protocol::Protocol`],
//! the same trait the runtime drives.

#![warn(missing_docs)]

pub mod chains;
pub mod conformance;
pub mod manual;
pub mod triggers;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use checker::history::{Outcome, Record};
use genericsmr::command::Command;
use genericsmr::effects::{Dest, Effects, Reply};
use genericsmr::messages::{role, Propose, ProposeReply, ReplyStatus, StatusReply};
use genericsmr::{ConnId, ReplicaId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub use chains::{Chains, Script};
use genericsmr::messages::Ping;
pub use genericsmr::protocol::{Boot, Protocol};
use genericsmr::protocol::{Rejoin, Settings};
use genericsmr::rpc_table::Source;
use genericsmr::shard::shard_of;
pub use triggers::{ClientDelay, MsgMatch, Then, Trigger, When};

/// Thresholds a simulation sets low, so that a run of a few hundred
/// operations crosses what a deployment meets after many thousands. `None`
/// keeps the protocol's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tuning {
    /// Executed instances or slots a replica keeps per log before it forgets
    /// them (a peer further behind needs a snapshot).
    pub gc_horizon: Option<u64>,
    /// How far a slot or instance number may run ahead of what is executed.
    pub window: Option<u64>,
    /// Bytes of snapshot in one chunk.
    pub chunk_bytes: Option<usize>,
    /// Gaps in a client's executed sequence numbers the dedup table keeps.
    pub max_gaps: Option<usize>,
    /// Bytes of executed commands (or of durable records) that trigger a
    /// compaction, whatever the entry counts say.
    pub compact_bytes: Option<usize>,
    /// Election timeout of protocols whose replicas elect their own leader.
    pub election_timeout_ns: Option<u64>,
    /// Most slots a leader has proposed and not yet seen chosen before it
    /// holds client requests back.
    pub pipeline: Option<u64>,
}

impl Tuning {
    /// The settings replica `id` of `n` boots with: these thresholds, the
    /// protocol's defaults for the rest, and a record of commits kept for
    /// the agreement check.
    pub fn settings(&self, id: ReplicaId, n: usize) -> Settings {
        Settings {
            gc_horizon: self.gc_horizon,
            window: self.window,
            snapshot_chunk: self.chunk_bytes,
            // A lost chunk is asked for again as soon as a lost vote would be.
            snapshot_timeout_ns: Some(400_000_000),
            max_gaps: self.max_gaps,
            compact_bytes: self.compact_bytes,
            election_timeout_ns: self.election_timeout_ns,
            pipeline: self.pipeline,
            record_commits: true,
            ..Settings::new(id, n)
        }
    }
}

/// One simulation's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Replicas.
    pub n: usize,
    /// The seed every random choice comes from.
    pub seed: u64,
    /// Virtual time with clients and faults, nanoseconds; then everything heals and settles.
    pub duration_ns: u64,
    /// Closed-loop clients.
    pub clients: usize,
    /// Keys the clients use (few keys: more contention).
    pub keys: u64,
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub dup: f64,
    /// One-way delay range, nanoseconds (reordering comes from the spread).
    pub delay_ns: (u64, u64),
    /// Crash and restart replicas (at most F at a time).
    pub crashes: bool,
    /// Partition the replicas now and then.
    pub partitions: bool,
    /// Replicas keep what they persist across crashes; otherwise they restart empty.
    pub durable: bool,
    /// Stop (as a failure) after this many events.
    pub max_events: u64,
    /// Probability, at each master check (every 50 ms), that the master wrongly
    /// suspects a live leader and asks another replica to lead.
    pub suspicion: f64,
    /// Whether the simulated master runs at all. Off, a leader-based protocol
    /// must elect its leaders itself.
    pub master: bool,
    /// Check after every event that no two replicas committed different values
    /// in one slot. Off, only the clients' history judges the run (to show the
    /// checker catches what the invariant would).
    pub check_agreement: bool,
    /// Thresholds set low for this run.
    pub tuning: Tuning,
    /// One replica is down for most of the faulty phase (long enough for the
    /// others to forget what it needs, with a low `gc_horizon`).
    pub outage: bool,
    /// Shards of `n` replicas each (1: one group).
    pub shards: usize,
    /// Multi-dispatch clients instead of closed-loop ones (protocols with
    /// `Caps::multi_dispatch`); the faulty phase then ends when they have
    /// issued all their requests (or at `duration_ns`).
    pub chains: Option<Chains>,
    /// Scripted faults.
    pub triggers: Vec<Trigger>,
    /// Extra delays of some clients' messages.
    pub client_delays: Vec<ClientDelay>,
    /// Replicas crashed by a trigger restart this long after (ns); `None`:
    /// they stay down until the faulty phase ends.
    pub restart_after_ns: Option<u64>,
    /// Replicas send phase-2 messages to a bare majority only.
    pub thrifty: bool,
    /// Protocol parameters (`Settings::params`), after the seed's variant
    /// (`Protocol::SIM_VARIANTS`), so these win.
    pub params: Vec<(String, String)>,
    /// How often the master looks at the replicas (ns).
    pub master_every_ns: u64,
}

impl Config {
    /// A faulty default: 3 replicas, 3 clients, 3 keys, 2 s of faults.
    pub fn new(seed: u64) -> Self {
        Config {
            n: 3,
            seed,
            duration_ns: 2_000_000_000,
            clients: 3,
            keys: 3,
            drop: 0.02,
            dup: 0.01,
            delay_ns: (50_000, 2_000_000),
            crashes: true,
            partitions: true,
            durable: true,
            max_events: 2_000_000,
            suspicion: 0.02,
            master: true,
            check_agreement: true,
            tuning: Tuning {
                // Every other seed forgets executed instances after a handful,
                // so snapshots and state transfer run in short runs too.
                gc_horizon: (seed % 2 == 1).then_some([2, 4, 16, 64][(seed / 2 % 4) as usize]),
                window: None,
                chunk_bytes: (seed % 2 == 1).then_some(256),
                max_gaps: (seed % 4 == 3).then_some(4),
                // One seed in four compacts by bytes: a few kB, crossed
                // within a run whatever its entry counts.
                compact_bytes: (seed % 4 == 2).then_some(2048),
                // Short enough that elections happen within a run's faults.
                election_timeout_ns: Some(300_000_000),
                pipeline: None,
            },
            outage: seed.is_multiple_of(3),
            shards: 1,
            chains: None,
            triggers: Vec::new(),
            client_delays: Vec::new(),
            restart_after_ns: None,
            thrifty: false,
            params: Vec::new(),
            master_every_ns: 50_000_000,
        }
    }

    /// A failure-free multi-dispatch run: 2 shards of 3, 3 chained clients
    /// of 15 requests of 1 to 4 operations on 4 keys, one-way delays of 0.5
    /// to 1 ms, no disks, leaders appointed by the master (elections off:
    /// an election timeout of 0), which looks every 20 ms. Faults come from
    /// the fields and triggers a test sets.
    pub fn chained(seed: u64) -> Self {
        Config {
            shards: 2,
            duration_ns: 60_000_000_000,
            keys: 4,
            drop: 0.0,
            dup: 0.0,
            delay_ns: (500_000, 1_000_000),
            crashes: false,
            partitions: false,
            durable: false,
            suspicion: 0.0,
            outage: false,
            max_events: 20_000_000,
            chains: Some(Chains::default()),
            tuning: Tuning {
                election_timeout_ns: Some(0),
                ..Tuning::default()
            },
            master_every_ns: 20_000_000,
            ..Config::new(seed)
        }
    }

    /// The chaos mix of multi-dispatch runs (tests and `bench sim`), for
    /// `seed`: thrifty replicas every third seed, fanout up to 8 on 5 keys,
    /// jittery links losing `drop`, sometimes stalled chains, and (with
    /// `crashes`) one leader crash: every fourth seed a leader is cut off
    /// for a while and then back (a stale leader), every third one crashes
    /// as it sends its first message to another shard (half of them let
    /// that message out), the others at a time; every seventh another
    /// shard's leader crashes too. Half the seeds keep disks and restart
    /// crashed replicas on them, and one in eight of those also crashes a
    /// whole shard at once.
    pub fn chained_chaos(seed: u64, shards: usize, n: usize, crashes: bool, drop: f64) -> Self {
        let mut c = Config::chained(seed);
        c.shards = shards;
        c.n = n;
        c.thrifty = seed % 3 == 2;
        c.keys = 5;
        c.drop = drop;
        c.delay_ns = (500_000, 2_500_000);
        if let Some(ch) = c.chains.as_mut() {
            ch.fanout = 8;
            ch.requests = 12;
            ch.lose_per_mille = if seed.is_multiple_of(5) { 50 } else { 0 };
        }
        if !crashes {
            return c;
        }
        let sh = (seed % shards as u64) as usize;
        if seed % 4 == 1 {
            c.triggers.push(Trigger {
                shard: sh,
                when: When::At(25_000_000 + (seed % 50) * 1_000_000),
                then: Then::Isolate {
                    heal_after: 150_000_000 + (seed % 7) * 50_000_000,
                },
            });
        } else if seed.is_multiple_of(3) {
            let escape = if seed.is_multiple_of(2) {
                MsgMatch::any()
            } else {
                MsgMatch::none()
            };
            c.triggers.push(Trigger {
                shard: sh,
                when: When::SendsAcross {
                    after: 30_000_000,
                    msg: MsgMatch::any(),
                },
                then: Then::Crash {
                    escape,
                    replies_escape: false,
                },
            });
        } else {
            c.triggers
                .push(Trigger::crash_at(25_000_000 + (seed % 100) * 1_000_000, sh));
        }
        if seed.is_multiple_of(7) && shards > 1 {
            c.triggers
                .push(Trigger::crash_at(40_000_000, (sh + 1) % shards));
        }
        if seed % 8 >= 4 {
            c.durable = true;
            c.restart_after_ns = Some(100_000_000 + (seed % 5) * 100_000_000);
            if seed % 64 >= 56 {
                c.triggers.push(Trigger {
                    shard: (sh + 1) % shards,
                    when: When::At(60_000_000 + (seed % 40) * 1_000_000),
                    then: Then::Outage,
                });
            }
        }
        c
    }
}

/// What a simulation found.
#[derive(Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Events processed.
    pub events: u64,
    /// Operations the clients got answered.
    pub acked: u64,
    /// The first broken invariant, if any.
    pub violation: Option<String>,
    /// The checker's report on the clients' history.
    pub checker: checker::Report,
    /// The event trace, when asked for.
    pub trace: Vec<String>,
    /// Snapshots the replicas installed from peers (over every life of
    /// every replica).
    pub snapshots_installed: u64,
    /// Restarts that began from a durable snapshot (a compacted log).
    pub snapshot_boots: u64,
    /// The clients' history (with chain links in multi-dispatch runs).
    pub history: Vec<Record>,
    /// In multi-dispatch runs, `logs[shard][i]`: the executed order of the
    /// shard's i-th live replica, as (client, seq).
    pub logs: Vec<Vec<Vec<(u64, u64)>>>,
    /// Latency of each multi-dispatch request answered in full (ns).
    pub request_latency_ns: Vec<u64>,
    /// Scripted crashes, cuts and depositions: (time, replica).
    pub crashed: Vec<(u64, ReplicaId)>,
    /// Restarts of crashed replicas.
    pub restarts: u64,
    /// Per shard, the live replica leading it at the end (the highest
    /// ballot if several think so), if any.
    pub leaders: Vec<Option<ReplicaId>>,
}

impl Report {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.violation.is_none() && self.checker.verdict == checker::Verdict::Ok
    }
}

enum Kind<M> {
    Deliver {
        from: ReplicaId,
        to: ReplicaId,
        msg: M,
    },
    Propose {
        client: usize,
        to: ReplicaId,
        cmd: Command,
    },
    /// A multi-dispatch client's message.
    ClientMsg {
        client: usize,
        to: ReplicaId,
        msg: M,
    },
    Reply {
        client: usize,
        reply: ProposeReply,
    },
    Tick(ReplicaId),
    ClientTimer(usize),
    /// A multi-dispatch client's next request.
    Issue(usize),
    /// A multi-dispatch client's retry of one operation.
    Retry {
        client: usize,
        idx: usize,
    },
    Crash,
    Outage,
    Restart(ReplicaId),
    Partition,
    Heal,
    Master,
    /// A trigger's time.
    Trigger(usize),
    /// The end of a scripted cut.
    Uncut(ReplicaId),
}

struct Event<M> {
    time: u64,
    seq: u64,
    kind: Kind<M>,
}

impl<M> PartialEq for Event<M> {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl<M> Eq for Event<M> {}
impl<M> PartialOrd for Event<M> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
/// Earliest first (the heap is a max-heap), ties by insertion order.
impl<M> Ord for Event<M> {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.time, o.seq).cmp(&(self.time, self.seq))
    }
}

struct Node<R> {
    core: Option<R>,
    disk: BytesMut,
    /// The base record of the last compaction (the snapshot file), framed.
    snapshot: Option<BytesMut>,
    /// A compaction whose snapshot file is still being written, as the
    /// runtime's disk does it beside the event loop ([`genericsmr::disk`]):
    /// its base record, and every record persisted since it began (its
    /// tail first: the `.next` file), which become the log once the
    /// snapshot is in place.
    pending: Option<(BytesMut, BytesMut)>,
    checked_upto: u64,
}

struct Client {
    id: u64,
    seq: u64,
    /// The replica (local id) it sends to, per shard.
    target: Vec<ReplicaId>,
    op: Option<(Command, u64, u64)>, // command, invoked at, last sent at
}

const TICK: u64 = 5_000_000;
const ATTEMPT: u64 = 300_000_000;
const GIVE_UP: u64 = 3_000_000_000;
const SETTLE: u64 = 4_000_000_000;
/// The connection the master's pings come on (its answers are dropped).
const MASTER_CONN: ConnId = ConnId::MAX;

struct Sim<R: Protocol> {
    cfg: Config,
    rng: SmallRng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Event<R::Msg>>,
    /// Every replica of every shard, by global id.
    nodes: Vec<Node<R>>,
    /// side[i]: which side of the current partition replica i is on.
    side: Vec<u8>,
    /// Cut off from everyone by a trigger (but running).
    cut: Vec<bool>,
    /// Cut off from its own shard by a trigger, for good (but running).
    deposed: Vec<bool>,
    clients: Vec<Client>,
    chain_clients: Vec<chains::ChainClient>,
    history: Vec<Record>,
    /// Per shard: position -> (hash of what was first seen committed there, by whom).
    chosen: Vec<HashMap<u64, (u64, ReplicaId)>>,
    /// Per shard: whom the master asked to lead, and when.
    asked: Vec<Option<(ReplicaId, u64)>>,
    /// Per shard: the leader the master sees (global id).
    leaders: Vec<Option<ReplicaId>>,
    /// Which triggers fired.
    fired: Vec<bool>,
    crashed: Vec<(u64, ReplicaId)>,
    restarts: u64,
    latencies: Vec<u64>,
    /// When the faulty phase ends (ns).
    fault_end: u64,
    violation: Option<String>,
    trace: Option<Vec<String>>,
    acked: u64,
    /// Snapshots installed by replicas that crashed since.
    snapshots_installed: u64,
    snapshot_boots: u64,
    fx: Effects<R::Msg>,
}

/// Runs one simulation.
pub fn run<R: Protocol>(cfg: &Config, trace: bool) -> Report {
    let total = cfg.n * cfg.shards.max(1);
    let mut cfg = cfg.clone();
    cfg.shards = cfg.shards.max(1);
    if let Some(ch) = &cfg.chains {
        cfg.clients = cfg.clients.max(ch.scripts.len());
    }
    let chained = cfg.chains.is_some();
    let mut s: Sim<R> = Sim {
        rng: SmallRng::seed_from_u64(cfg.seed),
        now: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        nodes: (0..total)
            .map(|_| Node {
                core: None,
                disk: BytesMut::new(),
                snapshot: None,
                pending: None,
                checked_upto: 0,
            })
            .collect(),
        side: vec![0; total],
        cut: vec![false; total],
        deposed: vec![false; total],
        clients: (0..if chained { 0 } else { cfg.clients })
            .map(|c| Client {
                id: (cfg.seed << 8) | (c as u64 + 1),
                seq: 0,
                target: vec![0; cfg.shards],
                op: None,
            })
            .collect(),
        chain_clients: (0..if chained { cfg.clients } else { 0 })
            .map(|_| chains::ChainClient::default())
            .collect(),
        history: Vec::new(),
        chosen: vec![HashMap::new(); cfg.shards],
        asked: vec![None; cfg.shards],
        leaders: vec![None; cfg.shards],
        fired: vec![false; cfg.triggers.len()],
        crashed: Vec::new(),
        restarts: 0,
        latencies: Vec::new(),
        fault_end: cfg.duration_ns,
        violation: None,
        trace: trace.then(Vec::new),
        acked: 0,
        snapshots_installed: 0,
        snapshot_boots: 0,
        fx: Effects::default(),
        cfg,
    };
    let cfg = s.cfg.clone();
    for r in 0..total {
        s.boot(r as ReplicaId, Boot::Fresh);
        s.at(TICK, Kind::Tick(r as ReplicaId));
    }
    if cfg.master || chained {
        // Without the master, its looks only tell chained clients who leads.
        s.at(1_000_000, Kind::Master);
    }
    for c in 0..s.clients.len() {
        let t = s.rng.gen_range(10_000_000..50_000_000);
        s.at(t, Kind::ClientTimer(c));
    }
    if chained {
        s.start_chains();
    }
    s.schedule_triggers();
    if cfg.crashes {
        let t = s.rng.gen_range(100_000_000..600_000_000);
        s.at(t, Kind::Crash);
    }
    if cfg.crashes && cfg.outage {
        let t = s.rng.gen_range(20_000_000..300_000_000);
        s.at(t, Kind::Outage);
    }
    if cfg.partitions {
        let t = s.rng.gen_range(100_000_000..800_000_000);
        s.at(t, Kind::Partition);
    }
    s.at(cfg.duration_ns, Kind::Heal);
    let mut events = 0;
    while let Some(e) = s.queue.pop() {
        if e.time > s.fault_end + SETTLE || s.violation.is_some() {
            break;
        }
        events += 1;
        if events > cfg.max_events {
            s.violation = Some(format!(
                "more than {} events: the simulation does not settle",
                cfg.max_events
            ));
            break;
        }
        s.now = e.time;
        s.handle(e.kind);
        if chained && s.faulty() && s.chains_done() {
            // Every request is answered: heal, and let the replicas settle.
            s.fault_end = s.now;
            s.at(s.now, Kind::Heal);
        }
    }
    s.finish();
    let (logs, stamps) = if chained {
        s.executed_logs()
    } else {
        Default::default()
    };
    if chained && s.violation.is_none() {
        s.violation = s.check_chains(&logs, &stamps).err();
    }
    let verdict = if chained {
        let mut r = checker::mdl::check_mdl(&s.history, &checker::linear::Options::default());
        // The search never calls a history vacuous (HistoryStats::judge does).
        if r.verdict == checker::Verdict::Vacuous {
            r.verdict = checker::Verdict::Ok;
        }
        r
    } else {
        checker::check(&s.history, &checker::linear::Options::default())
    };
    let live: u64 = s
        .nodes
        .iter()
        .filter_map(|n| n.core.as_ref())
        .map(|c| c.snapshots().0)
        .sum();
    let leaders = (0..s.cfg.shards).map(|sh| s.leading(sh, false)).collect();
    Report {
        seed: s.cfg.seed,
        events,
        acked: s.acked,
        violation: s.violation,
        checker: verdict,
        trace: s.trace.unwrap_or_default(),
        snapshots_installed: s.snapshots_installed + live,
        snapshot_boots: s.snapshot_boots,
        history: s.history,
        logs,
        request_latency_ns: s.latencies,
        crashed: s.crashed,
        restarts: s.restarts,
        leaders,
    }
}

impl<R: Protocol> Sim<R> {
    /// Replicas in the deployment.
    fn total(&self) -> usize {
        self.nodes.len()
    }

    /// The shard of replica `g`.
    fn shard(&self, g: ReplicaId) -> usize {
        genericsmr::shard::shard_of_replica(g, self.cfg.n)
    }

    /// The global ids of shard `sh`'s replicas.
    fn members(&self, sh: usize) -> std::ops::Range<usize> {
        genericsmr::shard::members(sh, self.cfg.n)
    }

    /// The replica of shard `sh` that leads as far as one can see (up, not
    /// cut off or deposed, and of the highest ballot if several claim it);
    /// `visible` also leaves out those the master cannot see.
    fn leading(&self, sh: usize, visible: bool) -> Option<ReplicaId> {
        self.members(sh)
            .filter(|r| !self.cut[*r] && !self.deposed[*r])
            .filter(|r| !visible || !self.faulty() || self.side[*r] == 0)
            .filter_map(|r| self.nodes[r].core.as_ref().map(|c| (r, c.status(0))))
            .filter(|(_, s)| s.role == role::LEADER)
            .max_by_key(|(_, s)| s.ballot)
            .map(|(r, _)| r as ReplicaId)
    }

    /// The leader of shard `sh` a client believes in (the master's view, or
    /// the shard's first replica).
    fn leader_of(&self, sh: usize) -> ReplicaId {
        self.leaders[sh].unwrap_or(self.members(sh).start as ReplicaId)
    }

    /// Crashes replica `r`: its core is gone (what it persisted stays).
    fn kill(&mut self, r: ReplicaId) {
        if let Some(c) = self.nodes[r as usize].core.take() {
            self.snapshots_installed += c.snapshots().0;
        }
        // A compaction under way: its snapshot file was renamed into place
        // before the crash, or not; the log is the old one either way.
        if let Some((base, _)) = self.nodes[r as usize].pending.take() {
            if self.rng.gen_bool(0.5) {
                self.nodes[r as usize].snapshot = Some(base);
            }
        }
    }

    fn at(&mut self, time: u64, kind: Kind<R::Msg>) {
        self.seq += 1;
        self.queue.push(Event {
            time,
            seq: self.seq,
            kind,
        });
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            t.push(format!("{:>10.3} ms  {}", self.now as f64 / 1e6, line()));
        }
    }

    fn faulty(&self) -> bool {
        self.now < self.fault_end
    }

    /// Whether a crashed replica can come back: with its disk, or by
    /// recovering without one.
    fn can_restart(&self) -> bool {
        self.cfg.durable || R::CAPS.rejoin == Rejoin::Recovers
    }

    fn boot(&mut self, r: ReplicaId, how: Boot) {
        let mut fx = std::mem::take(&mut self.fx);
        let n = self.cfg.n;
        let id = if R::CAPS.sharded_mesh {
            r
        } else {
            genericsmr::shard::local_id(r, n)
        };
        let mut settings = self.cfg.tuning.settings(id, n);
        settings.shards = self.cfg.shards;
        settings.thrifty = self.cfg.thrifty;
        if !R::SIM_VARIANTS.is_empty() {
            let v = R::SIM_VARIANTS[(self.cfg.seed % R::SIM_VARIANTS.len() as u64) as usize];
            settings
                .params
                .extend(v.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        }
        settings.params.extend(self.cfg.params.iter().cloned());
        // The simulator's own settings and records: a failure is a bug worth a loud stop.
        let core = R::boot(&settings, how, self.now, &mut fx)
            .unwrap_or_else(|e| panic!("replica {r} cannot boot: {e}"));
        self.nodes[r as usize].core = Some(core);
        self.nodes[r as usize].checked_upto = 0;
        self.fx = fx;
        self.effects(r);
        self.check_agreement(r);
    }

    /// Runs `f` on replica `r` (if it is up), then carries out its effects.
    /// Whether replica `r` takes no client requests now
    /// ([`Protocol::accepting`]): as in the runtime, they wait (here, a tick
    /// at a time) until it does.
    fn holds_clients(&self, r: ReplicaId) -> bool {
        self.nodes[r as usize]
            .core
            .as_ref()
            .is_some_and(|c| !c.accepting())
    }

    fn on(&mut self, r: ReplicaId, f: impl FnOnce(&mut R, u64, &mut Effects<R::Msg>)) {
        let now = self.now;
        let mut fx = std::mem::take(&mut self.fx);
        if let Some(core) = self.nodes[r as usize].core.as_mut() {
            f(core, now, &mut fx);
            core.flush(now, &mut fx);
        }
        self.fx = fx;
        self.effects(r);
        self.check_agreement(r);
    }

    fn effects(&mut self, r: ReplicaId) {
        // Persisted before anything is sent, as the runtime's driver does.
        let disk = self.fx.take_disk();
        if self.cfg.durable {
            // As the runtime's disk does: a compaction's snapshot is written
            // beside the loop, done at some later round (at the latest when
            // the next compaction comes); until then the tail and later
            // records follow the old log (in the `.next` file), and a crash
            // finds both with or without the new snapshot (see `kill`).
            let pending = self.nodes[r as usize].pending.is_some();
            if pending && (disk.compaction.is_some() || self.rng.gen_bool(0.5)) {
                let node = &mut self.nodes[r as usize];
                if let Some((base, since)) = node.pending.take() {
                    node.snapshot = Some(base);
                    node.disk = since;
                }
            }
            let node = &mut self.nodes[r as usize];
            node.disk.extend_from_slice(&disk.records);
            if let Some((_, since)) = &mut node.pending {
                since.extend_from_slice(&disk.records);
            }
            if let Some((at, base)) = disk.compaction {
                let at = at.min(disk.records.len());
                node.pending = Some((base.framed(), BytesMut::from(&disk.records[at..])));
            }
        }
        if !self.cfg.triggers.is_empty() {
            self.step_triggers(r);
        }
        let sends: Vec<(Dest, R::Msg)> = self.fx.sends.drain(..).collect();
        let n = self.cfg.n;
        let base = self.members(self.shard(r)).start;
        for (dest, msg) in sends {
            let to: Vec<ReplicaId> = if R::CAPS.sharded_mesh {
                dest.targets(r, self.total()).collect()
            } else {
                let me = genericsmr::shard::local_id(r, n);
                dest.targets(me, n)
                    .map(|j| (base + j as usize) as ReplicaId)
                    .collect()
            };
            for j in to {
                self.send(r, j, msg.clone());
            }
        }
        let replies: Vec<(ConnId, Reply)> = self.fx.replies.drain(..).collect();
        for (conn, reply) in replies {
            if self.cut[r as usize] {
                continue;
            }
            if let Reply::Propose(p) = reply {
                let d = self.delay();
                self.at(
                    self.now + d,
                    Kind::Reply {
                        client: conn as usize,
                        reply: p,
                    },
                );
            }
        }
    }

    fn delay(&mut self) -> u64 {
        let (lo, hi) = self.cfg.delay_ns;
        self.rng.gen_range(lo..=hi.max(lo))
    }

    /// Whether messages between `a` and `b` are lost for good: a trigger cut
    /// one off, or deposed one and they share a shard.
    fn severed(&self, a: ReplicaId, b: ReplicaId) -> bool {
        let (a, b) = (a as usize, b as usize);
        self.cut[a]
            || self.cut[b]
            || (self.shard(a as ReplicaId) == self.shard(b as ReplicaId)
                && (self.deposed[a] || self.deposed[b]))
    }

    fn send(&mut self, from: ReplicaId, to: ReplicaId, msg: R::Msg) {
        if self.severed(from, to) {
            return;
        }
        if self.faulty() {
            if self.side[from as usize] != self.side[to as usize]
                || self.rng.gen_bool(self.cfg.drop)
            {
                return;
            }
            if self.rng.gen_bool(self.cfg.dup) {
                let d = self.delay();
                self.at(
                    self.now + d,
                    Kind::Deliver {
                        from,
                        to,
                        msg: msg.clone(),
                    },
                );
            }
        }
        let d = self.delay();
        self.at(self.now + d, Kind::Deliver { from, to, msg });
    }

    fn check_agreement(&mut self, r: ReplicaId) {
        if !self.cfg.check_agreement {
            return;
        }
        let Some(core) = self.nodes[r as usize].core.as_ref() else {
            return;
        };
        let from = self.nodes[r as usize].checked_upto;
        let committed = core.committed_from(from);
        let commit_index = core.status(0).commit_index;
        let sh = self.shard(r);
        for (slot, h) in committed {
            let (first, by) = *self.chosen[sh].entry(slot).or_insert((h, r));
            if first != h && self.violation.is_none() {
                self.violation = Some(format!(
                    "agreement: replica {r} committed a different value in shard {sh}'s slot {slot} than replica {by}"
                ));
            }
        }
        self.nodes[r as usize].checked_upto = commit_index;
    }

    fn handle(&mut self, k: Kind<R::Msg>) {
        match k {
            Kind::Deliver { from, to, msg } => {
                if self.faulty() && self.side[from as usize] != self.side[to as usize] {
                    return; // a partition cut it off in flight
                }
                if self.severed(from, to) {
                    return;
                }
                self.log(|| format!("{from} -> {to}  {}", short(&msg)));
                // The core knows its peers by local id, unless it spans every shard.
                let src = if R::CAPS.sharded_mesh {
                    from
                } else {
                    genericsmr::shard::local_id(from, self.cfg.n)
                };
                self.on(to, |c, now, fx| c.handle(now, Source::Peer(src), msg, fx));
            }
            Kind::Propose { client, to, cmd } => {
                if self.cut[to as usize] {
                    return;
                }
                if self.holds_clients(to) {
                    return self.at(self.now + TICK, Kind::Propose { client, to, cmd });
                }
                self.log(|| {
                    format!(
                        "client {client} -> {to}  {} {:?} seq {}",
                        cmd.op.name(),
                        cmd.key,
                        cmd.seq
                    )
                });
                self.on(to, |c, now, fx| {
                    c.propose(now, client as ConnId, Propose { cmd }, fx)
                });
            }
            Kind::ClientMsg { client, to, msg } => {
                if self.cut[to as usize] {
                    return;
                }
                if self.holds_clients(to) {
                    return self.at(self.now + TICK, Kind::ClientMsg { client, to, msg });
                }
                self.log(|| format!("client {client} -> {to}  {}", short(&msg)));
                self.on(to, |c, now, fx| {
                    c.handle(now, Source::Conn(client as ConnId), msg, fx)
                });
            }
            Kind::Reply { client, reply } => {
                if self.cfg.chains.is_some() {
                    self.chain_reply(client, reply)
                } else {
                    self.client_reply(client, reply)
                }
            }
            Kind::Tick(r) => {
                self.on(r, |c, now, fx| c.tick(now, fx));
                self.at(self.now + TICK, Kind::Tick(r));
            }
            Kind::ClientTimer(c) => self.client_timer(c),
            Kind::Issue(c) => self.issue(c),
            Kind::Retry { client, idx } => self.retry(client, idx),
            Kind::Crash => self.crash(),
            Kind::Outage => {
                let up: Vec<ReplicaId> = (0..self.total() as ReplicaId)
                    .filter(|r| self.nodes[*r as usize].core.is_some())
                    .collect();
                if up.len() == self.total() {
                    let r = up[self.rng.gen_range(0..up.len())];
                    self.kill(r);
                    self.log(|| format!("crash replica {r} for a long outage"));
                    let back = (self.cfg.duration_ns * 4 / 5).max(self.now + 1);
                    self.at(back, Kind::Restart(r));
                }
            }
            Kind::Restart(r) => {
                if self.nodes[r as usize].core.is_some() || !self.can_restart() {
                    return; // restarted already, or it stays down
                }
                let how = if self.cfg.durable {
                    let node = &self.nodes[r as usize];
                    self.snapshot_boots += u64::from(node.snapshot.is_some());
                    let base = node.snapshot.as_deref().unwrap_or_default();
                    let parsed = genericsmr::durable::parse_records(base).and_then(|mut b| {
                        b.extend(genericsmr::durable::parse_records(&node.disk)?);
                        Ok(b)
                    });
                    match parsed {
                        Ok(recs) => Boot::Durable(recs),
                        Err(e) => {
                            // The simulator writes whole records: damage is a bug.
                            self.violation =
                                Some(format!("replica {r}'s disk does not parse: {e}"));
                            return;
                        }
                    }
                } else {
                    Boot::Amnesia
                };
                self.log(|| {
                    format!(
                        "restart replica {r} ({})",
                        if matches!(how, Boot::Durable(_)) {
                            "durable"
                        } else {
                            "empty"
                        }
                    )
                });
                self.restarts += 1;
                self.boot(r, how);
            }
            Kind::Partition => {
                if !self.faulty() {
                    return;
                }
                let n = self.total();
                let cut = self.rng.gen_range(1..n);
                let mut ids: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    let j = self.rng.gen_range(0..=i);
                    ids.swap(i, j);
                }
                self.side = vec![0; n];
                for &i in &ids[..cut] {
                    self.side[i] = 1;
                }
                let side = self.side.clone();
                self.log(|| format!("partition {side:?}"));
                let heal = self.rng.gen_range(200_000_000..1_200_000_000);
                self.at(self.now + heal, Kind::Heal);
            }
            Kind::Heal => {
                self.side = vec![0; self.total()];
                self.log(|| "heal".into());
                if self.faulty() {
                    if self.cfg.partitions {
                        let next = self.rng.gen_range(200_000_000..900_000_000);
                        self.at(self.now + next, Kind::Partition);
                    }
                } else {
                    // The faulty phase is over: every crashed replica comes back.
                    for r in 0..self.total() as ReplicaId {
                        if self.nodes[r as usize].core.is_none() {
                            self.at(self.now + 1, Kind::Restart(r));
                        }
                    }
                }
            }
            Kind::Master => {
                self.master();
                self.at(self.now + self.cfg.master_every_ns, Kind::Master);
            }
            Kind::Trigger(i) => self.timed_trigger(i),
            Kind::Uncut(r) => {
                self.cut[r as usize] = false;
                self.log(|| format!("replica {r} is back"));
            }
        }
    }

    fn crash(&mut self) {
        if !self.faulty() {
            return;
        }
        let f = (self.cfg.n - 1) / 2;
        let sh = if self.cfg.shards > 1 {
            self.rng.gen_range(0..self.cfg.shards)
        } else {
            0
        };
        // A replica still recovering lost state counts as down: losing state on
        // more than F replicas at once is outside what any protocol promises.
        let down = self
            .members(sh)
            .filter(|r| {
                self.nodes[*r]
                    .core
                    .as_ref()
                    .is_none_or(|c| c.status(0).role == role::RECOVERING)
            })
            .count();
        if down < f {
            let up: Vec<ReplicaId> = self
                .members(sh)
                .filter(|r| self.nodes[*r].core.is_some())
                .map(|r| r as ReplicaId)
                .collect();
            let r = up[self.rng.gen_range(0..up.len())];
            self.kill(r);
            self.log(|| format!("crash replica {r}"));
            let back = self.rng.gen_range(100_000_000..1_000_000_000);
            self.at(self.now + back, Kind::Restart(r));
        }
        let next = self.rng.gen_range(200_000_000..800_000_000);
        self.at(self.now + next, Kind::Crash);
    }

    /// The master, for each shard: if no replica it can see leads, ask the
    /// most up-to-date one. It sits on side 0 of a partition and sees only
    /// that side, and now and then it suspects a live leader wrongly, as a
    /// real failure detector does: both give the protocol competing leaders
    /// to survive. For a sharded mesh it then tells every replica who leads
    /// each shard (in its ping, as the real master does). Without
    /// `Config::master` it only updates the leaders chained clients send to.
    fn master(&mut self) {
        for sh in 0..self.cfg.shards {
            self.leaders[sh] = self.leading(sh, true);
            if !self.cfg.master {
                continue;
            }
            let visible =
                |s: &Self, r: usize| (!s.faulty() || s.side[r] == 0) && !s.cut[r] && !s.deposed[r];
            let statuses: Vec<StatusReply> = self
                .members(sh)
                .filter(|r| visible(self, *r))
                .filter_map(|r| self.nodes[r].core.as_ref().map(|c| (r, c.status(0))))
                .map(|(r, mut s)| {
                    s.replica = r as ReplicaId;
                    s
                })
                .collect();
            let false_suspicion = self.faulty() && self.rng.gen_bool(self.cfg.suspicion);
            if statuses.iter().any(|s| s.role == role::LEADER) && !false_suspicion {
                continue;
            }
            if !false_suspicion
                && self.asked[sh].is_some_and(|(r, t)| {
                    self.now < t + 500_000_000 && self.nodes[r as usize].core.is_some()
                })
            {
                continue;
            }
            let best = statuses
                .iter()
                .filter(|s| s.role != role::RECOVERING)
                .max_by_key(|s| (s.commit_index, std::cmp::Reverse(s.replica)))
                .map(|s| s.replica);
            if let Some(r) = best {
                self.log(|| format!("master asks replica {r} to lead"));
                self.asked[sh] = Some((r, self.now));
                self.on(r, |c, now, fx| c.be_leader(now, false, fx));
            }
        }
        if self.cfg.master && R::CAPS.sharded_mesh {
            let leaders = self.leaders.clone();
            for r in 0..self.total() {
                if !self.cut[r] {
                    let p = Ping {
                        nonce: 0,
                        leaders: leaders.clone(),
                    };
                    self.on(r as ReplicaId, |c, _, fx| c.ping(MASTER_CONN, p, fx));
                }
            }
        }
    }

    /// The closed-loop client's shard and replica for `cmd`.
    fn target(&self, c: usize, cmd: &Command) -> (usize, ReplicaId) {
        let sh = shard_of(&cmd.key, self.cfg.shards as u32) as usize;
        let local = self.clients[c].target[sh];
        (sh, (self.members(sh).start + local as usize) as ReplicaId)
    }

    fn client_timer(&mut self, c: usize) {
        let now = self.now;
        match self.clients[c].op.clone() {
            None if self.faulty() => self.next_op(c),
            None => return, // done: no new operations after the faulty phase
            Some((cmd, invoked, sent)) => {
                if now.saturating_sub(invoked) > GIVE_UP {
                    self.history
                        .push(Record::of(&cmd, invoked, None, Outcome::Unknown));
                    self.clients[c].op = None;
                    if self.faulty() {
                        self.next_op(c);
                    }
                } else if now.saturating_sub(sent) > ATTEMPT {
                    let n = self.cfg.n as ReplicaId;
                    let (sh, _) = self.target(c, &cmd);
                    self.clients[c].target[sh] = (self.clients[c].target[sh] + 1) % n;
                    self.resend(c);
                }
            }
        }
        self.at(now + 50_000_000, Kind::ClientTimer(c));
    }

    fn next_op(&mut self, c: usize) {
        let key = format!("k{}", self.rng.gen_range(0..self.cfg.keys));
        let cl = &mut self.clients[c];
        cl.seq += 1;
        let (id, seq) = (cl.id, cl.seq);
        let value = format!("c{c}s{seq}");
        let roll = self.rng.gen_range(0..100);
        let mut cmd = match roll {
            0..=39 => Command::put(id, seq, key, value),
            40..=84 => Command::get(id, seq, key),
            85..=92 => Command::delete(id, seq, key),
            _ => {
                let expected = self
                    .history
                    .iter()
                    .rev()
                    .find(|r| r.key == key)
                    .and_then(|r| r.value.clone());
                Command::cas(id, seq, key, expected.map(Bytes::from), value)
            }
        };
        // A closed loop: every earlier operation was answered or given up.
        cmd.acked_below = seq;
        self.clients[c].op = Some((cmd, self.now, self.now));
        self.resend(c);
    }

    fn resend(&mut self, c: usize) {
        let Some((cmd, invoked, _)) = self.clients[c].op.clone() else {
            return;
        };
        self.clients[c].op = Some((cmd.clone(), invoked, self.now));
        let (_, to) = self.target(c, &cmd);
        let d = self.delay();
        self.at(self.now + d, Kind::Propose { client: c, to, cmd });
    }

    fn client_reply(&mut self, c: usize, r: ProposeReply) {
        let Some((cmd, invoked, _)) = self.clients[c].op.clone() else {
            return;
        };
        if r.seq != cmd.seq {
            return; // a late answer to an earlier attempt
        }
        match r.status {
            ReplyStatus::Ok => {
                self.history.push(Record::of(
                    &cmd,
                    invoked,
                    Some((self.now, &r.outcome)),
                    Outcome::Ok,
                ));
                self.acked += 1;
                self.clients[c].op = None;
                if self.faulty() {
                    self.next_op(c);
                }
            }
            ReplyStatus::NotLeader | ReplyStatus::Unavailable => {
                let n = self.cfg.n as ReplicaId;
                let (sh, _) = self.target(c, &cmd);
                let now = self.clients[c].target[sh];
                // A global id (sharded mesh) or a local one: the local id either way.
                let hint = r.leader.map(|h| h % n).filter(|h| *h != now);
                self.clients[c].target[sh] = hint.unwrap_or((now + 1) % n);
                self.resend(c);
            }
            ReplyStatus::Stale | ReplyStatus::TooLarge | ReplyStatus::Failed => {
                self.history
                    .push(Record::of(&cmd, invoked, None, Outcome::Unknown));
                self.clients[c].op = None;
            }
        }
    }

    /// After the settle phase: unanswered operations are unknown, and every
    /// replica must be up, have executed all it committed, and agree with the
    /// others on what that is (so each executed everything committed
    /// anywhere); a leader-based protocol must also have a leader.
    fn finish(&mut self) {
        for c in 0..self.clients.len() {
            if let Some((cmd, invoked, _)) = self.clients[c].op.take() {
                self.history
                    .push(Record::of(&cmd, invoked, None, Outcome::Unknown));
            }
        }
        if self.cfg.chains.is_some() {
            self.finish_chains();
        }
        if self.violation.is_some() {
            return;
        }
        let mut executed = 0;
        for sh in 0..self.cfg.shards {
            // Deposed replicas never learn their shard went on without them.
            let members: Vec<usize> = self.members(sh).filter(|r| !self.deposed[*r]).collect();
            let st: Vec<StatusReply> = members
                .iter()
                .filter_map(|r| {
                    let mut s = self.nodes[*r].core.as_ref()?.status(0);
                    s.replica = *r as ReplicaId;
                    Some(s)
                })
                .collect();
            let v = if st.len() < members.len() && self.can_restart() {
                Some("a replica is still down after the settle phase".to_string())
            } else if st.is_empty() {
                Some(format!("every replica of shard {sh} is down"))
            } else if let Some(s) = st.iter().find(|s| s.executed != s.commit_index) {
                // A stall: committed but never executed (on every replica alike,
                // the convergence check below would not see it).
                Some(format!(
                    "replica {} executed {} of the {} it committed after the settle phase",
                    s.replica, s.executed, s.commit_index
                ))
            } else if let Some(s) = st
                .iter()
                .find(|s| s.digest() != st[0].digest() || s.executed != st[0].executed)
            {
                Some(format!(
                    "replicas did not converge after healing: replica {} executed {} (digest {:032x}), replica {} executed {} (digest {:032x})",
                    st[0].replica,
                    st[0].executed,
                    st[0].digest(),
                    s.replica,
                    s.executed,
                    s.digest()
                ))
            } else if !R::CAPS.leaderless && !st.iter().any(|s| s.role == role::LEADER) {
                Some(format!("no leader of shard {sh} after the settle phase"))
            } else {
                None
            };
            if v.is_some() {
                self.violation = v;
                return;
            }
            executed += st[0].executed;
        }
        if self.acked > 0 && executed == 0 {
            self.violation = Some(format!(
                "the clients got {} answers but no replica executed anything",
                self.acked
            ));
        }
    }
}

/// Seeds a test suite runs: `SIM_SEEDS` from the environment, else 500.
pub fn seeds() -> u64 {
    std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

/// Runs seeds `0..seeds()` with the configuration `mk` gives each, and panics
/// listing every failing seed (with how to replay it), or if the clients made
/// too little progress for the run to mean anything. For test suites.
pub fn check_seeds<R: Protocol>(protocol: &str, mk: impl Fn(u64) -> Config) {
    check_seed_count::<R>(protocol, seeds(), mk)
}

/// What a run of many seeds found.
pub struct Seeds {
    /// Every failing seed: (seed, broken invariant, verdict, the checker's explanation).
    pub failed: Vec<(u64, Option<String>, checker::Verdict, Option<String>)>,
    /// Operations acknowledged over all seeds.
    pub acked: u64,
    /// Snapshots installed over all seeds.
    pub snapshots: u64,
}

/// Runs seeds `0..count` with the configuration `mk` gives each.
pub fn run_seeds<R: Protocol>(count: u64, mk: impl Fn(u64) -> Config) -> Seeds {
    let mut s = Seeds {
        failed: Vec::new(),
        acked: 0,
        snapshots: 0,
    };
    for seed in 0..count {
        let r = run::<R>(&mk(seed), false);
        s.acked += r.acked;
        s.snapshots += r.snapshots_installed;
        if !r.ok() {
            s.failed.push((
                seed,
                r.violation.clone(),
                r.checker.verdict,
                r.checker.violation.map(|v| v.explanation),
            ));
        }
    }
    s
}

/// [`check_seeds`] over seeds `0..count`.
pub fn check_seed_count<R: Protocol>(protocol: &str, count: u64, mk: impl Fn(u64) -> Config) {
    let Seeds { failed, acked, .. } = run_seeds::<R>(count, mk);
    assert!(
        failed.is_empty(),
        "failing seeds (replay with bench sim --protocol {protocol} --seed N --trace): {failed:#?}"
    );
    assert!(
        acked > count * 20,
        "too little progress: {acked} operations acknowledged"
    );
}

fn short<M: Debug>(m: &M) -> String {
    let mut s = format!("{m:?}");
    if s.len() > 160 {
        s.truncate(160);
        s.push('…');
    }
    s
}
