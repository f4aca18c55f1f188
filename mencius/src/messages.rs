//! Mencius peer messages (type codes 0xa0..=0xa9, plus the shared snapshot
//! messages of [`genericsmr::snapshot`]) and the durable records.
//!
//! Ballot 0 of a slot belongs to its owner (`slot mod n`), which proposes
//! there without a phase 1. Any other ballot is a revoker's: its low 8 bits
//! are the revoker's id and the rest a round number above 0 (see [`ballot`]).

use bytes::{BufMut, Bytes, BytesMut};
use genericsmr::command::Command;
pub use genericsmr::snapshot::{Compacted, SnapshotChunk, SnapshotRequest};
use genericsmr::wire::{Frame, Marshal, Message, Reader, Unmarshal, WireError};
use genericsmr::{wire_struct, ReplicaId};

/// The first type code of Mencius's own messages.
pub const BASE: u8 = 0xa0;

/// Ballot arithmetic.
pub mod ballot {
    use genericsmr::ReplicaId;

    /// The ballot of `round` (at least 1) owned by revoker `id`.
    pub fn make(round: u64, id: ReplicaId) -> u64 {
        (round << 8) | id as u64
    }
    /// The round of ballot `b` (0 for an owner's ballot).
    pub fn round(b: u64) -> u64 {
        b >> 8
    }
    /// Highest round a replica takes from a peer (a correct replica adds one
    /// per revocation; anything near `u64::MAX` is garbage).
    pub const MAX_ROUND: u64 = 1 << 48;
    /// Whether `b` could come from a correct replica.
    pub fn valid(b: u64) -> bool {
        round(b) < MAX_ROUND
    }
}

/// The owner of slot `slot` in a group of `n`.
pub fn owner(slot: u64, n: usize) -> ReplicaId {
    (slot % n as u64) as ReplicaId
}

/// Phase 2a: accept `cmds` in `slot` at `ballot`. An owner's Accept (ballot
/// 0) also carries the skip of its own slots in `[skip_from, skip_to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// 0 for the slot's owner, a revoker's ballot otherwise.
    pub ballot: u64,
    /// The slot.
    pub slot: u64,
    /// The proposed batch (empty: a no-op).
    pub cmds: Vec<Command>,
    /// First slot of the sender's own skipped range (equal to `skip_to`: none).
    pub skip_from: u64,
    /// End of the sender's own skipped range (exclusive).
    pub skip_to: u64,
}
wire_struct!(
    Accept {
        ballot,
        slot,
        cmds,
        skip_from,
        skip_to
    } = BASE
);

/// Phase 2b: a vote, or a refusal naming the promise that refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptReply {
    /// The ballot of the Accept answered.
    pub ballot: u64,
    /// The slot answered.
    pub slot: u64,
    /// Whether the vote was given.
    pub ok: bool,
    /// The acceptor's promise for the slot (above `ballot` on refusal).
    pub promised: u64,
    /// With `skip_to`: the replier's own slots in `[skip_from, skip_to)` are
    /// skipped (equal: none). The owner learns the skip with the vote, so it
    /// needs no separate Skip from the replier.
    pub skip_from: u64,
    /// End of the replier's skipped range (exclusive).
    pub skip_to: u64,
}
wire_struct!(
    AcceptReply {
        ballot,
        slot,
        ok,
        promised,
        skip_from,
        skip_to
    } = BASE + 1
);

/// The value accepted in `slot` at `ballot` is chosen. A receiver that holds
/// a vote at exactly that ballot commits it; any other fetches the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The ballot the value was chosen at.
    pub ballot: u64,
    /// The slot.
    pub slot: u64,
}
wire_struct!(Commit { ballot, slot } = BASE + 2);

/// The sender skips its own slots in `[from, to)`: each is a decided no-op.
/// Also the sender's heartbeat (then `from == to`), with how far it decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// First slot of the range.
    pub from: u64,
    /// End of the range (exclusive); only the sender's own slots in it count.
    pub to: u64,
    /// The sender's commit index: every slot below it is decided there.
    pub commit_index: u64,
}
wire_struct!(
    Skip {
        from,
        to,
        commit_index
    } = BASE + 3
);

/// Phase 1a of a revocation: promise `ballot` for every slot of `owner` in
/// `[from, to)` and report what you hold there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepare {
    /// The revoker's ballot (round above 0).
    pub ballot: u64,
    /// Whose slots are revoked.
    pub owner: ReplicaId,
    /// First slot of the range.
    pub from: u64,
    /// End of the range (exclusive).
    pub to: u64,
}
wire_struct!(
    Prepare {
        ballot,
        owner,
        from,
        to
    } = BASE + 4
);

/// What an acceptor holds for one slot, reported in phase 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotReport {
    /// The slot.
    pub slot: u64,
    /// The ballot of the vote.
    pub ballot: u64,
    /// Whether the acceptor knows the value is chosen.
    pub committed: bool,
    /// The value voted for.
    pub cmds: Vec<Command>,
}
wire_struct!(SlotReport {
    slot,
    ballot,
    committed,
    cmds
});

/// Phase 1b: a promise with the reports, or a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareReply {
    /// The ballot of the Prepare answered.
    pub ballot: u64,
    /// Whether the promise was given.
    pub ok: bool,
    /// The highest promise in the range (above `ballot` on refusal).
    pub promised: u64,
    /// The acceptor's commit index.
    pub commit_index: u64,
    /// Every non-empty slot of the owner in the range.
    pub slots: Vec<SlotReport>,
}
wire_struct!(
    PrepareReply {
        ballot,
        ok,
        promised,
        commit_index,
        slots
    } = BASE + 5
);

/// A replica stuck at `from_slot` asks for what a peer knows is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchupRequest {
    /// First slot wanted.
    pub from_slot: u64,
    /// Most slots to look at.
    pub max: u32,
}
wire_struct!(CatchupRequest { from_slot, max } = BASE + 6);

/// One chosen slot in a [`CatchupReply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenSlot {
    /// The slot.
    pub slot: u64,
    /// The chosen commands (empty: a no-op).
    pub cmds: Vec<Command>,
}
wire_struct!(ChosenSlot { slot, cmds });

/// Chosen slots from the request's `from_slot` on (not necessarily
/// consecutive: slots decided out of order are sent too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchupReply {
    /// The sender's commit index.
    pub commit_index: u64,
    /// The chosen slots.
    pub slots: Vec<ChosenSlot>,
}
wire_struct!(
    CatchupReply {
        commit_index,
        slots
    } = BASE + 7
);

/// Phase 2 of a revocation, over the whole range at once: accept (or, with
/// `chosen`, learn) `values` in their slots and a no-op in every other slot
/// of `owner` in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoke {
    /// The revoker's ballot.
    pub ballot: u64,
    /// Whose slots.
    pub owner: ReplicaId,
    /// First slot of the range.
    pub from: u64,
    /// End of the range (exclusive).
    pub to: u64,
    /// Phase 2 is over: a majority accepted, so this is a commit.
    pub chosen: bool,
    /// The slots of the range that get a value other than a no-op.
    pub values: Vec<ChosenSlot>,
}
wire_struct!(
    Revoke {
        ballot,
        owner,
        from,
        to,
        chosen,
        values
    } = BASE + 8
);

/// The answer to a [`Revoke`] that is not yet `chosen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeReply {
    /// The ballot answered.
    pub ballot: u64,
    /// Whether the acceptor accepted the whole range.
    pub ok: bool,
    /// The acceptor's highest promise in the range (above `ballot` on refusal).
    pub promised: u64,
}
wire_struct!(
    RevokeReply {
        ballot,
        ok,
        promised
    } = BASE + 9
);

/// Every Mencius peer message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenciusMsg {
    /// Phase 2a (with a piggybacked skip).
    Accept(Accept),
    /// Phase 2b.
    AcceptReply(AcceptReply),
    /// A slot is chosen.
    Commit(Commit),
    /// Skipped slots; heartbeat.
    Skip(Skip),
    /// Revocation phase 1a.
    Prepare(Prepare),
    /// Revocation phase 1b.
    PrepareReply(PrepareReply),
    /// Revocation phase 2 (and its commit).
    Revoke(Revoke),
    /// Revocation phase 2b.
    RevokeReply(RevokeReply),
    /// Catch-up request.
    CatchupRequest(CatchupRequest),
    /// Catch-up reply.
    CatchupReply(CatchupReply),
    /// What was asked for is compacted at the sender (shared code 0x21).
    Compacted(Compacted),
    /// A request for the sender's snapshot (shared code 0x22).
    SnapshotRequest(SnapshotRequest),
    /// A piece of a snapshot (shared code 0x23).
    SnapshotChunk(SnapshotChunk),
}

impl Frame for MenciusMsg {
    fn encode_frame(&self, out: &mut BytesMut) {
        match self {
            MenciusMsg::Accept(m) => m.encode_frame(out),
            MenciusMsg::AcceptReply(m) => m.encode_frame(out),
            MenciusMsg::Commit(m) => m.encode_frame(out),
            MenciusMsg::Skip(m) => m.encode_frame(out),
            MenciusMsg::Prepare(m) => m.encode_frame(out),
            MenciusMsg::PrepareReply(m) => m.encode_frame(out),
            MenciusMsg::Revoke(m) => m.encode_frame(out),
            MenciusMsg::RevokeReply(m) => m.encode_frame(out),
            MenciusMsg::CatchupRequest(m) => m.encode_frame(out),
            MenciusMsg::CatchupReply(m) => m.encode_frame(out),
            MenciusMsg::Compacted(m) => m.encode_frame(out),
            MenciusMsg::SnapshotRequest(m) => m.encode_frame(out),
            MenciusMsg::SnapshotChunk(m) => m.encode_frame(out),
        }
    }
}

/// What the durable log holds; replayed in order at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A promise of `ballot` for every slot of `owner` in `[from, to)`.
    Promise {
        /// Whose slots.
        owner: ReplicaId,
        /// First slot.
        from: u64,
        /// End (exclusive).
        to: u64,
        /// The ballot.
        ballot: u64,
    },
    /// A vote: `cmds` accepted in `slot` at `ballot`.
    Accepted {
        /// The slot.
        slot: u64,
        /// The ballot.
        ballot: u64,
        /// The value.
        cmds: Vec<Command>,
    },
    /// The vote held in `slot` at `ballot` is chosen.
    CommitMark {
        /// The slot.
        slot: u64,
        /// The ballot it was chosen at.
        ballot: u64,
    },
    /// `cmds` is chosen for `slot`.
    Chosen {
        /// The slot.
        slot: u64,
        /// The value (empty: a no-op).
        cmds: Vec<Command>,
    },
    /// `owner` skipped its slots in `[from, to)` (for this replica's own
    /// slots: a promise never to propose a value there).
    Skip {
        /// Whose slots.
        owner: ReplicaId,
        /// First slot.
        from: u64,
        /// End (exclusive).
        to: u64,
    },
    /// A snapshot ([`genericsmr::snapshot::Snapshot::to_bytes`]) standing
    /// for every slot below its point: the base record of a compacted log.
    Snapshot(Bytes),
    /// A revocation's phase 2 accepted (or, with `chosen`, learned): the
    /// [`Revoke`] message as it came.
    Revoked(Revoke),
}

impl Marshal for Record {
    fn marshal(&self, buf: &mut BytesMut) {
        match self {
            Record::Promise {
                owner,
                from,
                to,
                ballot,
            } => {
                buf.put_u8(1);
                owner.marshal(buf);
                from.marshal(buf);
                to.marshal(buf);
                ballot.marshal(buf);
            }
            Record::Accepted { slot, ballot, cmds } => {
                Record::encode_accepted(buf, *slot, *ballot, cmds)
            }
            Record::CommitMark { slot, ballot } => {
                buf.put_u8(3);
                slot.marshal(buf);
                ballot.marshal(buf);
            }
            Record::Chosen { slot, cmds } => Record::encode_chosen(buf, *slot, cmds),
            Record::Skip { owner, from, to } => {
                buf.put_u8(5);
                owner.marshal(buf);
                from.marshal(buf);
                to.marshal(buf);
            }
            Record::Snapshot(b) => {
                buf.put_u8(Record::SNAPSHOT);
                b.marshal(buf);
            }
            Record::Revoked(m) => {
                buf.put_u8(7);
                m.marshal(buf);
            }
        }
    }
}

impl Record {
    /// The kind byte of a snapshot record (the base of a compacted log).
    pub const SNAPSHOT: u8 = 6;

    /// The encoding of `Record::Accepted`, from borrowed commands.
    pub fn encode_accepted(buf: &mut BytesMut, slot: u64, ballot: u64, cmds: &[Command]) {
        buf.put_u8(2);
        slot.marshal(buf);
        ballot.marshal(buf);
        cmds.marshal(buf);
    }

    /// The encoding of `Record::Chosen`, from borrowed commands.
    pub fn encode_chosen(buf: &mut BytesMut, slot: u64, cmds: &[Command]) {
        buf.put_u8(4);
        slot.marshal(buf);
        cmds.marshal(buf);
    }
}

impl Unmarshal for Record {
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        Ok(match r.u8("record kind")? {
            1 => Record::Promise {
                owner: r.u8("owner")?,
                from: r.u64("from")?,
                to: r.u64("to")?,
                ballot: r.u64("ballot")?,
            },
            2 => Record::Accepted {
                slot: r.u64("slot")?,
                ballot: r.u64("ballot")?,
                cmds: Vec::unmarshal(r)?,
            },
            3 => Record::CommitMark {
                slot: r.u64("slot")?,
                ballot: r.u64("ballot")?,
            },
            4 => Record::Chosen {
                slot: r.u64("slot")?,
                cmds: Vec::unmarshal(r)?,
            },
            5 => Record::Skip {
                owner: r.u8("owner")?,
                from: r.u64("from")?,
                to: r.u64("to")?,
            },
            Record::SNAPSHOT => Record::Snapshot(Bytes::unmarshal(r)?),
            7 => Record::Revoked(Revoke::unmarshal(r)?),
            v => {
                return Err(WireError::Invalid {
                    what: "record kind",
                    value: v as u64,
                })
            }
        })
    }
}

/// Codes and names of every message.
pub const CODES: [(u8, &str); 13] = [
    (Accept::CODE, Accept::NAME),
    (AcceptReply::CODE, AcceptReply::NAME),
    (Commit::CODE, Commit::NAME),
    (Skip::CODE, Skip::NAME),
    (Prepare::CODE, Prepare::NAME),
    (PrepareReply::CODE, PrepareReply::NAME),
    (Revoke::CODE, Revoke::NAME),
    (RevokeReply::CODE, RevokeReply::NAME),
    (CatchupRequest::CODE, CatchupRequest::NAME),
    (CatchupReply::CODE, CatchupReply::NAME),
    (Compacted::CODE, Compacted::NAME),
    (SnapshotRequest::CODE, SnapshotRequest::NAME),
    (SnapshotChunk::CODE, SnapshotChunk::NAME),
];

/// Replica id as a bit of a vote set.
pub(crate) fn bit(id: ReplicaId) -> u64 {
    1u64 << id
}
