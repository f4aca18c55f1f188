//! Timers, the replica's status (which the master's probe and operators
//! read), log digests, and the dispatch of peer messages.

use bytes::BytesMut;
use genericsmr::effects::Effects;
use genericsmr::messages::{role, LogReply, LogRequest, SlotDigest, StatusReply};
use genericsmr::wire::Marshal;
use genericsmr::ReplicaId;

use crate::messages::{Entry, RaftMsg};
use crate::replica::{Replica, Role};

/// A 64-bit hash of an entry (its term and commands): equal entries, equal hashes.
pub fn entry_hash(e: &Entry) -> u64 {
    let mut b = BytesMut::with_capacity(12 + e.wire_len());
    e.marshal(&mut b);
    xxhash_rust::xxh3::xxh3_64(&b)
}

impl Replica {
    /// Timers: elections, CheckQuorum, heartbeats, retransmissions.
    pub fn tick(&mut self, now: u64, fx: &mut Effects<RaftMsg>) {
        self.now = now;
        self.tick_election(now, fx);
        self.tick_leader(now, fx);
        if self.fetch.expire(now) {
            tracing::info!("snapshot transfer stalled: will ask again");
        }
    }

    /// Role, term (as a ballot: term above the followed replica's id),
    /// commit and execution points, digest.
    pub fn status(&self, nonce: u64) -> StatusReply {
        StatusReply {
            nonce,
            replica: self.cfg.id,
            role: match self.role {
                Role::Follower => role::FOLLOWER,
                Role::PreCandidate(_) | Role::Candidate(_) => role::CANDIDATE,
                Role::Leader(_) => role::LEADER,
            },
            ballot: self.ballot(),
            leader: self.leader_hint(),
            commit_index: self.commit,
            executed: self.applied,
            log_len: self.log.last(),
            catchup_fetched: 0,
            replayed: self.replayed,
            ..self.sm.status()
        }
    }

    /// The answer to a log request: a hash of each entry held in the range.
    pub fn log_reply(&self, m: &LogRequest) -> LogReply {
        m.answer(
            (m.from.max(self.log.base() + 1)..m.end().min(self.log.last() + 1))
                .filter_map(|i| Some((i, self.log.get(i)?)))
                .map(|(i, e)| SlotDigest {
                    slot: i,
                    committed: i <= self.commit,
                    hash: entry_hash(e),
                }),
        )
    }

    /// (index, hash) of every committed entry held from `from` on.
    pub fn committed_entries(&self, from: u64) -> Vec<(u64, u64)> {
        (from.max(self.log.base() + 1)..=self.commit)
            .filter_map(|i| Some((i, entry_hash(self.log.get(i)?))))
            .collect()
    }

    /// Delivers any peer message.
    pub fn handle_peer(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: RaftMsg,
        fx: &mut Effects<RaftMsg>,
    ) {
        self.now = now;
        if from as usize >= self.cfg.n || from == self.cfg.id {
            return;
        }
        match m {
            RaftMsg::RequestVote(m) => self.handle_request_vote(now, from, m, fx),
            RaftMsg::RequestVoteReply(m) => self.handle_request_vote_reply(now, from, m, fx),
            RaftMsg::AppendEntries(m) => self.handle_append_entries(now, from, m, fx),
            RaftMsg::AppendEntriesReply(m) => self.handle_append_entries_reply(now, from, m, fx),
            RaftMsg::TimeoutNow(m) => self.handle_timeout_now(now, from, m, fx),
            RaftMsg::HandOver(m) => self.handle_hand_over(now, from, m, fx),
            RaftMsg::Compacted(m) => self.handle_compacted(now, from, m, fx),
            RaftMsg::SnapshotRequest(m) => self.handle_snapshot_request(from, m, fx),
            RaftMsg::SnapshotChunk(m) => self.handle_snapshot_chunk(now, from, m, fx),
        }
    }
}
