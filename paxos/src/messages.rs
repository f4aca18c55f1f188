//! Multi-Paxos peer messages (type codes 0x30..=0x3f, plus the shared
//! snapshot messages of [`genericsmr::snapshot`]) and the durable records.
//!
//! A ballot is a `u64` whose low 8 bits are the proposing replica's id and whose
//! upper bits are a round number, so ballots are totally ordered and unique per
//! replica (see [`ballot`]).

use bytes::BytesMut;
use genericsmr::command::Command;
use genericsmr::messages::codes::PAXOS_BASE;
pub use genericsmr::snapshot::{Compacted, SnapshotChunk, SnapshotRequest};
use genericsmr::wire::{Frame, Message};
use genericsmr::{wire_struct, ReplicaId};

/// Ballot arithmetic.
pub mod ballot {
    use genericsmr::ReplicaId;

    /// The ballot of `round` owned by `id`.
    pub fn make(round: u64, id: ReplicaId) -> u64 {
        (round << 8) | id as u64
    }
    /// The replica that owns ballot `b`.
    pub fn owner(b: u64) -> ReplicaId {
        (b & 0xff) as ReplicaId
    }
    /// The round of ballot `b`.
    pub fn round(b: u64) -> u64 {
        b >> 8
    }
    /// Highest round a replica accepts. Real ballots grow by one per election;
    /// a ballot near `u64::MAX` can only come from a broken or hostile peer, and
    /// would make the next campaign's round wrap around.
    pub const MAX_ROUND: u64 = 1 << 48;
    /// Whether `b` is a ballot a correct replica could have made.
    pub fn valid(b: u64) -> bool {
        round(b) < MAX_ROUND
    }
    /// [`valid`], with a warning naming peer `from` when not: a message
    /// with such a ballot is dropped (peer ports are meant for a trusted
    /// network, but a broken peer must not wedge a replica).
    pub fn sane(from: ReplicaId, b: u64) -> bool {
        let ok = valid(b);
        if !ok {
            tracing::warn!(
                peer = from,
                ballot = b,
                "dropping a message with an impossible ballot"
            );
        }
        ok
    }
}

/// Phase 1a: a candidate asks for promises for every slot from `from_slot` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepare {
    /// The candidate's ballot.
    pub ballot: u64,
    /// The candidate's first unchosen slot; acceptors report what they hold from here on.
    pub from_slot: u64,
}
wire_struct!(Prepare { ballot, from_slot } = PAXOS_BASE);

/// What an acceptor holds for one slot, reported in phase 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotReport {
    /// The slot.
    pub slot: u64,
    /// The ballot at which the acceptor accepted `cmds`.
    pub ballot: u64,
    /// Whether the acceptor knows `cmds` is chosen (then the candidate adopts it as is).
    pub committed: bool,
    /// The accepted commands.
    pub cmds: Vec<Command>,
}
wire_struct!(SlotReport {
    slot,
    ballot,
    committed,
    cmds
});

/// Phase 1b: an acceptor's promise (or refusal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareReply {
    /// The ballot of the [`Prepare`] answered.
    pub ballot: u64,
    /// Whether the promise was given.
    pub ok: bool,
    /// The acceptor's highest promised ballot (higher than `ballot` on refusal).
    pub promised: u64,
    /// The acceptor's commit index, so the candidate learns how far the group got.
    pub commit_index: u64,
    /// Every non-empty slot at or after the prepare's `from_slot`.
    pub slots: Vec<SlotReport>,
}
wire_struct!(
    PrepareReply {
        ballot,
        ok,
        promised,
        commit_index,
        slots
    } = PAXOS_BASE + 1
);

/// Phase 2a: the leader asks acceptors to accept `cmds` in `slot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// The leader's ballot.
    pub ballot: u64,
    /// The log slot.
    pub slot: u64,
    /// The batch of commands proposed for the slot (empty for a no-op).
    pub cmds: Vec<Command>,
}
wire_struct!(Accept { ballot, slot, cmds } = PAXOS_BASE + 2);

/// Phase 2b: an acceptor's vote (or refusal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptReply {
    /// The ballot of the [`Accept`] answered.
    pub ballot: u64,
    /// The slot answered.
    pub slot: u64,
    /// Whether the acceptor accepted.
    pub ok: bool,
    /// The acceptor's promised ballot; above `ballot` on refusal, telling the leader to step down.
    pub promised: u64,
}
wire_struct!(
    AcceptReply {
        ballot,
        slot,
        ok,
        promised
    } = PAXOS_BASE + 3
);

/// The value chosen for a slot, sent in full to replicas that may not hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The sender's ballot (informational: the value is chosen whatever it is).
    pub ballot: u64,
    /// The slot.
    pub slot: u64,
    /// The chosen commands.
    pub cmds: Vec<Command>,
}
wire_struct!(Commit { ballot, slot, cmds } = PAXOS_BASE + 4);

/// Every slot below `up_to` is chosen. Doubles as the leader's heartbeat.
///
/// A receiver that accepted a slot at exactly `ballot` holds the chosen value: the
/// sender proposed it, and a leader whose own proposal is overruled by a value
/// chosen at a higher ballot steps down instead of announcing it. (A vote at a
/// ballot above `ballot` proves nothing: the sender may have learned the slot was
/// chosen at a still higher ballot.) For any other slot it fetches the value
/// through catch-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitShort {
    /// The leader's ballot.
    pub ballot: u64,
    /// Exclusive bound of the chosen prefix.
    pub up_to: u64,
}
wire_struct!(CommitShort { ballot, up_to } = PAXOS_BASE + 5);

/// A lagging replica asks for committed slots from `from_slot` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchupRequest {
    /// First slot wanted.
    pub from_slot: u64,
    /// Most slots wanted in one reply.
    pub max: u32,
}
wire_struct!(CatchupRequest { from_slot, max } = PAXOS_BASE + 6);

/// One committed slot in a [`CatchupReply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenSlot {
    /// The slot.
    pub slot: u64,
    /// Its chosen commands.
    pub cmds: Vec<Command>,
}
wire_struct!(ChosenSlot { slot, cmds });

/// Committed slots for a lagging replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchupReply {
    /// The sender's commit index: how far the requester should keep fetching.
    pub commit_index: u64,
    /// Consecutive committed slots starting at the request's `from_slot`.
    pub slots: Vec<ChosenSlot>,
}
wire_struct!(
    CatchupReply {
        commit_index,
        slots
    } = PAXOS_BASE + 7
);

/// A replica restarted without its durable state asks what the group has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryQuery {
    /// Matches replies to this round of questions.
    pub nonce: u64,
}
wire_struct!(RecoveryQuery { nonce } = PAXOS_BASE + 8);

/// The answer to a [`RecoveryQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryInfo {
    /// Echo of the query's nonce.
    pub nonce: u64,
    /// The sender's promised ballot.
    pub promised: u64,
    /// One past the highest slot the sender holds anything in: the recovering
    /// replica may have voted up to here and must learn all of it first.
    pub log_end: u64,
    /// The sender's commit index.
    pub commit_index: u64,
}
wire_struct!(
    RecoveryInfo {
        nonce,
        promised,
        log_end,
        commit_index
    } = PAXOS_BASE + 9
);

/// Every Multi-Paxos peer message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaxosMsg {
    /// Phase 1a.
    Prepare(Prepare),
    /// Phase 1b.
    PrepareReply(PrepareReply),
    /// Phase 2a.
    Accept(Accept),
    /// Phase 2b.
    AcceptReply(AcceptReply),
    /// Full commit.
    Commit(Commit),
    /// Commit of a prefix / heartbeat.
    CommitShort(CommitShort),
    /// Catch-up request.
    CatchupRequest(CatchupRequest),
    /// Catch-up reply.
    CatchupReply(CatchupReply),
    /// Recovery question.
    RecoveryQuery(RecoveryQuery),
    /// Recovery answer.
    RecoveryInfo(RecoveryInfo),
    /// What was asked for is compacted at the sender (shared code 0x21).
    Compacted(Compacted),
    /// A request for the sender's snapshot (shared code 0x22).
    SnapshotRequest(SnapshotRequest),
    /// A piece of a snapshot (shared code 0x23).
    SnapshotChunk(SnapshotChunk),
}

impl Frame for PaxosMsg {
    fn encode_frame(&self, out: &mut BytesMut) {
        match self {
            PaxosMsg::Prepare(m) => m.encode_frame(out),
            PaxosMsg::PrepareReply(m) => m.encode_frame(out),
            PaxosMsg::Accept(m) => m.encode_frame(out),
            PaxosMsg::AcceptReply(m) => m.encode_frame(out),
            PaxosMsg::Commit(m) => m.encode_frame(out),
            PaxosMsg::CommitShort(m) => m.encode_frame(out),
            PaxosMsg::CatchupRequest(m) => m.encode_frame(out),
            PaxosMsg::CatchupReply(m) => m.encode_frame(out),
            PaxosMsg::RecoveryQuery(m) => m.encode_frame(out),
            PaxosMsg::RecoveryInfo(m) => m.encode_frame(out),
            PaxosMsg::Compacted(m) => m.encode_frame(out),
            PaxosMsg::SnapshotRequest(m) => m.encode_frame(out),
            PaxosMsg::SnapshotChunk(m) => m.encode_frame(out),
        }
    }
}

/// What the durable log holds; replayed in order at start (the records of
/// the shared log, [`crate::log::Record`], with batches of commands).
pub type Record = crate::log::Record<Vec<Command>>;

/// Codes of every message, for documentation and tests.
pub const CODES: [(u8, &str); 13] = [
    (Prepare::CODE, Prepare::NAME),
    (PrepareReply::CODE, PrepareReply::NAME),
    (Accept::CODE, Accept::NAME),
    (AcceptReply::CODE, AcceptReply::NAME),
    (Commit::CODE, Commit::NAME),
    (CommitShort::CODE, CommitShort::NAME),
    (CatchupRequest::CODE, CatchupRequest::NAME),
    (CatchupReply::CODE, CatchupReply::NAME),
    (RecoveryQuery::CODE, RecoveryQuery::NAME),
    (RecoveryInfo::CODE, RecoveryInfo::NAME),
    (Compacted::CODE, Compacted::NAME),
    (SnapshotRequest::CODE, SnapshotRequest::NAME),
    (SnapshotChunk::CODE, SnapshotChunk::NAME),
];

/// Replica id helper used by several modules.
pub(crate) fn bit(id: ReplicaId) -> u64 {
    1u64 << id
}
