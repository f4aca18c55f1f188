//! The handler steps every replica on the shared log runs the same way,
//! written once as provided methods of [`Host`]: answering a Prepare,
//! counting a vote, marking a slot chosen at the leader, noting a higher
//! ballot, and a candidate's and a leader's retransmissions.
//!
//! A replica implements the few required methods (its fields, its message
//! enum's constructors, what follows a step) and keeps around these steps
//! only what is its own (MDLin's prefix rule and shard checks, Multi-Paxos's
//! recovery and replies at commit). Everything is monomorphised: no dynamic
//! dispatch on the vote path.

use genericsmr::effects::Effects;
use genericsmr::election::ElectionTimer;
use genericsmr::ReplicaId;

use crate::log::{Log, Record, SlotState};
use crate::messages::ballot;
use crate::multi::messages::{Accept, Commit, PrepareReply};
use crate::multi::phase1::Candidate;
use crate::multi::value::Carried;
use crate::multi::votes::{Phase1b, Tally};

/// What a slot of host `H` carries in messages.
pub type WireOf<H> = <<H as Host>::Value as Carried>::Wire;

/// Most accepts a leader resends in one tick: a large backlog is spread
/// over several ticks rather than sent in one burst.
pub const MAX_RESEND: usize = 4096;

/// A replica on the shared Multi-Paxos log, as the shared steps see it.
pub trait Host {
    /// The slot value of its log.
    type Value: Carried;
    /// Its peer message enum.
    type Msg;

    /// The log.
    fn log_ref(&self) -> &Log<Self::Value>;
    /// The log, to change.
    fn log_mut(&mut self) -> &mut Log<Self::Value>;
    /// This replica's id.
    fn my_id(&self) -> ReplicaId;
    /// Whether its votes go to the durable log before they are
    /// acknowledged: always, unless a test breaks it on purpose.
    fn keeps_votes(&self) -> bool {
        true
    }
    /// The highest ballot promised.
    fn promised_ballot(&self) -> u64;
    /// Sets the highest ballot promised (only ever raised).
    fn set_promised(&mut self, b: u64);
    /// Every slot below this is chosen here.
    fn committed_below(&self) -> u64;
    /// The ballot it leads at, if it leads.
    fn leading_ballot(&self) -> Option<u64>;
    /// The ballot it leads or campaigns at, if either.
    fn own_ballot(&self) -> Option<u64>;
    /// The candidate's phase-1 progress, if campaigning.
    fn candidate_mut(&mut self) -> Option<&mut Candidate<WireOf<Self>>>;
    /// Whether `votes` (a bit set of replicas) is a quorum.
    fn is_quorum(&self, votes: u64) -> bool;
    /// The election timer.
    fn election_mut(&mut self) -> &mut ElectionTimer;
    /// The time of the event being handled.
    fn event_time(&self) -> u64;
    /// Sets the replica believed to lead.
    fn set_leader_hint(&mut self, l: ReplicaId);
    /// Whether `owner` (of a ballot heard) may be taken as the leader hint:
    /// MDLin takes only a replica of its own shard.
    fn may_lead_here(&self, owner: ReplicaId) -> bool;
    /// Stops leading or campaigning, telling clients in flight to go elsewhere.
    fn step_down(&mut self, fx: &mut Effects<Self::Msg>);
    /// Tells `to` that slot `slot` is compacted here (it fetches a snapshot).
    fn compacted(&self, to: ReplicaId, slot: u64, fx: &mut Effects<Self::Msg>);
    /// The receive prelude of every peer message: whether `from` may talk
    /// to this replica (anything else is dropped), noting that it was heard
    /// at `now` (thrifty sends go to peers heard lately).
    fn admit(&mut self, from: ReplicaId, now: u64) -> bool;
    /// The peers phase-2 messages go to at most (the group but this replica).
    fn peer_set(&self) -> u64;
    /// Leader: what follows `slot` chosen and marked (replies, the commit
    /// index, execution).
    fn after_chosen(&mut self, slot: u64, fx: &mut Effects<Self::Msg>);
    /// The message enum's Prepare.
    fn prepare_msg(ballot: u64, from_slot: u64) -> Self::Msg;
    /// The message enum's PrepareReply.
    fn prepare_reply_msg(r: PrepareReply<WireOf<Self>>) -> Self::Msg;
    /// The message enum's Accept.
    fn accept_msg(a: Accept<WireOf<Self>>) -> Self::Msg;
    /// The message enum's Commit.
    fn commit_msg(c: Commit<WireOf<Self>>) -> Self::Msg;

    /// Phase 1b: promise a Prepare at `ballot` covering slots from
    /// `from_slot` and report them, or refuse it, or tell the candidate to
    /// fetch a snapshot. Whether it promised. The caller checked the sender
    /// and the ballot's sanity.
    fn answer_prepare(
        &mut self,
        from: ReplicaId,
        ballot: u64,
        from_slot: u64,
        fx: &mut Effects<Self::Msg>,
    ) -> bool {
        let (promised, ci) = (self.promised_ballot(), self.committed_below());
        let leading = self.leading_ballot().is_some();
        match (self.log_ref()).check_prepare(ballot, from_slot, promised, ci, leading) {
            Phase1b::Refuse(r) => {
                fx.send(from, Self::prepare_reply_msg(r));
                return false;
            }
            Phase1b::Compacted => {
                self.compacted(from, from_slot, fx);
                return false;
            }
            Phase1b::Promise => {}
        }
        self.observe_ballot(ballot, fx);
        let (promised, ci) = (self.promised_ballot(), self.committed_below());
        let r = self.log_ref().promise(ballot, promised, ci, from_slot);
        fx.send(from, Self::prepare_reply_msg(r));
        true
    }

    /// Phase 2b at the leader: an AcceptReply from `from` about `slot` (its
    /// `ok`, the ballot it answered and its promise). A quorum chooses the
    /// slot, a higher promise ends the leadership.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn on_accept_reply(
        &mut self,
        now: u64,
        from: ReplicaId,
        slot: u64,
        ok: bool,
        answered: u64,
        promised: u64,
        fx: &mut Effects<Self::Msg>,
    ) {
        if !self.admit(from, now) || !ballot::sane(from, promised) {
            return;
        }
        let Some(b) = self.leading_ballot() else {
            return;
        };
        match self.log_mut().tally(b, from, slot, ok, answered, promised) {
            Tally::Outvoted(higher) => self.observe_ballot(higher, fx),
            Tally::Counted(acks) if self.is_quorum(acks) => self.choose_slot(slot, fx),
            _ => {}
        }
    }

    /// Leader at `ballot`: votes for `value` in `slot` itself (durably,
    /// before any Accept leaves) and asks `targets` to accept it; a group
    /// of one chooses it at once. Callers keep `slot` at or above the
    /// commit index and within the window.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn propose_at(
        &mut self,
        now: u64,
        ballot: u64,
        slot: u64,
        value: WireOf<Self>,
        targets: u64,
        fx: &mut Effects<Self::Msg>,
    ) {
        let (me, keep) = (self.my_id(), self.keeps_votes());
        let Some(s) = self.log_mut().create(slot) else {
            return;
        };
        s.propose(slot, ballot, value.clone(), me, targets, now, keep, fx);
        let a = Accept {
            ballot,
            slot,
            cmds: value,
        };
        fx.send_set(targets, Self::accept_msg(a));
        if self.is_quorum(1u64 << me) {
            self.choose_slot(slot, fx);
        }
    }

    /// Leader: `slot` is chosen (a quorum voted for it at its ballot).
    #[inline]
    fn choose_slot(&mut self, slot: u64, fx: &mut Effects<Self::Msg>) {
        let peers = self.peer_set();
        self.mark_chosen(slot, peers, fx);
        self.after_chosen(slot, fx);
    }

    /// Leader: marks `slot` chosen (durably) and sends the value to the
    /// peers of `peers` that neither got the Accept nor voted (with thrifty
    /// sends, or after a retransmission to fewer).
    #[inline]
    fn mark_chosen(&mut self, slot: u64, peers: u64, fx: &mut Effects<Self::Msg>) {
        let Some(s) = self.log_mut().get_mut(slot) else {
            return;
        };
        if s.state != SlotState::Committed {
            fx.persist(&Record::<WireOf<Self>>::CommitMark { slot });
        }
        s.state = SlotState::Committed;
        let missing = peers & !s.sent_to & !s.acks;
        if missing != 0 {
            let c = Commit {
                ballot: s.ballot,
                slot,
                cmds: s.entry.to_wire(),
            };
            fx.send_set(missing, Self::commit_msg(c));
        }
    }

    /// Notes ballot `b` seen from a peer: promises it (durably) if higher,
    /// steps down if it is above the ballot led or campaigned at, and takes
    /// its owner as the leader hint.
    fn observe_ballot(&mut self, b: u64, fx: &mut Effects<Self::Msg>) {
        if b > self.promised_ballot() {
            // Durable before anything queued with it is sent (a PrepareReply).
            self.set_promised(b);
            fx.persist(&Record::<WireOf<Self>>::Promise { ballot: b });
            // Someone newer runs the group (or is trying to): give it a full
            // timeout before competing.
            let now = self.event_time();
            self.election_mut().heard_leader(now);
        }
        let owner = ballot::owner(b);
        if self.own_ballot().is_some_and(|m| b > m) {
            tracing::info!(ballot = b, "a higher ballot exists: stepping down");
            // Refusals sent by step_down name the owner of the higher ballot.
            self.set_leader_hint(owner);
            self.step_down(fx);
        }
        let following = self.leading_ballot().is_none();
        if following && b >= self.promised_ballot() && self.may_lead_here(owner) {
            self.set_leader_hint(owner);
        }
    }

    /// Candidate: resends its Prepare to the peers of `peers` that have not
    /// promised, once `retransmit_ns` passed since it was last sent.
    fn resend_prepare(
        &mut self,
        now: u64,
        retransmit_ns: u64,
        peers: u64,
        fx: &mut Effects<Self::Msg>,
    ) {
        let Some(c) = self.candidate_mut() else {
            return;
        };
        if let Some(missing) = c.retransmit(now, retransmit_ns, peers) {
            let m = Self::prepare_msg(c.ballot, c.from_slot);
            fx.send_set(missing, m);
        }
    }

    /// Leader at `ballot`: resends, in slot order, the Accept of every slot
    /// of its own from the commit index to `end` still unchosen
    /// `retransmit_ns` after it was last sent, to the peers of `peers` that
    /// have not voted (at most [`MAX_RESEND`] slots per call).
    #[allow(clippy::too_many_arguments)]
    fn resend_accepts(
        &mut self,
        now: u64,
        ballot: u64,
        end: u64,
        retransmit_ns: u64,
        peers: u64,
        fx: &mut Effects<Self::Msg>,
    ) {
        let from = self.committed_below();
        let mut resent = 0;
        for (slot, s) in self.log_mut().range_mut(from, end) {
            if s.state == SlotState::Accepted
                && s.ballot == ballot
                && now.saturating_sub(s.sent_at) >= retransmit_ns
            {
                s.sent_at = now;
                s.sent_to = peers;
                let a = Accept {
                    ballot,
                    slot,
                    cmds: s.entry.to_wire(),
                };
                fx.send_set(peers & !s.acks, Self::accept_msg(a));
                resent += 1;
                if resent >= MAX_RESEND {
                    break;
                }
            }
        }
    }
}

/// Implements [`Host`] for a replica type `$ty` whose slots hold `$value`
/// and whose message enum is `$msg`, with the required methods every
/// replica on the shared log has the same way, then the items given after
/// the `;` (what is its own: at least `may_lead_here` and `after_chosen`).
///
/// The common methods come from the fields `log`, `promised`,
/// `commit_index`, `cfg` (with `id` and `quorum()`), `election`, `now` and
/// `leader_hint`; the enum `Role` (with `Leader { ballot, .. }` and
/// `Candidate(c)`); the inherent methods `heard` (the receive prelude),
/// `peers`, `step_down` and `compacted`; and the variants `Prepare`,
/// `PrepareReply`, `Accept` and `Commit` of `$msg` (the name `Prepare` is
/// in scope where it is used).
#[macro_export]
macro_rules! impl_host {
    ($ty:ty: $value:ty, $msg:ident; $($own:item)*) => {
        impl $crate::multi::host::Host for $ty {
            type Value = $value;
            type Msg = $msg;

            fn log_ref(&self) -> &$crate::log::Log<$value> {
                &self.log
            }
            fn log_mut(&mut self) -> &mut $crate::log::Log<$value> {
                &mut self.log
            }
            fn my_id(&self) -> genericsmr::ReplicaId {
                self.cfg.id
            }
            fn promised_ballot(&self) -> u64 {
                self.promised
            }
            fn set_promised(&mut self, b: u64) {
                self.promised = b;
            }
            fn committed_below(&self) -> u64 {
                self.commit_index
            }
            fn leading_ballot(&self) -> Option<u64> {
                match self.role {
                    Role::Leader { ballot, .. } => Some(ballot),
                    _ => None,
                }
            }
            fn own_ballot(&self) -> Option<u64> {
                match &self.role {
                    Role::Leader { ballot, .. } => Some(*ballot),
                    Role::Candidate(c) => Some(c.ballot),
                    _ => None,
                }
            }
            fn candidate_mut(
                &mut self,
            ) -> Option<&mut $crate::multi::phase1::Candidate<$crate::multi::host::WireOf<Self>>>
            {
                match &mut self.role {
                    Role::Candidate(c) => Some(c),
                    _ => None,
                }
            }
            #[inline]
            fn is_quorum(&self, votes: u64) -> bool {
                votes.count_ones() as usize >= self.cfg.quorum()
            }
            fn election_mut(&mut self) -> &mut genericsmr::election::ElectionTimer {
                &mut self.election
            }
            fn event_time(&self) -> u64 {
                self.now
            }
            fn set_leader_hint(&mut self, l: genericsmr::ReplicaId) {
                self.leader_hint = Some(l);
            }
            #[inline]
            fn admit(&mut self, from: genericsmr::ReplicaId, now: u64) -> bool {
                <$ty>::heard(self, from, now)
            }
            fn peer_set(&self) -> u64 {
                <$ty>::peers(self)
            }
            fn step_down(&mut self, fx: &mut genericsmr::effects::Effects<$msg>) {
                <$ty>::step_down(self, fx);
            }
            fn compacted(
                &self,
                to: genericsmr::ReplicaId,
                slot: u64,
                fx: &mut genericsmr::effects::Effects<$msg>,
            ) {
                <$ty>::compacted(self, to, slot, fx);
            }
            fn prepare_msg(ballot: u64, from_slot: u64) -> $msg {
                $msg::Prepare(Prepare { ballot, from_slot })
            }
            fn prepare_reply_msg(
                r: $crate::multi::messages::PrepareReply<$crate::multi::host::WireOf<Self>>,
            ) -> $msg {
                $msg::PrepareReply(r)
            }
            fn accept_msg(a: $crate::multi::messages::Accept<$crate::multi::host::WireOf<Self>>) -> $msg {
                $msg::Accept(a)
            }
            fn commit_msg(c: $crate::multi::messages::Commit<$crate::multi::host::WireOf<Self>>) -> $msg {
                $msg::Commit(c)
            }

            $($own)*
        }
    };
}
