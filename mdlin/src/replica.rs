//! The MDLin replica core: configuration, state, and the helpers the handler
//! modules share.
//!
//! One replica belongs to one shard. Replica ids are global across the
//! deployment (shard `s` holds ids `s*n .. s*n+n`), so shard leaders address
//! each other and their own followers the same way. The handlers live in
//! `journal.rs` (Multi-Paxos over the shard's journal: accept, commit,
//! phase 1, catch-up), `admit.rs` (client proposals, FIFO admission),
//! `coordination.rs` (coordination requests and replies, the timestamp rule,
//! failures), `exec.rs` (execution in journal order, replies), `failover.rs`
//! (re-placing committed but unordered operations after a leader change) and
//! `control.rs` (timers, master and status requests).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use genericsmr::command::{ClientId, Command};
use genericsmr::effects::Effects;
use genericsmr::election::ElectionTimer;
use genericsmr::messages::ReplyStatus;
use genericsmr::state::StateMachine;
use genericsmr::{ConnId, ReplicaId};

use crate::messages::{Entry, MdlMsg, MdlPropose, OpId, Pred, Prepare};

/// When a coordination reply may be sent for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordMode {
    /// As soon as the operation is committed (round 1) and coordinated, before
    /// its position is replicated: the published protocol. A new leader must
    /// re-place such operations below any successor they coordinated.
    Fast,
    /// Only once the operation's position (round 2) is chosen: every
    /// coordination edge is durable, so failover needs no timestamps; costs
    /// about two one-way delays per chain hop.
    Safe,
}

impl std::str::FromStr for CoordMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fast" => Ok(CoordMode::Fast),
            "safe" => Ok(CoordMode::Safe),
            _ => Err(format!(
                "unknown coordination mode '{s}' (use fast or safe)"
            )),
        }
    }
}

/// Settings of one replica.
#[derive(Debug, Clone)]
pub struct Config {
    /// This replica's global id.
    pub id: ReplicaId,
    /// Replicas per shard (2F+1).
    pub n: usize,
    /// Number of shards.
    pub shards: usize,
    /// When coordination replies go out.
    pub mode: CoordMode,
    /// Send accepts to a bare majority only (retransmissions go to all).
    pub thrifty: bool,
    /// Resend unanswered accepts and prepares after this long (ns).
    pub retransmit_ns: u64,
    /// A leader sends a heartbeat at least this often (ns).
    pub heartbeat_ns: u64,
    /// A waiting operation re-asks its predecessor's shard leader this often (ns).
    pub coord_retry_ns: u64,
    /// An operation still uncoordinated after this long fails (ns).
    pub coord_timeout_ns: u64,
    /// How long timestamps of ordered operations, coordination replies that
    /// arrived before their operation, and queued coordination requests are
    /// kept for late messages (ns): the expiry bounds memory, as nothing here
    /// is garbage collected otherwise. (Fences do not expire: one ballot per
    /// shard.) 5 s by default: a successor asks for its predecessor's
    /// timestamp within its coordination timeout (3 s), and what is kept
    /// also goes into every snapshot, so a longer window makes snapshots
    /// grow with the request rate (30 s at 60,000 requests/s held 1.8
    /// million timestamps and stalled the leader at each compaction).
    pub keep_ns: u64,
    /// Most out-of-order proposals buffered per client.
    pub max_buffered: usize,
    /// Keep the executed order of operations (for white-box checks).
    pub record_order: bool,
    /// Election timeout `T`, nanoseconds: a follower that hears nothing from
    /// its shard leader (no Accept, Commit or heartbeat) for a random time in
    /// `[T, 2T)` runs phase 1 itself, as on the master's `BeLeader` (see
    /// [`genericsmr::election`]). 0 turns elections off (leaders then change
    /// only when the master or an operator asks). Keep it well above
    /// `heartbeat_ns` plus the worst scheduling delay.
    pub election_timeout_ns: u64,
    /// On the master's hint that it lost the shard leader, a follower
    /// campaigns once it has not heard the leader itself for this long,
    /// rather than a whole election timeout (a leader still heard is never
    /// deposed by a hint).
    pub hint_quiet_ns: u64,
    /// A shard leader tells every replica of the other shards that it leads
    /// (a `CommitShort` across shards, see `journal.rs`) when it takes over
    /// and then at least this often, so shard leaders find each other for
    /// coordination without the master. 0: no announcements (other shards'
    /// leaders then come only from the master's pings).
    pub announce_ns: u64,
    /// When the journal is compacted (in memory, and on disk when durable):
    /// executed slots kept for peers catching up slot by slot, how often,
    /// and the byte bound (`--gc-horizon`, `--compact-mb`; see
    /// [`paxos::log::Compaction`]). A peer behind the compaction point gets
    /// a snapshot.
    pub compaction: paxos::log::Compaction,
    /// Snapshot transfer: chunk size, largest snapshot, retry timeout.
    pub transfer: genericsmr::snapshot::TransferConfig,
    /// How far past its commit index a replica takes slot numbers from
    /// peers (accepts, commits, catch-up), so that a confused peer cannot
    /// size the journal; the same default as Multi-Paxos's.
    pub slot_window: u64,
    /// Most slots a leader has proposed and not yet seen chosen; at the
    /// bound it takes no more client requests until some are, so a load
    /// above what the followers keep up with waits in TCP instead of
    /// growing the log (`--pipeline`, see `Protocol::accepting`).
    pub pipeline: u64,
}

impl Config {
    /// Defaults for global replica `id` with `n` replicas per shard and `shards` shards.
    pub fn new(id: ReplicaId, n: usize, shards: usize) -> Self {
        Config {
            id,
            n,
            shards,
            mode: CoordMode::Fast,
            thrifty: false,
            retransmit_ns: 200_000_000,
            heartbeat_ns: 50_000_000,
            coord_retry_ns: 100_000_000,
            coord_timeout_ns: 3_000_000_000,
            keep_ns: 5_000_000_000,
            max_buffered: 1024,
            record_order: false,
            election_timeout_ns: 1_000_000_000,
            hint_quiet_ns: 200_000_000,
            announce_ns: 500_000_000,
            compaction: Default::default(),
            transfer: Default::default(),
            slot_window: 1 << 22,
            pipeline: 8192,
        }
    }

    /// This replica's shard.
    pub fn shard(&self) -> u8 {
        (self.id as usize / self.n) as u8
    }

    /// Votes needed in a shard.
    pub fn quorum(&self) -> usize {
        self.n / 2 + 1
    }

    /// The global ids of this shard's replicas, as a bit set.
    pub fn members(&self) -> u64 {
        let first = self.shard() as usize * self.n;
        let all = if self.n == 64 {
            u64::MAX
        } else {
            (1u64 << self.n) - 1
        };
        all << first
    }
}

/// Bit of a global replica id.
pub(crate) fn bit(id: ReplicaId) -> u64 {
    1u64 << id
}

pub use paxos::log::SlotState;

/// One journal slot: a slot of the shared Multi-Paxos log holding an [`Entry`].
pub type Slot = paxos::log::Slot<Entry>;

/// How far an operation's coordination got at its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coord {
    /// Waiting for the predecessor: since when, and when it was last asked for.
    Waiting { last_ask: u64 },
    /// The predecessor is safe to follow, with its timestamp.
    Ready(u64),
    /// Committed and coordinated, its order entry appended.
    Done,
    /// A failure is being replicated.
    Failing,
}

/// An operation the leader is working on.
#[derive(Debug, Clone)]
pub(crate) struct LiveOp {
    pub pred: Option<Pred>,
    /// Round 1 is chosen (vacuous for a head).
    pub committed: bool,
    pub coord: Coord,
    /// Where to reply (none for an operation recovered from the journal until its client retries).
    pub conn: Option<ConnId>,
    pub since: u64,
    /// Recovered by a new leader in fast mode: it may have coordinated a
    /// successor already, so it must not fail by timeout.
    pub recovered: bool,
}

/// A coordination request waiting for its predecessor: (successor, its
/// shard, the leader that asked if it came from one, since when).
pub(crate) type WaitingCr = (OpId, u8, Option<ReplicaId>, u64);

/// A candidate's phase-1 progress.
pub(crate) type Candidate = paxos::multi::phase1::Candidate<Entry>;

/// A new leader's re-placement of committed but unordered operations.
#[derive(Debug, Default)]
pub(crate) struct Recovery {
    /// Started: the journal inherited from phase 1 is executed.
    pub started: bool,
    /// The journal end that must be executed before starting.
    pub after_slot: u64,
    pub nonce: u64,
    /// Operations to re-place, sorted by (successor timestamp, op) once known.
    pub ops: Vec<OpId>,
    /// Successor timestamps, the minimum over every shard's answer.
    pub succ_ts: HashMap<OpId, u64>,
    /// Shards that answered the successor query.
    pub answered: u64,
    pub asked_at: u64,
    /// Placement order fixed (all answers in).
    pub sorted: bool,
    /// Proposals that arrived meanwhile.
    pub held: Vec<(ConnId, MdlPropose)>,
}

/// The role a replica plays in its shard.
#[derive(Debug)]
pub(crate) enum Role {
    Follower,
    Candidate(Candidate),
    Leader {
        ballot: u64,
        next_slot: u64,
        recovery: Recovery,
    },
}

/// An MDLin replica.
#[derive(Debug)]
pub struct Replica {
    pub(crate) cfg: Config,
    pub(crate) role: Role,
    pub(crate) promised: u64,
    /// The journal from its base on; slots below the base are executed and
    /// compacted away (their effect is in the state and the snapshot).
    pub(crate) log: paxos::log::Log<Entry>,
    /// The snapshot being fetched from a peer, if any.
    pub(crate) fetch: genericsmr::snapshot::Fetch,
    /// Snapshots installed from peers, snapshots sent, compactions.
    pub(crate) snapshot_counts: (u64, u64, u64),
    /// Every slot below is chosen here.
    pub(crate) commit_index: u64,
    /// Every slot below is executed here.
    pub(crate) executed: u64,
    /// Slots below `.1` are chosen or accepted at ballot `.0` (the prefix rule).
    pub(crate) prefix: (u64, u64),
    /// Accepts that arrived before an earlier slot (the prefix rule), by slot.
    pub(crate) early_accepts: BTreeMap<u64, (ReplicaId, crate::messages::Accept)>,
    /// Highest chosen prefix any leader announced.
    pub(crate) known_commit: u64,
    pub(crate) catchup_at: u64,
    /// Chosen slots learned from catch-up replies.
    pub(crate) catchup_fetched: u64,
    pub(crate) sm: StateMachine,
    pub(crate) leader_hint: Option<ReplicaId>,
    /// Current leader of every shard (global ids), from leaders'
    /// announcements or else the master.
    pub(crate) shard_leaders: Vec<Option<ReplicaId>>,
    /// Per shard, the ballot of the latest leader announcement heard (0:
    /// none; the master's word is used until one arrives).
    pub(crate) shard_ballots: Vec<u64>,
    /// Leader: when it last announced itself to the other shards.
    pub(crate) last_announce: Option<u64>,
    /// When to campaign if the shard leader stays silent.
    pub(crate) election: ElectionTimer,
    pub(crate) last_heard: Vec<u64>,
    pub(crate) last_heartbeat: u64,
    pub(crate) announced: u64,

    // Replicated state, built by executing the journal.
    /// Round 1 chosen, neither ordered nor failed yet.
    pub(crate) unordered: HashMap<OpId, (Command, u64, Option<Pred>)>,
    /// Failed operations (tombstones).
    pub(crate) failed: HashSet<OpId>,
    /// Next admission counter per client.
    pub(crate) next_shard_seq: HashMap<ClientId, u64>,
    /// Timestamps of operations safe to follow (ordered, or in fast mode
    /// coordinated at this leader), for late coordination requests.
    pub(crate) known_ts: HashMap<OpId, u64>,
    /// Chain successors ordered or coordinated here, by predecessor: (successor, ts).
    pub(crate) succ_index: HashMap<OpId, u64>,
    /// Insertion times of `known_ts`/`succ_index` entries, for expiry.
    pub(crate) known_order: VecDeque<(u64, OpId, Option<OpId>)>,
    /// Shard timestamp: the next one to hand out is at least this.
    pub(crate) shard_ts: u64,
    /// Per shard, the lowest ballot of its leaders whose coordination replies
    /// still count here (the executed `Fence` entries; see `failover.rs`).
    pub(crate) fences: Vec<u64>,
    /// The executed order (when `record_order`).
    pub(crate) exec_order: Vec<OpId>,
    /// The timestamp each of `exec_order` executed with (when `record_order`).
    pub(crate) exec_ts: Vec<u64>,

    // Leader state.
    pub(crate) ops: HashMap<OpId, LiveOp>,
    pub(crate) admit_next: HashMap<ClientId, u64>,
    pub(crate) buffered: HashMap<ClientId, BTreeMap<u64, (u64, ConnId, MdlPropose)>>,
    /// Coordination replies that arrived before their operation, with when.
    pub(crate) early: HashMap<OpId, (u64, crate::messages::CoordReply)>,
    /// Leader: successor queries waiting for their fence to be chosen, by
    /// the asking shard (only the latest per shard).
    pub(crate) fence_asks: Vec<Option<(ReplicaId, crate::messages::SuccTsRequest)>>,
    /// Leader: the highest fence appended per shard (chosen or not).
    pub(crate) fence_proposed: Vec<u64>,
    /// Coordination requests waiting for their predecessor, by predecessor.
    pub(crate) waiting_crs: HashMap<OpId, Vec<WaitingCr>>,
    /// Coordination replies for this shard's own leader (same-shard chains).
    pub(crate) local: VecDeque<crate::messages::CoordReply>,
    pub(crate) nonce: u64,
    /// The time of the event being handled (for timer resets from helpers).
    pub(crate) now: u64,
    /// Durable records replayed at start.
    pub(crate) replayed: u64,
}

impl Replica {
    paxos::replica_accessors!();

    /// A fresh replica.
    pub fn new(cfg: Config) -> Self {
        assert!(cfg.n >= 1 && cfg.shards >= 1);
        assert!(cfg.n * cfg.shards <= genericsmr::MAX_REPLICAS);
        assert!((cfg.id as usize) < cfg.n * cfg.shards);
        let total = cfg.n * cfg.shards;
        let shards = cfg.shards;
        let transfer = cfg.transfer;
        let election = ElectionTimer::new(cfg.id as u64, cfg.election_timeout_ns);
        Replica {
            cfg,
            role: Role::Follower,
            promised: 0,
            log: Default::default(),
            fetch: genericsmr::snapshot::Fetch::new(transfer),
            snapshot_counts: (0, 0, 0),
            commit_index: 0,
            executed: 0,
            prefix: (0, 0),
            early_accepts: BTreeMap::new(),
            known_commit: 0,
            catchup_at: 0,
            catchup_fetched: 0,
            sm: StateMachine::default(),
            leader_hint: None,
            shard_leaders: vec![None; shards],
            shard_ballots: vec![0; shards],
            last_announce: None,
            election,
            last_heard: vec![0; total],
            last_heartbeat: 0,
            announced: 0,
            unordered: HashMap::new(),
            failed: HashSet::new(),
            next_shard_seq: HashMap::new(),
            known_ts: HashMap::new(),
            succ_index: HashMap::new(),
            known_order: VecDeque::new(),
            shard_ts: 1,
            fences: vec![0; shards],
            exec_order: Vec::new(),
            exec_ts: Vec::new(),
            ops: HashMap::new(),
            admit_next: HashMap::new(),
            buffered: HashMap::new(),
            early: HashMap::new(),
            fence_asks: vec![None; shards],
            fence_proposed: vec![0; shards],
            waiting_crs: HashMap::new(),
            local: VecDeque::new(),
            nonce: 0,
            now: 0,
            replayed: 0,
        }
    }

    /// Whether this replica leads its shard (recovering or not).
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// Whether this replica leads and serves new operations.
    pub fn is_serving(&self) -> bool {
        matches!(&self.role, Role::Leader { recovery, .. } if recovery.ops.is_empty() && recovery.started)
    }

    /// Snapshots installed from peers, snapshots sent to peers, and
    /// compactions of this replica's journal.
    pub fn snapshots(&self) -> (u64, u64, u64) {
        self.snapshot_counts
    }

    /// The operations executed here, in order (empty unless `record_order`).
    pub fn exec_order(&self) -> &[OpId] {
        &self.exec_order
    }

    /// The timestamp of each operation of [`Replica::exec_order`], in the same
    /// order (empty unless `record_order`): for checking the timestamp rule
    /// across shards.
    pub fn exec_timestamps(&self) -> &[u64] {
        &self.exec_ts
    }

    /// Operations the leader is still working on (not executed or failed).
    pub fn in_flight(&self) -> usize {
        self.ops.len()
    }

    /// A description of what the leader is still working on (for test failures).
    pub fn describe_in_flight(&self) -> String {
        let mut ops: Vec<_> = self.ops.iter().collect();
        ops.sort_unstable_by_key(|(op, _)| **op);
        let rec = match &self.role {
            Role::Leader { recovery, .. } => format!(
                "recovery started {} sorted {} left {:?} answered {:b}",
                recovery.started, recovery.sorted, recovery.ops, recovery.answered
            ),
            _ => String::new(),
        };
        format!("replica {} {rec}: {:?}", self.cfg.id, ops)
    }

    /// Tells the replica who leads every shard (global ids; from the master).
    /// A shard whose leader announced itself (see [`Config::announce_ns`])
    /// keeps the announced one: announcements carry ballots, the master's
    /// list does not, so it cannot tell a newer leader from a stale report.
    pub fn set_shard_leaders(&mut self, leaders: &[Option<ReplicaId>]) {
        for (s, l) in leaders.iter().enumerate().take(self.cfg.shards) {
            if self.shard_ballots[s] == 0 {
                self.shard_leaders[s] = *l;
            }
        }
        let me = self.cfg.shard() as usize;
        if self.is_leader() {
            self.shard_leaders[me] = Some(self.cfg.id);
        } else if let Some(l) = leaders.get(me).copied().flatten() {
            if l != self.cfg.id {
                self.leader_hint = Some(l);
            }
        }
    }

    /// This replica's id inside its shard: clients get ids inside the shard
    /// in replies, as from every sharded protocol.
    pub(crate) fn local_id(&self) -> ReplicaId {
        self.cfg.id - self.cfg.shard() * self.cfg.n as u8
    }

    /// "Ask me", as a hint in a reply.
    pub(crate) fn me_hint(&self) -> Option<ReplicaId> {
        Some(self.local_id())
    }

    /// The leader hint for a reply, as an id inside the shard.
    pub(crate) fn hint(&self) -> Option<ReplicaId> {
        let first = self.cfg.shard() * self.cfg.n as u8;
        self.leader_hint().and_then(|g| g.checked_sub(first))
    }

    /// This shard's other replicas.
    pub(crate) fn peers(&self) -> u64 {
        self.cfg.members() & !bit(self.cfg.id)
    }

    /// The receive prelude of every journal message: whether `from` is a
    /// replica of this shard (anything else is dropped), noting when it was
    /// last heard from (thrifty sends go to the freshest peers).
    pub(crate) fn heard(&mut self, from: ReplicaId, now: u64) -> bool {
        if !self.same_shard(from) {
            return false;
        }
        self.last_heard[from as usize] = now;
        true
    }

    /// Whether `from` is a replica of this shard (journal messages from
    /// anyone else are dropped).
    pub(crate) fn same_shard(&self, from: ReplicaId) -> bool {
        (from as usize) < 64 && self.cfg.members() & bit(from) != 0
    }

    /// Stops leading: every operation in flight here is told to go elsewhere.
    pub(crate) fn step_down(&mut self, fx: &mut Effects<MdlMsg>) {
        let first = self.cfg.shard() * self.cfg.n as u8;
        let hint = self
            .leader_hint
            .filter(|h| *h != self.cfg.id)
            .and_then(|g| g.checked_sub(first));
        let old = std::mem::replace(&mut self.role, Role::Follower);
        let mut conns: Vec<(OpId, ConnId)> = self
            .ops
            .drain()
            .filter_map(|(op, o)| o.conn.map(|c| (op, c)))
            .collect();
        for (_, b) in self.buffered.drain() {
            conns.extend(b.into_values().map(|(_, c, p)| (OpId::of(&p.cmd), c)));
        }
        if let Role::Leader { recovery, .. } = old {
            conns.extend(
                recovery
                    .held
                    .into_iter()
                    .map(|(c, p)| (OpId::of(&p.cmd), c)),
            );
        }
        // In a fixed order: effects must not depend on hash seeds, so a
        // simulated run replays from its seed.
        conns.sort_unstable();
        for (op, conn) in conns {
            fx.reply(
                conn,
                genericsmr::effects::reject(op.client, op.seq, ReplyStatus::NotLeader, hint),
            );
        }
        self.admit_next.clear();
        self.early.clear();
        self.waiting_crs.clear();
        self.fence_asks.iter_mut().for_each(|a| *a = None);
        self.fence_proposed.iter_mut().for_each(|f| *f = 0);
        self.local.clear();
        let me = self.cfg.shard() as usize;
        if self.shard_leaders[me] == Some(self.cfg.id) {
            self.shard_leaders[me] = None;
        }
    }

    /// Remembers that `op` is safe to follow with timestamp `ts` (and that it
    /// is the successor of `pred`), for late requests.
    pub(crate) fn remember(&mut self, now: u64, op: OpId, ts: u64, pred: Option<OpId>) {
        self.known_ts.insert(op, ts);
        if let Some(p) = pred {
            self.succ_index.insert(p, ts);
        }
        self.known_order.push_back((now, op, pred));
        while self
            .known_order
            .front()
            .is_some_and(|(t, _, _)| now.saturating_sub(*t) > self.cfg.keep_ns)
        {
            if let Some((_, o, p)) = self.known_order.pop_front() {
                self.known_ts.remove(&o);
                if let Some(p) = p {
                    self.succ_index.remove(&p);
                }
            }
        }
    }
}

paxos::impl_host! {
    Replica: Entry, MdlMsg;

    fn may_lead_here(&self, owner: ReplicaId) -> bool {
        self.same_shard(owner)
    }
    #[inline]
    fn after_chosen(&mut self, _slot: u64, _fx: &mut Effects<MdlMsg>) {
        self.advance_commit();
    }
    fn campaign_on_timeout(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        self.campaign(now, fx);
    }
}

/// The predecessor's [`OpId`] (same client).
pub(crate) fn pred_id(op: OpId, p: Pred) -> OpId {
    OpId {
        client: op.client,
        seq: p.seq,
    }
}
