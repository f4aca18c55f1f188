//! The owner's side: client proposals into this replica's own slots, skips
//! of the own slots it has no use for, and counting votes for what it
//! proposed (at ballot 0 as owner, or at its ballot as a revoker).

use bytes::BytesMut;
use genericsmr::command::Command;
use genericsmr::effects::Effects;
use genericsmr::messages::{Propose, ReplyStatus};
use genericsmr::state::Check;
use genericsmr::wire::Encoded;
use genericsmr::ConnId;

use crate::broken::Broken;
use crate::messages::{bit, Accept, AcceptReply, Commit, MenciusMsg, Record, Skip};
use crate::replica::{accepted, reject, Replica, SlotState};

impl Replica {
    /// A client proposal: queued for this replica's next own slot.
    pub fn handle_propose(
        &mut self,
        _now: u64,
        conn: ConnId,
        m: Propose,
        fx: &mut Effects<MenciusMsg>,
    ) {
        let cmd = m.cmd;
        let (client, seq, me) = (cmd.client, cmd.seq, self.cfg.id);
        match self.sm.check(client, seq) {
            Check::Done(out) => return fx.reply(conn, accepted(client, seq, me, out.clone())),
            Check::Stale => {
                return fx.reply(conn, reject(client, seq, ReplyStatus::Stale, Some(me)))
            }
            Check::Fresh => {}
        }
        if let Some(c) = self.waiting.get_mut(&(client, seq)) {
            *c = conn; // a retry of a command in flight here
            return;
        }
        if cmd.wire_len() > self.cfg.max_command_bytes {
            return fx.reply(conn, reject(client, seq, ReplyStatus::TooLarge, Some(me)));
        }
        if self.pending.len() >= self.cfg.max_pending {
            return fx.reply(
                conn,
                reject(client, seq, ReplyStatus::Unavailable, Some(me)),
            );
        }
        self.waiting.insert((client, seq), conn);
        self.pending.push_back(cmd);
    }

    /// The end of a burst: proposals queued go into own slots (all of them
    /// into one slot when batching), then own slots below the highest slot
    /// in use are skipped, the skip riding on the burst's first Accept or
    /// going out alone.
    pub fn flush(&mut self, now: u64, fx: &mut Effects<MenciusMsg>) {
        self.now = now;
        while !self.pending.is_empty() {
            let Some(slot) = self.free_own_slot() else {
                break; // past the window: the rest waits for execution
            };
            let take = if self.cfg.batch {
                let mut bytes = 0;
                let max = self.cfg.max_batch_bytes;
                let fits = self
                    .pending
                    .iter()
                    .take(self.cfg.batch_max)
                    .take_while(|c| {
                        bytes += c.wire_len();
                        bytes <= max
                    });
                fits.count().max(1)
            } else {
                1
            };
            let cmds: Vec<Command> = self.pending.drain(..take).collect();
            self.propose_own(now, slot, cmds, fx);
        }
        self.skip_unused(fx);
        if let Some((from, to)) = self.skip_unsent.take() {
            // Peers that got this skip on our AcceptReply need no Skip.
            let rest = self.all_peers() & !std::mem::take(&mut self.skip_told);
            if rest == self.all_peers() {
                self.last_broadcast = now;
            }
            if rest != 0 {
                fx.send_set(
                    rest,
                    MenciusMsg::Skip(Skip {
                        from,
                        to,
                        commit_index: self.commit_index,
                    }),
                );
            }
        }
        self.advance(fx);
    }

    /// The next own slot free for a proposal (not decided, not revoked),
    /// moving `next_own` past the others; `None` past the window.
    fn free_own_slot(&mut self) -> Option<u64> {
        let n = self.cfg.n as u64;
        self.next_own = self.next_own.max(self.first_of(self.cfg.id, self.base));
        loop {
            let s = self.next_own;
            if s >= self.executed.saturating_add(self.cfg.window) {
                return None;
            }
            match self.slot(s) {
                Some(x) if x.state != SlotState::Empty || x.promised > 0 => self.next_own += n,
                _ => return Some(s),
            }
        }
    }

    /// Votes for `cmds` in own slot `slot` at ballot 0 and asks every peer to.
    fn propose_own(
        &mut self,
        now: u64,
        slot: u64,
        cmds: Vec<Command>,
        fx: &mut Effects<MenciusMsg>,
    ) {
        let me = self.cfg.id;
        self.next_own = slot + self.cfg.n as u64;
        self.max_seen = self.max_seen.max(slot + 1);
        let Some(s) = self.slot_mut(slot) else { return };
        fx.persist(&Encoded(|b: &mut BytesMut| {
            Record::encode_accepted(b, slot, 0, &cmds)
        }));
        s.state = SlotState::Accepted;
        s.ballot = 0;
        s.acks = bit(me);
        s.sent_at = now.max(1);
        s.cmds = cmds.clone();
        self.own_inflight.insert(slot, cmds.clone());
        let (skip_from, skip_to) = self.skip_unsent.take().unwrap_or((slot, slot));
        self.skip_told = 0;
        self.last_broadcast = now;
        fx.broadcast(MenciusMsg::Accept(Accept {
            ballot: 0,
            slot,
            cmds,
            skip_from,
            skip_to,
        }));
        if self.majority(bit(me)) {
            self.commit_own(slot, fx);
        }
    }

    /// Skips every own slot below the highest slot in use that this replica
    /// did not propose in: each becomes a decided no-op here at once (only
    /// the owner proposes at ballot 0, and a revoker only re-proposes what
    /// the owner proposed, so nothing else can be chosen there).
    pub(crate) fn skip_unused(&mut self, fx: &mut Effects<MenciusMsg>) {
        if self.broken(Broken::NoSkips) {
            return;
        }
        let me = self.cfg.id;
        let n = self.cfg.n as u64;
        let from = self.next_own.max(self.first_of(me, self.base));
        let limit = self
            .max_seen
            .max(self.skip_limit)
            .min(self.executed.saturating_add(self.cfg.window));
        if from >= limit {
            return;
        }
        let mut s = from;
        while s < limit {
            if let Some(x) = self.slot_mut(s) {
                if x.state != SlotState::Committed {
                    x.state = SlotState::Committed;
                    x.cmds = Vec::new();
                }
            }
            s += n;
        }
        self.next_own = s;
        self.last_skip = (from, s);
        fx.persist(&Record::Skip {
            owner: me,
            from,
            to: s,
        });
        self.skip_unsent = match self.skip_unsent {
            Some((a, b)) if b == from => Some((a, s)),
            _ => Some((from, s)),
        };
        self.skip_told = 0; // the range grew: nobody holds all of it
    }

    /// Phase 2b at the proposer: a majority decides the slot.
    pub fn handle_accept_reply(
        &mut self,
        now: u64,
        from: u8,
        m: AcceptReply,
        fx: &mut Effects<MenciusMsg>,
    ) {
        self.heard(from, now);
        if !self.sane_ballot(m.promised) {
            return;
        }
        self.apply_skip(from, m.skip_from, m.skip_to, fx);
        if !m.ok {
            return;
        }
        let Some(s) = self.slot_get_mut(m.slot) else {
            return;
        };
        if s.state != SlotState::Accepted || s.ballot != m.ballot || s.sent_at == 0 {
            return;
        }
        s.acks |= bit(from);
        let acks = s.acks;
        if self.majority(acks) {
            self.commit_own(m.slot, fx);
        }
    }

    /// Our proposal in `slot` is chosen: mark it and tell everyone.
    pub(crate) fn commit_own(&mut self, slot: u64, fx: &mut Effects<MenciusMsg>) {
        let Some(s) = self.slot_get_mut(slot) else {
            return;
        };
        s.state = SlotState::Committed;
        let ballot = s.ballot;
        fx.persist(&Record::CommitMark { slot, ballot });
        fx.broadcast(MenciusMsg::Commit(Commit { ballot, slot }));
        self.decided_here(slot);
        self.advance(fx);
    }

    /// Bookkeeping once `slot` is decided: a proposal of ours that lost it
    /// (a revocation chose a no-op) goes back into the queue.
    pub(crate) fn decided_here(&mut self, slot: u64) {
        let Some(mine) = self.own_inflight.remove(&slot) else {
            return;
        };
        let won = self.slot(slot).is_some_and(|s| s.cmds == mine);
        if !won {
            for c in mine {
                if self.waiting.contains_key(&(c.client, c.seq)) {
                    self.pending.push_back(c);
                }
            }
        }
    }

    /// Resends unanswered Accepts of ours (a bounded number per tick).
    pub(crate) fn retransmit(&mut self, now: u64, fx: &mut Effects<MenciusMsg>) {
        let rt = self.cfg.retransmit_ns;
        let all = self.all_peers();
        let slots: Vec<u64> = self.own_inflight.keys().copied().take(4096).collect();
        for slot in slots {
            let Some(s) = self.slot_get_mut(slot) else {
                continue;
            };
            if s.state != SlotState::Accepted
                || s.sent_at == 0
                || now.saturating_sub(s.sent_at) < rt
            {
                continue;
            }
            s.sent_at = now;
            let a = Accept {
                ballot: s.ballot,
                slot,
                cmds: s.cmds.clone(),
                skip_from: slot,
                skip_to: slot,
            };
            fx.send_set(all & !s.acks, MenciusMsg::Accept(a));
        }
    }

    /// Peer `from` was heard at `now`: it is not silent.
    pub(crate) fn heard(&mut self, from: u8, now: u64) {
        self.now = now;
        if let Some(s) = self.suspect.get_mut(from as usize) {
            *s = None;
        }
    }
}
