//! The Multi-Paxos replica core: state, configuration and the helpers the
//! handler modules share.
//!
//! The core is pure: handlers take a message and `now` (nanoseconds on any
//! monotonic clock) and push effects into an [`Effects`] outbox. The handlers
//! live next to the role they serve: `leader.rs` (proposals, phase 1 as a
//! candidate, phase 2 as leader), `acceptor.rs` (promises, votes, commits),
//! `catchup.rs` (fetching chosen slots, recovery without a durable log),
//! `exec.rs` (execution and replies) and `control.rs` (master and status).

use std::collections::{HashMap, VecDeque};

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use genericsmr::command::{ClientId, Command};
use genericsmr::effects::Effects;
use genericsmr::election::ElectionTimer;
use genericsmr::messages::ReplyStatus;
use genericsmr::state::StateMachine;
use genericsmr::wire::{decode_body, Marshal};
use genericsmr::{ConnId, ReplicaId};

use crate::log::Log;
use crate::messages::{bit, PaxosMsg, Prepare};
pub(crate) use genericsmr::effects::{accepted, reject};

/// Settings of one replica.
#[derive(Debug, Clone)]
pub struct Config {
    /// This replica's id.
    pub id: ReplicaId,
    /// Group size (2F+1).
    pub n: usize,
    /// Send phase-2 messages to a bare majority only, falling back to all on retransmission.
    pub thrifty: bool,
    /// Put every proposal queued at once into one slot (adaptive batching).
    pub batch: bool,
    /// Most commands in one batched slot.
    pub batch_max: usize,
    /// Reply to writes only after execution (with their outcome) instead of at commit.
    pub reply_after_exec: bool,
    /// Resend unanswered Accept/Prepare messages after this many nanoseconds.
    pub retransmit_ns: u64,
    /// A leader sends a heartbeat (CommitShort) at least this often.
    pub heartbeat_ns: u64,
    /// Election timeout `T`, nanoseconds: a follower that hears nothing from
    /// the leader (no Accept, Commit or heartbeat) for a random time in
    /// `[T, 2T)` runs phase 1 itself (see [`genericsmr::election`]). 0 turns
    /// elections off (leaders then change only when asked to, by the master
    /// or an operator). It must stay well above `heartbeat_ns` plus the worst
    /// scheduling delay, or a loaded machine sees needless elections.
    pub election_timeout_ns: u64,
    /// On the master's hint that it lost the leader ([`genericsmr::messages::BeLeader::is_hint`]),
    /// a follower campaigns once it has not heard the leader itself for this
    /// long (a few heartbeats), rather than a whole election timeout: a killed
    /// leader is replaced about as fast as when the master drove failover,
    /// while a leader still heard is never deposed.
    pub hint_quiet_ns: u64,
    /// Most slots fetched by one catch-up request.
    pub catchup_chunk: u32,
    /// Executed slots kept in memory below the executed point, for peers
    /// that catch up slot by slot; a peer further behind is answered
    /// `Compacted` and fetches a snapshot (see `docs/paxos.md`). Named like
    /// EPaxos's `keep_executed`.
    pub keep_executed: u64,
    /// Compaction runs once this many slots more than `keep_executed` are
    /// executed: the log drops slots below `executed - keep_executed`, and a
    /// durable replica writes a snapshot at its executed point and rewrites
    /// its log to what lies above it. So memory holds at most about
    /// `keep_executed + compact_every` executed slots, and the durable log
    /// about `compact_every` slots' records.
    pub compact_every: u64,
    /// Compaction also runs once the executed slots held in memory reach
    /// this many bytes of commands, keeping only the newest quarter of
    /// that: with batching a slot may hold thousands of commands, so a
    /// bound in slots alone does not bound memory.
    pub compact_bytes: usize,
    /// See [`crate::log::Compaction::snapshot_ratio`].
    pub snapshot_ratio: u32,
    /// Snapshot transfer: chunk size, largest snapshot, retry timeout.
    pub transfer: genericsmr::snapshot::TransferConfig,
    /// Proposals held at most while waiting for a slot; more are refused.
    pub max_pending: usize,
    /// Largest command accepted, in encoded bytes; larger ones are answered `TooLarge`.
    pub max_command_bytes: usize,
    /// Bounds of the state machine's dedup table.
    pub dedup: genericsmr::state::Limits,
    /// A batched slot closes once its commands reach this many bytes, so every
    /// Accept fits in a peer frame.
    pub max_batch_bytes: usize,
    /// How far past its commit index a replica takes slot numbers from peers
    /// (Accepts, Commits, catch-up, phase-1 reports), so that a confused or
    /// hostile peer cannot size our log. A leader opens no slot past it, and a
    /// candidate that hears of one steps down and catches up instead of
    /// leading. A setting so that tests cross it in a few hundred slots; every
    /// replica of a group should use the same value.
    pub slot_window: u64,
    /// Most slots a leader has proposed and not yet seen chosen; at the
    /// bound it takes no more client requests until some are, so a load
    /// above what the followers keep up with waits in TCP instead of
    /// growing the log (`--pipeline`, see `Protocol::accepting`).
    pub pipeline: u64,
    /// Deliberately breaks Paxos: acceptors accept below their promise. It
    /// exists so tests can show the simulator and the checker catch a broken
    /// protocol; no binary can set it.
    pub broken_accept_below_promise: bool,
    /// A deliberately broken behaviour (see [`crate::broken`]); set it with
    /// [`Config::set_broken`].
    #[cfg(feature = "broken")]
    pub broken: Option<crate::broken::Broken>,
}

impl Config {
    /// Defaults for replica `id` of `n`.
    pub fn new(id: ReplicaId, n: usize) -> Self {
        Config {
            id,
            n,
            thrifty: false,
            batch: false,
            batch_max: 4096,
            reply_after_exec: false,
            retransmit_ns: 200_000_000,
            heartbeat_ns: 50_000_000,
            election_timeout_ns: 1_000_000_000,
            hint_quiet_ns: 200_000_000,
            catchup_chunk: 4096,
            keep_executed: 1 << 16,
            compact_every: 1 << 16,
            compact_bytes: 64 << 20,
            snapshot_ratio: 100,
            transfer: Default::default(),
            max_pending: 1 << 20,
            max_command_bytes: 1 << 20,
            dedup: Default::default(),
            max_batch_bytes: 4 << 20,
            slot_window: 1 << 22,
            pipeline: 8192,
            broken_accept_below_promise: false,
            #[cfg(feature = "broken")]
            broken: None,
        }
    }

    /// Turns on a deliberately broken behaviour, for tests only; refused by a
    /// build without the `broken` feature.
    pub fn set_broken(&mut self, b: crate::broken::Broken) -> Result<(), crate::broken::NotBuilt> {
        #[cfg(feature = "broken")]
        {
            self.broken = Some(b);
            Ok(())
        }
        #[cfg(not(feature = "broken"))]
        {
            let _ = b;
            Err(crate::broken::NotBuilt)
        }
    }

    /// The compaction settings of the log.
    pub fn compaction(&self) -> crate::log::Compaction {
        crate::log::Compaction {
            keep_executed: self.keep_executed,
            compact_every: self.compact_every,
            compact_bytes: self.compact_bytes,
            snapshot_ratio: self.snapshot_ratio,
        }
    }

    /// Votes needed for a quorum (a majority, counting this replica).
    pub fn quorum(&self) -> usize {
        self.n / 2 + 1
    }
}

pub use crate::log::SlotState;

/// One slot of the Multi-Paxos log.
pub type Slot = crate::log::Slot<Batch>;

/// What a Multi-Paxos slot holds: a batch of commands (empty for a no-op).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The commands while the slot is not executed.
    cmds: Vec<Command>,
    /// Once executed: the batch's wire encoding only. The log keeps
    /// `keep_executed` executed slots (for catch-up), and this keeps them at
    /// about a third of the memory, releasing the decoded commands and the
    /// receive buffers their bytes pointed into.
    packed: Option<Bytes>,
}

impl Batch {
    /// The commands (empty once packed: executed slots are).
    pub(crate) fn into_cmds(self) -> Vec<Command> {
        self.cmds
    }
}

impl From<Vec<Command>> for Batch {
    fn from(cmds: Vec<Command>) -> Self {
        Batch { cmds, packed: None }
    }
}

impl Marshal for Batch {
    /// The encoding of the commands (`Vec<Command>`'s), packed or not.
    fn marshal(&self, buf: &mut BytesMut) {
        match &self.packed {
            Some(b) => buf.extend_from_slice(b),
            None => self.cmds.marshal(buf),
        }
    }
}

impl crate::log::Value for Batch {
    fn held_bytes(&self) -> usize {
        self.packed.as_ref().map_or(0, |b| b.len())
    }

    /// Hashes the commands' encoding, packed or not, without re-encoding a
    /// packed slot.
    fn digest(&self) -> u64 {
        match &self.packed {
            Some(b) => xxhash_rust::xxh3::xxh3_64(b),
            None => {
                let mut b = BytesMut::new();
                self.cmds.marshal(&mut b);
                xxhash_rust::xxh3::xxh3_64(&b)
            }
        }
    }
}

impl crate::multi::value::Carried for Batch {
    type Wire = Vec<Command>;
    fn to_wire(&self) -> Vec<Command> {
        match &self.packed {
            // We encoded these bytes ourselves: they decode.
            Some(b) => decode_body::<Vec<Command>>(b.clone()).expect("a packed slot decodes"),
            None => self.cmds.clone(),
        }
    }
    fn from_wire(cmds: Vec<Command>) -> Self {
        Batch::from(cmds)
    }
    fn same(&self, w: &Vec<Command>) -> bool {
        match &self.packed {
            Some(_) => self.to_wire() == *w,
            None => self.cmds == *w,
        }
    }
}

impl Slot {
    /// The slot's commands (decoded again if the slot was packed).
    pub fn cmds(&self) -> Cow<'_, [Command]> {
        match &self.entry.packed {
            // We encoded these bytes ourselves: they decode.
            Some(b) => {
                Cow::Owned(decode_body::<Vec<Command>>(b.clone()).expect("a packed slot decodes"))
            }
            None => Cow::Borrowed(&self.entry.cmds),
        }
    }

    /// The commands of a slot that is not packed (empty once it is).
    pub(crate) fn live_cmds(&self) -> &[Command] {
        &self.entry.cmds
    }

    /// Replaces the slot's commands.
    pub(crate) fn set_cmds(&mut self, cmds: Vec<Command>) {
        self.entry = Batch::from(cmds);
    }

    /// Keeps only the encoding of an executed slot's commands.
    pub(crate) fn pack(&mut self) {
        let e = &mut self.entry;
        if e.packed.is_none() {
            let mut b =
                BytesMut::with_capacity(4 + e.cmds.iter().map(Command::wire_len).sum::<usize>());
            e.cmds.marshal(&mut b);
            e.packed = Some(b.freeze());
            e.cmds = Vec::new();
        }
    }

    /// Roughly how many bytes the commands take on the wire.
    pub(crate) fn wire_len(&self) -> usize {
        match &self.entry.packed {
            Some(b) => b.len(),
            None => self.entry.cmds.iter().map(Command::wire_len).sum(),
        }
    }
}

/// A candidate's phase-1 progress.
pub(crate) type Candidate = crate::multi::phase1::Candidate<Vec<Command>>;

/// A restarted replica without durable state, learning before it may vote.
#[derive(Debug)]
pub(crate) struct Recovery {
    pub nonce: u64,
    pub asked_at: u64,
    pub answers: u64,
    pub max_promised: u64,
    pub max_end: u64,
    /// Set once enough peers answered: every slot below this must be committed here.
    pub target: Option<u64>,
}

/// The role a replica plays.
#[derive(Debug)]
pub(crate) enum Role {
    Follower,
    Candidate(Candidate),
    Leader { ballot: u64, next_slot: u64 },
    Recovering(Recovery),
}

/// The Multi-Paxos replica core.
#[derive(Debug)]
pub struct Replica {
    pub(crate) cfg: Config,
    pub(crate) role: Role,
    /// Highest ballot promised; never decreases.
    pub(crate) promised: u64,
    /// The log from its base on; slots below the base (never above
    /// `executed`) are executed and compacted away (see [`Config::keep_executed`]).
    pub(crate) log: Log<Batch>,
    /// The snapshot being fetched from a peer, if any.
    pub(crate) fetch: genericsmr::snapshot::Fetch,
    /// Snapshots installed from peers.
    pub(crate) snapshots_installed: u64,
    /// Snapshots sent to peers.
    pub(crate) snapshots_sent: u64,
    /// Compactions of the log so far.
    pub(crate) compactions: u64,
    /// Every slot below this is committed here.
    pub(crate) commit_index: u64,
    /// Every slot below this is executed here.
    pub(crate) executed: u64,
    /// Highest commit index heard from anyone.
    pub(crate) known_commit: u64,
    pub(crate) sm: StateMachine,
    pub(crate) leader_hint: Option<ReplicaId>,
    /// Proposals waiting for a slot (leader or candidate).
    pub(crate) pending: VecDeque<Command>,
    /// Where to answer each proposal in flight through this replica.
    pub(crate) waiting: HashMap<(ClientId, u64), ConnId>,
    /// When each peer was last heard from (for thrifty target choice).
    pub(crate) last_heard: Vec<u64>,
    pub(crate) last_heartbeat: u64,
    pub(crate) announced_commit: u64,
    pub(crate) catchup_sent_at: Option<u64>,
    pub(crate) catchup_fetched: u64,
    pub(crate) replayed: u64,
    pub(crate) nonce: u64,
    /// The time of the event being handled (for resets from deep helpers).
    pub(crate) now: u64,
    /// When to campaign if the leader stays silent.
    pub(crate) election: ElectionTimer,
}

impl Replica {
    crate::replica_accessors!();

    /// A fresh replica with an empty log.
    pub fn new(cfg: Config) -> Self {
        assert!(cfg.n >= 1 && cfg.n <= genericsmr::MAX_REPLICAS && (cfg.id as usize) < cfg.n);
        let n = cfg.n;
        let fetch = genericsmr::snapshot::Fetch::new(cfg.transfer);
        let election = ElectionTimer::new(cfg.id as u64, cfg.election_timeout_ns);
        // Puts answered at commit never show what they replaced.
        let sm = if cfg.reply_after_exec {
            StateMachine::default()
        } else {
            StateMachine::without_replaced_values()
        }
        .with_limits(cfg.dedup);
        Replica {
            cfg,
            role: Role::Follower,
            promised: 0,
            log: Log::default(),
            fetch,
            snapshots_installed: 0,
            snapshots_sent: 0,
            compactions: 0,
            commit_index: 0,
            executed: 0,
            known_commit: 0,
            sm,
            leader_hint: None,
            pending: VecDeque::new(),
            waiting: HashMap::new(),
            last_heard: vec![0; n],
            last_heartbeat: 0,
            announced_commit: 0,
            catchup_sent_at: None,
            catchup_fetched: 0,
            replayed: 0,
            nonce: 0,
            now: 0,
            election,
        }
    }

    /// Whether this replica is an active leader.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// Whether this replica is still recovering and must not vote.
    pub fn is_recovering(&self) -> bool {
        matches!(self.role, Role::Recovering(_))
    }

    /// One past the highest slot held.
    pub fn log_end(&self) -> u64 {
        self.log.end()
    }

    /// Slot `slot`, if held (not compacted away, not past the end).
    pub fn slot(&self, slot: u64) -> Option<&Slot> {
        self.log.get(slot)
    }

    /// Snapshots installed from peers, snapshots sent to peers, and
    /// compactions of this replica's log.
    pub fn snapshots(&self) -> (u64, u64, u64) {
        (
            self.snapshots_installed,
            self.snapshots_sent,
            self.compactions,
        )
    }

    /// Committed slots fetched from peers.
    pub fn catchup_fetched(&self) -> u64 {
        self.catchup_fetched
    }

    /// Whether votes (Accepted records) go to the durable log before they are
    /// acknowledged: always, unless broken on purpose ([`crate::broken`]).
    #[inline]
    pub(crate) fn keeps_votes(&self) -> bool {
        #[cfg(feature = "broken")]
        if self.cfg.broken == Some(crate::broken::Broken::ForgetAccepts) {
            return false;
        }
        true
    }

    /// Whether `slot` is known chosen here (compacted slots were executed).
    pub(crate) fn committed_at(&self, slot: u64) -> bool {
        self.log.committed_at(slot)
    }

    /// The last slot within reach of our log (see [`Config::slot_window`]).
    pub(crate) fn window_end(&self) -> u64 {
        self.commit_index.saturating_add(self.cfg.slot_window)
    }

    /// Whether a ballot from a peer could have been made by a correct replica;
    /// anything else is dropped with a warning (peer ports are meant for a
    /// trusted network, but a broken peer must not wedge us).
    pub(crate) fn sane_ballot(&self, from: u8, b: u64) -> bool {
        crate::messages::ballot::sane(from, b)
    }

    /// The current leader (or a candidate we promised) was heard from at `now`.
    pub(crate) fn heard_leader(&mut self, now: u64) {
        self.election.heard_leader(now);
    }

    /// The other replicas of the group, as a bit set.
    pub(crate) fn peers(&self) -> u64 {
        let all = if self.cfg.n == 64 {
            u64::MAX
        } else {
            (1u64 << self.cfg.n) - 1
        };
        all & !bit(self.cfg.id)
    }

    /// Stops leading or campaigning; every proposal in flight here is told to go elsewhere.
    pub(crate) fn step_down(&mut self, fx: &mut Effects<PaxosMsg>) {
        if matches!(self.role, Role::Leader { .. } | Role::Candidate(_)) {
            self.role = Role::Follower;
        }
        self.pending.clear();
        let hint = self.leader_hint.filter(|h| *h != self.cfg.id);
        // In a fixed order: a core's effects must not depend on hash seeds, so
        // that a simulated run replays exactly from its seed.
        let mut waiting: Vec<_> = self.waiting.drain().collect();
        waiting.sort_unstable();
        for ((client, seq), conn) in waiting {
            fx.reply(conn, reject(client, seq, ReplyStatus::NotLeader, hint));
        }
    }
}

crate::impl_host! {
    Replica: Batch, PaxosMsg;

    fn may_lead_here(&self, _owner: ReplicaId) -> bool {
        true
    }
    #[inline]
    fn keeps_votes(&self) -> bool {
        Replica::keeps_votes(self)
    }
    #[inline]
    fn after_chosen(&mut self, slot: u64, fx: &mut Effects<PaxosMsg>) {
        self.reply_on_commit(slot, fx);
        self.advance(fx);
    }
    fn campaign_on_timeout(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) {
        // No immediate re-campaign on refusal: the backed-off timer decides.
        self.campaign(now, self.promised, crate::leader::MAX_CAMPAIGNS, fx);
    }
}
