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
use genericsmr::wire::Frame;
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

crate::value_free_messages!(
    prepare = PAXOS_BASE,
    accept_reply = PAXOS_BASE + 3,
    commit_short = PAXOS_BASE + 5,
    catchup_request = PAXOS_BASE + 6,
);

impl crate::multi::messages::Codes for Vec<Command> {
    const ACCEPT: u8 = PAXOS_BASE + 2;
    const COMMIT: u8 = PAXOS_BASE + 4;
    const PREPARE_REPLY: u8 = PAXOS_BASE + 1;
}

/// Phase 2a: the leader asks acceptors to accept a batch of commands
/// (empty for a no-op) in a slot.
pub type Accept = crate::multi::messages::Accept<Vec<Command>>;
/// The batch chosen for a slot, sent in full to replicas that may not hold it.
pub type Commit = crate::multi::messages::Commit<Vec<Command>>;
/// What an acceptor holds for one slot, reported in phase 1.
pub type SlotReport = crate::multi::messages::SlotReport<Vec<Command>>;

/// Phase 1b: an acceptor's promise (or refusal).
pub type PrepareReply = crate::multi::messages::PrepareReply<Vec<Command>>;

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
#[rustfmt::skip]
pub const CODES: [(u8, &str); 13] = genericsmr::message_codes![
    Prepare, PrepareReply, Accept, AcceptReply, Commit, CommitShort, CatchupRequest,
    CatchupReply, RecoveryQuery, RecoveryInfo, Compacted, SnapshotRequest, SnapshotChunk,
];

/// Replica id helper used by several modules.
pub(crate) fn bit(id: ReplicaId) -> u64 {
    1u64 << id
}
