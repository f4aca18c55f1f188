//! The per-slot steps of Multi-Paxos, the same in every protocol on the
//! log: an acceptor's vote, learning a chosen value, a leader's own vote and
//! the votes it counts, a phase-1 report, and commits by a chosen prefix.
//!
//! Each step writes its durable record before anything it answers with
//! leaves (the driver persists effects before sending them).

use bytes::BytesMut;
use genericsmr::effects::Effects;
use genericsmr::wire::Encoded;
use genericsmr::ReplicaId;

use crate::log::{Log, Record, Slot, SlotState};
use crate::multi::messages::{refuses, PrepareReply, SlotReport};
use crate::multi::value::Carried;

impl<V: Carried> Slot<V> {
    /// Votes for `value` at `ballot` in this slot (number `slot`), durable
    /// first when `keep`; a slot known chosen keeps its value (the vote is
    /// acknowledged without changing anything).
    #[inline]
    pub fn vote<M>(
        &mut self,
        slot: u64,
        ballot: u64,
        value: V::Wire,
        keep: bool,
        fx: &mut Effects<M>,
    ) {
        if self.state == SlotState::Committed {
            return;
        }
        if keep {
            fx.persist(&Encoded(|b: &mut BytesMut| {
                Record::<V::Wire>::encode_accepted(b, slot, ballot, &value)
            }));
        }
        self.state = SlotState::Accepted;
        self.ballot = ballot;
        self.entry = V::from_wire(value);
    }

    /// The leader's own vote for `value` at `ballot`, and the bookkeeping
    /// of the Accept it sends to `targets` at `now`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn propose<M>(
        &mut self,
        slot: u64,
        ballot: u64,
        value: V::Wire,
        me: ReplicaId,
        targets: u64,
        now: u64,
        keep: bool,
        fx: &mut Effects<M>,
    ) {
        self.vote(slot, ballot, value, keep, fx);
        self.acks = 1u64 << me;
        self.sent_to = targets;
        self.sent_at = now;
    }

    /// Records that this slot is chosen with `value`, unless already known;
    /// returns whether it was news.
    #[inline]
    pub fn learn<M>(&mut self, slot: u64, value: V::Wire, fx: &mut Effects<M>) -> bool {
        if self.state == SlotState::Committed {
            return false;
        }
        fx.persist(&Encoded(|b: &mut BytesMut| {
            Record::<V::Wire>::encode_chosen(b, slot, &value)
        }));
        self.state = SlotState::Committed;
        self.entry = V::from_wire(value);
        true
    }

    /// What this slot (number `slot`) holds, as reported in phase 1.
    pub fn report(&self, slot: u64) -> SlotReport<V::Wire> {
        SlotReport {
            slot,
            ballot: self.ballot,
            committed: self.state == SlotState::Committed,
            cmds: self.entry.to_wire(),
        }
    }
}

/// What an acceptor may do with a Prepare ([`Log::check_prepare`]).
#[derive(Debug)]
pub enum Phase1b<W> {
    /// Refuse it with this reply.
    Refuse(PrepareReply<W>),
    /// Tell the candidate the slots it asks about are compacted here.
    Compacted,
    /// Promise (observe the ballot, then answer with [`Log::promise`]).
    Promise,
}

/// What a leader makes of a vote ([`Log::tally`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// A refusal naming a higher ballot: the leader steps down.
    Outvoted(u64),
    /// A vote for the leader's value: the voters so far, as a bit set.
    Counted(u64),
    /// Stale, or about a value this leader did not propose there.
    Ignored,
}

impl<V: Carried> Log<V> {
    /// Phase 1b: every slot holding something from `from` on.
    pub fn reports(&self, from: u64) -> Vec<SlotReport<V::Wire>> {
        self.from(from)
            .filter(|(_, s)| s.state != SlotState::Empty)
            .map(|(slot, s)| s.report(slot))
            .collect()
    }

    /// Phase 1b, first step: whether an acceptor that promised `promised`
    /// (and leads at it when `leading`), committed below `commit_index`,
    /// may promise a Prepare at `ballot` covering slots from `from_slot`.
    pub fn check_prepare(
        &self,
        ballot: u64,
        from_slot: u64,
        promised: u64,
        commit_index: u64,
        leading: bool,
    ) -> Phase1b<V::Wire> {
        // A Prepare at the ballot already promised is the candidate asking
        // again (its reply was lost): answered again.
        if refuses(ballot, promised, leading) {
            return Phase1b::Refuse(PrepareReply::refusal(ballot, promised, commit_index));
        }
        if from_slot < self.base() {
            // Slots the candidate lacks are compacted here: we cannot report
            // them, and a report without them would let it fill chosen slots
            // with no-ops. It fetches our snapshot instead (no promise).
            return Phase1b::Compacted;
        }
        Phase1b::Promise
    }

    /// Phase 1b: the promise answering a Prepare at `ballot` by an acceptor
    /// that now promised `promised` and committed below `commit_index`,
    /// reporting every slot holding something from `from` on.
    pub fn promise(
        &self,
        ballot: u64,
        promised: u64,
        commit_index: u64,
        from: u64,
    ) -> PrepareReply<V::Wire> {
        PrepareReply {
            ballot,
            ok: true,
            promised,
            commit_index,
            slots: self.reports(from),
        }
    }

    /// What a leader at `ballot` makes of a vote from `from` on `slot`
    /// (an AcceptReply's `ok`, `answered` ballot and `promised` ballot).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn tally(
        &mut self,
        ballot: u64,
        from: ReplicaId,
        slot: u64,
        ok: bool,
        answered: u64,
        promised: u64,
    ) -> Tally {
        if !ok {
            return if promised > ballot {
                Tally::Outvoted(promised)
            } else {
                Tally::Ignored
            };
        }
        if answered != ballot {
            return Tally::Ignored;
        }
        match self.count_vote(slot, ballot, from) {
            Some(acks) => Tally::Counted(acks),
            None => Tally::Ignored,
        }
    }

    /// Leader at `ballot`: counts `from`'s vote on `slot`; the voters so far,
    /// or `None` if the vote is not for the value this leader proposed there.
    #[inline]
    pub fn count_vote(&mut self, slot: u64, ballot: u64, from: ReplicaId) -> Option<u64> {
        let s = self.get_mut(slot)?;
        if s.state != SlotState::Accepted || s.ballot != ballot {
            return None;
        }
        s.acks |= 1u64 << from;
        Some(s.acks)
    }

    /// Every slot in `from..to` is chosen, announced by the leader of
    /// `ballot`: those holding a vote at exactly that ballot hold the chosen
    /// value and are committed (see `CommitShort`); the rest wait for it.
    pub fn commit_voted_at<M>(&mut self, from: u64, to: u64, ballot: u64, fx: &mut Effects<M>) {
        for (slot, s) in self.range_mut(from, to) {
            if s.state == SlotState::Accepted && s.ballot == ballot {
                s.state = SlotState::Committed;
                fx.persist(&Record::<V::Wire>::CommitMark { slot });
            }
        }
    }
}
