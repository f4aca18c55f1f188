//! Timers, the replica's status (which the master's probe and operators
//! read), log digests, and the dispatch of peer messages.

use genericsmr::effects::Effects;
use genericsmr::messages::{role, LogReply, LogRequest, SlotDigest, StatusReply};

use crate::messages::{MenciusMsg, Skip};
use crate::replica::{Replica, SlotState};

impl Replica {
    /// Timers: retransmissions, heartbeats, catch-up, revocation.
    pub fn tick(&mut self, now: u64, fx: &mut Effects<MenciusMsg>) {
        self.now = now;
        self.retransmit(now, fx);
        self.tick_catchup(now, fx);
        self.tick_revoke(now, fx);
        if now.saturating_sub(self.last_broadcast) >= self.cfg.heartbeat_ns {
            self.last_broadcast = now;
            let (from, to) = self.last_skip;
            fx.broadcast(MenciusMsg::Skip(Skip {
                from,
                to,
                commit_index: self.commit_index,
            }));
        }
        self.fetch.expire(now);
    }

    /// Role, ballot round, commit and execution counters, digest.
    pub fn status(&self, nonce: u64) -> StatusReply {
        StatusReply {
            nonce,
            replica: self.cfg.id,
            role: role::LEADER,
            ballot: self.max_round,
            leader: Some(self.cfg.id),
            commit_index: self.commit_index,
            executed: self.executed,
            log_len: self.log_end(),
            catchup_fetched: self.catchup_fetched,
            replayed: self.replayed,
            ..self.sm.status()
        }
    }

    /// The answer to a log request: a hash of each non-empty slot's value
    /// held in the range.
    pub fn log_reply(&self, m: &LogRequest) -> LogReply {
        m.answer(
            (m.from.max(self.base)..m.end().min(self.log_end()))
                .filter_map(|i| Some((i, self.slot(i)?)))
                .filter(|(_, s)| s.state != SlotState::Empty)
                .map(|(i, s)| SlotDigest {
                    slot: i,
                    committed: s.state == SlotState::Committed,
                    hash: s.hash(),
                }),
        )
    }

    /// Delivers any peer message.
    pub fn handle_peer(&mut self, now: u64, from: u8, m: MenciusMsg, fx: &mut Effects<MenciusMsg>) {
        if from as usize >= self.cfg.n || from == self.cfg.id {
            return;
        }
        match m {
            MenciusMsg::Accept(m) => self.handle_accept(now, from, m, fx),
            MenciusMsg::AcceptReply(m) => self.handle_accept_reply(now, from, m, fx),
            MenciusMsg::Commit(m) => self.handle_commit(now, from, m, fx),
            MenciusMsg::Skip(m) => self.handle_skip(now, from, m, fx),
            MenciusMsg::Prepare(m) => self.handle_prepare(now, from, m, fx),
            MenciusMsg::PrepareReply(m) => self.handle_prepare_reply(now, from, m, fx),
            MenciusMsg::Revoke(m) => self.handle_revoke(now, from, m, fx),
            MenciusMsg::RevokeReply(m) => self.handle_revoke_reply(now, from, m, fx),
            MenciusMsg::CatchupRequest(m) => self.handle_catchup_request(now, from, m, fx),
            MenciusMsg::CatchupReply(m) => self.handle_catchup_reply(now, from, m, fx),
            MenciusMsg::Compacted(m) => self.handle_compacted(now, from, m, fx),
            MenciusMsg::SnapshotRequest(m) => self.handle_snapshot_request(from, m, fx),
            MenciusMsg::SnapshotChunk(m) => self.handle_snapshot_chunk(now, from, m, fx),
        }
    }

    /// (slot, value hash) of every decided slot held from `from` on.
    pub fn committed_slots(&self, from: u64) -> Vec<(u64, u64)> {
        let start = from.max(self.base);
        (start..self.log_end())
            .filter_map(|i| Some((i, self.slot(i)?)))
            .filter(|(_, s)| s.state == SlotState::Committed)
            .map(|(i, s)| (i, s.hash()))
            .collect()
    }
}
