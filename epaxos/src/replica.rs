//! The EPaxos replica core: configuration, instance state, the per-key
//! conflict table, and helpers the handler modules share.
//!
//! Handlers live by role: `preaccept.rs` (proposals and phase 1),
//! `accept.rs` (phase 2), `commit.rs` (commits and replies at commit),
//! `recovery.rs` (Prepare, for instances whose leader seems gone), `exec.rs`
//! (the dependency graph and Tarjan's algorithm) and `control.rs` (timers,
//! master, status, durable replay).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

use genericsmr::command::{ClientId, Command};
use genericsmr::effects::Effects;
use genericsmr::in_flight::InFlight;
use genericsmr::state::StateMachine;
use genericsmr::{ConnId, ReplicaId};

use crate::keys::KeyTable;
use crate::messages::{Entry, EpaxosMsg, Record};

/// Settings of one replica.
#[derive(Debug, Clone)]
pub struct Config {
    /// This replica's id.
    pub id: ReplicaId,
    /// Group size (2F+1, odd, at most 64).
    pub n: usize,
    /// Send PreAccept to a fast quorum only (and Accept to a majority).
    pub thrifty: bool,
    /// Put every proposal queued at once into one instance.
    pub batch: bool,
    /// Most commands in one instance.
    pub batch_max: usize,
    /// Reply to writes after execution instead of at commit.
    pub reply_after_exec: bool,
    /// Own instances started but not yet executed, at most. Bounds the
    /// dependency chains that a steady stream of conflicting commands could
    /// otherwise grow without end (execution livelock): proposals beyond it
    /// wait, and join the next instance's batch.
    pub max_inflight: usize,
    /// Resend unanswered phase-1/phase-2 messages after this many nanoseconds.
    pub retransmit_ns: u64,
    /// How often a replica tells the others how many instances it started.
    pub heartbeat_ns: u64,
    /// Start recovering an instance this replica has waited on this long.
    pub recovery_grace_ns: u64,
    /// The garbage-collection horizon: executed instances kept per leader
    /// (for peers that still ask about them); older ones are forgotten, so
    /// memory stays bounded. Their commands are kept up to a quarter of
    /// [`Config::compact_bytes`] per leader too, since with batching an
    /// instance holds many. A peer that falls further behind is sent a
    /// snapshot instead.
    pub keep_executed: u64,
    /// A durable replica compacts its log once this many instances more
    /// were executed since the last compaction: a snapshot becomes the
    /// snapshot file and the log keeps only what the snapshot does not cover
    /// (see [`crate::snapshot`]). The log holds about this many instances'
    /// records, plus the instances not yet executed.
    pub compact_every: u64,
    /// A durable replica also compacts once it has written this many bytes
    /// of records since the last compaction: with batching an instance holds
    /// many commands, so a bound in instances alone does not bound the file.
    /// A quarter of it bounds the executed commands kept per leader.
    pub compact_bytes: usize,
    /// How far an instance number may run ahead of its leader's executed
    /// window here; a further number can only come from a broken peer.
    pub max_ahead: u64,
    /// Instances of one peer that one heartbeat may make this replica wait
    /// on (and allocate), at most: the rest follow with later heartbeats.
    pub progress_wait_max: u64,
    /// Snapshot transfer: chunk size, largest snapshot, retry timeout.
    pub transfer: genericsmr::snapshot::TransferConfig,
    /// Bounds of the state machine's dedup table.
    pub dedup: genericsmr::state::Limits,
    /// Proposals held at most while waiting; more are refused.
    pub max_pending: usize,
    /// Commands at most in own instances not yet executed, and proposals
    /// waiting for an instance at which the replica stops taking client
    /// requests until some start (`--pipeline`). A load above what the
    /// group executes then waits in the client lane and in TCP, not here,
    /// so the replica's memory does not follow the clients' windows. In
    /// commands, not instances: a batch may hold thousands.
    pub max_queued: u64,
    /// Largest command accepted, in encoded bytes.
    pub max_command_bytes: usize,
    /// Keep the (instance, hash) of every commit in commit order, and the
    /// order of executed instances, for the simulator and tests. Off in
    /// servers (both grow without bound).
    pub record_commits: bool,
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
            max_inflight: 1024,
            retransmit_ns: 200_000_000,
            recovery_grace_ns: 300_000_000,
            heartbeat_ns: 10_000_000,
            keep_executed: 1 << 16,
            compact_every: 1 << 16,
            compact_bytes: 64 << 20,
            max_ahead: 1 << 22,
            progress_wait_max: 4096,
            transfer: Default::default(),
            dedup: Default::default(),
            max_pending: 1 << 20,
            max_queued: 8192,
            max_command_bytes: 1 << 20,
            record_commits: false,
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

    /// F: the failures tolerated.
    pub fn f(&self) -> usize {
        (self.n - 1) / 2
    }

    /// A majority, this replica included.
    pub fn quorum(&self) -> usize {
        self.n / 2 + 1
    }

    /// The fast quorum of optimised EPaxos, the command leader included:
    /// F + floor((F+1)/2). Any fast quorum and any majority of the other
    /// replicas share floor((F+1)/2) replicas, which is what recovery needs
    /// to see a fast-path decision.
    pub fn fast_quorum(&self) -> usize {
        let f = self.f();
        (f + f.div_ceil(2)).max(1)
    }
}

/// Where an instance stands at one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Status {
    /// Known only as a dependency (nothing voted here).
    None = 0,
    /// Attributes pre-accepted at `vballot`.
    PreAccepted = 1,
    /// Attributes accepted at `vballot` (slow path).
    Accepted = 2,
    /// Attributes chosen.
    Committed = 3,
    /// Commands applied to the state machine.
    Executed = 4,
}

impl Status {
    /// From its wire number (unknown numbers read as `None`).
    pub fn from_u8(v: u8) -> Status {
        match v {
            1 => Status::PreAccepted,
            2 => Status::Accepted,
            3 => Status::Committed,
            4 => Status::Executed,
            _ => Status::None,
        }
    }

    /// Committed or executed.
    pub fn is_committed(self) -> bool {
        self >= Status::Committed
    }
}

/// What the replica leading an instance (its command leader, or a recovering
/// replica) counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lead {
    /// The ballot this replica leads the instance at.
    pub ballot: u64,
    /// The phase: 1 PreAccept, 2 Accept, 3 Prepare.
    pub phase: u8,
    /// Replicas that answered this phase (bit per replica).
    pub answered: u64,
    /// Replicas that voted for the proposed attributes unchanged (phase 1).
    pub unchanged: u64,
    /// Replicas that voted (phase 1 or 2).
    pub votes: u64,
    /// Union of the attributes reported in phase 1.
    pub seq: u64,
    /// Union of the dependencies reported in phase 1.
    pub deps: Vec<u64>,
    /// When this phase's messages were last sent (for retransmission).
    pub sent_at: u64,
    /// Recovery: the replies collected.
    pub prepared: Vec<(ReplicaId, crate::messages::PrepareReply)>,
}

/// One instance at one replica.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Where it stands.
    pub status: Status,
    /// Highest ballot promised for it.
    pub ballot: u64,
    /// Ballot of the last vote for the attributes below (0 before any vote at
    /// a recovery ballot).
    pub vballot: u64,
    /// Pre-accepted at ballot 0 with the command leader's attributes unchanged.
    pub unchanged: bool,
    /// The commands (a batch; empty for a no-op).
    pub cmds: Vec<Command>,
    /// Sequence number.
    pub seq: u64,
    /// Dependencies: a prefix length per replica.
    pub deps: Vec<u64>,
    /// When this replica first needed it (as a dependency) while uncommitted.
    pub(crate) waiting_since: Option<u64>,
    /// Leading state, while this replica drives the instance.
    pub(crate) lead: Option<Box<Lead>>,
    /// A short commit (ballot, seq, deps) that arrived before the commands
    /// of its ballot.
    pub(crate) early_commit: Option<Box<(u64, u64, Vec<u64>)>>,
}

impl Instance {
    /// Encoded bytes of its commands (what the byte bound on kept
    /// instances counts).
    pub(crate) fn cmd_bytes(&self) -> usize {
        self.cmds.iter().map(Command::wire_len).sum()
    }

    pub(crate) fn empty(n: usize) -> Self {
        Instance {
            status: Status::None,
            ballot: 0,
            vballot: 0,
            unchanged: false,
            cmds: Vec::new(),
            seq: 0,
            deps: vec![0; n],
            waiting_since: None,
            lead: None,
            early_commit: None,
        }
    }

    /// Its durable record as instance `i` of `leader` (an executed instance
    /// is written as committed: the execution order has records of its own).
    pub(crate) fn record(&self, leader: ReplicaId, i: u64) -> Record {
        Record {
            leader,
            instance: i,
            ballot: self.ballot,
            vballot: self.vballot,
            status: self.status.min(Status::Committed) as u8,
            unchanged: self.unchanged,
            cmds: self.cmds.clone(),
            seq: self.seq,
            deps: self.deps.clone(),
        }
    }

    /// A hash of the chosen value (commands and attributes), for agreement checks.
    pub fn hash(&self) -> u64 {
        use genericsmr::wire::Marshal;
        let mut b = bytes::BytesMut::new();
        self.cmds.marshal(&mut b);
        self.seq.marshal(&mut b);
        self.deps.marshal(&mut b);
        xxhash_rust::xxh3::xxh3_64(&b)
    }
}

/// The instances of one command leader: a window from `base` (everything
/// below is executed and forgotten).
#[derive(Debug, Default)]
pub(crate) struct Space {
    /// Instances below `base` are executed and dropped.
    pub base: u64,
    pub slots: VecDeque<Option<Instance>>,
    /// Every instance below this is executed.
    pub executed_upto: u64,
    /// Encoded bytes of the commands of the executed instances held (from
    /// `base` to `executed_upto`), for the byte bound on what is kept.
    pub kept_bytes: usize,
}

impl Space {
    pub fn get(&self, i: u64) -> Option<&Instance> {
        if i < self.base {
            return None;
        }
        self.slots.get((i - self.base) as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, i: u64) -> Option<&mut Instance> {
        if i < self.base {
            return None;
        }
        self.slots.get_mut((i - self.base) as usize)?.as_mut()
    }

    /// The instance, created empty if new. `None` below the window.
    pub fn entry(&mut self, i: u64, n: usize) -> Option<&mut Instance> {
        if i < self.base {
            return None;
        }
        let k = (i - self.base) as usize;
        while self.slots.len() <= k {
            self.slots.push_back(None);
        }
        Some(self.slots[k].get_or_insert_with(|| Instance::empty(n)))
    }

    /// One past the highest instance held.
    pub fn end(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    /// Moves `executed_upto` past the executed instances that now follow it.
    pub fn advance_executed(&mut self) {
        while let Some(x) = self
            .get(self.executed_upto)
            .filter(|x| x.status == Status::Executed)
        {
            self.kept_bytes += x.cmd_bytes();
            self.executed_upto += 1;
        }
    }

    /// Drops the oldest instance held, which must be executed.
    pub fn forget_first(&mut self) {
        if let Some(Some(x)) = self.slots.pop_front() {
            self.kept_bytes = self.kept_bytes.saturating_sub(x.cmd_bytes());
        }
        self.base += 1;
    }
}

/// The EPaxos replica.
pub struct Replica {
    pub(crate) cfg: Config,
    pub(crate) spaces: Vec<Space>,
    pub(crate) keys: KeyTable,
    /// What each replica last reported executed, per leader.
    pub(crate) peer_executed: Vec<Vec<u64>>,
    /// What each replica last reported as executed everywhere, per leader.
    pub(crate) peer_everywhere: Vec<Vec<u64>>,
    /// Per leader, instances below this are executed by every replica.
    pub(crate) everywhere: Vec<u64>,
    /// When each peer was last heard from.
    pub(crate) last_heard: Vec<u64>,
    /// Own next instance number.
    pub(crate) next: u64,
    /// Proposals waiting for an instance (livelock bound or batching).
    pub(crate) pending: VecDeque<Command>,
    /// The commands of own instances started and not executed here (see
    /// [`Config::max_queued`]).
    pub(crate) open: InFlight,
    /// Where to answer each command proposed here: (client, seq) -> connection.
    pub(crate) waiting: HashMap<(ClientId, u64), ConnId, ahash::RandomState>,
    /// Committed, not yet executed instances, in (leader, instance) order.
    pub(crate) to_execute: BTreeSet<(ReplicaId, u64)>,
    /// Instances this replica drives (as command leader or recoverer), for retransmission.
    pub(crate) leading: BTreeSet<(ReplicaId, u64)>,
    /// Uncommitted instances waited on, by the time the wait began (earliest
    /// first), for recovery. An entry whose instance committed, or whose
    /// wait restarted, is dropped when it comes up.
    pub(crate) waited: BinaryHeap<Reverse<(u64, ReplicaId, u64)>>,
    /// Instances whose state changed this burst and must be persisted.
    pub(crate) dirty: BTreeSet<(ReplicaId, u64)>,
    pub(crate) state: StateMachine,
    pub(crate) committed: u64,
    pub(crate) executed: u64,
    pub(crate) commit_log: Vec<(u64, u64)>,
    pub(crate) exec_log: Vec<(ReplicaId, u64)>,
    pub(crate) replayed: u64,
    pub(crate) last_progress: u64,
    pub(crate) recoveries: u64,
    pub(crate) fast_commits: u64,
    pub(crate) slow_commits: u64,
    /// The snapshot this replica is fetching, if any.
    pub(crate) fetch: genericsmr::snapshot::Fetch,
    /// Snapshots sent to peers.
    pub(crate) snapshots_sent: u64,
    /// The last `everywhere` persisted (written again only when it moves).
    pub(crate) everywhere_persisted: Vec<u64>,
    /// The executed count at the last durable compaction (or at the snapshot
    /// a restart began from).
    pub(crate) compacted_at: u64,
    /// Durable compactions this replica asked for.
    pub(crate) compactions: u64,
    /// Bytes of records written since the last compaction (see
    /// [`Config::compact_bytes`]), and how much of the outbox's queue was
    /// counted already.
    pub(crate) logged_bytes: usize,
    pub(crate) logged_seen: usize,
}

impl Replica {
    /// A fresh replica.
    pub fn new(cfg: Config) -> Self {
        assert!(
            cfg.n % 2 == 1 && cfg.n <= 64,
            "EPaxos needs an odd group of at most 64"
        );
        Replica {
            spaces: (0..cfg.n).map(|_| Space::default()).collect(),
            keys: {
                #[allow(unused_mut)]
                let mut k = KeyTable::new(cfg.n);
                #[cfg(feature = "broken")]
                if cfg.broken == Some(crate::broken::Broken::DropDependency) {
                    k.drop_own = Some(cfg.id);
                }
                k
            },
            peer_executed: vec![vec![0; cfg.n]; cfg.n],
            peer_everywhere: vec![vec![0; cfg.n]; cfg.n],
            everywhere: vec![0; cfg.n],
            last_heard: vec![0; cfg.n],
            next: 0,
            pending: VecDeque::new(),
            open: InFlight::default(),
            waiting: HashMap::default(),
            to_execute: BTreeSet::new(),
            leading: BTreeSet::new(),
            waited: BinaryHeap::new(),
            dirty: BTreeSet::new(),
            // Puts answered at commit never show what they replaced.
            state: if cfg.reply_after_exec {
                StateMachine::default()
            } else {
                StateMachine::without_replaced_values()
            }
            .with_limits(cfg.dedup),
            committed: 0,
            executed: 0,
            commit_log: Vec::new(),
            exec_log: Vec::new(),
            replayed: 0,
            last_progress: 0,
            recoveries: 0,
            fast_commits: 0,
            slow_commits: 0,
            fetch: genericsmr::snapshot::Fetch::new(cfg.transfer),
            snapshots_sent: 0,
            everywhere_persisted: vec![0; cfg.n],
            compacted_at: 0,
            logged_bytes: 0,
            logged_seen: 0,
            compactions: 0,
            cfg,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The state machine.
    pub fn state(&self) -> &StateMachine {
        &self.state
    }

    /// An instance, if held.
    pub fn instance(&self, leader: ReplicaId, i: u64) -> Option<&Instance> {
        self.spaces.get(leader as usize)?.get(i)
    }

    /// Instances committed here (counting each once).
    pub fn committed_count(&self) -> u64 {
        self.committed
    }

    /// Instances executed here.
    pub fn executed_count(&self) -> u64 {
        self.executed
    }

    /// Instances committed on the fast path and on the slow path, as command leader.
    pub fn commit_paths(&self) -> (u64, u64) {
        (self.fast_commits, self.slow_commits)
    }

    /// Instances in the order this replica executed them (with
    /// [`Config::record_commits`]).
    pub fn executed_order(&self) -> &[(ReplicaId, u64)] {
        &self.exec_log
    }

    /// Recoveries this replica started.
    pub fn recoveries(&self) -> u64 {
        self.recoveries
    }

    /// Whether it takes client requests now (see [`Config::max_queued`]).
    pub fn accepting(&self) -> bool {
        (self.pending.len() as u64) < self.cfg.max_queued
    }

    /// Own instances started and not yet executed.
    pub(crate) fn inflight(&self) -> u64 {
        self.next - self.spaces[self.cfg.id as usize].executed_upto
    }

    /// Commands in own instances not executed.
    pub(crate) fn open_commands(&mut self) -> usize {
        self.open
            .settle(self.spaces[self.cfg.id as usize].executed_upto)
    }

    /// Rebuilds `open` from the own instances held (after a replay).
    pub(crate) fn recount_open(&mut self) {
        let sp = &self.spaces[self.cfg.id as usize];
        self.open.reset(
            (sp.executed_upto..self.next).filter_map(|i| sp.get(i).map(|x| (i, x.cmds.len()))),
        );
    }

    /// Whether instance `i` of `leader` is a number this replica can hold.
    pub(crate) fn in_window(&self, leader: ReplicaId, i: u64) -> bool {
        (leader as usize) < self.cfg.n
            && i < self.spaces[leader as usize]
                .executed_upto
                .saturating_add(self.cfg.max_ahead)
    }

    /// The attributes the commands would get here: a sequence number above
    /// every conflicting instance seen, and their prefixes as dependencies.
    /// Instance `(leader, i)` always depends on its leader's earlier instances.
    pub(crate) fn attributes(
        &self,
        leader: ReplicaId,
        i: u64,
        cmds: &[Command],
    ) -> (u64, Vec<u64>) {
        self.keys.attributes(leader, i, cmds)
    }

    /// Notes that instance `(leader, i)` touches its commands' keys with `seq`,
    /// so that later conflicting instances depend on it.
    pub(crate) fn record_keys(&mut self, leader: ReplicaId, i: u64, seq: u64, cmds: &[Command]) {
        self.keys.note(leader, i, seq, cmds);
    }

    /// [`Replica::record_keys`] with the commands the instance holds.
    pub(crate) fn record_own_keys(&mut self, leader: ReplicaId, i: u64) {
        if let Some(x) = self.spaces[leader as usize].get(i) {
            self.keys.note(leader, i, x.seq, &x.cmds);
        }
    }

    /// Queues the instance's state for the durable log.
    pub(crate) fn touch(&mut self, leader: ReplicaId, i: u64) {
        self.dirty.insert((leader, i));
    }

    /// Persists every instance touched since the last call.
    pub(crate) fn persist_dirty(&mut self, fx: &mut Effects<EpaxosMsg>) {
        if !fx.keeps_records() {
            self.dirty.clear();
            return;
        }
        for (l, i) in std::mem::take(&mut self.dirty) {
            if let Some(x) = self.spaces[l as usize].get(i) {
                fx.persist(&Entry::instance(&x.record(l, i)));
            }
        }
    }

    /// Per leader, every instance below this is executed here.
    pub(crate) fn executed_upto(&self) -> Vec<u64> {
        self.spaces.iter().map(|s| s.executed_upto).collect()
    }

    /// Recomputes what every replica has executed, and forgets the instances
    /// nobody needs any more and the conflict entries every replica knows
    /// nobody needs.
    pub(crate) fn collect_garbage(&mut self, fx: &mut Effects<EpaxosMsg>) {
        let me = self.cfg.id as usize;
        let n = self.cfg.n;
        let mine = self.executed_upto();
        let min_of = |own: &[u64], peers: &[Vec<u64>], l: usize| {
            (0..n)
                .map(|r| if r == me { own[l] } else { peers[r][l] })
                .min()
                .unwrap_or(0)
        };
        // A fact only grows: a restarted peer that reports 0 again has still
        // executed what it had.
        for l in 0..n {
            let all = min_of(&mine, &self.peer_executed, l);
            self.everywhere[l] = self.everywhere[l].max(all);
        }
        if self.everywhere != self.everywhere_persisted && fx.keeps_records() {
            // Before any heartbeat carries it (the driver persists before it
            // sends): peers drop conflicts once everyone reports them here.
            fx.persist(&Entry::Everywhere(self.everywhere.clone()));
            self.everywhere_persisted.clone_from(&self.everywhere);
        }
        let known: Vec<u64> = (0..n)
            .map(|l| min_of(&self.everywhere, &self.peer_everywhere, l))
            .collect();
        self.keys.forget(&known);
        self.forget_executed();
    }

    /// Keys in the conflict table.
    pub fn conflict_keys(&self) -> usize {
        self.keys.len()
    }

    /// The instance, if this replica can take a vote on it now: in the window,
    /// with a dependency vector of the right length, and not committed. A
    /// sender that asks about a committed instance missed the commit, and is
    /// sent it.
    pub(crate) fn open_instance(
        &mut self,
        from: ReplicaId,
        l: ReplicaId,
        i: u64,
        deps: &[u64],
        fx: &mut Effects<EpaxosMsg>,
    ) -> Option<&mut Instance> {
        if !self.in_window(l, i) || deps.len() != self.cfg.n {
            return None;
        }
        let n = self.cfg.n;
        if i < self.spaces[l as usize].base {
            // Executed and forgotten: the sender is behind; never silence.
            self.compacted(from, l, i, fx);
            return None;
        }
        let x = self.spaces[l as usize].entry(i, n)?;
        if x.status.is_committed() {
            fx.send(from, crate::preaccept::full_commit(l, i, x));
            return None;
        }
        Some(x)
    }

    /// Every peer but this replica, as a bit set.
    pub(crate) fn others(&self) -> u64 {
        ((1u64 << self.cfg.n) - 1) & !(1u64 << self.cfg.id)
    }

    /// `k` peers for a thrifty send: the first in id order after this one
    /// that were heard from lately (a silent peer would cost every instance a
    /// retransmission), then silent ones if too few were heard.
    pub(crate) fn first_peers(&self, k: usize, now: u64) -> u64 {
        let n = self.cfg.n;
        let fresh = 4 * self.cfg.heartbeat_ns;
        let order = (1..n).map(|d| (self.cfg.id as usize + d) % n);
        let live = order
            .clone()
            .filter(|&j| now.saturating_sub(self.last_heard[j]) <= fresh);
        live.chain(order)
            .fold((0u64, 0), |(s, c), j| {
                if c < k && s & (1 << j) == 0 {
                    (s | 1 << j, c + 1)
                } else {
                    (s, c)
                }
            })
            .0
    }
}
