//! The Mencius replica core: configuration, slots, state, and the helpers
//! the handler modules share.
//!
//! Handlers live next to the role they serve: `owner.rs` (proposals into
//! this replica's own slots, skips, counting votes), `acceptor.rs` (votes,
//! commits, skips heard, replay), `revoke.rs` (phase 1 over a silent owner's
//! slots), `catchup.rs`, `exec.rs`, `snapshot.rs` and `control.rs`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::BytesMut;
use genericsmr::command::{ClientId, Command};
use genericsmr::election::ElectionTimer;
use genericsmr::state::StateMachine;
use genericsmr::wire::Marshal;
use genericsmr::{ConnId, ReplicaId};

use crate::messages::{bit, owner};
pub(crate) use genericsmr::effects::{accepted, reject};

/// Settings of one replica.
#[derive(Debug, Clone)]
pub struct Config {
    /// This replica's id.
    pub id: ReplicaId,
    /// Group size (2F+1).
    pub n: usize,
    /// Put every proposal queued at once into one slot.
    pub batch: bool,
    /// Most commands in one batched slot.
    pub batch_max: usize,
    /// A batch closes once its commands reach this many bytes (it must fit in a frame).
    pub max_batch_bytes: usize,
    /// Largest command accepted, encoded bytes.
    pub max_command_bytes: usize,
    /// Proposals queued at most; more are refused.
    pub max_pending: usize,
    /// Resend unanswered Accepts and Prepares, and ask peers about a stuck
    /// slot, after this many nanoseconds.
    pub retransmit_ns: u64,
    /// A replica that sent nothing for this long broadcasts a heartbeat
    /// (an empty Skip with its commit index).
    pub heartbeat_ns: u64,
    /// Revocation timeout `T`: a replica whose execution waited on one slot
    /// for a random time in `[T, 2T)` revokes that slot's owner (0: never).
    pub revoke_timeout_ns: u64,
    /// Slots past the highest one in use that a revocation covers, so that
    /// a dead owner does not stop execution again at its very next slot.
    pub revoke_ahead: u64,
    /// Most slots one catch-up request looks at.
    pub catchup_chunk: u32,
    /// Executed slots kept for peers that catch up slot by slot.
    pub keep_executed: u64,
    /// Compaction runs once this many slots more than `keep_executed` are executed.
    pub compact_every: u64,
    /// Compaction also runs once executed slots held reach this many bytes of commands.
    pub compact_bytes: usize,
    /// How far past the commit index slot numbers are taken from peers, and
    /// how far this replica's own proposals may run ahead.
    pub window: u64,
    /// Snapshot transfer settings.
    pub transfer: genericsmr::snapshot::TransferConfig,
    /// Bounds of the state machine's dedup table.
    pub dedup: genericsmr::state::Limits,
    /// A deliberately broken behaviour (tests only, see [`crate::broken`]).
    #[cfg(feature = "broken")]
    pub broken: Option<crate::broken::Broken>,
}

impl Config {
    /// Defaults for replica `id` of `n`.
    pub fn new(id: ReplicaId, n: usize) -> Self {
        Config {
            id,
            n,
            batch: false,
            batch_max: 4096,
            max_batch_bytes: 4 << 20,
            max_command_bytes: 1 << 20,
            max_pending: 1 << 20,
            retransmit_ns: 200_000_000,
            heartbeat_ns: 50_000_000,
            revoke_timeout_ns: 1_000_000_000,
            revoke_ahead: 1024,
            catchup_chunk: 4096,
            keep_executed: 1 << 16,
            compact_every: 1 << 16,
            compact_bytes: 64 << 20,
            window: 1 << 22,
            transfer: Default::default(),
            dedup: Default::default(),
            #[cfg(feature = "broken")]
            broken: None,
        }
    }

    /// Turns on a deliberately broken behaviour; refused by a build without
    /// the `broken` feature.
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

    /// Votes needed for a quorum.
    pub fn quorum(&self) -> usize {
        self.n / 2 + 1
    }
}

/// Status of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Nothing accepted.
    Empty,
    /// A value accepted at `Slot::ballot`, not known to be chosen.
    Accepted,
    /// Decided (a skip is a decided no-op).
    Committed,
}

/// One slot.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Status.
    pub state: SlotState,
    /// Highest ballot promised for this slot (0: only its owner's).
    pub promised: u64,
    /// Ballot of the accepted value.
    pub ballot: u64,
    /// The value (empty: a no-op).
    pub(crate) cmds: Vec<Command>,
    /// Proposer only: who voted for our value at `ballot`.
    pub(crate) acks: u64,
    /// Proposer only: when our Accept last went out (0: we did not propose).
    pub(crate) sent_at: u64,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            state: SlotState::Empty,
            promised: 0,
            ballot: 0,
            cmds: Vec::new(),
            acks: 0,
            sent_at: 0,
        }
    }
}

impl Slot {
    /// The value.
    pub fn cmds(&self) -> &[Command] {
        &self.cmds
    }

    /// A hash of the value's encoding (equal values, equal hashes).
    pub fn hash(&self) -> u64 {
        hash_cmds(&self.cmds)
    }

    /// Bytes of the value on the wire, roughly.
    pub(crate) fn wire_len(&self) -> usize {
        self.cmds.iter().map(Command::wire_len).sum()
    }
}

/// A hash of a batch's encoding.
pub(crate) fn hash_cmds(cmds: &[Command]) -> u64 {
    // Skips and revoked slots are most of the decided slots: their hash once.
    static NOOP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    if cmds.is_empty() {
        return *NOOP.get_or_init(|| hash_encoding(&[]));
    }
    hash_encoding(cmds)
}

fn hash_encoding(cmds: &[Command]) -> u64 {
    let mut b = BytesMut::new();
    cmds.marshal(&mut b);
    xxhash_rust::xxh3::xxh3_64(&b)
}

/// A revocation in phase 1.
#[derive(Debug)]
pub(crate) struct Revocation {
    pub ballot: u64,
    pub owner: ReplicaId,
    pub from: u64,
    pub to: u64,
    pub promises: u64,
    pub sent_at: u64,
    /// Best report per slot: (ballot, committed, cmds).
    pub best: BTreeMap<u64, (u64, bool, Vec<Command>)>,
    /// Phase 2: the values proposed (a no-op elsewhere in the range) and
    /// who accepted them; `None` in phase 1.
    pub phase2: Option<(Vec<crate::messages::ChosenSlot>, u64)>,
}

/// The Mencius replica core.
#[derive(Debug)]
pub struct Replica {
    pub(crate) cfg: Config,
    /// Slots from `base` on: `log[i]` is slot `base + i`.
    pub(crate) log: Vec<Slot>,
    /// First slot held; every slot below is executed and compacted away.
    pub(crate) base: u64,
    /// Every slot below this is decided here.
    pub(crate) commit_index: u64,
    /// Every slot below this is executed here.
    pub(crate) executed: u64,
    /// Highest commit index heard from a peer.
    pub(crate) known_commit: u64,
    /// One past the highest slot an owner proposed in, as far as we know
    /// (own slots below it that we did not use are skipped).
    pub(crate) max_seen: u64,
    /// Own slots below this are skipped even past `max_seen`: an owner's
    /// Accept for slot `s` makes us skip our slots up to `s + n`, so that a
    /// lone client's next command at that owner finds them decided already
    /// and executes on its own majority, not on every replica's skip.
    pub(crate) skip_limit: u64,
    /// The next own slot to propose in: every own slot below it is proposed
    /// in, skipped or revoked.
    pub(crate) next_own: u64,
    /// Own slots skipped since the last skip went out: `[from, to)`.
    pub(crate) skip_unsent: Option<(u64, u64)>,
    /// Peers (a bit per replica) that already hold `skip_unsent`: it rode
    /// on our AcceptReply to them, so the burst's Skip need not go there.
    pub(crate) skip_told: u64,
    /// The latest own skip, repeated in heartbeats (a lost Skip would
    /// otherwise hold the others until they ask).
    pub(crate) last_skip: (u64, u64),
    /// Highest round of any ballot seen (a revocation goes above it).
    pub(crate) max_round: u64,
    pub(crate) sm: StateMachine,
    /// Proposals waiting for an own slot.
    pub(crate) pending: VecDeque<Command>,
    /// Where to answer each proposal in flight through this replica.
    pub(crate) waiting: HashMap<(ClientId, u64), ConnId>,
    /// Own slots proposed in and not yet decided, with the value proposed,
    /// so that commands of a slot revoked to a no-op are proposed again.
    pub(crate) own_inflight: BTreeMap<u64, Vec<Command>>,
    /// The revocation in phase 1, if any.
    pub(crate) revocation: Option<Revocation>,
    /// Per owner: the end of the range we last revoked while it stayed
    /// silent (cleared when it is heard from), to revoke further ahead.
    pub(crate) suspect: Vec<Option<u64>>,
    /// When execution last advanced (or waiting began).
    pub(crate) stuck_timer: ElectionTimer,
    pub(crate) last_advance: u64,
    pub(crate) catchup_sent_at: Option<u64>,
    pub(crate) catchup_turn: u64,
    pub(crate) catchup_fetched: u64,
    pub(crate) last_broadcast: u64,
    pub(crate) fetch: genericsmr::snapshot::Fetch,
    pub(crate) snapshots_installed: u64,
    pub(crate) snapshots_sent: u64,
    pub(crate) compactions: u64,
    pub(crate) revocations: u64,
    pub(crate) exec_bytes: usize,
    pub(crate) replayed: u64,
    pub(crate) now: u64,
}

impl Replica {
    /// A fresh replica with an empty log.
    pub fn new(cfg: Config) -> Self {
        assert!(cfg.n >= 1 && cfg.n <= genericsmr::MAX_REPLICAS && (cfg.id as usize) < cfg.n);
        let n = cfg.n;
        let fetch = genericsmr::snapshot::Fetch::new(cfg.transfer);
        let stuck_timer = ElectionTimer::new(cfg.id as u64, cfg.revoke_timeout_ns);
        let sm = StateMachine::default().with_limits(cfg.dedup);
        let next_own = cfg.id as u64;
        Replica {
            cfg,
            log: Vec::new(),
            base: 0,
            commit_index: 0,
            executed: 0,
            known_commit: 0,
            max_seen: 0,
            skip_limit: 0,
            next_own,
            skip_unsent: None,
            skip_told: 0,
            last_skip: (0, 0),
            max_round: 0,
            sm,
            pending: VecDeque::new(),
            waiting: HashMap::new(),
            own_inflight: BTreeMap::new(),
            revocation: None,
            suspect: vec![None; n],
            stuck_timer,
            last_advance: 0,
            catchup_sent_at: None,
            catchup_turn: 0,
            catchup_fetched: 0,
            last_broadcast: 0,
            fetch,
            snapshots_installed: 0,
            snapshots_sent: 0,
            compactions: 0,
            revocations: 0,
            exec_bytes: 0,
            replayed: 0,
            now: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Every slot below this is decided here.
    pub fn commit_index(&self) -> u64 {
        self.commit_index
    }

    /// Every slot below this is executed here.
    pub fn executed(&self) -> u64 {
        self.executed
    }

    /// The next own slot this replica would propose in.
    pub fn next_own(&self) -> u64 {
        self.next_own
    }

    /// Revocations this replica won (phase 1 by a majority).
    pub fn revocations(&self) -> u64 {
        self.revocations
    }

    /// The first slot held.
    pub fn log_base(&self) -> u64 {
        self.base
    }

    /// One past the highest slot held.
    pub fn log_end(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    /// Slot `slot`, if held.
    pub fn slot(&self, slot: u64) -> Option<&Slot> {
        let i = slot.checked_sub(self.base)?;
        self.log.get(usize::try_from(i).ok()?)
    }

    /// The state machine.
    pub fn state(&self) -> &StateMachine {
        &self.sm
    }

    /// Snapshots installed, snapshots sent, compactions.
    pub fn snapshots(&self) -> (u64, u64, u64) {
        (
            self.snapshots_installed,
            self.snapshots_sent,
            self.compactions,
        )
    }

    /// Slot `slot`, created (with every slot before it) if past the end;
    /// `None` below the base. Callers bound `slot` by the window first.
    pub(crate) fn slot_mut(&mut self, slot: u64) -> Option<&mut Slot> {
        let i = slot.checked_sub(self.base)? as usize;
        if i >= self.log.len() {
            self.log.resize_with(i + 1, Slot::default);
        }
        self.log.get_mut(i)
    }

    /// Slot `slot` if held, without creating it.
    pub(crate) fn slot_get_mut(&mut self, slot: u64) -> Option<&mut Slot> {
        let i = slot.checked_sub(self.base)?;
        self.log.get_mut(usize::try_from(i).ok()?)
    }

    /// Whether `slot` is decided here (compacted slots were).
    pub(crate) fn decided(&self, slot: u64) -> bool {
        slot < self.base
            || self
                .slot(slot)
                .is_some_and(|s| s.state == SlotState::Committed)
    }

    /// The last slot number taken from peers.
    pub(crate) fn window_end(&self) -> u64 {
        self.commit_index.saturating_add(self.cfg.window)
    }

    /// Whether a slot number from a peer is within reach.
    pub(crate) fn in_window(&self, slot: u64) -> bool {
        slot < self.window_end()
    }

    /// The owner of `slot`.
    pub(crate) fn owner(&self, slot: u64) -> ReplicaId {
        owner(slot, self.cfg.n)
    }

    /// The first slot at or after `slot` owned by `who`.
    pub(crate) fn first_of(&self, who: ReplicaId, slot: u64) -> u64 {
        let n = self.cfg.n as u64;
        let r = slot % n;
        slot + (who as u64 + n - r) % n
    }

    /// Whether a ballot from a peer is plausible; notes its round.
    pub(crate) fn sane_ballot(&mut self, b: u64) -> bool {
        let ok = crate::messages::ballot::valid(b);
        if ok {
            self.max_round = self.max_round.max(crate::messages::ballot::round(b));
        } else {
            tracing::warn!(ballot = b, "dropping a message with an impossible ballot");
        }
        ok
    }

    pub(crate) fn majority(&self, votes: u64) -> bool {
        votes.count_ones() as usize >= self.cfg.quorum()
    }

    pub(crate) fn all_peers(&self) -> u64 {
        let all = if self.cfg.n == 64 {
            u64::MAX
        } else {
            (1u64 << self.cfg.n) - 1
        };
        all & !bit(self.cfg.id)
    }

    /// Whether a deliberately broken behaviour is on.
    #[inline]
    pub(crate) fn broken(&self, _b: crate::broken::Broken) -> bool {
        #[cfg(feature = "broken")]
        if self.cfg.broken == Some(_b) {
            return true;
        }
        false
    }
}
