//! Timers, the end-of-burst step, peer dispatch, and the replica's status
//! (which the master's probe and operators read).

use genericsmr::effects::Effects;
use genericsmr::messages::StatusReply;
use genericsmr::ReplicaId;
use paxos::multi::host::Host;
use paxos::multi::snapshot::Snapshots;

use crate::messages::MdlMsg;
use crate::replica::Replica;

impl Replica {
    /// Timers: elections, retransmissions, heartbeats, leader announcements,
    /// coordination retries and timeouts, catch-up.
    pub fn tick(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        self.tick_multi(now, fx);
        if self.is_follower() {
            self.catch_up(now, fx);
        }
        self.announce(now, fx);
        self.tick_coord(now, fx);
        self.tick_recovery(now, fx);
        self.flush(now, fx);
    }

    /// After each burst of messages: execute what is chosen, settle
    /// same-shard coordination, and move a new leader's recovery on.
    pub fn flush(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        loop {
            self.execute(now, fx);
            self.drain_local(now, fx);
            self.progress_recovery(now, fx);
            if self.local.is_empty() && self.px.executed == self.px.commit_index {
                break;
            }
        }
    }

    /// Any peer message.
    pub fn handle_peer(&mut self, now: u64, from: ReplicaId, m: MdlMsg, fx: &mut Effects<MdlMsg>) {
        self.px.now = now;
        match m {
            // Only clients propose (the rpc table takes it from no peer).
            MdlMsg::Propose(_) => {}
            MdlMsg::CoordReq(m) => self.handle_coord_req(now, Some(from), m, fx),
            MdlMsg::CoordReply(m) => self.handle_coord_reply(now, m, fx),
            MdlMsg::Accept(m) => self.handle_accept(now, from, m, fx),
            MdlMsg::AcceptReply(m) => self.handle_accept_reply(now, from, m, fx),
            MdlMsg::Commit(m) => self.handle_commit(now, from, m, fx),
            MdlMsg::CommitShort(m) => self.handle_commit_short(now, from, m, fx),
            MdlMsg::Prepare(m) => self.handle_prepare(now, from, m, fx),
            MdlMsg::PrepareReply(m) => self.handle_prepare_reply(now, from, m, fx),
            MdlMsg::SuccTsRequest(m) => self.handle_succ_ts_request(now, from, m, fx),
            MdlMsg::SuccTsReply(m) => self.handle_succ_ts_reply(now, m, fx),
            MdlMsg::CatchupRequest(m) => self.handle_catchup_request(from, m, fx),
            MdlMsg::CatchupReply(m) => self.handle_catchup_reply(from, m, fx),
            MdlMsg::Compacted(m) => self.handle_compacted(now, from, m, fx),
            MdlMsg::SnapshotRequest(m) => self.handle_snapshot_request(from, m, fx),
            MdlMsg::SnapshotChunk(m) => self.handle_snapshot_chunk(now, from, m, fx),
        }
    }

    /// A snapshot of the replica's state.
    pub fn status(&self, nonce: u64) -> StatusReply {
        let role = self.role_code();
        self.px.status(nonce, self.local_id(), role, self.hint())
    }
}
