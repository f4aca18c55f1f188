//! Proposals and phase 1: the command leader pre-accepts a batch with the
//! attributes it sees, peers add what they see, and the leader commits on the
//! fast path when a fast quorum took its attributes unchanged, or goes to
//! phase 2 with the union otherwise.
//!
//! The fast-path decision depends only on the set of votes, never on their
//! order: the leader waits until either `fast_quorum - 1` peers voted
//! unchanged, or so many changed that this can no longer happen.

use genericsmr::command::Command;
use genericsmr::effects::{accepted, reject, Effects};
use genericsmr::messages::{Propose, ReplyStatus};
use genericsmr::state::Check;
use genericsmr::{ConnId, ReplicaId};

use crate::messages::*;
use crate::replica::{Lead, Replica, Status};

impl Replica {
    /// A client proposal: queued, then started in an instance as soon as the
    /// in-flight bound allows (see [`crate::Config::max_inflight`]).
    pub fn handle_propose(
        &mut self,
        now: u64,
        conn: ConnId,
        m: Propose,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let cmd = m.cmd;
        let (client, seq, me) = (cmd.client, cmd.seq, self.cfg.id);
        match self.state.check(client, seq) {
            // Already executed: answer with the first outcome.
            Check::Done(out) => return fx.reply(conn, accepted(client, seq, me, out.clone())),
            Check::Stale => {
                return fx.reply(conn, reject(client, seq, ReplyStatus::Stale, Some(me)))
            }
            Check::Fresh => {}
        }
        if let Some(c) = self.waiting.get_mut(&(client, seq)) {
            // A retry of a command in flight here: answer on the newest connection.
            *c = conn;
            return;
        }
        let refuse = if cmd.wire_len() > self.cfg.max_command_bytes {
            Some(ReplyStatus::TooLarge)
        } else if self.pending.len() >= self.cfg.max_pending {
            Some(ReplyStatus::Unavailable)
        } else {
            None
        };
        if let Some(status) = refuse {
            return fx.reply(conn, reject(client, seq, status, Some(me)));
        }
        self.waiting.insert((client, seq), conn);
        self.pending.push_back(cmd);
        if !self.cfg.batch {
            self.start_instances(now, fx);
        }
    }

    /// Starts instances for queued proposals, within the in-flight bound.
    pub(crate) fn start_instances(&mut self, now: u64, fx: &mut Effects<EpaxosMsg>) {
        let per = if self.cfg.batch {
            self.cfg.batch_max
        } else {
            1
        };
        // Bounded in commands too: with batching an instance may hold
        // thousands, and a stall would otherwise hold max_inflight of them.
        let bound = self.cfg.max_queued as usize;
        while !self.pending.is_empty() && self.inflight() < self.cfg.max_inflight as u64 {
            let room = bound.saturating_sub(self.open_commands());
            if room == 0 {
                break;
            }
            let take = self.pending.len().min(per).min(room);
            let cmds: Vec<Command> = self.pending.drain(..take).collect();
            self.open.push(self.next, take);
            self.start_instance(now, cmds, fx);
        }
    }

    fn start_instance(&mut self, now: u64, cmds: Vec<Command>, fx: &mut Effects<EpaxosMsg>) {
        let me = self.cfg.id;
        let i = self.next;
        self.next += 1;
        let (seq, deps) = self.keys.attributes_noted(me, i, &cmds, None);
        let n = self.cfg.n;
        let x = self.spaces[me as usize]
            .entry(i, n)
            .expect("own instances are never below the window");
        x.status = Status::PreAccepted;
        x.cmds = cmds.clone();
        x.seq = seq;
        x.deps = deps.clone();
        x.unchanged = true;
        x.lead = Some(Box::new(Lead {
            ballot: 0,
            phase: 1,
            answered: 1 << me,
            unchanged: 1 << me,
            votes: 1 << me,
            seq,
            deps: deps.clone(),
            sent_at: now,
            prepared: Vec::new(),
        }));
        self.touch(me, i);
        self.leading.insert((me, i));
        let to = if self.cfg.thrifty {
            self.first_peers(self.cfg.fast_quorum() - 1, now)
        } else {
            self.others()
        };
        fx.send_set(
            to,
            EpaxosMsg::PreAccept(PreAccept {
                leader: me,
                instance: i,
                ballot: 0,
                cmds,
                seq,
                deps,
            }),
        );
        if self.cfg.n == 1 {
            self.commit_locally(me, i, fx);
        }
    }

    /// Phase 1 at a peer: vote with the union of the proposed attributes and
    /// what this replica has seen.
    pub fn handle_preaccept(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: PreAccept,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let n = self.cfg.n;
        let (l, i) = (m.leader, m.instance);
        let Some(x) = self.open_instance(from, l, i, &m.deps, fx) else {
            return;
        };
        if m.ballot < x.ballot || (x.status == Status::Accepted && x.vballot >= m.ballot) {
            let promised = x.ballot.max(x.vballot);
            fx.send(from, nack_preaccept(&m, promised));
            return;
        }
        if x.status == Status::PreAccepted && x.vballot == m.ballot {
            // A repeat (a retransmission or a duplicate): one ballot gets one
            // vote, so answer as before instead of computing attributes anew.
            let same = x.seq == m.seq && x.deps == m.deps;
            let reply = vote(l, i, m.ballot, same, x.seq, x.deps.clone());
            fx.send(from, reply);
            return;
        }
        if x.lead.as_ref().is_some_and(|ld| ld.ballot < m.ballot) {
            x.lead = None; // a recovery took over
        }
        let (seq, deps) = self
            .keys
            .attributes_noted(l, i, &m.cmds, Some((m.seq, &m.deps)));
        let unchanged = seq == m.seq && deps == m.deps;
        let x = self.spaces[l as usize].entry(i, n).expect("created above");
        x.ballot = m.ballot;
        x.vballot = m.ballot;
        x.status = Status::PreAccepted;
        x.unchanged = unchanged && m.ballot == 0;
        x.cmds = m.cmds;
        x.seq = seq;
        x.deps = deps.clone();
        self.touch(l, i);
        // Until it is committed this replica waits on it: if its leader
        // vanishes, recovery starts after the grace period.
        self.wait_on((l, i), now);
        let reply = vote(l, i, m.ballot, unchanged, seq, deps);
        fx.send(from, reply);
        self.apply_early_commit(l, i, fx);
    }

    /// A changed vote (or a refusal) for an instance this replica leads.
    pub fn handle_preaccept_reply(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: PreAcceptReply,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        if m.deps.len() != self.cfg.n && m.ok {
            return;
        }
        self.phase1_vote(now, from, m.leader, m.instance, m.ballot, Some(m), fx);
    }

    /// An unchanged vote.
    pub fn handle_preaccept_ok(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: PreAcceptOk,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        self.phase1_vote(now, from, m.leader, m.instance, m.ballot, None, fx);
    }

    #[allow(clippy::too_many_arguments)]
    fn phase1_vote(
        &mut self,
        now: u64,
        from: ReplicaId,
        l: ReplicaId,
        i: u64,
        ballot: u64,
        changed: Option<PreAcceptReply>,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let fast = self.cfg.fast_quorum();
        let majority = self.cfg.quorum();
        let n = self.cfg.n;
        let Some(x) = self.spaces.get_mut(l as usize).and_then(|s| s.get_mut(i)) else {
            return;
        };
        let Some(lead) = x.lead.as_deref_mut() else {
            return;
        };
        if lead.phase != 1 || lead.ballot != ballot || x.status.is_committed() {
            return;
        }
        if x.ballot > lead.ballot {
            x.lead = None; // a recovery took over
            return;
        }
        if let Some(r) = &changed {
            if !r.ok {
                // Someone recovers the instance at a higher ballot: stop leading it.
                x.ballot = x.ballot.max(r.promised);
                x.lead = None;
                return;
            }
        }
        let bit = 1u64 << from;
        if lead.answered & bit != 0 {
            return;
        }
        lead.answered |= bit;
        lead.votes |= bit;
        match &changed {
            None => lead.unchanged |= bit,
            Some(r) => {
                lead.seq = lead.seq.max(r.seq);
                for (d, p) in lead.deps.iter_mut().zip(&r.deps) {
                    *d = (*d).max(*p);
                }
            }
        }
        let _ = now;
        let unchanged = lead.unchanged.count_ones() as usize;
        let answered = lead.answered.count_ones() as usize;
        // Only the command leader at ballot 0 may take the fast path.
        let fast_possible = ballot == 0 && unchanged + (n - answered) >= fast;
        if ballot == 0 && unchanged >= fast && x.ballot == 0 {
            self.fast_commits += 1;
            self.commit_locally(l, i, fx);
            return;
        }
        if answered >= majority && !fast_possible {
            self.slow_commits += 1;
            self.start_accept(now, l, i, fx);
        }
    }

    /// Phase 2 with the union of the phase-1 votes.
    pub(crate) fn start_accept(
        &mut self,
        now: u64,
        l: ReplicaId,
        i: u64,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let me = self.cfg.id;
        let to = if self.cfg.thrifty {
            self.first_peers(self.cfg.quorum() - 1, now)
        } else {
            self.others()
        };
        let Some(x) = self.spaces[l as usize].get_mut(i) else {
            return;
        };
        let Some(lead) = x.lead.as_deref_mut() else {
            return;
        };
        if lead.ballot < x.ballot {
            // A recovery promised meanwhile: never vote below a promise.
            x.lead = None;
            return;
        }
        lead.phase = 2;
        lead.answered = 1 << me;
        lead.votes = 1 << me;
        lead.sent_at = now;
        x.seq = lead.seq;
        x.deps = lead.deps.clone();
        x.status = Status::Accepted;
        x.vballot = lead.ballot;
        x.ballot = lead.ballot;
        let msg = Accept {
            leader: l,
            instance: i,
            ballot: lead.ballot,
            cmds: x.cmds.clone(),
            seq: x.seq,
            deps: x.deps.clone(),
        };
        self.record_own_keys(l, i);
        self.touch(l, i);
        fx.send_set(to, EpaxosMsg::Accept(msg));
        if self.cfg.n == 1 {
            self.commit_locally(l, i, fx);
        }
    }
}

/// A phase-1 vote: OK if the attributes are the proposed ones, else the new ones.
fn vote(l: ReplicaId, i: u64, ballot: u64, unchanged: bool, seq: u64, deps: Vec<u64>) -> EpaxosMsg {
    if unchanged {
        EpaxosMsg::PreAcceptOk(PreAcceptOk {
            leader: l,
            instance: i,
            ballot,
        })
    } else {
        EpaxosMsg::PreAcceptReply(PreAcceptReply {
            leader: l,
            instance: i,
            ballot,
            ok: true,
            promised: ballot,
            seq,
            deps,
        })
    }
}

/// The full commit of a committed instance, for a replica that missed it.
pub(crate) fn full_commit(l: ReplicaId, i: u64, x: &crate::Instance) -> EpaxosMsg {
    EpaxosMsg::Commit(Commit {
        leader: l,
        instance: i,
        cmds: x.cmds.clone(),
        seq: x.seq,
        deps: x.deps.clone(),
    })
}

fn nack_preaccept(m: &PreAccept, promised: u64) -> EpaxosMsg {
    EpaxosMsg::PreAcceptReply(PreAcceptReply {
        leader: m.leader,
        instance: m.instance,
        ballot: m.ballot,
        ok: false,
        promised,
        seq: 0,
        deps: Vec::new(),
    })
}
