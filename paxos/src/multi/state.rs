//! The replica state every protocol on the shared Multi-Paxos log keeps the
//! same way: promise, log, commit and execution points, state machine, leader
//! hint, timers and counters. Each replica embeds one [`State`] and keeps
//! beside it only what is its own (its role, its clients, its extra state).

use genericsmr::election::ElectionTimer;
use genericsmr::in_flight::InFlight;
use genericsmr::messages::StatusReply;
use genericsmr::snapshot::{Fetch, TransferConfig};
use genericsmr::state::StateMachine;
use genericsmr::ReplicaId;

use crate::log::{Log, SlotState, Value};

/// The Multi-Paxos state of one replica whose slots hold `V`.
#[derive(Debug)]
pub struct State<V> {
    /// Highest ballot promised; never decreases (persisted before any
    /// message that relies on it leaves).
    pub promised: u64,
    /// The log from its base on; slots below the base are executed and
    /// compacted away (their effect is in the state machine and snapshot).
    pub log: Log<V>,
    /// Every slot below this is chosen (committed) here.
    pub commit_index: u64,
    /// Every slot below this is executed here.
    pub executed: u64,
    /// Highest commit index heard from anyone: how far catch-up must go.
    pub known_commit: u64,
    /// Highest commit index a leader announced to its peers (in a
    /// `CommitShort`), so a new commit is announced once.
    pub announced: u64,
    /// The state machine the chosen slots are executed on.
    pub sm: StateMachine,
    /// The replica believed to lead, from ballots and heartbeats heard.
    pub leader_hint: Option<ReplicaId>,
    /// When each replica was last heard from, by id (thrifty sends go to
    /// peers heard lately).
    pub last_heard: Vec<u64>,
    /// Leader: when it last sent a heartbeat.
    pub last_heartbeat: u64,
    /// When to campaign if the leader stays silent.
    pub election: ElectionTimer,
    /// When the catch-up request in flight was sent, if one is.
    pub catchup_at: Option<u64>,
    /// Chosen slots learned from catch-up replies.
    pub catchup_fetched: u64,
    /// The snapshot being fetched from a peer, if any.
    pub fetch: Fetch,
    /// Snapshots installed from peers.
    pub snapshots_installed: u64,
    /// Snapshots sent to peers.
    pub snapshots_sent: u64,
    /// Compactions of the log so far.
    pub compactions: u64,
    /// Durable records replayed at start.
    pub replayed: u64,
    /// The last nonce this replica used in a query of its own (Multi-Paxos's
    /// recovery query, MDLin's successor query), to match the answers.
    pub nonce: u64,
    /// The time of the event being handled (for timer resets from helpers
    /// that are not given it).
    pub now: u64,
    /// Leader: the commands of the slots it proposed, until they are chosen
    /// (what `--pipeline` bounds: a batch holds many).
    pub in_flight: InFlight,
}

impl<V: Value> State<V> {
    /// A fresh state for replica `id` of a deployment of `replicas` (ids
    /// `0..replicas`), with an empty log and state machine `sm`.
    pub fn new(
        id: ReplicaId,
        replicas: usize,
        election_timeout_ns: u64,
        transfer: TransferConfig,
        sm: StateMachine,
    ) -> Self {
        State {
            promised: 0,
            log: Log::default(),
            commit_index: 0,
            executed: 0,
            known_commit: 0,
            announced: 0,
            sm,
            leader_hint: None,
            last_heard: vec![0; replicas],
            last_heartbeat: 0,
            election: ElectionTimer::new(id as u64, election_timeout_ns),
            catchup_at: None,
            catchup_fetched: 0,
            fetch: Fetch::new(transfer),
            snapshots_installed: 0,
            snapshots_sent: 0,
            compactions: 0,
            replayed: 0,
            nonce: 0,
            now: 0,
            in_flight: InFlight::default(),
        }
    }

    /// Moves the commit index over the chosen slots that follow it.
    pub fn advance_commit(&mut self) {
        while self
            .log
            .get(self.commit_index)
            .is_some_and(|s| s.state == SlotState::Committed)
        {
            self.commit_index += 1;
        }
        self.known_commit = self.known_commit.max(self.commit_index);
    }

    /// The next chosen slot to execute and its value, taken out of the
    /// slot for the caller to apply; none once every chosen slot is
    /// executed. The caller hands the value back by [`State::executed_one`].
    pub fn next_to_execute(&mut self) -> Option<(u64, V)> {
        if self.executed >= self.commit_index {
            return None;
        }
        let slot = self.executed;
        // base <= executed < commit_index <= end: the slot is held.
        let s = self.log.get_mut(slot)?;
        debug_assert_eq!(s.state, SlotState::Committed);
        Some((slot, std::mem::take(&mut s.entry)))
    }

    /// Slot `slot` (from [`State::next_to_execute`]) is executed: its value
    /// `v` goes back (as the log keeps it for peers catching up) and the
    /// executed point moves past it.
    pub fn executed_one(&mut self, slot: u64, v: V) {
        if let Some(s) = self.log.get_mut(slot) {
            s.entry = v;
        }
        self.log.executed_slot(slot);
        self.executed += 1;
    }

    /// Takes a snapshot's point `slot` and state machine `sm` (installed
    /// from a peer or read at restart): every slot below `slot` is executed,
    /// hence chosen, and dropped from the log. The caller checked that
    /// `slot` is not below the executed point.
    pub fn rebase(&mut self, slot: u64, sm: StateMachine) {
        self.log.rebase(slot);
        self.sm = sm;
        self.executed = slot;
        self.commit_index = self.commit_index.max(slot);
        self.known_commit = self.known_commit.max(slot);
        self.announced = self.announced.max(slot);
    }

    /// The replica's status, as `replica` (the id clients know it by) in
    /// role `role` with leader `leader` (see [`genericsmr::messages::role`]).
    pub fn status(
        &self,
        nonce: u64,
        replica: ReplicaId,
        role: u8,
        leader: Option<ReplicaId>,
    ) -> StatusReply {
        StatusReply {
            nonce,
            replica,
            role,
            ballot: self.promised,
            leader,
            commit_index: self.commit_index,
            executed: self.executed,
            log_len: self.log.end(),
            catchup_fetched: self.catchup_fetched,
            replayed: self.replayed,
            ..self.sm.status()
        }
    }
}
