//! The one seam every replication protocol plugs into.
//!
//! A protocol is a pure core (no sockets, threads or clocks) that implements
//! [`Protocol`]: it registers its own message codes, boots from [`Settings`]
//! (fresh, from its durable records, or with nothing after a crash), handles
//! one message at a time given `now`, and queues what it wants done in
//! [`Effects`]. The same implementation is driven by the real runtime
//! ([`crate::runtime::run`]), by the deterministic simulator (`sim`) and by
//! handler tests, and the server, bench and client find it through one
//! registry (the `protocols` crate). docs/protocols.md walks through adding one.

use bytes::Bytes;

use crate::command::Command;
use crate::effects::Effects;
use crate::effects::Reply;
use crate::messages::{LogReply, LogRequest, Ping, Pong, Propose, StatusReply};
use crate::rpc_table::{RpcTable, Source};
use crate::runtime::Inbound;
use crate::wire::{Frame, Message};
use crate::{ConnId, ReplicaId};

/// How a replica whose group knows it from before rejoins when it has no
/// votes on disk (it ran without `--durable`, or lost its data folder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejoin {
    /// It recovers what it may have promised from a majority before it votes
    /// ([`Boot::Amnesia`]).
    Recovers,
    /// It cannot vote safely without its votes: it must restart with
    /// `--durable` and its old data folder.
    NeedsVotes,
    /// It cannot rejoin at all; start a fresh deployment.
    Never,
}

/// What a protocol declares about itself, so that the runtime, the
/// simulator, the master and the tools treat it right without naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Every replica proposes and none leads (EPaxos): nobody is asked to
    /// lead, and clients may send to any replica.
    pub leaderless: bool,
    /// Replicas elect their own leader; the master only reports it and hints.
    pub elects: bool,
    /// The replica can keep its votes in a durable log (`--durable`).
    pub durable: bool,
    /// What a replica that lost its votes can do (see [`Rejoin`]).
    pub rejoin: Rejoin,
    /// The transport spans every replica of every shard and the core uses
    /// global ids (MDLin's shard leaders talk to each other); otherwise it
    /// spans the replica's own shard with local ids.
    pub sharded_mesh: bool,
    /// Clients send chained multi-dispatch requests (MDLin), which the
    /// bench drives with its multi-dispatch clients and the MDL checker.
    pub multi_dispatch: bool,
}

impl Caps {
    /// A leader the replicas elect among themselves orders every command;
    /// votes can be kept durably, and a replica that lost them must get
    /// them back before it rejoins; one unsharded group, plain clients.
    /// A leader-based protocol states what it does differently over these.
    pub const ELECTED_LEADER: Caps = Caps {
        leaderless: false,
        elects: true,
        durable: true,
        rejoin: Rejoin::NeedsVotes,
        sharded_mesh: false,
        multi_dispatch: false,
    };
    /// Every replica proposes and none leads; votes can be kept durably,
    /// and a replica that lost them must get them back before it rejoins;
    /// one unsharded group, plain clients.
    pub const LEADERLESS: Caps = Caps {
        leaderless: true,
        elects: false,
        ..Caps::ELECTED_LEADER
    };
}

/// How a replica (re)starts.
#[derive(Debug, Clone)]
pub enum Boot {
    /// For the first time.
    Fresh,
    /// After a crash, with the records it had persisted, oldest first (after
    /// a compaction: the base record of the snapshot file first, then what
    /// followed it).
    Durable(Vec<Bytes>),
    /// After a crash, with nothing: it must recover before voting.
    Amnesia,
}

impl Boot {
    /// Brings the fresh replica `r` up as this boot says: a durable restart
    /// replays its records ([`Protocol::replay`]), and a restart with nothing
    /// rejoins or refuses ([`Protocol::rejoin`]).
    pub fn start<P: Protocol>(
        self,
        mut r: P,
        now: u64,
        fx: &mut Effects<P::Msg>,
    ) -> Result<P, BootError> {
        match self {
            Boot::Fresh => {}
            Boot::Durable(records) => r.replay(now, &records)?,
            Boot::Amnesia => r.rejoin(now, fx)?,
        }
        Ok(r)
    }
}

/// Settings every protocol reads what applies to it from. Thresholds left at
/// `None` keep the protocol's own default, so the simulator can set only the
/// ones it crosses, and a protocol that has no such threshold ignores it.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// This replica's id in the core: its local id in its shard, or its
    /// global id when the protocol has a [`Caps::sharded_mesh`].
    pub id: ReplicaId,
    /// Replicas per shard.
    pub n: usize,
    /// Shards in the deployment (1 unless sharded).
    pub shards: usize,
    /// Whether the replica keeps a durable log.
    pub durable: bool,
    /// Send phase-2 messages to a bare majority only.
    pub thrifty: bool,
    /// Batch proposals that arrive together into one slot or instance.
    pub batch: bool,
    /// Most commands in one batch.
    pub batch_max: Option<usize>,
    /// Reply to writes after execution instead of at commit.
    pub reply_after_exec: bool,
    /// Largest command accepted from a client, bytes.
    pub max_command: Option<usize>,
    /// Largest frame on the network, bytes (batches must fit in one).
    pub max_frame: Option<usize>,
    /// Executed slots or instances kept for peers that still ask about them;
    /// a peer further behind gets a snapshot.
    pub gc_horizon: Option<u64>,
    /// Bytes of executed commands held in memory before a compaction (the
    /// bound that holds when batches make entries large).
    pub compact_bytes: Option<usize>,
    /// A durable compaction waits until what was executed since the last
    /// one holds this percentage of the last snapshot's bytes, so snapshot
    /// writes stay in proportion to the log (0: compact at every threshold).
    pub snapshot_ratio: Option<u32>,
    /// How far a slot or instance number may run ahead of what is executed.
    pub window: Option<u64>,
    /// Most commands a leader has proposed and not yet seen chosen (EPaxos:
    /// executed; a batch counts each, see [`crate::in_flight`]); at the
    /// bound it takes no more client requests until some are (see
    /// [`Protocol::accepting`]), so a load above what its followers keep up
    /// with waits in the client lane and then in TCP, not in its log.
    pub pipeline: Option<u64>,
    /// Bytes of snapshot in one message.
    pub snapshot_chunk: Option<usize>,
    /// How long a replica waits for the next piece of a snapshot before it
    /// asks again, ns.
    pub snapshot_timeout_ns: Option<u64>,
    /// Gaps in a client's executed sequence numbers the dedup table keeps.
    pub max_gaps: Option<usize>,
    /// Results the dedup table keeps per client past its ring (see
    /// [`crate::state::Limits::max_far`]).
    pub max_far: Option<usize>,
    /// Numbers past a client's acknowledgement whose results the dedup
    /// table keeps in a ring (see [`crate::state::Limits::ring`]).
    pub dedup_ring: Option<u64>,
    /// Election timeout of protocols whose replicas elect their own leader, ns.
    pub election_timeout_ns: Option<u64>,
    /// How long a follower must not have heard its leader before a hint from
    /// the master makes it campaign, ns.
    pub hint_quiet_ns: Option<u64>,
    /// Keep a record of every commit, for the simulator's agreement check.
    pub record_commits: bool,
    /// A deliberately broken variant, by name (tests only; a protocol refuses
    /// names it does not know, and every name in a build without its
    /// `broken` feature).
    pub broken: Option<String>,
    /// Settings only one protocol has, as `name=value` pairs (`server
    /// --param`); a protocol refuses names it does not know.
    pub params: Vec<(String, String)>,
}

impl Settings {
    /// Settings for replica `id` of an unsharded group of `n`, everything
    /// else at the protocol's defaults.
    pub fn new(id: ReplicaId, n: usize) -> Self {
        Settings {
            id,
            n,
            shards: 1,
            ..Default::default()
        }
    }

    /// The value of protocol-specific parameter `name`, if given.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses parameters outside `known` (a misspelt one would otherwise be
    /// ignored without a word).
    pub fn check_params(&self, protocol: &str, known: &[&str]) -> Result<(), BootError> {
        match self
            .params
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(BootError::Settings(format!(
                "{protocol} has no parameter {k:?} (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))),
            None => Ok(()),
        }
    }
}

/// Why a replica could not boot.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The settings do not fit the protocol.
    #[error("{0}")]
    Settings(String),
    /// A durable record does not decode.
    #[error("cannot replay the durable log: {0}")]
    Replay(String),
}

/// One operation of a multi-dispatch client ([`Caps::multi_dispatch`]), as
/// the simulator's chained clients hand it to [`Protocol::chained_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedOp {
    /// The command; its `(client, seq)` names the operation.
    pub cmd: Command,
    /// The shard that owns the command's key ([`crate::shard::shard_of`]).
    pub shard: u8,
    /// How many operations this client sent to that shard before this one
    /// (a per-shard count, so the shard can admit them in issue order).
    pub shard_seq: u64,
    /// The client's operation still outstanding when this one was issued,
    /// which this one must follow: its `seq` and shard. `None` for an
    /// operation issued with nothing outstanding.
    pub pred: Option<(u64, u8)>,
}

/// One client operation a replica executed, for checkers that compare the
/// order replicas executed in with the clients' history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    /// The operation's client session.
    pub client: u64,
    /// The operation's sequence number in that session.
    pub seq: u64,
    /// Where the protocol placed it, if it orders by number across groups
    /// (MDLin's timestamp): strictly increasing along a shard's execution and
    /// above the chain predecessor's. 0 for a protocol without one.
    pub stamp: u64,
}

/// What a replica shows a checker from inside (see [`Protocol::audit`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// The client operations it executed, in order (kept only with
    /// [`Settings::record_commits`]).
    pub executed: Vec<Executed>,
    /// Client operations it holds as a leader but has neither executed nor
    /// failed: after a settled run, a leader holding any is stuck.
    pub in_flight: usize,
    /// What those operations wait for, for failure messages.
    pub in_flight_detail: String,
}

/// Registers a protocol's own message types in the rpc table: each type
/// code goes into the lane it is drained from, with the classes of
/// connection it is accepted on.
pub struct Registrar<'a, M> {
    pub(crate) table: &'a mut RpcTable,
    pub(crate) peer: crossbeam_channel::Sender<(Source, Inbound<M>)>,
    pub(crate) client: crossbeam_channel::Sender<(Source, Inbound<M>)>,
}

impl<M: Send + 'static> Registrar<'_, M> {
    /// A message between replicas of the deployment.
    pub fn peer<T: Message + 'static>(&mut self, wrap: fn(T) -> M) {
        self.table
            .register_into(crate::rpc_table::class::PEER, self.peer.clone(), move |m| {
                Inbound::Msg(wrap(m))
            });
    }

    /// The shared snapshot messages of [`crate::snapshot`], between replicas.
    pub fn snapshots(
        &mut self,
        compacted: fn(crate::snapshot::Compacted) -> M,
        request: fn(crate::snapshot::SnapshotRequest) -> M,
        chunk: fn(crate::snapshot::SnapshotChunk) -> M,
    ) {
        self.peer(compacted);
        self.peer(request);
        self.peer(chunk);
    }

    /// A message from clients (or, with `class::PEER` in `classes`, also
    /// from peers), drained after every peer message.
    pub fn client<T: Message + 'static>(&mut self, classes: u8, wrap: fn(T) -> M) {
        self.table
            .register_into(classes, self.client.clone(), move |m| Inbound::Msg(wrap(m)));
    }
}

/// A replication protocol's core.
pub trait Protocol: Sized + Send + 'static {
    /// The name users choose it by (`--protocol NAME`).
    const NAME: &'static str;
    /// One line on what it is, for `--help` and docs.
    const ABOUT: &'static str;
    /// What it declares about itself.
    const CAPS: Caps;
    /// Parameter sets (`Settings::params`) the simulator alternates between
    /// by seed: seed `s` runs `SIM_VARIANTS[s % len]`, so that every mode a
    /// protocol has is crossed by the same seeds. Empty: its defaults only.
    const SIM_VARIANTS: &'static [&'static [(&'static str, &'static str)]] = &[];
    /// Its own messages (between replicas, and any client message beyond
    /// the shared `Propose`).
    type Msg: Frame + Clone + std::fmt::Debug + Send + 'static;

    /// The type codes and names of its messages (fault rules and tools name
    /// messages by these).
    const CODES: &'static [(u8, &'static str)];
    /// Registers each of its message types (see [`Registrar`]).
    fn register(r: &mut Registrar<'_, Self::Msg>);
    /// A fresh replica as `s` asks, with no history (`now` may seed what
    /// must differ between replicas, such as election timers).
    fn fresh(s: &Settings, now: u64) -> Result<Self, BootError>;
    /// Replays into a fresh replica the records an earlier run persisted,
    /// oldest first ([`Boot::Durable`]).
    fn replay(&mut self, now: u64, records: &[Bytes]) -> Result<(), BootError>;
    /// A restart with no records that the group knows from before
    /// ([`Boot::Amnesia`]): the replica recovers what it may have promised
    /// (sending through `fx`) before it votes, or refuses. By default it
    /// refuses: voting without its votes could undo a chosen value.
    fn rejoin(&mut self, now: u64, fx: &mut Effects<Self::Msg>) -> Result<(), BootError> {
        let _ = (now, fx);
        Err(BootError::Settings(format!(
            "a {} replica cannot rejoin without its votes: restart it with --durable and its old --data-dir",
            Self::NAME
        )))
    }
    /// Starts a replica as `boot` says: [`Protocol::fresh`], then
    /// [`Protocol::replay`] or [`Protocol::rejoin`]. `fx` takes what it must
    /// send at once (a replica recovering from amnesia asks its peers).
    fn boot(
        s: &Settings,
        boot: Boot,
        now: u64,
        fx: &mut Effects<Self::Msg>,
    ) -> Result<Self, BootError> {
        boot.start(Self::fresh(s, now)?, now, fx)
    }

    /// One of its own messages, from a peer or a connection.
    fn handle(&mut self, now: u64, src: Source, m: Self::Msg, fx: &mut Effects<Self::Msg>);
    /// A client's proposal on connection `conn`.
    fn propose(&mut self, now: u64, conn: ConnId, p: Propose, fx: &mut Effects<Self::Msg>);
    /// The master or an operator asks this replica to lead; a `hint` only
    /// makes it campaign if it has not heard its leader for a while.
    fn be_leader(&mut self, now: u64, hint: bool, fx: &mut Effects<Self::Msg>);
    /// The master's liveness probe on connection `conn`, answered by the
    /// core (so that a hung core looks dead) from its [`Protocol::status`].
    /// A protocol that learns something from the probe (MDLin: every
    /// shard's leader) overrides this and answers the same way.
    fn ping(&mut self, conn: ConnId, p: Ping, fx: &mut Effects<Self::Msg>) {
        fx.reply(conn, Reply::Pong(Pong::of(&self.status(p.nonce))));
    }
    /// Whether the core takes client requests now. While it does not, the
    /// runtime leaves them in the client lane, whose bound then holds the
    /// clients back in TCP ([`crate::gate`]): a leader whose proposals run
    /// far ahead of what its followers have chosen stops taking more, rather
    /// than growing its log (and the phase 1 a successor would have to run
    /// over it) without limit. It must become true again without any client
    /// request: it may wait on peers and timers only.
    fn accepting(&self) -> bool {
        true
    }
    /// Role, ballot, commit and execution counters, digest.
    fn status(&self, nonce: u64) -> StatusReply;
    /// The answer to a request for part of the log: a digest of each slot
    /// (or instance) held in the range asked, at most
    /// [`LogRequest::MAX_SLOTS`] of them.
    fn log(&self, m: &LogRequest) -> LogReply;
    /// Timers (retransmissions, heartbeats, elections); called every few ms.
    fn tick(&mut self, now: u64, fx: &mut Effects<Self::Msg>);
    /// End of a burst of messages (batching, execution).
    fn flush(&mut self, now: u64, fx: &mut Effects<Self::Msg>);
    /// (position, hash of its value) of every commit at or after `from`, in
    /// an order every replica shares, for the simulator's agreement check.
    fn committed_from(&self, from: u64) -> Vec<(u64, u64)>;
    /// This replica's snapshot now (state machine image plus the protocol's
    /// part, see [`crate::snapshot`]); `None` for a protocol without
    /// snapshots. Peers behind what it forgot are sent this; tools and tests
    /// may take it too.
    fn snapshot(&self) -> Option<crate::snapshot::Snapshot> {
        None
    }
    /// Snapshots installed from peers and sent to them (zero for a protocol
    /// without snapshots).
    fn snapshots(&self) -> (u64, u64) {
        (0, 0)
    }
    /// The messages a multi-dispatch client sends for `op`, each with the
    /// shard whose leader it goes to (the operation itself to its shard, and
    /// whatever its predecessor's shard must hear). Empty for a protocol
    /// without [`Caps::multi_dispatch`]; the simulator's chained clients and
    /// their scripted delays work through this.
    fn chained_request(op: &ChainedOp) -> Vec<(u8, Self::Msg)> {
        let _ = op;
        Vec::new()
    }
    /// What this replica executed and still works on, for the simulator's
    /// checks of multi-dispatch histories; empty for a protocol that does
    /// not say.
    fn audit(&self) -> Audit {
        Audit::default()
    }
}

/// Implements, inside an `impl Protocol for T` block, the [`Protocol`]
/// methods named, each by calling the core's inherent method that does the
/// work (which handler tests and the core itself call directly), so that a
/// protocol lists them instead of forwarding each by hand:
///
/// | method | calls |
/// |---|---|
/// | `handle` | `handle_peer(now, src.peer_id(), m, fx)` |
/// | `propose` | `handle_propose(now, conn, p, fx)` |
/// | `be_leader` | `handle_leader_hint(now, fx)` for a hint, else `handle_be_leader(now, fx)` |
/// | `status` | `status(nonce)` |
/// | `tick`, `flush` | `tick(now, fx)`, `flush(now, fx)` |
/// | `snapshot` | `snapshot()`, which always has one |
/// | `snapshots` | `snapshots()`, a triple whose first two are installed and sent |
/// | `accepting` | `accepting()` |
/// | `log` | `log_reply(m)` |
/// | `committed_from` | `committed_from(from)` |
/// | `fresh` | `new(Config::from_settings(s)?)` (`Config` as named where it is used) |
/// | `replay` | `restore(records)`, its error as [`BootError::Replay`] |
///
/// A name whose inherent method is missing would call the trait method
/// itself: rustc's `unconditional_recursion` lint says so.
///
/// ```text
/// impl Protocol for Replica {
///     ...
///     genericsmr::inherent!(handle, propose, status, tick, flush, snapshot);
/// }
/// ```
#[macro_export]
macro_rules! inherent {
    ($($method:ident),+ $(,)?) => {
        $( $crate::inherent!(@ $method); )+
    };
    (@handle) => {
        fn handle(
            &mut self,
            now: u64,
            src: $crate::rpc_table::Source,
            m: Self::Msg,
            fx: &mut $crate::effects::Effects<Self::Msg>,
        ) {
            Self::handle_peer(self, now, src.peer_id(), m, fx)
        }
    };
    (@propose) => {
        fn propose(
            &mut self,
            now: u64,
            conn: $crate::ConnId,
            p: $crate::messages::Propose,
            fx: &mut $crate::effects::Effects<Self::Msg>,
        ) {
            Self::handle_propose(self, now, conn, p, fx)
        }
    };
    (@be_leader) => {
        fn be_leader(&mut self, now: u64, hint: bool, fx: &mut $crate::effects::Effects<Self::Msg>) {
            if hint {
                Self::handle_leader_hint(self, now, fx)
            } else {
                Self::handle_be_leader(self, now, fx)
            }
        }
    };
    (@status) => {
        fn status(&self, nonce: u64) -> $crate::messages::StatusReply {
            Self::status(self, nonce)
        }
    };
    (@tick) => {
        fn tick(&mut self, now: u64, fx: &mut $crate::effects::Effects<Self::Msg>) {
            Self::tick(self, now, fx)
        }
    };
    (@flush) => {
        fn flush(&mut self, now: u64, fx: &mut $crate::effects::Effects<Self::Msg>) {
            Self::flush(self, now, fx)
        }
    };
    (@snapshot) => {
        fn snapshot(&self) -> Option<$crate::snapshot::Snapshot> {
            Some(Self::snapshot(self))
        }
    };
    (@accepting) => {
        fn accepting(&self) -> bool {
            Self::accepting(self)
        }
    };
    (@log) => {
        fn log(&self, m: &$crate::messages::LogRequest) -> $crate::messages::LogReply {
            Self::log_reply(self, m)
        }
    };
    (@committed_from) => {
        fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
            Self::committed_from(self, from)
        }
    };
    (@fresh) => {
        fn fresh(s: &$crate::protocol::Settings, _now: u64) -> Result<Self, $crate::protocol::BootError> {
            Ok(Self::new(Config::from_settings(s)?))
        }
    };
    (@replay) => {
        fn replay(
            &mut self,
            _now: u64,
            records: &[bytes::Bytes],
        ) -> Result<(), $crate::protocol::BootError> {
            Self::restore(self, records)
                .map_err(|e| $crate::protocol::BootError::Replay(e.to_string()))
        }
    };
    (@snapshots) => {
        fn snapshots(&self) -> (u64, u64) {
            let (installed, sent, _) = Self::snapshots(self);
            (installed, sent)
        }
    };
}
