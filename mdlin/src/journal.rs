//! Multi-Paxos over one shard's journal: appending entries, votes with the
//! prefix rule, commits, phase 1 of a new leader, and catch-up.
//!
//! The prefix rule: a follower accepts slot `i` at ballot `b` only if every
//! slot before `i` is chosen or accepted at `b` there. So when slot `i+1` is
//! chosen, a majority also holds slot `i` from the same leader, and any later
//! leader finds it. Without it, an order entry that already coordinated a
//! successor could vanish while a later entry survives, and the recovered
//! order could contradict what another shard's clients observed.

use genericsmr::effects::Effects;
use genericsmr::ReplicaId;
use tracing::info;

use crate::ballot;
use crate::messages::{
    Accept, AcceptReply, CatchupReply, CatchupRequest, Commit, CommitShort, Entry, MdlMsg, Prepare,
    SlotReport,
};
use crate::replica::{Recovery, Replica, Role, SlotState};
use paxos::multi::host::Host;

/// Most accepts a follower holds while an earlier one is missing.
const MAX_EARLY_ACCEPTS: usize = 8192;

/// Most slots one catch-up reply carries.
const CATCHUP_CHUNK: u32 = 1024;

impl Replica {
    /// Leader: appends `entry` at the next slot and asks the shard to accept it.
    pub(crate) fn append(&mut self, now: u64, entry: Entry, fx: &mut Effects<MdlMsg>) {
        let Role::Leader {
            ballot, next_slot, ..
        } = &mut self.role
        else {
            return;
        };
        let (ballot, slot) = (*ballot, *next_slot);
        *next_slot += 1;
        let targets = self.accept_targets(now);
        self.propose_at(now, ballot, slot, entry, targets, fx);
    }

    /// The peers accepts go to: all of them, or with `thrifty` the
    /// `quorum - 1` lowest ids among those heard from lately (a stable set,
    /// so followers see consecutive slots and the prefix rule never waits).
    fn accept_targets(&self, now: u64) -> u64 {
        let rt = self.cfg.group.retransmit_ns;
        let lately = |j: ReplicaId| now.saturating_sub(self.px.last_heard[j as usize]) <= rt;
        self.accept_targets_by(|j| (!lately(j), j))
    }

    /// Follower: vote on a slot (see the prefix rule in the module docs).
    pub fn handle_accept(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: Accept,
        fx: &mut Effects<MdlMsg>,
    ) {
        if !self.slot_in_window(m.slot) || !self.heard(from, now) || !ballot::sane(from, m.ballot) {
            return;
        }
        if m.ballot < self.px.promised {
            let r = AcceptReply::answer(m.ballot, m.slot, false, self.px.promised);
            return fx.send(from, MdlMsg::AcceptReply(r));
        }
        self.observe_ballot(m.ballot, fx);
        if self.is_leader() {
            return;
        }
        self.px.leader_hint = Some(ballot::owner(m.ballot));
        self.px.election.heard_leader(now);
        if m.slot >= self.px.commit_index {
            let upto = self.prefix_end(m.ballot);
            if m.slot > upto {
                // A gap before it: hold it until the gap fills (or the leader
                // retransmits), so a reordered accept costs no timeout.
                self.early_accepts.retain(|_, (_, a)| a.ballot == m.ballot);
                if self.early_accepts.len() < MAX_EARLY_ACCEPTS {
                    self.early_accepts.insert(m.slot, (from, m));
                }
                return;
            }
            self.vote(from, m, fx);
            return self.vote_held(fx);
        }
        let r = AcceptReply::answer(m.ballot, m.slot, true, self.px.promised);
        fx.send(from, MdlMsg::AcceptReply(r));
    }

    /// Votes for held accepts whose gap has filled (by a vote, a commit or a
    /// catch-up reply).
    fn vote_held(&mut self, fx: &mut Effects<MdlMsg>) {
        if self.early_accepts.is_empty() {
            return;
        }
        loop {
            let end = self.prefix_end(self.px.promised);
            let Some((from, a)) = self.early_accepts.remove(&end) else {
                break;
            };
            if a.ballot == self.px.promised {
                self.vote(from, a, fx);
            }
        }
        let end = self.prefix.1;
        self.early_accepts = self.early_accepts.split_off(&end);
    }

    /// Accepts a slot that satisfies the prefix rule, and says so.
    fn vote(&mut self, from: ReplicaId, m: Accept, fx: &mut Effects<MdlMsg>) {
        let upto = self.prefix.1;
        // A compacted slot was chosen and executed here: the vote is
        // acknowledged without changing anything, as for any chosen slot.
        if let Some(s) = self.slot_mut(m.slot) {
            // Durable before the AcceptReply (the driver persists first).
            s.vote(m.slot, m.ballot, m.cmds, true, fx);
        }
        if m.slot == upto {
            self.prefix.1 = upto + 1;
        }
        let r = AcceptReply::answer(m.ballot, m.slot, true, self.px.promised);
        fx.send(from, MdlMsg::AcceptReply(r));
    }

    /// The end of the prefix of slots chosen or accepted at `b`.
    fn prefix_end(&mut self, b: u64) -> u64 {
        if self.prefix.0 != b || self.prefix.1 < self.px.commit_index {
            self.prefix = (b, self.px.commit_index);
        }
        let mut i = self.prefix.1;
        while let Some(s) = self.px.log.get(i) {
            let ok = s.state == SlotState::Committed
                || (s.state == SlotState::Accepted && s.ballot == b);
            if !ok {
                break;
            }
            i += 1;
        }
        self.prefix.1 = i;
        i
    }

    /// Follower: a chosen value.
    pub fn handle_commit(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: Commit,
        fx: &mut Effects<MdlMsg>,
    ) {
        if !self.slot_in_window(m.slot) || !self.heard(from, now) {
            return;
        }
        self.observe_ballot(m.ballot, fx);
        if self.px.leader_hint == Some(from) && !self.is_leader() {
            self.px.election.heard_leader(now);
        }
        self.learn_chosen(m.slot, m.ballot, m.cmds, fx);
        self.chosen_learned(fx);
    }

    /// Records that `slot` is chosen with `entry` (learned from a commit or a
    /// catch-up reply, not from this replica's own vote count).
    fn learn_chosen(&mut self, slot: u64, ballot: u64, entry: Entry, fx: &mut Effects<MdlMsg>) {
        let Some(s) = self.slot_mut(slot) else {
            return; // compacted: chosen and executed here long ago
        };
        if s.learn(slot, entry, fx) {
            s.ballot = ballot;
        }
    }

    /// After learning chosen slots: move the commit index, and vote for held
    /// accepts whose gap they filled (however the gap was filled, or the held
    /// slot waits for a retransmission, and forever without one).
    fn chosen_learned(&mut self, fx: &mut Effects<MdlMsg>) {
        self.px.advance_commit();
        self.vote_held(fx);
    }

    /// Follower: every slot below `up_to` accepted at `ballot` is chosen.
    pub fn handle_commit_short(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: CommitShort,
        fx: &mut Effects<MdlMsg>,
    ) {
        if !self.same_shard(from) {
            // Another shard's leader announcing itself.
            return self.note_shard_leader(from, m.ballot);
        }
        if !self.heard(from, now) || !ballot::sane(from, m.ballot) {
            return;
        }
        if m.ballot < self.px.promised {
            return;
        }
        self.observe_ballot(m.ballot, fx);
        if self.is_leader() {
            return;
        }
        self.px.leader_hint = Some(ballot::owner(m.ballot));
        self.px.election.heard_leader(now);
        self.px
            .log
            .commit_voted_at(self.px.commit_index, m.up_to, m.ballot, fx);
        self.px.advance_commit();
        self.px.known_commit = self.px.known_commit.max(m.up_to);
    }

    /// Asks the leader for chosen slots this replica lacks.
    pub(crate) fn catch_up(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        if self.is_leader() || self.px.known_commit <= self.px.commit_index {
            return;
        }
        let rt = self.cfg.group.retransmit_ns;
        if self
            .px
            .catchup_at
            .is_some_and(|t| now.saturating_sub(t) < rt)
        {
            return;
        }
        let Some(l) = self.px.leader_hint.filter(|l| self.same_shard(*l)) else {
            return;
        };
        self.px.catchup_at = Some(now);
        let r = CatchupRequest {
            from_slot: self.px.commit_index,
            max: CATCHUP_CHUNK,
        };
        fx.send(l, MdlMsg::CatchupRequest(r));
    }

    /// Leader (or anyone with chosen slots): answers a catch-up request.
    pub fn handle_catchup_request(
        &mut self,
        from: ReplicaId,
        m: CatchupRequest,
        fx: &mut Effects<MdlMsg>,
    ) {
        if !self.same_shard(from) {
            return;
        }
        if m.from_slot < self.px.log.base() {
            // Never silence: the asker fetches our snapshot instead.
            return self.compacted(from, m.from_slot, fx);
        }
        let slots: Vec<SlotReport> = self
            .px
            .log
            .from(m.from_slot)
            .take_while(|(i, _)| *i < self.px.commit_index)
            .take(m.max.min(CATCHUP_CHUNK) as usize)
            // Every slot below the commit index is chosen: reported committed.
            .map(|(i, s)| s.report(i))
            .collect();
        if !slots.is_empty() {
            fx.send(from, MdlMsg::CatchupReply(CatchupReply { slots }));
        }
    }

    /// Follower: chosen slots from the leader.
    pub fn handle_catchup_reply(
        &mut self,
        from: ReplicaId,
        m: CatchupReply,
        fx: &mut Effects<MdlMsg>,
    ) {
        if !self.same_shard(from) {
            return;
        }
        for r in m.slots {
            if r.committed && self.slot_in_window(r.slot) && !self.px.log.committed_at(r.slot) {
                self.px.catchup_fetched += 1;
                self.learn_chosen(r.slot, r.ballot, r.cmds, fx);
            }
        }
        self.chosen_learned(fx);
        self.px.catchup_at = None;
    }

    /// Another shard's leader `from` announced that it leads at `b` (a
    /// `CommitShort` across shards): remember it if it is the newest heard.
    fn note_shard_leader(&mut self, from: ReplicaId, b: u64) {
        let s = from as usize / self.cfg.group.n.max(1);
        if s >= self.cfg.shards || !ballot::valid(b) || ballot::owner(b) != from {
            tracing::warn!(
                peer = from,
                ballot = b,
                "dropping a leader announcement that cannot be right"
            );
            return;
        }
        if b >= self.shard_ballots[s] {
            if self.shard_leaders[s] != Some(from) {
                info!(
                    shard = s,
                    leader = from,
                    ballot = b,
                    "another shard has a new leader"
                );
            }
            self.shard_ballots[s] = b;
            self.shard_leaders[s] = Some(from);
        }
    }

    /// Leader: tells every replica of the other shards that it leads (see
    /// [`crate::Config::announce_ns`]), when it takes over and then periodically.
    pub(crate) fn announce(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        let Role::Leader { ballot, .. } = self.role else {
            return;
        };
        if self.cfg.announce_ns == 0 || self.cfg.shards < 2 {
            return;
        }
        if self
            .last_announce
            .is_some_and(|t| now.saturating_sub(t) < self.cfg.announce_ns)
        {
            return;
        }
        self.last_announce = Some(now);
        let total = self.cfg.group.n * self.cfg.shards;
        let all = if total >= 64 {
            u64::MAX
        } else {
            (1u64 << total) - 1
        };
        let others = all & !self.cfg.members();
        fx.send_set(
            others,
            MdlMsg::CommitShort(CommitShort {
                ballot,
                up_to: self.px.commit_index,
            }),
        );
    }

    /// The master lost sight of the shard leader and suggests this replica
    /// take over (see [`Host::on_master_hint`]).
    pub fn handle_leader_hint(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        self.px.now = now;
        self.on_master_hint(now, fx);
    }

    /// The master (or an operator) asks this replica to lead its shard: run phase 1.
    pub fn handle_be_leader(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        self.px.now = now;
        if !self.is_leader() {
            self.campaign(now, self.px.promised, 1, fx);
        }
    }

    /// Follower: promise a higher ballot and report the journal from `from_slot`.
    pub fn handle_prepare(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: Prepare,
        fx: &mut Effects<MdlMsg>,
    ) {
        if !self.heard(from, now) || !ballot::sane(from, m.ballot) {
            return;
        }
        self.answer_prepare(from, m.ballot, m.from_slot, fx);
    }

    /// Becomes leader once a majority promised: re-proposes every reported
    /// slot at the new ballot (holes become no-ops), then waits for them to
    /// execute before re-placing unordered operations (`failover.rs`).
    pub(crate) fn maybe_lead(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        let Role::Candidate(c) = &self.role else {
            return;
        };
        if !self.is_quorum(c.promises) {
            return;
        }
        let Role::Candidate(c) = std::mem::replace(&mut self.role, Role::Follower) else {
            unreachable!()
        };
        let end = c.end();
        info!(
            ballot = c.ballot,
            from = c.from_slot,
            end,
            "leading the shard"
        );
        self.role = Role::Leader {
            ballot: c.ballot,
            next_slot: end,
            own: Recovery {
                after_slot: end,
                ..Recovery::default()
            },
        };
        let me = self.cfg.shard() as usize;
        self.shard_leaders[me] = Some(self.cfg.group.id);
        self.px.leader_hint = Some(self.cfg.group.id);
        self.prefix = (c.ballot, self.px.commit_index);
        let mut best = c.best;
        let peers = self.peers();
        for slot in c.from_slot..end {
            match best.remove(&slot) {
                Some((b, true, entry)) => {
                    let Some(s) = self.slot_mut(slot) else {
                        continue; // compacted: chosen and executed here
                    };
                    s.learn(slot, entry.clone(), fx);
                    s.ballot = b;
                    // Peers may lack it; they ignore a commit they already have.
                    fx.send_set(
                        peers,
                        MdlMsg::Commit(Commit {
                            ballot: b,
                            slot,
                            cmds: entry,
                        }),
                    );
                }
                Some((_, false, entry)) => self.propose_at(now, c.ballot, slot, entry, peers, fx),
                None => self.propose_at(now, c.ballot, slot, Entry::Noop, peers, fx),
            }
        }
        self.px.advance_commit();
        self.px.last_heartbeat = 0;
        self.last_announce = None;
        self.announce(now, fx);
    }
}
