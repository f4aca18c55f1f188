//! The Raft replica core: configuration, state, and the helpers the handler
//! modules share.
//!
//! The core is pure: handlers take a message and `now` and push effects
//! into an [`Effects`] outbox. The handlers live next to what they serve:
//! `election.rs` (PreVote, votes, CheckQuorum, leadership transfer),
//! `replication.rs` (AppendEntries both ways, commit), `client.rs`
//! (proposals, batching, execution and replies), `snapshot.rs`
//! (compaction, snapshot transfer), `durable.rs` (records and replay) and
//! `control.rs` (timers, master and status requests).

use std::collections::{HashMap, VecDeque};

use genericsmr::command::{ClientId, Command};
use genericsmr::effects::{reject, Effects};
use genericsmr::election::ElectionTimer;
use genericsmr::messages::ReplyStatus;
use genericsmr::state::StateMachine;
use genericsmr::{ConnId, ReplicaId};

use crate::durable::Record;
use crate::log::Log;
use crate::messages::RaftMsg;

/// Settings of one replica.
#[derive(Debug, Clone)]
pub struct Config {
    /// This replica's id.
    pub id: ReplicaId,
    /// Group size (2F+1).
    pub n: usize,
    /// Put every proposal queued at once into one entry.
    pub batch: bool,
    /// Most commands in one entry.
    pub batch_max: usize,
    /// Reply with the outcome of puts too (they are answered at execution
    /// either way; without it, puts do not report what they replaced).
    pub reply_after_exec: bool,
    /// Election timeout `T`, ns: a follower that hears no leader for a
    /// random time in `[T, 2T)` campaigns; a leader that has not heard a
    /// majority for `T` steps down (CheckQuorum). 0 turns elections off.
    pub election_timeout_ns: u64,
    /// On the master's hint that it lost the leader, a follower campaigns
    /// once it has not heard the leader for this long.
    pub hint_quiet_ns: u64,
    /// A leader sends every follower an AppendEntries at least this often.
    pub heartbeat_ns: u64,
    /// Unanswered AppendEntries are sent again after this long.
    pub retransmit_ns: u64,
    /// Bytes of commands in one AppendEntries (and in one batched entry), so
    /// every message fits in a frame.
    pub max_msg_bytes: usize,
    /// Most entries in one AppendEntries.
    pub max_msg_entries: usize,
    /// AppendEntries in flight to one follower before the leader waits for
    /// an answer (pipelining depth).
    pub max_inflight: usize,
    /// Bytes of commands in flight to one follower before the leader waits
    /// for an answer (bounds what a follower far behind is sent at once).
    pub max_inflight_bytes: usize,
    /// Executed entries kept in memory for followers that lag; a follower
    /// further behind gets a snapshot.
    pub keep_executed: u64,
    /// Compaction runs once this many entries more than `keep_executed` are
    /// executed (the durable log then holds about this many entries).
    pub compact_every: u64,
    /// Compaction also runs once executed entries held reach this many
    /// bytes of commands (keeping a quarter of it).
    pub compact_bytes: usize,
    /// Snapshot transfer settings (shared mechanism).
    pub transfer: genericsmr::snapshot::TransferConfig,
    /// Proposals queued at most; more are refused.
    pub max_pending: usize,
    /// Largest command accepted, encoded bytes.
    pub max_command_bytes: usize,
    /// Bounds of the state machine's dedup table.
    pub dedup: genericsmr::state::Limits,
    /// PreVote: a replica asks whether it could win before it takes a new
    /// term. Off only in tests (a broken variant).
    pub pre_vote: bool,
    /// CheckQuorum: a leader that has not heard a majority within an
    /// election timeout steps down, and a follower that heard its leader
    /// within one refuses votes. Off only in tests (a broken variant).
    pub check_quorum: bool,
}

impl Config {
    /// Defaults for replica `id` of `n`.
    pub fn new(id: ReplicaId, n: usize) -> Self {
        Config {
            id,
            n,
            batch: false,
            batch_max: 4096,
            reply_after_exec: false,
            election_timeout_ns: 1_000_000_000,
            hint_quiet_ns: 200_000_000,
            heartbeat_ns: 50_000_000,
            retransmit_ns: 200_000_000,
            max_msg_bytes: 4 << 20,
            max_msg_entries: 4096,
            max_inflight: 256,
            max_inflight_bytes: 64 << 20,
            keep_executed: 1 << 16,
            compact_every: 1 << 16,
            compact_bytes: 64 << 20,
            transfer: Default::default(),
            max_pending: 1 << 20,
            max_command_bytes: 1 << 20,
            dedup: Default::default(),
            pre_vote: true,
            check_quorum: true,
        }
    }

    /// Votes needed for a quorum (a majority, counting this replica).
    pub fn quorum(&self) -> usize {
        self.n / 2 + 1
    }
}

/// What a leader knows of one follower.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// Next index to send.
    pub next: u64,
    /// Highest index known to match the leader's log.
    pub matched: u64,
    /// AppendEntries in flight: (first, last) index and bytes of commands
    /// of each, oldest first.
    pub inflight: VecDeque<(u64, u64, usize)>,
    /// Bytes of commands in flight (the sum over `inflight`).
    pub inflight_bytes: usize,
    /// When the oldest unanswered AppendEntries went out (or last progress).
    pub sent_at: u64,
    /// When the follower last answered (CheckQuorum).
    pub heard_at: u64,
    /// When it was last told to fetch a snapshot.
    pub compacted_at: Option<u64>,
}

/// A leader's state.
#[derive(Debug)]
pub(crate) struct Leading {
    /// Per replica (its own entry unused).
    pub progress: Vec<Progress>,
    /// When it became leader.
    pub since: u64,
    /// When heartbeats last went out.
    pub heartbeat_at: u64,
    /// A leadership transfer under way: to whom, until when, and whether
    /// `TimeoutNow` went out already.
    pub transfer: Option<(ReplicaId, u64, bool)>,
}

/// The role a replica plays.
#[derive(Debug)]
pub(crate) enum Role {
    Follower,
    /// Asking for pre-votes (term not taken yet): who granted.
    PreCandidate(u64),
    /// Campaigning in the current term: who voted for us.
    Candidate(u64),
    Leader(Leading),
}

/// The Raft replica core.
#[derive(Debug)]
pub struct Replica {
    pub(crate) cfg: Config,
    pub(crate) role: Role,
    /// Current term (durable).
    pub(crate) term: u64,
    /// Whom we voted for in `term` (durable).
    pub(crate) vote: Option<ReplicaId>,
    /// The leader of `term`, once heard.
    pub(crate) leader: Option<ReplicaId>,
    /// When the leader of `term` was last heard (for the CheckQuorum lease).
    pub(crate) leader_heard_at: Option<u64>,
    pub(crate) log: Log,
    /// Every entry up to here is committed.
    pub(crate) commit: u64,
    /// Every entry up to here is executed.
    pub(crate) applied: u64,
    pub(crate) sm: StateMachine,
    /// Bytes of commands of executed entries held in memory.
    pub(crate) exec_bytes: usize,
    pub(crate) fetch: genericsmr::snapshot::Fetch,
    pub(crate) snapshots_installed: u64,
    pub(crate) snapshots_sent: u64,
    pub(crate) compactions: u64,
    /// Proposals waiting for the next entry (leader only).
    pub(crate) pending: VecDeque<Command>,
    /// Where to answer each proposal in flight through this replica.
    pub(crate) waiting: HashMap<(ClientId, u64), ConnId>,
    pub(crate) election: ElectionTimer,
    /// Asked to lead (set-leader) until then: campaign as soon as the
    /// leader is quiet for `hint_quiet_ns`.
    pub(crate) eager_until: u64,
    /// Records replayed at boot.
    pub(crate) replayed: u64,
    /// Time of the event being handled.
    pub(crate) now: u64,
}

impl Replica {
    /// A fresh replica with an empty log.
    pub fn new(cfg: Config) -> Self {
        assert!(cfg.n >= 1 && cfg.n <= genericsmr::MAX_REPLICAS && (cfg.id as usize) < cfg.n);
        let fetch = genericsmr::snapshot::Fetch::new(cfg.transfer);
        let election = ElectionTimer::new(cfg.id as u64, cfg.election_timeout_ns);
        let sm = if cfg.reply_after_exec {
            StateMachine::default()
        } else {
            StateMachine::without_replaced_values()
        }
        .with_limits(cfg.dedup);
        Replica {
            cfg,
            role: Role::Follower,
            term: 0,
            vote: None,
            leader: None,
            leader_heard_at: None,
            log: Log::default(),
            commit: 0,
            applied: 0,
            sm,
            exec_bytes: 0,
            fetch,
            snapshots_installed: 0,
            snapshots_sent: 0,
            compactions: 0,
            pending: VecDeque::new(),
            waiting: HashMap::new(),
            election,
            eager_until: 0,
            replayed: 0,
            now: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Current term.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The replica believed to lead in the current term.
    pub fn leader_hint(&self) -> Option<ReplicaId> {
        if self.is_leader() {
            Some(self.cfg.id)
        } else {
            self.leader
        }
    }

    /// Every entry up to here is committed.
    pub fn commit_index(&self) -> u64 {
        self.commit
    }

    /// Every entry up to here is executed.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Index of the last entry.
    pub fn last_index(&self) -> u64 {
        self.log.last()
    }

    /// Index of the last entry compacted away from memory.
    pub fn log_base(&self) -> u64 {
        self.log.base()
    }

    /// The entry at `i`, if held.
    pub fn entry(&self, i: u64) -> Option<&crate::messages::Entry> {
        self.log.get(i)
    }

    /// The state machine.
    pub fn state(&self) -> &StateMachine {
        &self.sm
    }

    /// Snapshots installed from peers, sent to peers, and compactions.
    pub fn snapshot_counts(&self) -> (u64, u64, u64) {
        (
            self.snapshots_installed,
            self.snapshots_sent,
            self.compactions,
        )
    }

    pub(crate) fn majority(&self, votes: u64) -> bool {
        votes.count_ones() as usize >= self.cfg.quorum()
    }

    pub(crate) fn bit(id: ReplicaId) -> u64 {
        1u64 << id
    }

    /// Persists the term and vote.
    pub(crate) fn persist_hard_state(&self, fx: &mut Effects<RaftMsg>) {
        fx.persist(&Record::HardState {
            term: self.term,
            vote: self.vote,
        });
    }

    /// Moves to term `t` (above the current one) as a follower with no vote.
    pub(crate) fn enter_term(&mut self, t: u64, fx: &mut Effects<RaftMsg>) {
        if t > self.term {
            self.term = t;
            self.vote = None;
            self.leader = None;
            self.leader_heard_at = None;
            self.persist_hard_state(fx);
            self.become_follower(fx);
        }
    }

    /// Stops leading or campaigning; every proposal in flight here is told
    /// to go elsewhere (a retry with the same sequence number is safe: the
    /// state machine runs it once).
    pub(crate) fn become_follower(&mut self, fx: &mut Effects<RaftMsg>) {
        if !matches!(self.role, Role::Follower) {
            tracing::info!(term = self.term, "now a follower");
        }
        self.role = Role::Follower;
        self.pending.clear();
        let hint = self.leader.filter(|h| *h != self.cfg.id);
        // In a fixed order: effects must not depend on hash seeds, so a
        // simulated run replays exactly from its seed.
        let mut waiting: Vec<_> = self.waiting.drain().collect();
        waiting.sort_unstable();
        for ((client, seq), conn) in waiting {
            fx.reply(conn, reject(client, seq, ReplyStatus::NotLeader, hint));
        }
    }

    /// The leader of the current term was heard from at `now`.
    pub(crate) fn heard_leader(&mut self, from: ReplicaId, now: u64) {
        self.leader = Some(from);
        self.leader_heard_at = Some(now);
        self.election.heard_leader(now);
    }

    /// CheckQuorum's lease: this replica heard a live leader of its term
    /// within an election timeout (or leads itself), so it refuses to help
    /// anyone else campaign.
    pub(crate) fn in_lease(&self, now: u64) -> bool {
        if !self.cfg.check_quorum || self.cfg.election_timeout_ns == 0 {
            return false;
        }
        if self.is_leader() {
            return true;
        }
        self.leader.is_some()
            && self
                .leader_heard_at
                .is_some_and(|t| now.saturating_sub(t) < self.cfg.election_timeout_ns)
    }

    /// The encoded "ballot" the master and status report: the term above
    /// the id of the replica this one follows (the leader, else the
    /// candidate it voted for, else itself), so the master, which names the
    /// owner of the highest ballot, reports the leader the group follows.
    pub(crate) fn ballot(&self) -> u64 {
        if self.term == 0 {
            return 0; // a fresh group: nobody followed yet
        }
        let owner = self.leader_hint().or(self.vote).unwrap_or(self.cfg.id);
        (self.term << 8) | owner as u64
    }
}
