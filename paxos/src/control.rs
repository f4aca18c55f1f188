//! Timers, the replica's status (which the master's probe and operators
//! read), and the dispatch of peer messages.

use crate::multi::host::Host;
use crate::multi::snapshot::Snapshots;
use genericsmr::effects::Effects;
use genericsmr::messages::StatusReply;

use crate::messages::PaxosMsg;
use crate::replica::Replica;

impl Replica {
    /// Timers: heartbeats, retransmissions, elections, catch-up and recovery.
    pub fn tick(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) {
        self.tick_multi(now, fx);
        self.tick_learner(now, fx);
    }

    /// A snapshot of the replica's state.
    pub fn status(&self, nonce: u64) -> StatusReply {
        let leader = self.leader_hint();
        self.px
            .status(nonce, self.cfg.group.id, self.role_code(), leader)
    }
}

impl Replica {
    /// Delivers any peer message (what the runtime's typed channels do one
    /// type at a time; the simulator uses this).
    pub fn handle_peer(&mut self, now: u64, from: u8, m: PaxosMsg, fx: &mut Effects<PaxosMsg>) {
        match m {
            PaxosMsg::Prepare(m) => self.handle_prepare(now, from, m, fx),
            PaxosMsg::PrepareReply(m) => self.handle_prepare_reply(now, from, m, fx),
            PaxosMsg::Accept(m) => self.handle_accept(now, from, m, fx),
            PaxosMsg::AcceptReply(m) => self.handle_accept_reply(now, from, m, fx),
            PaxosMsg::Commit(m) => self.handle_commit(now, from, m, fx),
            PaxosMsg::CommitShort(m) => self.handle_commit_short(now, from, m, fx),
            PaxosMsg::CatchupRequest(m) => self.handle_catchup_request(now, from, m, fx),
            PaxosMsg::CatchupReply(m) => self.handle_catchup_reply(now, from, m, fx),
            PaxosMsg::RecoveryQuery(m) => self.handle_recovery_query(now, from, m, fx),
            PaxosMsg::RecoveryInfo(m) => self.handle_recovery_info(now, from, m, fx),
            PaxosMsg::Compacted(m) => self.handle_compacted(now, from, m, fx),
            PaxosMsg::SnapshotRequest(m) => self.handle_snapshot_request(from, m, fx),
            PaxosMsg::SnapshotChunk(m) => self.handle_snapshot_chunk(now, from, m, fx),
        }
    }

    /// The commands of every committed slot held (not compacted away), by
    /// slot (for the simulator's agreement check).
    pub fn committed_slots(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.px.log.committed(0)
    }
}
