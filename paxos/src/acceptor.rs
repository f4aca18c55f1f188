//! The acceptor and learner side: promises, votes and commits.

use genericsmr::command::Command;
use genericsmr::effects::Effects;

use crate::messages::{Accept, AcceptReply, Commit, CommitShort, PaxosMsg, Prepare, Record};
use crate::multi::host::Host;
use crate::multi::snapshot::Snapshots;
use crate::multi::value::Carried;
use crate::replica::{Replica, Role, SlotState};

impl Replica {
    /// Phase 1a: promise not to accept below `m.ballot` and report every slot from
    /// `m.from_slot` on. A recovering replica does not vote.
    pub fn handle_prepare(&mut self, now: u64, from: u8, m: Prepare, fx: &mut Effects<PaxosMsg>) {
        self.heard(from, now);
        if self.is_recovering() || !self.sane_ballot(from, m.ballot) {
            return;
        }
        if self.answer_prepare(from, m.ballot, m.from_slot, fx) {
            // We promised this candidate: give it a full timeout to win.
            self.heard_leader(now);
        }
    }

    /// Phase 2a: vote for the value unless a higher ballot was promised.
    pub fn handle_accept(&mut self, now: u64, from: u8, m: Accept, fx: &mut Effects<PaxosMsg>) {
        self.heard(from, now);
        if self.is_recovering() || !self.sane_ballot(from, m.ballot) {
            return;
        }
        let refuse = (m.ballot < self.px.promised && !self.cfg.broken_accept_below_promise)
            || (m.ballot == self.px.promised && self.is_leader());
        if refuse || !self.slot_in_window(m.slot) {
            let r = AcceptReply::answer(m.ballot, m.slot, false, self.px.promised);
            return fx.send(from, PaxosMsg::AcceptReply(r));
        }
        self.observe_ballot(m.ballot, fx);
        // An Accept at (or above) our promise comes from the current leader.
        self.heard_leader(now);
        let keep = self.keeps_votes();
        // A compacted slot was chosen and executed here: as for any chosen
        // slot, the vote is acknowledged without changing anything.
        if let Some(s) = self.slot_mut(m.slot) {
            s.vote(m.slot, m.ballot, m.cmds, keep, fx);
        }
        let r = AcceptReply::answer(m.ballot, m.slot, true, self.px.promised);
        fx.send(from, PaxosMsg::AcceptReply(r));
    }

    /// A full commit: the value is chosen, whatever we held.
    pub fn handle_commit(&mut self, now: u64, from: u8, m: Commit, fx: &mut Effects<PaxosMsg>) {
        self.heard(from, now);
        if m.ballot >= self.px.promised {
            self.heard_leader(now);
        }
        if !self.slot_in_window(m.slot) {
            return;
        }
        // The Commit's ballot is not observed here: the value is chosen whatever it is,
        // and a stale leader steps down at its next refusal (or when overruled in a
        // slot it proposed in, see `learn_chosen`).
        self.learn_chosen(m.slot, m.cmds, fx, false);
    }

    /// Every slot below `m.up_to` is chosen: commit those whose value we hold,
    /// fetch the rest.
    pub fn handle_commit_short(
        &mut self,
        now: u64,
        from: u8,
        m: CommitShort,
        fx: &mut Effects<PaxosMsg>,
    ) {
        self.heard(from, now);
        if !self.sane_ballot(from, m.ballot) {
            return;
        }
        if m.ballot >= self.px.promised {
            // The current leader's heartbeat.
            self.heard_leader(now);
        }
        if m.ballot >= self.px.promised && !self.is_recovering() {
            self.observe_ballot(m.ballot, fx);
        } else if m.ballot >= self.px.promised {
            self.px.leader_hint = Some(crate::messages::ballot::owner(m.ballot));
        }
        self.px.known_commit = self.px.known_commit.max(m.up_to);
        // Only a vote at exactly the sender's ballot is known to carry the value it
        // counted as chosen: its commit index may include slots it learned were chosen
        // at higher ballots, where a vote at a ballot >= its own can hold another value.
        self.px
            .log
            .commit_voted_at(self.px.commit_index, m.up_to, m.ballot, fx);
        self.advance(fx);
        if self.px.commit_index < self.px.known_commit {
            self.request_catchup(now, Some(from), fx);
        }
    }

    /// Records a chosen value (from a Commit, catch-up or phase 1) and, as a new
    /// leader, tells everyone.
    pub(crate) fn learn_chosen(
        &mut self,
        slot: u64,
        cmds: Vec<Command>,
        fx: &mut Effects<PaxosMsg>,
        tell: bool,
    ) {
        let (ballot, leading) = match self.role {
            Role::Leader { ballot, .. } => (ballot, true),
            _ => (self.px.promised, false),
        };
        let Some(s) = self.slot_mut(slot) else {
            return; // compacted: chosen and executed here long ago
        };
        // A different value chosen where we proposed at our own ballot: a higher
        // ballot chose it, so we no longer lead (and must not announce this slot in
        // a CommitShort at our ballot, which would commit our value at its voters).
        let overruled =
            leading && s.state == SlotState::Accepted && s.ballot == ballot && !s.entry.same(&cmds);
        s.learn(slot, cmds, fx);
        if tell {
            let c = Commit {
                ballot,
                slot,
                cmds: s.cmds().into_owned(),
            };
            fx.broadcast(PaxosMsg::Commit(c));
        }
        self.reply_on_commit(slot, fx);
        self.advance(fx);
        if overruled {
            tracing::info!(
                slot,
                "a higher ballot chose another value here: stepping down"
            );
            self.step_down(fx);
        }
    }

    /// Rebuilds the state from durable records, in order (a snapshot record,
    /// from the snapshot file, comes first), then executes the committed
    /// prefix (without replies).
    pub fn restore(&mut self, records: &[bytes::Bytes]) -> Result<(), genericsmr::wire::WireError> {
        let mut fx = Effects::default();
        for r in records {
            let rec = genericsmr::wire::decode_body::<Record>(r.clone())?;
            if let Some(b) = self.px.log.replay(rec, &mut self.px.promised) {
                let snap = genericsmr::snapshot::Snapshot::from_bytes(b)?;
                self.load_snapshot(&snap)?;
            }
        }
        self.px.replayed = records.len() as u64;
        self.advance(&mut fx);
        self.px.known_commit = self.px.commit_index;
        Ok(())
    }
}
