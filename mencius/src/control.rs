//! Timers, the master's probe, status and log requests, and the dispatch of
//! peer messages.

use genericsmr::effects::{Effects, Reply};
use genericsmr::messages::{role, LogReply, LogRequest, Ping, Pong, SlotDigest, StatusReply};
use genericsmr::ConnId;

use crate::messages::{MenciusMsg, Skip};
use crate::replica::{Replica, SlotState};

/// Most slots described by one log reply.
pub const MAX_LOG_REPLY: u32 = 65_536;

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

    /// The master's liveness probe. Every replica coordinates its own slots,
    /// so each reports itself as leading.
    pub fn handle_ping(&mut self, conn: ConnId, m: Ping, fx: &mut Effects<MenciusMsg>) {
        let p = Pong {
            nonce: m.nonce,
            replica: self.cfg.id,
            ballot: self.max_round,
            leader: true,
            commit_index: self.commit_index,
            recovering: false,
        };
        fx.reply(conn, Reply::Pong(p));
    }

    /// Role, ballot round, commit and execution counters, digest.
    pub fn status(&self, nonce: u64) -> StatusReply {
        let d = self.sm.digest();
        StatusReply {
            nonce,
            replica: self.cfg.id,
            role: role::LEADER,
            ballot: self.max_round,
            leader: Some(self.cfg.id),
            commit_index: self.commit_index,
            executed: self.executed,
            log_len: self.log_end(),
            applied: self.sm.applied(),
            duplicates: self.sm.duplicates(),
            digest_hi: (d >> 64) as u64,
            digest_lo: d as u64,
            catchup_fetched: self.catchup_fetched,
            replayed: self.replayed,
            keys: self.sm.kv().len() as u64,
        }
    }

    /// Answers a log request with a hash of each non-empty slot's value.
    pub fn handle_log_request(
        &mut self,
        conn: ConnId,
        m: LogRequest,
        fx: &mut Effects<MenciusMsg>,
    ) {
        let end = m.from.saturating_add(m.count.min(MAX_LOG_REPLY) as u64);
        let slots = (m.from.max(self.base)..end.min(self.log_end()))
            .filter_map(|i| Some((i, self.slot(i)?)))
            .filter(|(_, s)| s.state != SlotState::Empty)
            .map(|(i, s)| SlotDigest {
                slot: i,
                committed: s.state == SlotState::Committed,
                hash: s.hash(),
            })
            .collect();
        fx.reply(
            conn,
            Reply::Log(LogReply {
                nonce: m.nonce,
                slots,
            }),
        );
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
