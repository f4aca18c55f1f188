//! The acceptor and learner side: votes, commits, skips heard from owners,
//! and replay of the durable log.

use bytes::BytesMut;
use genericsmr::command::Command;
use genericsmr::effects::Effects;
use genericsmr::wire::Encoded;
use genericsmr::ReplicaId;

use crate::messages::{
    Accept, AcceptReply, CatchupReply, ChosenSlot, Commit, Compacted, MenciusMsg, Record, Skip,
};
use crate::replica::{Replica, SlotState};

impl Replica {
    /// Phase 2a: vote unless a higher ballot was promised for the slot. A
    /// slot already decided here is answered with its value instead.
    pub fn handle_accept(&mut self, now: u64, from: u8, m: Accept, fx: &mut Effects<MenciusMsg>) {
        self.heard(from, now);
        if !self.sane_ballot(m.ballot) || (m.ballot == 0 && self.owner(m.slot) != from) {
            return;
        }
        self.apply_skip(from, m.skip_from, m.skip_to, fx);
        if m.ballot == 0 {
            self.max_seen = self.max_seen.max(m.slot.saturating_add(1));
            let ahead = m.slot.saturating_add(self.cfg.n as u64);
            self.skip_limit = self.skip_limit.max(ahead.min(self.window_end()));
        }
        if m.slot < self.base {
            return fx.send(from, MenciusMsg::Compacted(Compacted { what: m.slot }));
        }
        if !self.in_window(m.slot) {
            return;
        }
        if self.decided(m.slot) {
            let cmds = self
                .slot(m.slot)
                .map(|s| s.cmds.clone())
                .unwrap_or_default();
            let r = CatchupReply {
                commit_index: self.commit_index,
                slots: vec![ChosenSlot { slot: m.slot, cmds }],
            };
            return fx.send(from, MenciusMsg::CatchupReply(r));
        }
        let Some(s) = self.slot_mut(m.slot) else {
            return;
        };
        if m.ballot < s.promised {
            let r = AcceptReply {
                ballot: m.ballot,
                slot: m.slot,
                ok: false,
                promised: s.promised,
                skip_from: 0,
                skip_to: 0,
            };
            return fx.send(from, MenciusMsg::AcceptReply(r));
        }
        fx.persist(&Encoded(|b: &mut BytesMut| {
            Record::encode_accepted(b, m.slot, m.ballot, &m.cmds)
        }));
        s.promised = m.ballot;
        s.state = SlotState::Accepted;
        s.ballot = m.ballot;
        s.cmds = m.cmds;
        let (skip_from, skip_to) = self.skip_for_reply(from, m.ballot, fx);
        let r = AcceptReply {
            ballot: m.ballot,
            slot: m.slot,
            ok: true,
            promised: m.ballot,
            skip_from,
            skip_to,
        };
        fx.send(from, MenciusMsg::AcceptReply(r));
    }

    /// The skip to carry on our vote for an owner's Accept: with nothing of
    /// our own to propose in this burst, the own slots the Accept lets us
    /// skip are skipped now, so the owner learns them with the vote (and can
    /// execute on its majority) instead of from a separate Skip. With
    /// proposals queued, the skip waits for them, as before.
    fn skip_for_reply(&mut self, to: u8, ballot: u64, fx: &mut Effects<MenciusMsg>) -> (u64, u64) {
        if ballot != 0 || !self.pending.is_empty() {
            return (0, 0);
        }
        self.skip_unused(fx);
        match self.skip_unsent {
            Some(r) => {
                self.skip_told |= crate::messages::bit(to);
                r
            }
            None => (0, 0),
        }
    }

    /// A slot is chosen at a ballot: commit our vote if it is at that
    /// ballot, else fetch the value.
    pub fn handle_commit(&mut self, now: u64, from: u8, m: Commit, fx: &mut Effects<MenciusMsg>) {
        self.heard(from, now);
        if !self.sane_ballot(m.ballot) {
            return;
        }
        let Some(s) = self.slot_get_mut(m.slot) else {
            return;
        };
        match s.state {
            SlotState::Committed => {}
            SlotState::Accepted if s.ballot == m.ballot => {
                s.state = SlotState::Committed;
                fx.persist(&Record::CommitMark {
                    slot: m.slot,
                    ballot: m.ballot,
                });
                self.decided_here(m.slot);
                self.advance(fx);
            }
            _ => self.request_catchup(now, Some(from), fx),
        }
    }

    /// A skip (and heartbeat) from an owner.
    pub fn handle_skip(&mut self, now: u64, from: u8, m: Skip, fx: &mut Effects<MenciusMsg>) {
        self.heard(from, now);
        self.known_commit = self.known_commit.max(m.commit_index);
        // Every slot below a peer's commit index is decided: own slots we
        // did not use down there are ours to skip.
        self.max_seen = self.max_seen.max(m.commit_index.min(self.window_end()));
        self.apply_skip(from, m.from, m.to, fx);
        self.advance(fx);
    }

    /// Owner `who` skipped its slots in `[from, to)`: each is a decided no-op.
    pub(crate) fn apply_skip(
        &mut self,
        who: ReplicaId,
        from: u64,
        to: u64,
        fx: &mut Effects<MenciusMsg>,
    ) {
        let from = self.first_of(who, from.max(self.commit_index));
        let to = to.min(self.window_end());
        if from >= to {
            return;
        }
        let n = self.cfg.n as u64;
        let mut changed = false;
        let mut s = from;
        while s < to {
            if let Some(x) = self.slot_mut(s) {
                if x.state != SlotState::Committed {
                    x.state = SlotState::Committed;
                    x.cmds = Vec::new();
                    changed = true;
                    self.decided_here(s);
                }
            }
            s += n;
        }
        if changed {
            fx.persist(&Record::Skip {
                owner: who,
                from,
                to,
            });
            self.advance(fx);
        }
    }

    /// Records a value known chosen (catch-up, a revocation's report).
    pub(crate) fn learn_chosen(
        &mut self,
        slot: u64,
        cmds: Vec<Command>,
        fx: &mut Effects<MenciusMsg>,
    ) {
        if !self.in_window(slot) {
            return;
        }
        let Some(s) = self.slot_mut(slot) else {
            return; // compacted: decided and executed here long ago
        };
        if s.state == SlotState::Committed {
            return;
        }
        fx.persist(&Encoded(|b: &mut BytesMut| {
            Record::encode_chosen(b, slot, &cmds)
        }));
        s.state = SlotState::Committed;
        s.cmds = cmds;
        self.decided_here(slot);
        self.advance(fx);
    }

    /// Rebuilds the state from durable records, in order, then executes the
    /// decided prefix (without replies). Votes of our own that were in
    /// flight are sent again at the first tick.
    pub fn restore(&mut self, records: &[bytes::Bytes]) -> Result<(), genericsmr::wire::WireError> {
        let mut fx = Effects::default();
        let me = self.cfg.id;
        let n = self.cfg.n as u64;
        for r in records {
            match genericsmr::wire::decode_body::<Record>(r.clone())? {
                Record::Promise {
                    owner,
                    from,
                    to,
                    ballot,
                } => {
                    self.max_round = self.max_round.max(crate::messages::ballot::round(ballot));
                    let mut s = self.first_of(owner % n as u8, from.max(self.base));
                    while s < to {
                        if let Some(x) = self.slot_mut(s) {
                            x.promised = x.promised.max(ballot);
                        }
                        s += n;
                    }
                }
                Record::Accepted { slot, ballot, cmds } => {
                    self.max_round = self.max_round.max(crate::messages::ballot::round(ballot));
                    if let Some(s) = self.slot_mut(slot) {
                        s.promised = s.promised.max(ballot);
                        if s.state != SlotState::Committed {
                            s.state = SlotState::Accepted;
                            s.ballot = ballot;
                            s.cmds = cmds;
                        }
                    }
                }
                Record::CommitMark { slot, ballot } => {
                    if let Some(s) = self.slot_mut(slot) {
                        if s.state == SlotState::Accepted && s.ballot == ballot {
                            s.state = SlotState::Committed;
                        }
                    }
                }
                Record::Chosen { slot, cmds } => {
                    if let Some(s) = self.slot_mut(slot) {
                        s.state = SlotState::Committed;
                        s.cmds = cmds;
                    }
                }
                Record::Skip { owner, from, to } => {
                    let mut s = self.first_of(owner % n as u8, from.max(self.base));
                    while s < to {
                        if let Some(x) = self.slot_mut(s) {
                            if x.state != SlotState::Committed {
                                x.state = SlotState::Committed;
                                x.cmds = Vec::new();
                            }
                        }
                        s += n;
                    }
                    if owner == me {
                        self.next_own = self.next_own.max(self.first_of(me, to));
                    }
                }
                Record::Revoked(m) => self.apply_revoke(&m),
                Record::Snapshot(b) => {
                    let snap = genericsmr::snapshot::Snapshot::from_bytes(b)?;
                    self.load_snapshot(&snap)?;
                }
            }
        }
        // Own slots used, skipped or revoked lie below the next own slot;
        // what we proposed and did not see decided goes out again.
        let base = self.base;
        for i in 0..self.log.len() {
            let slot = base + i as u64;
            let s = &mut self.log[i];
            if s.state != SlotState::Empty || s.promised > 0 {
                self.max_seen = self.max_seen.max(slot + 1);
            }
            if slot % n == me as u64 && (s.state != SlotState::Empty || s.promised > 0) {
                self.next_own = self.next_own.max(slot + n);
            }
            let ours = s.ballot == 0 && slot % n == me as u64;
            if s.state == SlotState::Accepted && ours && s.promised == 0 {
                s.sent_at = 1;
                s.acks = crate::messages::bit(me);
                self.own_inflight.insert(slot, s.cmds.clone());
            }
        }
        self.next_own = self.next_own.max(self.first_of(me, self.base));
        self.replayed = records.len() as u64;
        self.advance(&mut fx);
        self.known_commit = self.commit_index;
        Ok(())
    }
}
