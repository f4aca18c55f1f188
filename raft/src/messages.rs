//! Raft peer messages (type codes 0x90..=0xaf, plus the shared snapshot
//! messages of [`genericsmr::snapshot`]) and the log entry they carry.

use bytes::BytesMut;
use genericsmr::command::Command;
pub use genericsmr::snapshot::{Compacted, SnapshotChunk, SnapshotRequest};
use genericsmr::wire::{Frame, Message};
use genericsmr::wire_struct;

/// First type code of Raft's own messages (0x90..=0xaf).
pub const RAFT_BASE: u8 = 0x90;

/// One log entry: the term of the leader that created it and its batch of
/// commands (empty for the no-op a new leader appends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Term in which a leader appended it; with the index, it names the entry.
    pub term: u64,
    /// The commands, executed in order (empty: a no-op).
    pub cmds: Vec<Command>,
}
wire_struct!(Entry { term, cmds });

impl Entry {
    /// Bytes of the commands on the wire (for batch and compaction bounds).
    pub fn wire_len(&self) -> usize {
        self.cmds.iter().map(Command::wire_len).sum()
    }
}

/// Candidate -> replica: vote for me (or, with `pre_vote`, would you?).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestVote {
    /// The candidate's term; in a pre-vote, the term it would campaign in
    /// (its own plus one, which it has not taken yet).
    pub term: u64,
    /// Index of the candidate's last entry (a vote goes only to a log at
    /// least as up to date as the voter's).
    pub last_index: u64,
    /// Term of the candidate's last entry.
    pub last_term: u64,
    /// A pre-vote: nobody changes term or vote; it only asks whether a real
    /// campaign could win, so a replica cut off for a while does not disrupt
    /// the group when it comes back.
    pub pre_vote: bool,
    /// The candidate campaigns because the leader handed over to it
    /// ([`TimeoutNow`]): voters grant it even while they hear that leader.
    pub transfer: bool,
}
wire_struct!(
    RequestVote {
        term,
        last_index,
        last_term,
        pre_vote,
        transfer
    } = RAFT_BASE
);

/// Replica -> candidate: the answer to a [`RequestVote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestVoteReply {
    /// The voter's term (on a granted pre-vote: the term asked about), so a
    /// candidate behind learns the current term.
    pub term: u64,
    /// Whether the (pre-)vote was granted.
    pub granted: bool,
    /// Whether this answers a pre-vote.
    pub pre_vote: bool,
}
wire_struct!(
    RequestVoteReply {
        term,
        granted,
        pre_vote
    } = RAFT_BASE + 1
);

/// Leader -> follower: append `entries` after `prev_index` (if the
/// follower's entry there has `prev_term`); an empty one is a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendEntries {
    /// The leader's term.
    pub term: u64,
    /// Index of the entry just before `entries` (the consistency check).
    pub prev_index: u64,
    /// Term of that entry in the leader's log.
    pub prev_term: u64,
    /// The leader's commit index: the follower commits up to it, as far as
    /// its log is known to match the leader's.
    pub commit: u64,
    /// Consecutive entries from `prev_index + 1` on (batched, possibly none).
    pub entries: Vec<Entry>,
}
wire_struct!(
    AppendEntries {
        term,
        prev_index,
        prev_term,
        commit,
        entries
    } = RAFT_BASE + 2
);

/// Follower -> leader: the answer to an [`AppendEntries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendEntriesReply {
    /// The follower's term (above the leader's: the leader steps down).
    pub term: u64,
    /// Whether the consistency check passed and the entries were appended.
    pub success: bool,
    /// On success, the last index at which the follower's log now matches
    /// the leader's; on refusal, the `prev_index` refused.
    pub index: u64,
    /// On refusal, where the leader should try next: the first index of
    /// `hint_term` in the follower's log, or one past its last entry.
    pub hint_index: u64,
    /// On refusal, the term of the follower's entry at `prev_index` (0: it
    /// has no entry there), so the leader skips a whole term per round trip.
    pub hint_term: u64,
}
wire_struct!(
    AppendEntriesReply {
        term,
        success,
        index,
        hint_index,
        hint_term
    } = RAFT_BASE + 3
);

/// Leader -> follower: campaign now (leadership transfer); sent once the
/// follower's log matches the leader's to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutNow {
    /// The leader's term (a stale one is ignored).
    pub term: u64,
}
wire_struct!(TimeoutNow { term } = RAFT_BASE + 4);

/// Follower -> leader: hand leadership over to me (an operator's or the
/// master's `set-leader` at the follower).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandOver {
    /// The follower's term (a leader of another term ignores it).
    pub term: u64,
}
wire_struct!(HandOver { term } = RAFT_BASE + 5);

/// Every Raft peer message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaftMsg {
    /// A (pre-)vote request.
    RequestVote(RequestVote),
    /// A (pre-)vote answer.
    RequestVoteReply(RequestVoteReply),
    /// Entries or a heartbeat.
    AppendEntries(AppendEntries),
    /// Their answer.
    AppendEntriesReply(AppendEntriesReply),
    /// Campaign now (transfer).
    TimeoutNow(TimeoutNow),
    /// Please transfer leadership to me.
    HandOver(HandOver),
    /// What was asked for is compacted at the sender (shared code 0x21).
    Compacted(Compacted),
    /// A request for the sender's snapshot (shared code 0x22).
    SnapshotRequest(SnapshotRequest),
    /// A piece of a snapshot (shared code 0x23).
    SnapshotChunk(SnapshotChunk),
}

impl Frame for RaftMsg {
    fn encode_frame(&self, out: &mut BytesMut) {
        match self {
            RaftMsg::RequestVote(m) => m.encode_frame(out),
            RaftMsg::RequestVoteReply(m) => m.encode_frame(out),
            RaftMsg::AppendEntries(m) => m.encode_frame(out),
            RaftMsg::AppendEntriesReply(m) => m.encode_frame(out),
            RaftMsg::TimeoutNow(m) => m.encode_frame(out),
            RaftMsg::HandOver(m) => m.encode_frame(out),
            RaftMsg::Compacted(m) => m.encode_frame(out),
            RaftMsg::SnapshotRequest(m) => m.encode_frame(out),
            RaftMsg::SnapshotChunk(m) => m.encode_frame(out),
        }
    }
}

/// Codes and names of every message, for fault rules and tests.
pub const CODES: [(u8, &str); 9] = [
    (RequestVote::CODE, RequestVote::NAME),
    (RequestVoteReply::CODE, RequestVoteReply::NAME),
    (AppendEntries::CODE, AppendEntries::NAME),
    (AppendEntriesReply::CODE, AppendEntriesReply::NAME),
    (TimeoutNow::CODE, TimeoutNow::NAME),
    (HandOver::CODE, HandOver::NAME),
    (Compacted::CODE, Compacted::NAME),
    (SnapshotRequest::CODE, SnapshotRequest::NAME),
    (SnapshotChunk::CODE, SnapshotChunk::NAME),
];
