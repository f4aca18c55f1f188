//! Phase 2 (the slow path): a majority accepts the final attributes.

use genericsmr::effects::Effects;
use genericsmr::ReplicaId;

use crate::messages::*;
use crate::replica::{Replica, Status};

impl Replica {
    /// Phase 2 at a peer: vote unless a higher ballot was promised.
    pub fn handle_accept(
        &mut self,
        _now: u64,
        from: ReplicaId,
        m: Accept,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let (l, i) = (m.leader, m.instance);
        let Some(x) = self.open_instance(from, l, i, &m.deps, fx) else {
            return;
        };
        let ok = m.ballot >= x.ballot;
        if x.lead.as_ref().is_some_and(|ld| ld.ballot < m.ballot) {
            x.lead = None; // a recovery took over
        }
        if ok {
            x.ballot = m.ballot;
            x.vballot = m.ballot;
            x.status = Status::Accepted;
            x.unchanged = false;
            x.cmds = m.cmds;
            x.seq = m.seq;
            x.deps = m.deps;
            self.record_own_keys(l, i);
            self.touch(l, i);
            self.apply_early_commit(l, i, fx);
        }
        let promised = self.spaces[l as usize]
            .get(i)
            .map_or(m.ballot, |x| x.ballot);
        fx.send(
            from,
            EpaxosMsg::AcceptReply(AcceptReply {
                leader: l,
                instance: i,
                ballot: m.ballot,
                ok,
                promised,
            }),
        );
    }

    /// A phase-2 vote for an instance this replica leads.
    pub fn handle_accept_reply(
        &mut self,
        _now: u64,
        from: ReplicaId,
        m: AcceptReply,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let majority = self.cfg.quorum();
        let Some(x) = self
            .spaces
            .get_mut(m.leader as usize)
            .and_then(|s| s.get_mut(m.instance))
        else {
            return;
        };
        let Some(lead) = x.lead.as_deref_mut() else {
            return;
        };
        if lead.phase != 2 || lead.ballot != m.ballot || x.status.is_committed() {
            return;
        }
        if !m.ok {
            x.ballot = x.ballot.max(m.promised);
            x.lead = None;
            return;
        }
        lead.votes |= 1 << from;
        lead.answered |= 1 << from;
        if lead.votes.count_ones() as usize >= majority {
            self.commit_locally(m.leader, m.instance, fx);
        }
    }
}
