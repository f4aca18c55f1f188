//! Recovery of an instance whose command leader seems gone: a replica that
//! has waited on it for the grace period runs Prepare at a higher ballot and
//! decides from what a majority reports.
//!
//! The decision uses, per replica, the ballot at which it last *voted*
//! (`vballot`), not the ballot it last promised: a promise says nothing about
//! which attributes were voted, and deciding from promises can commit two
//! different values (Sutra, 2019). With the replies of a majority:
//!
//! 1. someone committed it: commit that;
//! 2. otherwise take the replies with the highest vote ballot: if one of them
//!    accepted (phase 2), run phase 2 with those attributes;
//! 3. if they pre-accepted at a recovery ballot, nothing was chosen: run phase 1
//!    again (then always phase 2);
//! 4. if they pre-accepted, the command leader may have taken the fast
//!    path; `docs/epaxos.md` spells out when its attributes are kept (a
//!    majority holding them, or `fast_quorum - 1` unchanged at ballot 0),
//!    when phase 1 runs again (the fast path ruled out), and when
//!    TryPreAccept asks the others whether they still fit;
//! 5. nobody has the commands: commit a no-op through phase 2.

use genericsmr::command::Command;
use genericsmr::effects::Effects;
use genericsmr::ReplicaId;

use crate::messages::*;
use crate::replica::{Lead, Replica, Status};

impl Replica {
    /// Starts recovering `(l, i)` at a ballot above any seen for it.
    pub(crate) fn start_recovery(
        &mut self,
        now: u64,
        l: ReplicaId,
        i: u64,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let (me, n) = (self.cfg.id, self.cfg.n);
        let Some(x) = self.spaces[l as usize].entry(i, n) else {
            return;
        };
        if x.status.is_committed() {
            return;
        }
        let ballot = make_ballot(ballot_round(x.ballot) + 1, me);
        x.ballot = ballot;
        let own = own_report(l, i, ballot, x);
        x.lead = Some(Box::new(Lead {
            ballot,
            phase: 3,
            answered: 1 << me,
            sent_at: now,
            prepared: vec![(me, own)],
            ..Lead::default()
        }));
        self.recoveries += 1;
        self.touch(l, i);
        self.leading.insert((l, i));
        fx.send_set(
            self.others(),
            EpaxosMsg::Prepare(Prepare {
                leader: l,
                instance: i,
                ballot,
            }),
        );
    }

    /// A recovering replica asks for a promise and this replica's state.
    pub fn handle_prepare(
        &mut self,
        _now: u64,
        from: ReplicaId,
        m: Prepare,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        if !self.in_window(m.leader, m.instance) || ballot_round(m.ballot) >= MAX_ROUND {
            return;
        }
        let n = self.cfg.n;
        let Some(x) = self.spaces[m.leader as usize].entry(m.instance, n) else {
            // Executed and forgotten: the asker is behind; never silence.
            return self.compacted(from, m.leader, m.instance, fx);
        };
        let ok = m.ballot > x.ballot || x.status.is_committed();
        if ok && !x.status.is_committed() {
            x.ballot = m.ballot;
            if x.lead.as_ref().is_some_and(|ld| ld.ballot < m.ballot) {
                x.lead = None;
            }
        }
        let mut r = own_report(m.leader, m.instance, m.ballot, x);
        r.ok = ok;
        if ok {
            self.touch(m.leader, m.instance);
        }
        fx.send(from, EpaxosMsg::PrepareReply(r));
    }

    /// A report for an instance this replica recovers.
    pub fn handle_prepare_reply(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: PrepareReply,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let (l, i) = (m.leader, m.instance);
        let Some(x) = self.spaces.get_mut(l as usize).and_then(|s| s.get_mut(i)) else {
            return;
        };
        let Some(lead) = x.lead.as_deref_mut() else {
            return;
        };
        if lead.phase != 3 || lead.ballot != m.ballot || x.status.is_committed() {
            return;
        }
        if Status::from_u8(m.status).is_committed() && m.deps.len() == self.cfg.n {
            x.lead = None;
            let full = self.others();
            fx.send_set(
                full,
                EpaxosMsg::Commit(Commit {
                    leader: l,
                    instance: i,
                    cmds: m.cmds.clone(),
                    seq: m.seq,
                    deps: m.deps.clone(),
                }),
            );
            return self.mark_committed(l, i, Some(m.cmds), m.seq, m.deps, fx);
        }
        if !m.ok {
            x.ballot = x.ballot.max(m.promised);
            x.lead = None; // try again later, higher
            return;
        }
        if lead.answered & (1 << from) != 0 || (m.status != 0 && m.deps.len() != self.cfg.n) {
            return;
        }
        lead.answered |= 1 << from;
        lead.prepared.push((from, m));
        if (lead.answered.count_ones() as usize) < self.cfg.quorum() {
            return;
        }
        let decision = decide(&lead.prepared, l, self.cfg.n, self.cfg.fast_quorum());
        self.carry_out(now, l, i, decision, fx);
    }

    fn carry_out(
        &mut self,
        now: u64,
        l: ReplicaId,
        i: u64,
        d: Decision,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let me = self.cfg.id;
        let n = self.cfg.n;
        let Some(x) = self.spaces[l as usize].get_mut(i) else {
            return;
        };
        let Some(lead) = x.lead.as_deref_mut() else {
            return;
        };
        match d {
            Decision::Wait => {}
            Decision::TryPreAccept {
                cmds,
                seq,
                deps,
                holders,
            } => {
                let ballot = lead.ballot;
                lead.phase = 4;
                lead.seq = seq;
                lead.deps = deps.clone();
                lead.votes = holders;
                lead.answered = holders | 1 << me;
                lead.sent_at = now;
                x.cmds = cmds.clone();
                let msg = TryPreAccept {
                    leader: l,
                    instance: i,
                    ballot,
                    cmds,
                    seq,
                    deps,
                };
                let to = self.others() & !holders;
                // This replica answers its own question like any other.
                let own = self.try_preaccept(l, i, &msg);
                fx.send_set(to, EpaxosMsg::TryPreAccept(msg));
                self.try_preaccept_vote(now, me, own, fx);
            }
            Decision::Accept { cmds, seq, deps } => {
                x.cmds = cmds;
                lead.seq = seq;
                lead.deps = deps;
                self.start_accept(now, l, i, fx);
            }
            Decision::Restart { cmds, seq, deps } => {
                let ballot = lead.ballot;
                x.cmds = cmds.clone();
                let (s2, mut d2) = self.attributes(l, i, &cmds);
                for (a, b) in d2.iter_mut().zip(&deps) {
                    *a = (*a).max(*b);
                }
                let seq = seq.max(s2);
                self.record_keys(l, i, seq, &cmds);
                let Some(x) = self.spaces[l as usize].get_mut(i) else {
                    return;
                };
                x.status = Status::PreAccepted;
                x.vballot = ballot;
                x.unchanged = false;
                x.seq = seq;
                x.deps = d2.clone();
                x.lead = Some(Box::new(Lead {
                    ballot,
                    phase: 1,
                    answered: 1 << me,
                    votes: 1 << me,
                    seq,
                    deps: d2.clone(),
                    sent_at: now,
                    ..Lead::default()
                }));
                self.touch(l, i);
                let _ = n;
                fx.send_set(
                    self.others(),
                    EpaxosMsg::PreAccept(PreAccept {
                        leader: l,
                        instance: i,
                        ballot,
                        cmds,
                        seq,
                        deps: d2,
                    }),
                );
            }
        }
    }
}

impl Replica {
    /// The question of a [`TryPreAccept`] at this replica: pre-accepts the
    /// attributes at the recovery ballot if nothing it knows contradicts them.
    fn try_preaccept(&mut self, l: ReplicaId, i: u64, m: &TryPreAccept) -> TryPreAcceptReply {
        let n = self.cfg.n;
        let mut reply = TryPreAcceptReply {
            leader: l,
            instance: i,
            ballot: m.ballot,
            ok: false,
            promised: 0,
            refutes: false,
        };
        let Some(x) = self.spaces[l as usize].entry(i, n) else {
            return reply;
        };
        reply.promised = x.ballot;
        if m.ballot < x.ballot || x.status >= Status::Accepted {
            return reply;
        }
        x.ballot = m.ballot;
        if x.lead.as_ref().is_some_and(|ld| ld.ballot < m.ballot) {
            x.lead = None; // a recovery took over
        }
        self.touch(l, i);
        // A conflicting instance outside the attributes that does not depend
        // on this one either: if it is committed, the attributes were not
        // chosen on the fast path; either way they do not fit here.
        let conflicts = self.keys.conflicts_outside(l, &m.cmds, &m.deps);
        for (r, end) in conflicts {
            let from = m.deps[r as usize];
            for j in from..end.min(from + 256) {
                match self.spaces[r as usize].get(j) {
                    Some(d) if d.status == Status::None => {}
                    Some(d) => {
                        let touches = d.cmds.iter().any(|c| m.cmds.iter().any(|o| o.conflicts(c)));
                        if touches && d.deps.get(l as usize).is_none_or(|&k| k <= i) {
                            // Committed, and not known here to be executed
                            // everywhere, so no replica has dropped it from its
                            // conflict table (that takes everyone knowing it):
                            // a fast quorum for these attributes would have
                            // had to include it.
                            reply.refutes |=
                                d.status.is_committed() && j >= self.everywhere[r as usize];
                            return reply;
                        }
                    }
                    // Forgotten and executed everywhere: it orders nothing
                    // any more. Forgotten otherwise (past the horizon, or
                    // the byte bound on what is kept) or unknown: it may
                    // conflict, so no verdict.
                    None if j < self.spaces[r as usize].base && j < self.everywhere[r as usize] => {
                    }
                    None => return reply,
                }
            }
            if end > from + 256 {
                return reply;
            }
        }
        let x = self.spaces[l as usize].entry(i, n).expect("created above");
        x.status = Status::PreAccepted;
        x.vballot = m.ballot;
        // It now holds the command leader's own attributes.
        x.unchanged = true;
        x.cmds = m.cmds.clone();
        x.seq = m.seq;
        x.deps = m.deps.clone();
        self.record_own_keys(l, i);
        self.touch(l, i);
        reply.ok = true;
        reply.promised = m.ballot;
        reply
    }

    /// A replica asks whether this one would pre-accept the attributes.
    pub fn handle_try_preaccept(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: TryPreAccept,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        if self
            .open_instance(from, m.leader, m.instance, &m.deps, fx)
            .is_none()
        {
            return;
        }
        let r = self.try_preaccept(m.leader, m.instance, &m);
        if r.ok {
            self.wait_on((m.leader, m.instance), now);
        }
        fx.send(from, EpaxosMsg::TryPreAcceptReply(r));
    }

    /// An answer to this replica's TryPreAccept.
    pub fn handle_try_preaccept_reply(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: TryPreAcceptReply,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        self.try_preaccept_vote(now, from, m, fx);
    }

    fn try_preaccept_vote(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: TryPreAcceptReply,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let (n, majority) = (self.cfg.n, self.cfg.quorum());
        let (l, i) = (m.leader, m.instance);
        let Some(x) = self.spaces.get_mut(l as usize).and_then(|s| s.get_mut(i)) else {
            return;
        };
        let Some(lead) = x.lead.as_deref_mut() else {
            return;
        };
        if lead.phase != 4 || lead.ballot != m.ballot || x.status.is_committed() {
            return;
        }
        if m.promised > lead.ballot {
            x.ballot = x.ballot.max(m.promised);
            x.lead = None; // a higher recovery runs: try again later
            return;
        }
        if m.refutes {
            // Not chosen on the fast path: phase 1 again, from these commands.
            let d = Decision::Restart {
                cmds: x.cmds.clone(),
                seq: lead.seq,
                deps: lead.deps.clone(),
            };
            return self.carry_out(now, l, i, d, fx);
        }
        lead.answered |= 1 << from;
        if m.ok {
            lead.votes |= 1 << from;
        }
        let votes = lead.votes.count_ones() as usize;
        let open = n - lead.answered.count_ones() as usize;
        if votes >= majority {
            // A majority holds the leader's attributes: they are safe to choose.
            let d = Decision::Accept {
                cmds: x.cmds.clone(),
                seq: lead.seq,
                deps: lead.deps.clone(),
            };
            self.carry_out(now, l, i, d, fx);
        } else if votes + open < majority {
            // Not now: conflicting instances must settle first; retry later.
            x.lead = None;
        }
    }
}

/// What a replica reports about an instance in a PrepareReply.
fn own_report(l: ReplicaId, i: u64, ballot: u64, x: &crate::Instance) -> PrepareReply {
    let known = x.status != Status::None;
    PrepareReply {
        leader: l,
        instance: i,
        ballot,
        ok: true,
        promised: x.ballot,
        status: x.status.min(Status::Committed) as u8,
        vballot: x.vballot,
        unchanged: x.unchanged,
        cmds: if known { x.cmds.clone() } else { Vec::new() },
        seq: x.seq,
        deps: x.deps.clone(),
    }
}

/// What recovery does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Not enough information yet.
    Wait,
    /// Phase 2 with these attributes.
    Accept {
        cmds: Vec<Command>,
        seq: u64,
        deps: Vec<u64>,
    },
    /// TryPreAccept the command leader's attributes; `holders` (bit per
    /// replica) already pre-accepted them unchanged.
    TryPreAccept {
        cmds: Vec<Command>,
        seq: u64,
        deps: Vec<u64>,
        holders: u64,
    },
    /// Phase 1 again (then phase 2), from these commands and attributes.
    Restart {
        cmds: Vec<Command>,
        seq: u64,
        deps: Vec<u64>,
    },
}

/// The recovery rule (see the module docs) over the replies of at least a
/// majority, from replica ids to reports. `l` is the command leader.
pub(crate) fn decide(
    replies: &[(ReplicaId, PrepareReply)],
    l: ReplicaId,
    n: usize,
    fast: usize,
) -> Decision {
    let voted: Vec<&PrepareReply> = replies
        .iter()
        .map(|(_, r)| r)
        .filter(|r| Status::from_u8(r.status) != Status::None)
        .collect();
    let Some(maxv) = voted.iter().map(|r| r.vballot).max() else {
        // Nobody has the commands: a no-op, depending on the leader's earlier instances.
        let mut deps = vec![0; n];
        deps[l as usize] = replies.first().map_or(0, |(_, r)| r.instance);
        return Decision::Accept {
            cmds: Vec::new(),
            seq: 0,
            deps,
        };
    };
    let top: Vec<&&PrepareReply> = voted.iter().filter(|r| r.vballot == maxv).collect();
    if let Some(a) = top
        .iter()
        .find(|r| Status::from_u8(r.status) == Status::Accepted)
    {
        return Decision::Accept {
            cmds: a.cmds.clone(),
            seq: a.seq,
            deps: a.deps.clone(),
        };
    }
    // Pre-accepted only: the union of what the top voters saw is a fine start for phase 1.
    let restart = || {
        let mut seq = 0;
        let mut deps = vec![0; n];
        for r in &top {
            seq = seq.max(r.seq);
            for (a, b) in deps.iter_mut().zip(&r.deps) {
                *a = (*a).max(*b);
            }
        }
        Decision::Restart {
            cmds: top[0].cmds.clone(),
            seq,
            deps,
        }
    };
    let leader_answered = replies.iter().any(|(from, _)| *from == l);
    // Replicas holding the command leader's own attributes: pre-accepted
    // unchanged at ballot 0, or taken through a TryPreAccept since.
    let holding: Vec<&(ReplicaId, PrepareReply)> = replies
        .iter()
        .filter(|(_, r)| r.unchanged && Status::from_u8(r.status) == Status::PreAccepted)
        .collect();
    let holders = holding.iter().fold(0u64, |s, (from, _)| s | 1 << from);
    let original = |r: &PrepareReply| Decision::Accept {
        cmds: r.cmds.clone(),
        seq: r.seq,
        deps: r.deps.clone(),
    };
    if maxv != 0 {
        // A recovery ran at `maxv`. If it restarted phase 1 (attributes of its
        // own among the top votes), it had ruled the fast path out: nothing
        // was chosen. If it only tried the leader's attributes, the question
        // is still open: go on trying them.
        if leader_answered || top.iter().any(|r| !r.unchanged) {
            return restart();
        }
        let a = &holding[0].1;
        if holding.len() > n / 2 {
            return original(a);
        }
        return Decision::TryPreAccept {
            cmds: a.cmds.clone(),
            seq: a.seq,
            deps: a.deps.clone(),
            holders,
        };
    }
    if leader_answered {
        return restart();
    }
    let others_heard = replies.iter().filter(|(from, _)| *from != l).count();
    let need = fast.saturating_sub(1);
    if holding.len() >= need && !holding.is_empty() {
        return original(&holding[0].1);
    }
    if holding.len() + (n - 1 - others_heard) < need {
        return restart();
    }
    // Some, but not enough, took the leader's attributes unchanged: ask the
    // others whether those attributes still fit what they know.
    match holding.first() {
        Some((_, a)) => Decision::TryPreAccept {
            cmds: a.cmds.clone(),
            seq: a.seq,
            deps: a.deps.clone(),
            holders,
        },
        None => Decision::Wait,
    }
}
