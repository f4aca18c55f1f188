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

/// A hash map with a fast hasher: execution looks several of these up for
/// every operation, and SipHash was a tenth of a busy leader's time.
pub(crate) type Map<K, V> = HashMap<K, V, ahash::RandomState>;
/// A hash set with the same hasher as [`Map`].
pub(crate) type Set<K> = HashSet<K, ahash::RandomState>;

use genericsmr::command::{ClientId, Command};
use genericsmr::effects::Effects;
use genericsmr::messages::ReplyStatus;
use genericsmr::state::StateMachine;
use genericsmr::{ConnId, ReplicaId};

use crate::messages::{CommitShort, Entry, MdlMsg, MdlPropose, OpId, Pred, Prepare};

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
    /// The Multi-Paxos settings of the shard's group (`id` is global,
    /// `n` is per shard).
    pub group: paxos::multi::config::GroupConfig,
    /// Number of shards.
    pub shards: usize,
    /// When coordination replies go out.
    pub mode: CoordMode,
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
    /// A shard leader tells every replica of the other shards that it leads
    /// (a `CommitShort` across shards, see `journal.rs`) when it takes over
    /// and then at least this often, so shard leaders find each other for
    /// coordination without the master. 0: no announcements (other shards'
    /// leaders then come only from the master's pings).
    pub announce_ns: u64,
}

impl Config {
    /// Defaults for global replica `id` with `n` replicas per shard and `shards` shards.
    pub fn new(id: ReplicaId, n: usize, shards: usize) -> Self {
        Config {
            group: paxos::multi::config::GroupConfig::new(id, n),
            shards,
            mode: CoordMode::Fast,
            coord_retry_ns: 100_000_000,
            coord_timeout_ns: 3_000_000_000,
            keep_ns: 5_000_000_000,
            max_buffered: 1024,
            record_order: false,
            announce_ns: 500_000_000,
        }
    }

    /// This replica's shard.
    pub fn shard(&self) -> u8 {
        (self.group.id as usize / self.group.n) as u8
    }

    /// The global ids of this shard's replicas, as a bit set.
    pub fn members(&self) -> u64 {
        let first = self.shard() as usize * self.group.n;
        let all = if self.group.n == 64 {
            u64::MAX
        } else {
            (1u64 << self.group.n) - 1
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
    /// Its predecessor in its client's chain (none for a head).
    pub(crate) pred: Option<Pred>,
    /// Round 1 is chosen (vacuous for a head).
    pub(crate) committed: bool,
    /// How far its coordination with the predecessor got.
    pub(crate) coord: Coord,
    /// Where to reply (none for an operation recovered from the journal until its client retries).
    pub(crate) conn: Option<ConnId>,
    /// When it arrived (or was recovered): its coordination timeout runs from here.
    pub(crate) since: u64,
    /// Recovered by a new leader in fast mode: it may have coordinated a
    /// successor already, so it must not fail by timeout.
    pub(crate) recovered: bool,
}

/// A coordination request waiting for its predecessor: (successor, its
/// shard, the leader that asked if it came from one, since when).
pub(crate) type WaitingCr = (OpId, u8, Option<ReplicaId>, u64);

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
    pub succ_ts: Map<OpId, u64>,
    /// Shards that answered the successor query.
    pub answered: u64,
    pub asked_at: u64,
    /// Placement order fixed (all answers in).
    pub sorted: bool,
    /// Proposals that arrived meanwhile.
    pub held: Vec<(ConnId, MdlPropose)>,
}

/// The role a replica plays in its shard: its leader keeps its
/// re-placement of unordered operations; it never recovers promises (it
/// refuses to rejoin without its votes).
pub(crate) type Role = paxos::multi::role::Role<Entry, Recovery, std::convert::Infallible>;

/// An MDLin replica.
#[derive(Debug)]
pub struct Replica {
    pub(crate) cfg: Config,
    pub(crate) role: Role,
    /// The Multi-Paxos state shared with Multi-Paxos itself.
    pub(crate) px: paxos::multi::state::State<Entry>,
    /// Slots below `.1` are chosen or accepted at ballot `.0` (the prefix rule).
    pub(crate) prefix: (u64, u64),
    /// Accepts that arrived before an earlier slot (the prefix rule), by slot.
    pub(crate) early_accepts: BTreeMap<u64, (ReplicaId, crate::messages::Accept)>,
    /// Current leader of every shard (global ids), from leaders'
    /// announcements or else the master.
    pub(crate) shard_leaders: Vec<Option<ReplicaId>>,
    /// Per shard, the ballot of the latest leader announcement heard (0:
    /// none; the master's word is used until one arrives).
    pub(crate) shard_ballots: Vec<u64>,
    /// Leader: when it last announced itself to the other shards.
    pub(crate) last_announce: Option<u64>,

    // Replicated state, built by executing the journal.
    /// Round 1 chosen, neither ordered nor failed yet.
    pub(crate) unordered: Map<OpId, (Command, u64, Option<Pred>)>,
    /// Failed operations (tombstones).
    pub(crate) failed: Set<OpId>,
    /// Next admission counter per client.
    pub(crate) next_shard_seq: Map<ClientId, u64>,
    /// Timestamps of operations safe to follow (ordered, or in fast mode
    /// coordinated at this leader), for late coordination requests.
    pub(crate) known_ts: Map<OpId, u64>,
    /// Chain successors ordered or coordinated here, by predecessor: (successor, ts).
    pub(crate) succ_index: Map<OpId, u64>,
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
    pub(crate) ops: Map<OpId, LiveOp>,
    pub(crate) admit_next: Map<ClientId, u64>,
    pub(crate) buffered: Map<ClientId, BTreeMap<u64, (u64, ConnId, MdlPropose)>>,
    /// Coordination replies that arrived before their operation, with when.
    pub(crate) early: Map<OpId, (u64, crate::messages::CoordReply)>,
    /// Leader: successor queries waiting for their fence to be chosen, by
    /// the asking shard (only the latest per shard).
    pub(crate) fence_asks: Vec<Option<(ReplicaId, crate::messages::SuccTsRequest)>>,
    /// Leader: the highest fence appended per shard (chosen or not).
    pub(crate) fence_proposed: Vec<u64>,
    /// Coordination requests waiting for their predecessor, by predecessor.
    pub(crate) waiting_crs: Map<OpId, Vec<WaitingCr>>,
    /// Coordination replies for this shard's own leader (same-shard chains).
    pub(crate) local: VecDeque<crate::messages::CoordReply>,
}

impl Replica {
    paxos::replica_accessors!();

    /// A fresh replica.
    pub fn new(cfg: Config) -> Self {
        assert!(cfg.group.n >= 1 && cfg.shards >= 1);
        assert!(cfg.group.n * cfg.shards <= genericsmr::MAX_REPLICAS);
        assert!((cfg.group.id as usize) < cfg.group.n * cfg.shards);
        let total = cfg.group.n * cfg.shards;
        let shards = cfg.shards;
        let px = paxos::multi::state::State::new(
            cfg.group.id,
            total,
            cfg.group.election_timeout_ns,
            cfg.group.transfer,
            StateMachine::default().with_limits(cfg.group.dedup),
        );
        Replica {
            cfg,
            role: Role::Follower,
            px,
            prefix: (0, 0),
            early_accepts: BTreeMap::new(),
            shard_leaders: vec![None; shards],
            shard_ballots: vec![0; shards],
            last_announce: None,
            unordered: Map::default(),
            failed: Set::default(),
            next_shard_seq: Map::default(),
            known_ts: Map::default(),
            succ_index: Map::default(),
            known_order: VecDeque::new(),
            shard_ts: 1,
            fences: vec![0; shards],
            exec_order: Vec::new(),
            exec_ts: Vec::new(),
            ops: Map::default(),
            admit_next: Map::default(),
            buffered: Map::default(),
            early: Map::default(),
            fence_asks: vec![None; shards],
            fence_proposed: vec![0; shards],
            waiting_crs: Map::default(),
            local: VecDeque::new(),
        }
    }

    /// Whether this replica leads its shard (recovering or not).
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// Whether this replica leads and serves new operations.
    pub fn is_serving(&self) -> bool {
        matches!(&self.role, Role::Leader { own: recovery, .. } if recovery.ops.is_empty() && recovery.started)
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
            Role::Leader { own: recovery, .. } => format!(
                "recovery started {} sorted {} left {:?} answered {:b}",
                recovery.started, recovery.sorted, recovery.ops, recovery.answered
            ),
            _ => String::new(),
        };
        format!("replica {} {rec}: {:?}", self.cfg.group.id, ops)
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
            self.shard_leaders[me] = Some(self.cfg.group.id);
        } else if let Some(l) = leaders.get(me).copied().flatten() {
            if l != self.cfg.group.id {
                self.px.leader_hint = Some(l);
            }
        }
    }

    /// This replica's id inside its shard: clients get ids inside the shard
    /// in replies, as from every sharded protocol.
    pub(crate) fn local_id(&self) -> ReplicaId {
        self.cfg.group.id - self.cfg.shard() * self.cfg.group.n as u8
    }

    /// "Ask me", as a hint in a reply.
    pub(crate) fn me_hint(&self) -> Option<ReplicaId> {
        Some(self.local_id())
    }

    /// The leader hint for a reply, as an id inside the shard.
    pub(crate) fn hint(&self) -> Option<ReplicaId> {
        let first = self.cfg.shard() * self.cfg.group.n as u8;
        self.leader_hint().and_then(|g| g.checked_sub(first))
    }

    /// This shard's other replicas.
    pub(crate) fn peers(&self) -> u64 {
        self.cfg.members() & !bit(self.cfg.group.id)
    }

    /// The receive prelude of every journal message: whether `from` is a
    /// replica of this shard (anything else is dropped), noting when it was
    /// last heard from (thrifty sends go to the freshest peers).
    pub(crate) fn heard(&mut self, from: ReplicaId, now: u64) -> bool {
        if !self.same_shard(from) {
            return false;
        }
        self.px.last_heard[from as usize] = now;
        true
    }

    /// Whether `from` is a replica of this shard (journal messages from
    /// anyone else are dropped).
    pub(crate) fn same_shard(&self, from: ReplicaId) -> bool {
        (from as usize) < 64 && self.cfg.members() & bit(from) != 0
    }

    /// Stops leading: every operation in flight here is told to go elsewhere.
    pub(crate) fn step_down(&mut self, fx: &mut Effects<MdlMsg>) {
        let first = self.cfg.shard() * self.cfg.group.n as u8;
        let hint = self
            .px
            .leader_hint
            .filter(|h| *h != self.cfg.group.id)
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
        if let Role::Leader { own: recovery, .. } = old {
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
        if self.shard_leaders[me] == Some(self.cfg.group.id) {
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
        self.px.advance_commit();
    }
    fn campaign_on_timeout(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        self.campaign(now, self.px.promised, 1, fx);
    }
    /// No retry: the election timers decide who campaigns next.
    fn retry_campaign(&mut self, _now: u64, _above: u64, _attempts: u32, _fx: &mut Effects<MdlMsg>) {}
    /// A fresher replica campaigns while this one catches up from the
    /// leader (on its timer).
    fn catch_up_from(&mut self, _now: u64, _from: ReplicaId, _fx: &mut Effects<MdlMsg>) {}
    fn lead(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        self.maybe_lead(now, fx);
    }
}

/// The predecessor's [`OpId`] (same client).
pub(crate) fn pred_id(op: OpId, p: Pred) -> OpId {
    OpId {
        client: op.client,
        seq: p.seq,
    }
}
