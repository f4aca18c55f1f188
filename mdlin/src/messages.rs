//! MDLin messages (type codes 0x70..=0x8f) and the entries of a shard's journal.
//!
//! Two of them come from clients: [`MdlPropose`] (an operation, naming its
//! chain predecessor) and [`CoordReq`] (sent to the predecessor's shard
//! leader, asking it to tell the operation's leader once the predecessor is
//! safe to follow). Shard leaders answer each other with [`CoordReply`]. The
//! rest replicate one shard's journal with Multi-Paxos: every round-1
//! replication, every round-2 ordering and every failure is a journal
//! [`Entry`] in its own slot.

use bytes::{BufMut, BytesMut};
use genericsmr::command::Command;
use genericsmr::messages::codes::MDLIN_BASE;
use genericsmr::wire::{Marshal, Reader, Unmarshal, WireError};
use genericsmr::wire_struct;

pub use genericsmr::snapshot::{Compacted, SnapshotChunk, SnapshotRequest};

/// Identifies one operation: its client and the client's issue index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct OpId {
    /// The issuing client's session id.
    pub client: u64,
    /// The client's issue index (the command's `seq`); a retry reuses it.
    pub seq: u64,
}
wire_struct!(OpId { client, seq });

impl OpId {
    /// The id of `cmd`.
    pub fn of(cmd: &Command) -> OpId {
        OpId {
            client: cmd.client,
            seq: cmd.seq,
        }
    }
}

/// An operation's chain predecessor: the same client's most recent operation
/// that was still outstanding when this one was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pred {
    /// The predecessor's issue index (same client).
    pub seq: u64,
    /// The shard the predecessor went to, whose leader coordinates it.
    pub shard: u8,
}
wire_struct!(Pred { seq, shard });

/// The `shard_seq` of an operation outside any per-shard numbering: a plain
/// single-dispatch proposal, admitted at once (it must have no predecessor).
pub const UNSEQUENCED: u64 = u64::MAX;

/// Client -> the operation's shard leader: replicate and order this operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdlPropose {
    /// The operation; `(client, seq)` is its [`OpId`].
    pub cmd: Command,
    /// Per (client, shard) counter, contiguous from 0: the leader admits a
    /// client's operations in this order and buffers gaps.
    pub shard_seq: u64,
    /// The chain predecessor, or none for an operation issued while nothing
    /// else of this client was outstanding (it takes the one-round path).
    pub pred: Option<Pred>,
}
wire_struct!(
    MdlPropose {
        cmd,
        shard_seq,
        pred
    } = MDLIN_BASE
);

/// Client (or a successor's shard leader, retrying) -> the predecessor's shard
/// leader: tell `succ_shard`'s leader once `pred` is committed and coordinated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordReq {
    /// The predecessor, on the receiving shard.
    pub pred: OpId,
    /// The operation waiting for it.
    pub succ: OpId,
    /// The shard of `succ`, whose leader gets the [`CoordReply`].
    pub succ_shard: u8,
}
wire_struct!(
    CoordReq {
        pred,
        succ,
        succ_shard
    } = MDLIN_BASE + 1
);

/// Predecessor's shard leader -> successor's shard leader: the predecessor is
/// safe to follow (`ok`, with its timestamp), or it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordReply {
    /// The waiting operation.
    pub succ: OpId,
    /// Its predecessor, the subject of this reply.
    pub pred: OpId,
    /// Whether the predecessor will take effect; `false` fails `succ` too.
    pub ok: bool,
    /// The predecessor's timestamp: the successor's must be larger.
    pub ts: u64,
    /// The ballot of the leader that sent it. Once the successor's shard has
    /// answered a recovering leader of the predecessor's shard (see
    /// [`SuccTsRequest`] and [`Entry::Fence`]), it ignores replies from that
    /// shard's older ballots: they may come from a replaced leader, still
    /// running or in flight, with a timestamp the new one does not honour.
    pub ballot: u64,
}
wire_struct!(
    CoordReply {
        succ,
        pred,
        ok,
        ts,
        ballot
    } = MDLIN_BASE + 2
);

/// What one slot of a shard's journal holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Entry {
    /// Nothing (fills a hole a new leader found).
    #[default]
    Noop,
    /// Round 1: the operation is replicated (with its predecessor, so a new
    /// leader can coordinate it again), not yet ordered.
    Pending {
        /// The operation.
        cmd: Command,
        /// Its per (client, shard) admission counter.
        shard_seq: u64,
        /// Its chain predecessor.
        pred: Option<Pred>,
    },
    /// Round 2: the operation (replicated earlier by `Pending`) takes this
    /// position in the shard's order; execution follows these entries.
    Order {
        /// The operation.
        op: OpId,
        /// Its timestamp (larger than its predecessor's and than every
        /// earlier order entry's).
        ts: u64,
    },
    /// An operation without a predecessor, replicated and ordered in one round.
    Head {
        /// The operation.
        cmd: Command,
        /// Its per (client, shard) admission counter.
        shard_seq: u64,
        /// Its timestamp.
        ts: u64,
    },
    /// The operation failed: it never takes effect, here or after any failover.
    Fail {
        /// The operation.
        op: OpId,
    },
    /// From here on, coordination replies about operations of `shard` count
    /// only from leaders of at least `ballot`. Written before this shard
    /// answers that ballot's [`SuccTsRequest`], so the answer stays true
    /// through this shard's own failovers: a later leader here inherits the
    /// fence with the journal.
    Fence {
        /// The predecessors' shard.
        shard: u8,
        /// The lowest ballot of its leaders still heard.
        ballot: u64,
    },
}

impl Marshal for Entry {
    fn marshal(&self, buf: &mut BytesMut) {
        match self {
            Entry::Noop => buf.put_u8(0),
            Entry::Pending {
                cmd,
                shard_seq,
                pred,
            } => {
                buf.put_u8(1);
                cmd.marshal(buf);
                shard_seq.marshal(buf);
                pred.marshal(buf);
            }
            Entry::Order { op, ts } => {
                buf.put_u8(2);
                op.marshal(buf);
                ts.marshal(buf);
            }
            Entry::Head { cmd, shard_seq, ts } => {
                buf.put_u8(3);
                cmd.marshal(buf);
                shard_seq.marshal(buf);
                ts.marshal(buf);
            }
            Entry::Fail { op } => {
                buf.put_u8(4);
                op.marshal(buf);
            }
            Entry::Fence { shard, ballot } => {
                buf.put_u8(5);
                shard.marshal(buf);
                ballot.marshal(buf);
            }
        }
    }
}

impl paxos::log::Value for Entry {
    /// Roughly its encoded size (what compaction by bytes counts).
    fn held_bytes(&self) -> usize {
        match self {
            Entry::Pending { cmd, .. } | Entry::Head { cmd, .. } => 32 + cmd.wire_len(),
            _ => 24,
        }
    }
}

impl paxos::multi::value::Carried for Entry {
    type Wire = Entry;
    fn to_wire(&self) -> Entry {
        self.clone()
    }
    fn from_wire(e: Entry) -> Self {
        e
    }
    fn same(&self, e: &Entry) -> bool {
        self == e
    }
}

impl Unmarshal for Entry {
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        Ok(match r.u8("entry kind")? {
            0 => Entry::Noop,
            1 => Entry::Pending {
                cmd: Command::unmarshal(r)?,
                shard_seq: r.u64("shard seq")?,
                pred: Option::unmarshal(r)?,
            },
            2 => Entry::Order {
                op: OpId::unmarshal(r)?,
                ts: r.u64("ts")?,
            },
            3 => Entry::Head {
                cmd: Command::unmarshal(r)?,
                shard_seq: r.u64("shard seq")?,
                ts: r.u64("ts")?,
            },
            4 => Entry::Fail {
                op: OpId::unmarshal(r)?,
            },
            5 => Entry::Fence {
                shard: r.u8("fence shard")?,
                ballot: r.u64("fence ballot")?,
            },
            v => {
                return Err(WireError::Invalid {
                    what: "journal entry kind",
                    value: v as u64,
                })
            }
        })
    }
}

// The journal's Multi-Paxos messages are the paxos crate's, under MDLin's
// codes. A CommitShort from a replica of another shard is a leader
// announcement, "I lead my shard at `ballot`" (`up_to` is ignored there;
// see `Config::announce_ns`). An AcceptReply also refuses a slot whose
// earlier slots the follower does not all hold (the prefix rule).
paxos::value_free_messages!(
    prepare = MDLIN_BASE + 7,
    accept_reply = MDLIN_BASE + 4,
    commit_short = MDLIN_BASE + 6,
    catchup_request = MDLIN_BASE + 11,
);

impl paxos::multi::messages::Codes for Entry {
    const ACCEPT: u8 = MDLIN_BASE + 3;
    const COMMIT: u8 = MDLIN_BASE + 5;
    const PREPARE_REPLY: u8 = MDLIN_BASE + 8;
}

/// Leader -> followers: accept a journal entry in a slot.
pub type Accept = paxos::multi::messages::Accept<Entry>;
/// Leader -> a follower that may lack the value: a slot is chosen with an entry.
pub type Commit = paxos::multi::messages::Commit<Entry>;
/// What an acceptor holds in one slot, reported in phase 1 and in catch-up.
pub type SlotReport = paxos::multi::messages::SlotReport<Entry>;

/// Follower -> candidate: a promise (with the journal from `from_slot`) or a refusal.
pub type PrepareReply = paxos::multi::messages::PrepareReply<Entry>;

/// A recovering shard leader -> every shard leader: for each of `ops`, the
/// timestamp of its chain successor if you have ordered or coordinated one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccTsRequest {
    /// Matches the reply to the recovery that asked.
    pub nonce: u64,
    /// Operations committed but not ordered at the asker's shard.
    pub ops: Vec<OpId>,
    /// The asker's ballot. Before answering, the answering shard replicates
    /// an [`Entry::Fence`]: from then on it accepts coordination replies from
    /// the asker's shard only from this ballot or later, and forgets any it
    /// holds but has not acted on, so what it answers stays final, through
    /// its own failovers too.
    pub ballot: u64,
}
wire_struct!(SuccTsRequest { nonce, ops, ballot } = MDLIN_BASE + 9);

/// Answer to [`SuccTsRequest`], one timestamp per asked operation
/// (`u64::MAX`: no successor known here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccTsReply {
    /// The request's nonce.
    pub nonce: u64,
    /// The answering shard.
    pub shard: u8,
    /// One timestamp per asked operation, in the asked order.
    pub ts: Vec<u64>,
}
wire_struct!(SuccTsReply { nonce, shard, ts } = MDLIN_BASE + 10);

/// Leader -> follower: chosen slots (each reported as committed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchupReply {
    /// The chosen slots, in order.
    pub slots: Vec<SlotReport>,
}
wire_struct!(CatchupReply { slots } = MDLIN_BASE + 12);

paxos::peer_messages! {
    /// Every message an MDLin replica sends to another replica.
    MdlMsg {
        /// See [`MdlPropose`] (from a client only).
        Propose(MdlPropose),
        /// See [`CoordReq`] (a leader retrying on behalf of a waiting successor).
        CoordReq(CoordReq),
        ;
        /// See [`CoordReply`].
        CoordReply(CoordReply),
        /// See [`SuccTsRequest`].
        SuccTsRequest(SuccTsRequest),
        /// See [`SuccTsReply`].
        SuccTsReply(SuccTsReply),
        /// See [`CatchupReply`].
        CatchupReply(CatchupReply),
    }
}

/// What an MDLin replica's durable log holds (`server --durable`), replayed
/// in order at restart: the records of the shared Multi-Paxos log
/// ([`paxos::log::Record`]) with journal entries as values: the promise, the
/// votes, what it learned was chosen, and after a compaction the snapshot
/// standing for every slot below its point. Everything else (execution,
/// fences, timestamps) is rebuilt by executing the chosen journal above the
/// snapshot.
pub type Record = paxos::log::Record<Entry>;
