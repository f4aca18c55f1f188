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
use genericsmr::messages::ReplyStatus;
use genericsmr::state::StateMachine;
use genericsmr::wire::{decode_body, Marshal};
use genericsmr::{ConnId, ReplicaId};

use crate::messages::{bit, CommitShort, PaxosMsg, Prepare};
use crate::multi::config::GroupConfig;
use crate::multi::state::State;
pub(crate) use genericsmr::effects::{accepted, reject};

/// Settings of one replica.
#[derive(Debug, Clone)]
pub struct Config {
    /// The settings every protocol on the shared log has.
    pub group: GroupConfig,
    /// Put every proposal queued at once into one slot (adaptive batching).
    pub batch: bool,
    /// Most commands in one batched slot.
    pub batch_max: usize,
    /// Reply to writes only after execution (with their outcome) instead of at commit.
    pub reply_after_exec: bool,
    /// Most slots fetched by one catch-up request.
    pub catchup_chunk: u32,
    /// Proposals held at most while waiting for a slot; more are refused.
    pub max_pending: usize,
    /// Largest command accepted, in encoded bytes; larger ones are answered `TooLarge`.
    pub max_command_bytes: usize,
    /// A batched slot closes once its commands reach this many bytes, so every
    /// Accept fits in a peer frame.
    pub max_batch_bytes: usize,
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
            group: GroupConfig::new(id, n),
            batch: false,
            batch_max: 4096,
            reply_after_exec: false,
            catchup_chunk: 4096,
            max_pending: 1 << 20,
            max_command_bytes: 1 << 20,
            max_batch_bytes: 4 << 20,
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

impl Batch {
    /// An executed slot's batch: only the encoding of `cmds`.
    pub(crate) fn packed(cmds: Vec<Command>) -> Self {
        let mut b = BytesMut::with_capacity(4 + cmds.iter().map(Command::wire_len).sum::<usize>());
        cmds.marshal(&mut b);
        Batch {
            cmds: Vec::new(),
            packed: Some(b.freeze()),
        }
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

    fn commands(&self) -> usize {
        self.cmds.len()
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

    /// Roughly how many bytes the commands take on the wire.
    pub(crate) fn wire_len(&self) -> usize {
        match &self.entry.packed {
            Some(b) => b.len(),
            None => self.entry.cmds.iter().map(Command::wire_len).sum(),
        }
    }
}

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

/// The role a replica plays: its leader keeps nothing of its own, and it
/// can recover its promises.
pub(crate) type Role = crate::multi::role::Role<Vec<Command>, (), Recovery>;

/// The Multi-Paxos replica core.
#[derive(Debug)]
pub struct Replica {
    /// Its settings.
    pub(crate) cfg: Config,
    /// The Multi-Paxos state shared with every protocol on the slot log.
    pub(crate) px: State<Batch>,
    /// Leading, campaigning, following or recovering.
    pub(crate) role: Role,
    /// Proposals waiting for a slot (leader or candidate).
    pub(crate) pending: VecDeque<Command>,
    /// Where to answer each proposal in flight through this replica.
    pub(crate) waiting: HashMap<(ClientId, u64), ConnId>,
}

impl Replica {
    crate::replica_accessors!();

    /// A fresh replica with an empty log.
    pub fn new(cfg: Config) -> Self {
        assert!(
            cfg.group.n >= 1
                && cfg.group.n <= genericsmr::MAX_REPLICAS
                && (cfg.group.id as usize) < cfg.group.n
        );
        // Puts answered at commit never show what they replaced.
        let sm = if cfg.reply_after_exec {
            StateMachine::default()
        } else {
            StateMachine::without_replaced_values()
        }
        .with_limits(cfg.group.dedup);
        let px = State::new(
            cfg.group.id,
            cfg.group.n,
            cfg.group.election_timeout_ns,
            cfg.group.transfer,
            sm,
        );
        Replica {
            cfg,
            px,
            role: Role::Follower,
            pending: VecDeque::new(),
            waiting: HashMap::new(),
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
        self.px.log.end()
    }

    /// Slot `slot`, if held (not compacted away, not past the end).
    pub fn slot(&self, slot: u64) -> Option<&Slot> {
        self.px.log.get(slot)
    }

    /// Committed slots fetched from peers.
    pub fn catchup_fetched(&self) -> u64 {
        self.px.catchup_fetched
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
        self.px.log.committed_at(slot)
    }

    /// The last slot within reach of our log (see [`crate::multi::config::GroupConfig::slot_window`]).
    pub(crate) fn window_end(&self) -> u64 {
        self.px
            .commit_index
            .saturating_add(self.cfg.group.slot_window)
    }

    /// Whether a ballot from a peer could have been made by a correct replica;
    /// anything else is dropped with a warning (peer ports are meant for a
    /// trusted network, but a broken peer must not wedge us).
    pub(crate) fn sane_ballot(&self, from: u8, b: u64) -> bool {
        crate::messages::ballot::sane(from, b)
    }

    /// The current leader (or a candidate we promised) was heard from at `now`.
    pub(crate) fn heard_leader(&mut self, now: u64) {
        self.px.election.heard_leader(now);
    }

    /// The other replicas of the group, as a bit set.
    pub(crate) fn peers(&self) -> u64 {
        let all = if self.cfg.group.n == 64 {
            u64::MAX
        } else {
            (1u64 << self.cfg.group.n) - 1
        };
        all & !bit(self.cfg.group.id)
    }

    /// Stops leading or campaigning; every proposal in flight here is told to go elsewhere.
    pub(crate) fn step_down(&mut self, fx: &mut Effects<PaxosMsg>) {
        if matches!(self.role, Role::Leader { .. } | Role::Candidate(_)) {
            self.role = Role::Follower;
        }
        self.pending.clear();
        let hint = self.px.leader_hint.filter(|h| *h != self.cfg.group.id);
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
    fn queued(&self) -> usize {
        self.pending.len()
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
        self.campaign(now, self.px.promised, crate::leader::MAX_CAMPAIGNS, fx);
    }
    fn retry_campaign(&mut self, now: u64, above: u64, attempts: u32, fx: &mut Effects<PaxosMsg>) {
        // Our view of the ballots may just be stale: campaign again above the
        // refusal a few times, then leave it to the election timers (unbounded
        // retries would let two candidates duel forever).
        if attempts < crate::leader::MAX_CAMPAIGNS {
            self.campaign(now, above, attempts + 1, fx);
        }
    }
    fn catch_up_from(&mut self, now: u64, from: ReplicaId, fx: &mut Effects<PaxosMsg>) {
        // A fresher replica's timer fires first (ours waits longer while
        // behind); meanwhile fetch the chosen prefix from the peer ahead.
        self.fetch_from(now, from, fx);
    }
    fn lead(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) {
        self.become_leader(now, fx);
    }
}
