//! Revocation: Paxos phase 1 over a range of one owner's slots, run by a
//! replica whose execution waited too long on a slot of that owner.
//!
//! The revoker takes a ballot above every round it saw (ballot 0 is the
//! owner's), asks every replica to promise it for each slot of the owner in
//! `[from, to)` and to report what it accepted there. With a majority of
//! promises it proposes, in each slot of the range not decided here, the
//! value reported at the highest ballot (one may have been chosen) or a
//! no-op where nobody reported anything. The range runs past the highest
//! slot in use (`Config::revoke_ahead`), so that a dead owner does not stop
//! execution again at its next slot; while the owner stays silent, the
//! revoker revokes the next range before the others reach the end of this
//! one.

use std::collections::BTreeMap;

use genericsmr::effects::Effects;
use genericsmr::ReplicaId;
use tracing::info;

use crate::broken::Broken;
use crate::messages::{
    ballot, bit, ChosenSlot, MenciusMsg, Prepare, PrepareReply, Record, Revoke, RevokeReply,
    SlotReport,
};
use crate::replica::{Replica, Revocation, SlotState};

impl Replica {
    /// Starts revoking the slots of `owner` in `[from, to)`.
    pub(crate) fn revoke(
        &mut self,
        now: u64,
        owner: ReplicaId,
        from: u64,
        to: u64,
        fx: &mut Effects<MenciusMsg>,
    ) {
        let me = self.cfg.id;
        let from = self.first_of(owner, from.max(self.base));
        let to = to.min(self.window_end());
        if from >= to {
            return;
        }
        self.max_round += 1;
        let b = ballot::make(self.max_round, me);
        let mut best = BTreeMap::new();
        let n = self.cfg.n as u64;
        let mut s = from;
        while s < to {
            if let Some(x) = self.slot_mut(s) {
                x.promised = x.promised.max(b);
                if x.state != SlotState::Empty {
                    let committed = x.state == SlotState::Committed;
                    best.insert(s, (x.ballot, committed, x.cmds.clone()));
                }
            }
            s += n;
        }
        fx.persist(&Record::Promise {
            owner,
            from,
            to,
            ballot: b,
        });
        info!(
            owner,
            from,
            to,
            ballot = b,
            "revoking a silent owner's slots"
        );
        self.revocation = Some(Revocation {
            ballot: b,
            owner,
            from,
            to,
            promises: bit(me),
            sent_at: now,
            best,
            phase2: None,
        });
        fx.broadcast(MenciusMsg::Prepare(Prepare {
            ballot: b,
            owner,
            from,
            to,
        }));
        if self.majority(bit(me)) {
            self.finish_revocation(now, fx);
        }
    }

    /// Phase 1a: promise the ballot for the owner's slots in the range
    /// unless a higher one was promised for any, and report them.
    pub fn handle_prepare(&mut self, now: u64, from: u8, m: Prepare, fx: &mut Effects<MenciusMsg>) {
        self.heard(from, now);
        if m.ballot == 0 || !self.sane_ballot(m.ballot) || m.owner as usize >= self.cfg.n {
            return;
        }
        if m.from < self.base {
            // Slots the revoker lacks are compacted here: it fetches our
            // snapshot instead (no promise).
            return self.compacted(from, m.from, fx);
        }
        let refuse = |promised| PrepareReply {
            ballot: m.ballot,
            ok: false,
            promised,
            commit_index: self.commit_index,
            slots: Vec::new(),
        };
        if m.to > self.window_end() || m.from > m.to {
            // Out of our reach: no promise for part of a range.
            return fx.send(from, MenciusMsg::PrepareReply(refuse(0)));
        }
        let n = self.cfg.n as u64;
        let first = self.first_of(m.owner, m.from);
        let mut highest = 0;
        let mut s = first;
        while s < m.to.min(self.log_end()) {
            if let Some(x) = self.slot(s) {
                highest = highest.max(x.promised);
            }
            s += n;
        }
        if highest > m.ballot {
            return fx.send(from, MenciusMsg::PrepareReply(refuse(highest)));
        }
        let mut slots = Vec::new();
        let mut s = first;
        while s < m.to {
            if let Some(x) = self.slot_mut(s) {
                x.promised = m.ballot;
                if x.state != SlotState::Empty {
                    slots.push(SlotReport {
                        slot: s,
                        ballot: x.ballot,
                        committed: x.state == SlotState::Committed,
                        cmds: x.cmds.clone(),
                    });
                }
            }
            s += n;
        }
        fx.persist(&Record::Promise {
            owner: m.owner,
            from: first,
            to: m.to,
            ballot: m.ballot,
        });
        let r = PrepareReply {
            ballot: m.ballot,
            ok: true,
            promised: m.ballot,
            commit_index: self.commit_index,
            slots,
        };
        fx.send(from, MenciusMsg::PrepareReply(r));
    }

    /// Phase 1b at the revoker: merge reports; a majority finishes it. A
    /// refusal ends it (the timer tries again, above the refusing ballot).
    pub fn handle_prepare_reply(
        &mut self,
        now: u64,
        from: u8,
        m: PrepareReply,
        fx: &mut Effects<MenciusMsg>,
    ) {
        self.heard(from, now);
        if !self.sane_ballot(m.promised) || m.slots.iter().any(|r| !ballot::valid(r.ballot)) {
            return;
        }
        self.known_commit = self.known_commit.max(m.commit_index.min(self.window_end()));
        let n = self.cfg.n as u64;
        let Some(r) = &mut self.revocation else {
            return;
        };
        if m.ballot != r.ballot || r.promises & bit(from) != 0 || r.phase2.is_some() {
            return;
        }
        if !m.ok {
            // Someone else revokes too: leave further ranges to the
            // randomized, backed-off timer rather than duel every tick.
            self.suspect[r.owner as usize] = None;
            self.revocation = None;
            return;
        }
        r.promises |= bit(from);
        for rep in m.slots {
            if rep.slot < r.from || rep.slot >= r.to || rep.slot % n != r.owner as u64 {
                continue;
            }
            let e = r.best.entry(rep.slot).or_insert((0, false, Vec::new()));
            if !e.1 && (rep.committed || rep.ballot >= e.0) {
                *e = (rep.ballot, rep.committed, rep.cmds);
            }
        }
        let promises = r.promises;
        if self.majority(promises) {
            self.finish_revocation(now, fx);
        }
    }

    /// Phase 1 is won: propose, in one message, the value reported at the
    /// highest ballot in each slot that has one and a no-op everywhere else.
    fn finish_revocation(&mut self, now: u64, fx: &mut Effects<MenciusMsg>) {
        let ignore_reports = self.broken(Broken::RevokeIgnoresReports);
        let me = self.cfg.id;
        let n = self.cfg.n as u64;
        let Some((b, owner, from, to)) = self
            .revocation
            .as_ref()
            .map(|r| (r.ballot, r.owner, r.from, r.to))
        else {
            return;
        };
        // Our own vote counts as it stands now: since phase 1 began we may
        // have promised or accepted a higher ballot in the range (then this
        // revocation is stale), or learned what was chosen there.
        let mut own = Vec::new();
        let mut s = self.first_of(owner, from.max(self.base));
        while s < to.min(self.log_end()) {
            if let Some(x) = self.slot(s) {
                if x.promised > b {
                    self.suspect[owner as usize] = None;
                    self.revocation = None;
                    return;
                }
                if x.state != SlotState::Empty {
                    own.push((s, x.ballot, x.state == SlotState::Committed, x.cmds.clone()));
                }
            }
            s += n;
        }
        let Some(r) = &mut self.revocation else {
            return;
        };
        for (slot, ballot, committed, cmds) in own {
            let e = r.best.entry(slot).or_insert((0, false, Vec::new()));
            if !e.1 && (committed || ballot >= e.0) {
                *e = (ballot, committed, cmds);
            }
        }
        let values: Vec<ChosenSlot> = std::mem::take(&mut r.best)
            .into_iter()
            .filter(|(_, (_, committed, cmds))| !cmds.is_empty() && (*committed || !ignore_reports))
            .map(|(slot, (_, _, cmds))| ChosenSlot { slot, cmds })
            .collect();
        r.phase2 = Some((values.clone(), bit(me)));
        r.sent_at = now;
        let m = Revoke {
            ballot: r.ballot,
            owner: r.owner,
            from: r.from,
            to: r.to,
            chosen: false,
            values,
        };
        fx.persist(&Record::Revoked(m.clone()));
        self.apply_revoke(&m);
        fx.broadcast(MenciusMsg::Revoke(m));
        if self.majority(bit(me)) {
            self.revocation_chosen(fx);
        }
    }

    /// A majority accepted the revocation's values: they are chosen.
    fn revocation_chosen(&mut self, fx: &mut Effects<MenciusMsg>) {
        let Some(r) = self.revocation.take() else {
            return;
        };
        let Some((values, _)) = r.phase2 else {
            return;
        };
        self.revocations += 1;
        if r.owner != self.cfg.id {
            self.suspect[r.owner as usize] = Some(r.to);
        }
        let m = Revoke {
            ballot: r.ballot,
            owner: r.owner,
            from: r.from,
            to: r.to,
            chosen: true,
            values,
        };
        fx.persist(&Record::Revoked(m.clone()));
        self.apply_revoke(&m);
        fx.broadcast(MenciusMsg::Revoke(m));
        self.advance(fx);
    }

    /// Takes a revocation's phase 2 into the slots of its range that are
    /// not decided here: accepted at its ballot where no higher one is
    /// promised, or decided when `chosen`. Callers checked the promises.
    pub(crate) fn apply_revoke(&mut self, m: &Revoke) {
        let n = self.cfg.n as u64;
        let mut values = m.values.iter().peekable();
        let mut s = self.first_of(m.owner % n as u8, m.from.max(self.base));
        let end = m.to.min(self.window_end());
        while s < end {
            let slot = s;
            s += n;
            while values.peek().is_some_and(|v| v.slot < slot) {
                values.next();
            }
            let cmds = match values.peek() {
                Some(v) if v.slot == slot => v.cmds.clone(),
                _ => Vec::new(),
            };
            let Some(x) = self.slot_mut(slot) else {
                continue;
            };
            if x.state == SlotState::Committed {
                continue;
            }
            if m.chosen {
                x.state = SlotState::Committed;
                x.cmds = cmds;
                self.decided_here(slot);
            } else if x.promised <= m.ballot {
                x.promised = m.ballot;
                x.state = SlotState::Accepted;
                x.ballot = m.ballot;
                x.cmds = cmds;
            }
        }
    }

    /// Revocation phase 2a (or its commit) at an acceptor.
    pub fn handle_revoke(&mut self, now: u64, from: u8, m: Revoke, fx: &mut Effects<MenciusMsg>) {
        self.heard(from, now);
        if m.ballot == 0 || !self.sane_ballot(m.ballot) || m.owner as usize >= self.cfg.n {
            return;
        }
        if m.chosen {
            fx.persist(&Record::Revoked(m.clone()));
            self.apply_revoke(&m);
            return self.advance(fx);
        }
        if m.from < self.base {
            return self.compacted(from, m.from, fx);
        }
        if m.to > self.window_end() || m.from > m.to {
            return;
        }
        let n = self.cfg.n as u64;
        let mut highest = 0;
        let mut s = self.first_of(m.owner, m.from);
        while s < m.to.min(self.log_end()) {
            if let Some(x) = self.slot(s) {
                if x.state != SlotState::Committed {
                    highest = highest.max(x.promised);
                }
            }
            s += n;
        }
        let ok = highest <= m.ballot;
        if ok {
            fx.persist(&Record::Revoked(m.clone()));
            self.apply_revoke(&m);
        }
        let r = RevokeReply {
            ballot: m.ballot,
            ok,
            promised: highest.max(m.ballot),
        };
        fx.send(from, MenciusMsg::RevokeReply(r));
    }

    /// Revocation phase 2b at the revoker.
    pub fn handle_revoke_reply(
        &mut self,
        now: u64,
        from: u8,
        m: RevokeReply,
        fx: &mut Effects<MenciusMsg>,
    ) {
        self.heard(from, now);
        if !self.sane_ballot(m.promised) {
            return;
        }
        let Some(r) = &mut self.revocation else {
            return;
        };
        let Some((_, acks)) = &mut r.phase2 else {
            return;
        };
        if m.ballot != r.ballot {
            return;
        }
        if !m.ok {
            self.suspect[r.owner as usize] = None;
            self.revocation = None;
            return;
        }
        *acks |= bit(from);
        let acks = *acks;
        if self.majority(acks) {
            self.revocation_chosen(fx);
        }
    }

    /// Revocation timers: a slot that held execution back for the timeout
    /// is revoked, a revocation without enough promises is asked again, and
    /// a silent owner's next range is revoked before the others reach it.
    pub(crate) fn tick_revoke(&mut self, now: u64, fx: &mut Effects<MenciusMsg>) {
        let rt = self.cfg.retransmit_ns;
        let all = self.all_peers();
        if let Some(r) = &mut self.revocation {
            if now.saturating_sub(r.sent_at) >= rt {
                r.sent_at = now;
                match &r.phase2 {
                    None => {
                        let p = Prepare {
                            ballot: r.ballot,
                            owner: r.owner,
                            from: r.from,
                            to: r.to,
                        };
                        fx.send_set(all & !r.promises, MenciusMsg::Prepare(p));
                    }
                    Some((values, acks)) => {
                        let m = Revoke {
                            ballot: r.ballot,
                            owner: r.owner,
                            from: r.from,
                            to: r.to,
                            chosen: false,
                            values: values.clone(),
                        };
                        fx.send_set(all & !acks, MenciusMsg::Revoke(m));
                    }
                }
            }
            // A revocation that cannot finish gives way to the timer.
            if !self.stuck_timer.due(now, false) {
                return;
            }
            self.revocation = None;
        }
        let stuck = self.commit_index < self.max_seen && !self.decided(self.commit_index);
        if !stuck {
            self.stuck_timer.heard_leader(now);
            let ahead = self.cfg.revoke_ahead;
            let next = (0..self.cfg.n)
                .find_map(|q| self.suspect[q].map(|t| (q as ReplicaId, t)))
                .filter(|(_, t)| self.max_seen.saturating_add(ahead / 2) >= *t);
            if let Some((q, t)) = next {
                let to = self.max_seen.saturating_add(ahead);
                self.revoke(now, q, t.max(self.commit_index), to, fx);
            }
            return;
        }
        if self.stuck_timer.due(now, false) {
            self.stuck_timer.campaigned(now);
            let e = self.commit_index;
            let to = self
                .max_seen
                .max(e + 1)
                .saturating_add(self.cfg.revoke_ahead);
            self.revoke(now, self.owner(e), e, to, fx);
        }
    }
}
