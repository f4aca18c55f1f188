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
use genericsmr::election::OnHint;
use genericsmr::ReplicaId;

use crate::log::{Record, SlotState, Value};
use crate::messages::ballot;
use crate::multi::messages::{Accept, Commit, PrepareReply, Vote};
use crate::multi::phase1::Candidate;
use crate::multi::state::State;
use crate::multi::value::Carried;
use crate::multi::votes::{Phase1b, Tally};

/// What a slot of host `H` carries in messages.
pub type WireOf<H> = <<H as Host>::Value as Carried>::Wire;

/// Most accepts a leader resends in one tick: a large backlog is spread
/// over several ticks rather than sent in one burst.
pub const MAX_RESEND: usize = 4096;

/// What a PrepareReply did to this replica's campaign ([`Host::take_promise`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promise {
    /// Nothing: from a peer not admitted, insane, stale or a duplicate.
    Ignored,
    /// A refusal naming the refuser's promise; `current` holds the
    /// campaign's attempts so far when it answers the campaign running.
    Refused {
        /// The refuser's promised ballot.
        promised: u64,
        /// The running campaign's attempts, if the refusal answers it.
        current: Option<u32>,
    },
    /// The report names a slot past this replica's window: it is too far
    /// behind to lead and should catch up instead.
    Behind,
    /// The promise is counted: the promises so far, as a bit set.
    Counted(u64),
}

/// A replica on the shared Multi-Paxos log, as the shared steps see it.
pub trait Host {
    /// The slot value of its log.
    type Value: Carried;
    /// Its peer message enum.
    type Msg;

    /// Its Multi-Paxos state.
    fn px(&self) -> &State<Self::Value>;
    /// Its Multi-Paxos state, to change.
    fn px_mut(&mut self) -> &mut State<Self::Value>;
    /// This replica's id.
    fn my_id(&self) -> ReplicaId;
    /// Whether its votes go to the durable log before they are
    /// acknowledged: always, unless a test breaks it on purpose.
    fn keeps_votes(&self) -> bool {
        true
    }
    /// The ballot it leads at and the next slot it will propose in, if it
    /// leads.
    fn leading(&self) -> Option<(u64, u64)>;
    /// The ballot it leads at, if it leads.
    fn leading_ballot(&self) -> Option<u64> {
        self.leading().map(|(b, _)| b)
    }
    /// The ballot it leads or campaigns at, if either.
    fn own_ballot(&self) -> Option<u64>;
    /// Whether it follows (neither leads, campaigns nor recovers).
    fn is_follower(&self) -> bool;
    /// Its role as a [`genericsmr::messages::role`] code, for its status.
    fn role_code(&self) -> u8 {
        use genericsmr::messages::role;
        match (self.leading_ballot(), self.own_ballot()) {
            (Some(_), _) => role::LEADER,
            (None, Some(_)) => role::CANDIDATE,
            _ if self.is_follower() => role::FOLLOWER,
            _ => role::RECOVERING,
        }
    }
    /// How far past its commit index it takes slot numbers from peers
    /// (`GroupConfig::slot_window`).
    fn slot_window(&self) -> u64;
    /// Most commands (and slots) this replica, leading, has proposed and
    /// not yet seen chosen before it stops taking client requests.
    fn pipeline(&self) -> u64;
    /// Whether client requests are taken now: not while leading with
    /// [`Host::pipeline`] commands, or slots, proposed and not chosen (the
    /// runtime then leaves them queued; see
    /// `genericsmr::protocol::Protocol::accepting`). Followers and
    /// candidates take them (to reroute or hold them).
    fn takes_proposals(&self) -> bool {
        let p = self.px();
        let commands = || p.in_flight.held(p.commit_index) + self.queued();
        self.leading_ballot().is_none()
            || (p.log.end().saturating_sub(p.commit_index) < self.pipeline()
                && (commands() as u64) < self.pipeline())
    }
    /// Client commands taken and not yet proposed (a batch in the making,
    /// proposed at the flush): [`Host::takes_proposals`] counts them too, so
    /// one burst cannot pass the bound by a whole burst.
    fn queued(&self) -> usize {
        0
    }
    /// How long the leader must be silent before the master's hint makes
    /// this replica campaign (`GroupConfig::hint_quiet_ns`).
    fn hint_quiet_ns(&self) -> u64;
    /// How long a candidate's Prepare or a leader's Accept goes unanswered
    /// before it is sent again (`Config::retransmit_ns`).
    fn retransmit_ns(&self) -> u64;
    /// How often a leader sends a heartbeat at least (`Config::heartbeat_ns`).
    fn heartbeat_ns(&self) -> u64;
    /// Runs phase 1 at once, as asked by the master or an operator.
    fn be_leader(&mut self, now: u64, fx: &mut Effects<Self::Msg>);
    /// Runs phase 1 because the leader stayed silent past the election
    /// timeout.
    fn campaign_on_timeout(&mut self, now: u64, fx: &mut Effects<Self::Msg>);
    /// The campaign running after `attempts` tries was refused by a promise
    /// at `above`: whether and how to campaign again.
    fn retry_campaign(&mut self, now: u64, above: u64, attempts: u32, fx: &mut Effects<Self::Msg>);
    /// Having stepped down as too far behind to lead (a phase-1 report from
    /// `from` past the window): how to catch up.
    fn catch_up_from(&mut self, now: u64, from: ReplicaId, fx: &mut Effects<Self::Msg>);
    /// A quorum promised: become the leader at the campaign's ballot.
    fn lead(&mut self, now: u64, fx: &mut Effects<Self::Msg>);
    /// Takes the candidate role with campaign `c`.
    fn become_candidate(&mut self, c: Candidate<WireOf<Self>>);
    /// The candidate's phase-1 progress, if campaigning.
    fn candidate_mut(&mut self) -> Option<&mut Candidate<WireOf<Self>>>;
    /// Votes needed for a quorum (a majority, counting this replica).
    fn quorum(&self) -> usize;
    /// Whether `votes` (a bit set of replicas) is a quorum.
    fn is_quorum(&self, votes: u64) -> bool {
        votes.count_ones() as usize >= self.quorum()
    }
    /// Whether Accepts go to a bare quorum only (`GroupConfig::thrifty`).
    fn thrifty(&self) -> bool;
    /// Whether `owner` (of a ballot heard) may be taken as the leader hint:
    /// MDLin takes only a replica of its own shard.
    fn may_lead_here(&self, owner: ReplicaId) -> bool;
    /// Stops leading or campaigning, telling clients in flight to go elsewhere.
    fn step_down(&mut self, fx: &mut Effects<Self::Msg>);
    /// Tells `to` that slot `slot` is compacted here (it fetches a snapshot).
    fn compacted(&self, to: ReplicaId, slot: u64, fx: &mut Effects<Self::Msg>) {
        let c = genericsmr::snapshot::Compacted { what: slot };
        fx.send(to, Self::compacted_msg(c));
    }
    /// The receive prelude of every peer message: whether `from` may talk
    /// to this replica (anything else is dropped), noting that it was heard
    /// at `now` (thrifty sends go to peers heard lately).
    fn admit(&mut self, from: ReplicaId, now: u64) -> bool;
    /// The peers phase-2 messages go to at most (the group but this replica).
    fn peer_set(&self) -> u64;
    /// Whether `from` is one of [`Host::peer_set`].
    fn is_peer(&self, from: ReplicaId) -> bool {
        from < 64 && self.peer_set() & (1u64 << from) != 0
    }
    /// How snapshots are moved (`GroupConfig::transfer`).
    fn transfer(&self) -> genericsmr::snapshot::TransferConfig;
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
    /// The message enum's CommitShort: every slot below `up_to` is chosen,
    /// says the leader at `ballot`.
    fn commit_short_msg(ballot: u64, up_to: u64) -> Self::Msg;
    /// The message enum's Compacted.
    fn compacted_msg(c: genericsmr::snapshot::Compacted) -> Self::Msg;
    /// The message enum's SnapshotRequest.
    fn snapshot_request_msg(r: genericsmr::snapshot::SnapshotRequest) -> Self::Msg;
    /// The message enum's SnapshotChunk.
    fn snapshot_chunk_msg(c: genericsmr::snapshot::SnapshotChunk) -> Self::Msg;

    /// Phase 1a: campaigns with the next ballot of its own above `above`
    /// and anything promised, covering every slot from its commit index; the
    /// campaign's `attempts` so far include this one. A group of one leads
    /// at once.
    fn campaign(&mut self, now: u64, above: u64, attempts: u32, fx: &mut Effects<Self::Msg>) {
        let me = self.my_id();
        let p = self.px_mut();
        let b = ballot::make(ballot::round(above.max(p.promised)) + 1, me);
        // Its own promise: a restart must not campaign at this ballot again.
        p.promised = b;
        fx.persist(&Record::<WireOf<Self>>::Promise { ballot: b });
        let from_slot = p.commit_index;
        tracing::info!(ballot = b, from_slot, "starting phase 1");
        let mut c = Candidate::new(&p.log, b, from_slot, me, now);
        c.attempts = attempts;
        self.become_candidate(c);
        fx.send_set(self.peer_set(), Self::prepare_msg(b, from_slot));
        if self.is_quorum(1u64 << me) {
            self.lead(now, fx);
        }
    }

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
        let (promised, ci) = (self.px().promised, self.px().commit_index);
        let leading = self.leading_ballot().is_some();
        match self
            .px()
            .log
            .check_prepare(ballot, from_slot, promised, ci, leading)
        {
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
        let (promised, ci) = (self.px().promised, self.px().commit_index);
        let r = self.px().log.promise(ballot, promised, ci, from_slot);
        fx.send(from, Self::prepare_reply_msg(r));
        true
    }

    /// Phase 1b at a candidate: a PrepareReply from `from`, checked and
    /// merged into the campaign's best values (what follows is the
    /// protocol's own: campaigning again, catching up, leading).
    fn take_promise(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: PrepareReply<WireOf<Self>>,
    ) -> Promise {
        if !self.admit(from, now)
            || !ballot::sane(from, m.promised)
            || m.slots.iter().any(|r| !ballot::valid(r.ballot))
        {
            return Promise::Ignored;
        }
        let p = self.px_mut();
        p.known_commit = p.known_commit.max(m.commit_index);
        let window_end = self.px().commit_index.saturating_add(self.slot_window());
        let c = self.candidate_mut().filter(|c| c.ballot == m.ballot);
        if !m.ok {
            let current = c.map(|c| c.attempts);
            return Promise::Refused {
                promised: m.promised,
                current,
            };
        }
        let Some(c) = c else {
            return Promise::Ignored;
        };
        if c.promises & (1u64 << from) != 0 {
            return Promise::Ignored;
        }
        if c.merge(from, m.slots, window_end).is_err() {
            return Promise::Behind;
        }
        Promise::Counted(c.promises)
    }

    /// Phase 1b at a candidate: a PrepareReply from `from`. A refusal
    /// naming a higher promise is noted (and may start another campaign,
    /// [`Host::retry_campaign`]); a report past the window makes this
    /// replica step down and catch up instead ([`Host::catch_up_from`]); a
    /// quorum of promises makes it lead ([`Host::lead`]).
    fn handle_prepare_reply(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: PrepareReply<WireOf<Self>>,
        fx: &mut Effects<Self::Msg>,
    ) {
        match self.take_promise(now, from, m) {
            Promise::Refused { promised, current } if promised > self.px().promised => {
                self.observe_ballot(promised, fx);
                if let Some(attempts) = current {
                    self.retry_campaign(now, promised, attempts, fx);
                }
            }
            Promise::Behind => {
                self.step_down(fx);
                self.catch_up_from(now, from, fx);
            }
            Promise::Counted(promises) if self.is_quorum(promises) => self.lead(now, fx),
            _ => {}
        }
    }

    /// Phase 2b at the leader: an AcceptReply from `from` (a [`Vote`] in
    /// the protocol's own message type). A quorum chooses the slot, a
    /// higher promise ends the leadership.
    #[inline]
    fn handle_accept_reply(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: impl Into<Vote>,
        fx: &mut Effects<Self::Msg>,
    ) {
        let v: Vote = m.into();
        if !self.admit(from, now) || !ballot::sane(from, v.promised) {
            return;
        }
        let Some(b) = self.leading_ballot() else {
            return;
        };
        match (self.px_mut().log).tally(b, from, v.slot, v.ok, v.ballot, v.promised) {
            Tally::Outvoted(higher) => self.observe_ballot(higher, fx),
            Tally::Counted(acks) if self.is_quorum(acks) => self.choose_slot(v.slot, fx),
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
        let Some(s) = self.px_mut().log.create(slot) else {
            return;
        };
        s.propose(slot, ballot, value.clone(), me, targets, now, keep, fx);
        // At least one: a no-op slot takes pipeline room too.
        let weight = s.entry.commands().max(1);
        let p = self.px_mut();
        p.in_flight.settle(p.commit_index);
        p.in_flight.push(slot, weight);
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
        let Some(s) = self.px_mut().log.get_mut(slot) else {
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
        if b > self.px().promised {
            // Durable before anything queued with it is sent (a PrepareReply).
            self.px_mut().promised = b;
            fx.persist(&Record::<WireOf<Self>>::Promise { ballot: b });
            // Someone newer runs the group (or is trying to): give it a full
            // timeout before competing.
            let p = self.px_mut();
            p.election.heard_leader(p.now);
        }
        let owner = ballot::owner(b);
        if self.own_ballot().is_some_and(|m| b > m) {
            tracing::info!(ballot = b, "a higher ballot exists: stepping down");
            // Refusals sent by step_down name the owner of the higher ballot.
            self.px_mut().leader_hint = Some(owner);
            self.step_down(fx);
        }
        let following = self.leading_ballot().is_none();
        if following && b >= self.px().promised && self.may_lead_here(owner) {
            self.px_mut().leader_hint = Some(owner);
        }
    }

    /// The peers a leader's Accepts go to: every peer, or with thrifty
    /// sends a bare quorum's worth, the first by `rank`, lowest first (see
    /// [`crate::multi::targets::phase2_targets`]).
    fn accept_targets_by<K: Ord>(&self, rank: impl Fn(ReplicaId) -> K) -> u64 {
        let (peers, thrifty, quorum) = (self.peer_set(), self.thrifty(), self.quorum());
        crate::multi::targets::phase2_targets(peers, thrifty, quorum, rank)
    }

    /// Election timer: a follower whose leader stayed silent for its
    /// randomized timeout campaigns. A replica that knows its log is behind
    /// waits longer, so a fresher one normally goes first. Anyone else
    /// restarts the timer: a leader has nobody to wait for, a candidate
    /// retransmits its Prepare and learns of a higher ballot from refusals,
    /// a recovering replica may not campaign.
    fn tick_election(&mut self, now: u64, fx: &mut Effects<Self::Msg>) {
        if !self.is_follower() {
            return self.px_mut().election.heard_leader(now);
        }
        let (p, ci) = (self.px().promised, self.px().commit_index);
        let known = self.px().known_commit;
        if self.px_mut().election.follower_due(now, p, ci, known) {
            self.campaign_on_timeout(now, fx);
        }
    }

    /// The master lost sight of the leader and suggests this replica take
    /// over: with elections on, it campaigns once the leader has been
    /// silent here too for [`Host::hint_quiet_ns`] (so a leader cut off
    /// from the master alone stays); with elections off, at once.
    fn on_master_hint(&mut self, now: u64, fx: &mut Effects<Self::Msg>) {
        let (follower, quiet) = (self.is_follower(), self.hint_quiet_ns());
        match self.px_mut().election.on_master_hint(now, follower, quiet) {
            OnHint::Lead => self.be_leader(now, fx),
            OnHint::Tick => self.tick_election(now, fx),
            OnHint::Nothing => {}
        }
    }

    /// The timers of the shared log: the election; a candidate's Prepare
    /// and a leader's Accepts resent once [`Host::retransmit_ns`] passed
    /// unanswered (in slot order, so followers' logs fill from the front);
    /// a leader's heartbeat ([`Host::heartbeat`]).
    fn tick_multi(&mut self, now: u64, fx: &mut Effects<Self::Msg>) {
        self.px_mut().now = now;
        self.tick_election(now, fx);
        let (rt, peers) = (self.retransmit_ns(), self.peer_set());
        if let Some((ballot, next_slot)) = self.leading() {
            self.resend_accepts(now, ballot, next_slot, rt, peers, fx);
            self.heartbeat(now, ballot, fx);
        } else if self.own_ballot().is_some() {
            self.resend_prepare(now, rt, peers, fx);
        }
    }

    /// Leader at `ballot`: tells its peers the commit index (a CommitShort,
    /// which doubles as the heartbeat) if it moved since it last did, or
    /// once [`Host::heartbeat_ns`] passed since the last heartbeat.
    fn heartbeat(&mut self, now: u64, ballot: u64, fx: &mut Effects<Self::Msg>) {
        let (hb, p) = (self.heartbeat_ns(), self.px());
        if now.saturating_sub(p.last_heartbeat) >= hb || p.commit_index > p.announced {
            self.announce_commit(now, ballot, fx);
        }
    }

    /// Leader at `ballot`: tells its peers the commit index now.
    fn announce_commit(&mut self, now: u64, ballot: u64, fx: &mut Effects<Self::Msg>) {
        let peers = self.peer_set();
        let p = self.px_mut();
        p.announced = p.commit_index;
        p.last_heartbeat = now;
        fx.send_set(peers, Self::commit_short_msg(ballot, p.commit_index));
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
        let from = self.px().commit_index;
        let mut resent = 0;
        for (slot, s) in self.px_mut().log.range_mut(from, end) {
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
/// the `;` (what is its own: at least `may_lead_here`, `after_chosen` and
/// `campaign_on_timeout`).
///
/// The common methods come from the fields `px` (the
/// [`crate::multi::state::State`]) and `cfg` (with `id`, `hint_quiet_ns`,
/// `slot_window`, `thrifty`, `transfer`, `retransmit_ns`, `heartbeat_ns` and
/// `quorum()`); the enum `Role` (with `Follower`, `Leader { ballot,
/// next_slot, .. }` and `Candidate(c)`); the inherent
/// methods `heard` (the receive prelude), `peers`, `step_down` and
/// `handle_be_leader`; and the variants `Prepare`, `PrepareReply`,
/// `Accept`, `Commit`, `CommitShort`, `Compacted`, `SnapshotRequest` and
/// `SnapshotChunk` of `$msg` (the names
/// `Prepare` and `CommitShort` are in scope where it is used).
#[macro_export]
macro_rules! impl_host {
    ($ty:ty: $value:ty, $msg:ident; $($own:item)*) => {
        impl $crate::multi::host::Host for $ty {
            type Value = $value;
            type Msg = $msg;

            fn px(&self) -> &$crate::multi::state::State<$value> {
                &self.px
            }
            fn px_mut(&mut self) -> &mut $crate::multi::state::State<$value> {
                &mut self.px
            }
            fn my_id(&self) -> genericsmr::ReplicaId {
                self.cfg.group.id
            }
            fn leading(&self) -> Option<(u64, u64)> {
                match self.role {
                    Role::Leader {
                        ballot, next_slot, ..
                    } => Some((ballot, next_slot)),
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
            fn is_follower(&self) -> bool {
                matches!(self.role, Role::Follower)
            }
            fn slot_window(&self) -> u64 {
                self.cfg.group.slot_window
            }
            fn pipeline(&self) -> u64 {
                self.cfg.group.pipeline
            }
            fn hint_quiet_ns(&self) -> u64 {
                self.cfg.group.hint_quiet_ns
            }
            fn retransmit_ns(&self) -> u64 {
                self.cfg.group.retransmit_ns
            }
            fn heartbeat_ns(&self) -> u64 {
                self.cfg.group.heartbeat_ns
            }
            fn be_leader(&mut self, now: u64, fx: &mut genericsmr::effects::Effects<$msg>) {
                <$ty>::handle_be_leader(self, now, fx);
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
            fn become_candidate(
                &mut self,
                c: $crate::multi::phase1::Candidate<$crate::multi::host::WireOf<Self>>,
            ) {
                self.role = Role::Candidate(c);
            }
            #[inline]
            fn quorum(&self) -> usize {
                self.cfg.group.quorum()
            }
            fn thrifty(&self) -> bool {
                self.cfg.group.thrifty
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
            fn transfer(&self) -> genericsmr::snapshot::TransferConfig {
                self.cfg.group.transfer
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
            fn compacted_msg(c: genericsmr::snapshot::Compacted) -> $msg {
                $msg::Compacted(c)
            }
            fn snapshot_request_msg(r: genericsmr::snapshot::SnapshotRequest) -> $msg {
                $msg::SnapshotRequest(r)
            }
            fn snapshot_chunk_msg(c: genericsmr::snapshot::SnapshotChunk) -> $msg {
                $msg::SnapshotChunk(c)
            }
            fn commit_short_msg(ballot: u64, up_to: u64) -> $msg {
                $msg::CommitShort(CommitShort { ballot, up_to })
            }

            $($own)*
        }
    };
}
