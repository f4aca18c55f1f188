//! EPaxos peer messages (type codes 0x50..=0x6f) and the durable record.
//!
//! An instance is named by its command leader and a per-leader number. Its
//! attributes are a sequence number and a dependency vector: `deps[r] = k`
//! means the instance depends on instances `0..k` of replica `r` (every
//! instance also depends on every earlier instance of its own leader, so the
//! executor needs only the last one of each prefix as a graph edge).
//!
//! Ballots are per instance: 0 is the command leader's own; recovery uses
//! `round << 8 | replica` with `round >= 1`.

use bytes::{BufMut, Bytes, BytesMut};
use genericsmr::command::Command;
use genericsmr::messages::codes::EPAXOS_BASE;
use genericsmr::snapshot::{Compacted, SnapshotChunk, SnapshotRequest};
use genericsmr::wire::{Encoded, Frame, Marshal, Message, Reader, Unmarshal, WireError};
use genericsmr::{wire_struct, ReplicaId};

/// The ballot of `round` owned by `id` (round 0 is the command leader's).
pub fn make_ballot(round: u64, id: ReplicaId) -> u64 {
    (round << 8) | id as u64
}

/// The round of ballot `b`.
pub fn ballot_round(b: u64) -> u64 {
    b >> 8
}

/// Highest round accepted from a peer: a ballot near `u64::MAX` can only come
/// from a broken or hostile peer and would wrap the next round.
pub const MAX_ROUND: u64 = 1 << 48;

/// Phase 1 by the command leader (ballot 0), or by a recovering replica
/// restarting phase 1 (ballot > 0, always followed by the slow path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreAccept {
    /// The instance's command leader.
    pub leader: ReplicaId,
    /// The instance number at that leader.
    pub instance: u64,
    /// The sender's ballot for the instance.
    pub ballot: u64,
    /// The commands (a batch; empty for a no-op).
    pub cmds: Vec<Command>,
    /// The sender's proposed sequence number.
    pub seq: u64,
    /// The sender's proposed dependencies (one prefix length per replica).
    pub deps: Vec<u64>,
}
wire_struct!(
    PreAccept {
        leader,
        instance,
        ballot,
        cmds,
        seq,
        deps
    } = EPAXOS_BASE
);

/// A PreAccept answer that changes the attributes, or a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreAcceptReply {
    /// The instance's command leader.
    pub leader: ReplicaId,
    /// The instance number.
    pub instance: u64,
    /// The ballot answered.
    pub ballot: u64,
    /// False: the replier promised a higher ballot (`promised`).
    pub ok: bool,
    /// The replier's ballot for the instance.
    pub promised: u64,
    /// The replier's sequence number (at least the proposed one).
    pub seq: u64,
    /// The replier's dependencies (a superset of the proposed ones).
    pub deps: Vec<u64>,
}
wire_struct!(
    PreAcceptReply {
        leader,
        instance,
        ballot,
        ok,
        promised,
        seq,
        deps
    } = EPAXOS_BASE + 1
);

/// A PreAccept answer that takes the proposed attributes unchanged: the vote
/// the fast path counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreAcceptOk {
    /// The instance's command leader.
    pub leader: ReplicaId,
    /// The instance number.
    pub instance: u64,
    /// The ballot answered.
    pub ballot: u64,
}
wire_struct!(
    PreAcceptOk {
        leader,
        instance,
        ballot
    } = EPAXOS_BASE + 2
);

/// Phase 2 (the slow path): accept these attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// The instance's command leader.
    pub leader: ReplicaId,
    /// The instance number.
    pub instance: u64,
    /// The sender's ballot.
    pub ballot: u64,
    /// The commands, for replicas that never saw the PreAccept.
    pub cmds: Vec<Command>,
    /// Final sequence number.
    pub seq: u64,
    /// Final dependencies.
    pub deps: Vec<u64>,
}
wire_struct!(
    Accept {
        leader,
        instance,
        ballot,
        cmds,
        seq,
        deps
    } = EPAXOS_BASE + 3
);

/// A phase-2 vote, or a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptReply {
    /// The instance's command leader.
    pub leader: ReplicaId,
    /// The instance number.
    pub instance: u64,
    /// The ballot answered.
    pub ballot: u64,
    /// Whether the vote was given.
    pub ok: bool,
    /// The replier's ballot for the instance.
    pub promised: u64,
}
wire_struct!(
    AcceptReply {
        leader,
        instance,
        ballot,
        ok,
        promised
    } = EPAXOS_BASE + 4
);

/// The instance is committed with these attributes (sent in full to replicas
/// that may not hold the commands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The instance's command leader.
    pub leader: ReplicaId,
    /// The instance number.
    pub instance: u64,
    /// The commands.
    pub cmds: Vec<Command>,
    /// Sequence number.
    pub seq: u64,
    /// Dependencies.
    pub deps: Vec<u64>,
}
wire_struct!(
    Commit {
        leader,
        instance,
        cmds,
        seq,
        deps
    } = EPAXOS_BASE + 5
);

/// A commit for replicas that voted at ballot `ballot` and so hold the
/// commands: only the attributes travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitShort {
    /// The instance's command leader.
    pub leader: ReplicaId,
    /// The instance number.
    pub instance: u64,
    /// The ballot whose commands the receiver must hold; otherwise it waits
    /// for the full value through recovery.
    pub ballot: u64,
    /// Sequence number.
    pub seq: u64,
    /// Dependencies.
    pub deps: Vec<u64>,
}
wire_struct!(
    CommitShort {
        leader,
        instance,
        ballot,
        seq,
        deps
    } = EPAXOS_BASE + 6
);

/// Recovery, phase 1: a replica waiting on the instance asks for promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepare {
    /// The instance's command leader.
    pub leader: ReplicaId,
    /// The instance number.
    pub instance: u64,
    /// The recovering replica's ballot (round >= 1).
    pub ballot: u64,
}
wire_struct!(
    Prepare {
        leader,
        instance,
        ballot
    } = EPAXOS_BASE + 7
);

/// What a replica holds for an instance, with its promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareReply {
    /// The instance's command leader.
    pub leader: ReplicaId,
    /// The instance number.
    pub instance: u64,
    /// The ballot answered.
    pub ballot: u64,
    /// Whether the promise was given.
    pub ok: bool,
    /// The replier's ballot for the instance (above `ballot` on refusal).
    pub promised: u64,
    /// One of [`crate::Status`] as a number; 0: the replier knows nothing of it.
    pub status: u8,
    /// The ballot at which the replier last voted for the attributes below
    /// (not its promise: deciding from promises is the flaw Sutra found).
    pub vballot: u64,
    /// The replier pre-accepted the command leader's attributes unchanged at ballot 0.
    pub unchanged: bool,
    /// The commands.
    pub cmds: Vec<Command>,
    /// Sequence number.
    pub seq: u64,
    /// Dependencies.
    pub deps: Vec<u64>,
}
wire_struct!(
    PrepareReply {
        leader,
        instance,
        ballot,
        ok,
        promised,
        status,
        vballot,
        unchanged,
        cmds,
        seq,
        deps
    } = EPAXOS_BASE + 8
);

/// A replica's heartbeat: it has started instances `0..next`. A peer that
/// lacks a commit among them waits on it, and so recovers it (from whoever
/// committed it) if it does not arrive: how a replica that lost messages, or
/// restarted, catches up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// One past the sender's last started instance.
    pub next: u64,
    /// Per leader, every instance below this the sender has executed: once
    /// every replica is past an instance, it can be forgotten.
    pub executed: Vec<u64>,
    /// Per leader, every instance below this is executed by every replica, as
    /// far as the sender knows: once every replica knows that, conflict-table
    /// entries below it can be dropped (and recovery can tell which
    /// conflicts no replica has dropped yet).
    pub everywhere: Vec<u64>,
    /// Per leader, the sender has forgotten every instance below this. A
    /// receiver that has not executed that far can no longer learn those
    /// instances from the sender, and asks it for a snapshot instead.
    pub forgotten: Vec<u64>,
}
wire_struct!(
    Progress {
        next,
        executed,
        everywhere,
        forgotten
    } = EPAXOS_BASE + 9
);

/// Recovery, when a fast decision can be neither ruled in nor out: would the
/// receiver pre-accept these attributes (the command leader's original ones)
/// at the recovery ballot? It would not if it knows a conflicting instance
/// that they do not depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryPreAccept {
    /// The instance's command leader.
    pub leader: ReplicaId,
    /// The instance number.
    pub instance: u64,
    /// The recovering replica's ballot.
    pub ballot: u64,
    /// The commands.
    pub cmds: Vec<Command>,
    /// The command leader's sequence number.
    pub seq: u64,
    /// The command leader's dependencies.
    pub deps: Vec<u64>,
}
wire_struct!(
    TryPreAccept {
        leader,
        instance,
        ballot,
        cmds,
        seq,
        deps
    } = EPAXOS_BASE + 10
);

/// The answer to a [`TryPreAccept`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryPreAcceptReply {
    /// The instance's command leader.
    pub leader: ReplicaId,
    /// The instance number.
    pub instance: u64,
    /// The ballot answered.
    pub ballot: u64,
    /// The receiver pre-accepted the attributes at `ballot`.
    pub ok: bool,
    /// The receiver's ballot for the instance.
    pub promised: u64,
    /// The receiver knows a committed conflicting instance outside the
    /// dependencies that does not depend on this one either: the attributes
    /// cannot have been chosen on the fast path.
    pub refutes: bool,
}
wire_struct!(
    TryPreAcceptReply {
        leader,
        instance,
        ballot,
        ok,
        promised,
        refutes
    } = EPAXOS_BASE + 11
);

/// Every EPaxos peer message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpaxosMsg {
    /// Phase 1.
    PreAccept(PreAccept),
    /// Changed attributes or refusal.
    PreAcceptReply(PreAcceptReply),
    /// Unchanged attributes.
    PreAcceptOk(PreAcceptOk),
    /// Phase 2.
    Accept(Accept),
    /// Phase 2 vote.
    AcceptReply(AcceptReply),
    /// Full commit.
    Commit(Commit),
    /// Attribute-only commit.
    CommitShort(CommitShort),
    /// Recovery phase 1.
    Prepare(Prepare),
    /// Recovery answer.
    PrepareReply(PrepareReply),
    /// Heartbeat.
    Progress(Progress),
    /// Recovery, ambiguous case.
    TryPreAccept(TryPreAccept),
    /// Its answer.
    TryPreAcceptReply(TryPreAcceptReply),
    /// The instance asked about is forgotten here: ask for a snapshot.
    Compacted(Compacted),
    /// Send me your snapshot.
    SnapshotRequest(SnapshotRequest),
    /// A piece of a snapshot.
    SnapshotChunk(SnapshotChunk),
}

impl Frame for EpaxosMsg {
    fn encode_frame(&self, out: &mut bytes::BytesMut) {
        match self {
            EpaxosMsg::PreAccept(m) => m.encode_frame(out),
            EpaxosMsg::PreAcceptReply(m) => m.encode_frame(out),
            EpaxosMsg::PreAcceptOk(m) => m.encode_frame(out),
            EpaxosMsg::Accept(m) => m.encode_frame(out),
            EpaxosMsg::AcceptReply(m) => m.encode_frame(out),
            EpaxosMsg::Commit(m) => m.encode_frame(out),
            EpaxosMsg::CommitShort(m) => m.encode_frame(out),
            EpaxosMsg::Prepare(m) => m.encode_frame(out),
            EpaxosMsg::PrepareReply(m) => m.encode_frame(out),
            EpaxosMsg::Progress(m) => m.encode_frame(out),
            EpaxosMsg::TryPreAccept(m) => m.encode_frame(out),
            EpaxosMsg::TryPreAcceptReply(m) => m.encode_frame(out),
            EpaxosMsg::Compacted(m) => m.encode_frame(out),
            EpaxosMsg::SnapshotRequest(m) => m.encode_frame(out),
            EpaxosMsg::SnapshotChunk(m) => m.encode_frame(out),
        }
    }
}

/// The durable record: an instance's whole state after a change (the last
/// record of an instance wins on replay). Written before any message that
/// depends on it, so votes and promises survive a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The instance's command leader.
    pub leader: ReplicaId,
    /// The instance number.
    pub instance: u64,
    /// Promised ballot.
    pub ballot: u64,
    /// Ballot of the last vote.
    pub vballot: u64,
    /// [`crate::Status`] as a number.
    pub status: u8,
    /// Pre-accepted unchanged at ballot 0.
    pub unchanged: bool,
    /// The commands.
    pub cmds: Vec<Command>,
    /// Sequence number.
    pub seq: u64,
    /// Dependencies.
    pub deps: Vec<u64>,
}
wire_struct!(Record {
    leader,
    instance,
    ballot,
    vballot,
    status,
    unchanged,
    cmds,
    seq,
    deps
});

/// The conflict table, as a compacted log keeps it (see
/// [`Entry::Conflicts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts {
    /// Seed of the key ids (ids are hashes under it).
    pub seed: u64,
    /// The live entries, `2n + 3` words each: key id, one past the last
    /// instance per replica that touched the key, the same for writes, the
    /// highest sequence numbers of any command and of writes.
    pub entries: Vec<u64>,
}
wire_struct!(Conflicts { seed, entries });

/// One entry of the durable log: an instance's state, the horizon below which
/// every replica has executed, a snapshot, or the conflict table. On the
/// disk: a tag byte (0, 1, 2, 3) then the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An instance's whole state after a change, or (status Executed) the
    /// next instance in this replica's order of execution.
    Instance(Record),
    /// Per leader, every instance below this is executed by every replica.
    /// Written before any heartbeat reports it, so that a restarted replica
    /// never holds conflicts that its peers dropped on its word (it would
    /// refute a TryPreAccept with them).
    Everywhere(Vec<u64>),
    /// A snapshot ([`genericsmr::snapshot::Snapshot`] bytes): the base
    /// record of a compacted log (in the snapshot file), or, in logs written
    /// before compaction existed, one installed from a peer. Replay installs
    /// the first one and any later one ahead of it; executions recorded
    /// before it are covered by it.
    Snapshot(Bytes),
    /// The conflict table at a compaction, first in the compacted log: the
    /// conflicts of executed instances that not every replica has executed
    /// outlive the records the compaction drops.
    Conflicts(Conflicts),
}

impl Entry {
    /// The kind byte of a snapshot record (the base of a compacted log).
    pub const SNAPSHOT: u8 = 2;

    /// The entry, written without a copy of a borrowed instance record.
    pub fn instance(r: &Record) -> impl Marshal + '_ {
        Encoded(move |b: &mut BytesMut| {
            b.put_u8(0);
            r.marshal(b);
        })
    }
}

impl Marshal for Entry {
    fn marshal(&self, b: &mut BytesMut) {
        match self {
            Entry::Instance(r) => Entry::instance(r).marshal(b),
            Entry::Everywhere(v) => {
                b.put_u8(1);
                v.marshal(b);
            }
            Entry::Snapshot(s) => {
                b.put_u8(Entry::SNAPSHOT);
                s.marshal(b);
            }
            Entry::Conflicts(c) => {
                b.put_u8(3);
                c.marshal(b);
            }
        }
    }
}

impl Unmarshal for Entry {
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        match r.u8("entry tag")? {
            0 => Ok(Entry::Instance(Record::unmarshal(r)?)),
            1 => Ok(Entry::Everywhere(Vec::unmarshal(r)?)),
            Entry::SNAPSHOT => Ok(Entry::Snapshot(r.bytes("snapshot")?)),
            3 => Ok(Entry::Conflicts(Conflicts::unmarshal(r)?)),
            t => Err(WireError::Invalid {
                what: "durable entry tag",
                value: t as u64,
            }),
        }
    }
}

/// Codes of every message, for documentation, tests and fault commands.
pub const CODES: [(u8, &str); 15] = [
    (PreAccept::CODE, PreAccept::NAME),
    (PreAcceptReply::CODE, PreAcceptReply::NAME),
    (PreAcceptOk::CODE, PreAcceptOk::NAME),
    (Accept::CODE, Accept::NAME),
    (AcceptReply::CODE, AcceptReply::NAME),
    (Commit::CODE, Commit::NAME),
    (CommitShort::CODE, CommitShort::NAME),
    (Prepare::CODE, Prepare::NAME),
    (PrepareReply::CODE, PrepareReply::NAME),
    (Progress::CODE, Progress::NAME),
    (TryPreAccept::CODE, TryPreAccept::NAME),
    (TryPreAcceptReply::CODE, TryPreAcceptReply::NAME),
    (Compacted::CODE, Compacted::NAME),
    (SnapshotRequest::CODE, SnapshotRequest::NAME),
    (SnapshotChunk::CODE, SnapshotChunk::NAME),
];
