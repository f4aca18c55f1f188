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
use genericsmr::election::OnHint;
use genericsmr::ReplicaId;
use tracing::info;

use crate::ballot;
use crate::messages::{
    Accept, AcceptReply, CatchupReply, CatchupRequest, Commit, CommitShort, Entry, MdlMsg, Prepare,
    PrepareReply, Record, SlotReport,
};
use crate::replica::{bit, Candidate, Recovery, Replica, Role, SlotState};
use paxos::multi::votes::{Phase1b, Tally};

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
        let peers = self.peers();
        if !self.cfg.thrifty {
            return peers;
        }
        let mut ids: Vec<ReplicaId> = (0..64u8).filter(|j| peers & bit(*j) != 0).collect();
        let lately = |j: &ReplicaId| {
            now.saturating_sub(self.last_heard[*j as usize]) <= self.cfg.retransmit_ns
        };
        ids.sort_by_key(|j| (!lately(j), *j));
        ids.iter()
            .take(self.cfg.quorum() - 1)
            .fold(0, |s, j| s | bit(*j))
    }

    fn propose_at(
        &mut self,
        now: u64,
        ballot: u64,
        slot: u64,
        entry: Entry,
        targets: u64,
        fx: &mut Effects<MdlMsg>,
    ) {
        let me = self.cfg.id;
        // A leader proposes above its commit index, never below the base.
        let Some(s) = self.slot_mut(slot) else { return };
        // The leader's own vote counts toward the majority: durable before
        // any Accept leaves.
        s.propose(slot, ballot, entry.clone(), me, targets, now, true, fx);
        fx.send_set(
            targets,
            MdlMsg::Accept(Accept {
                ballot,
                slot,
                cmds: entry,
            }),
        );
        if self.majority(bit(me)) {
            self.choose(slot, fx);
        }
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
        if m.ballot < self.promised {
            let r = AcceptReply::answer(m.ballot, m.slot, false, self.promised);
            return fx.send(from, MdlMsg::AcceptReply(r));
        }
        self.observe_ballot(m.ballot, fx);
        if self.is_leader() {
            return;
        }
        self.leader_hint = Some(ballot::owner(m.ballot));
        self.election.heard_leader(now);
        if m.slot >= self.commit_index {
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
        let r = AcceptReply::answer(m.ballot, m.slot, true, self.promised);
        fx.send(from, MdlMsg::AcceptReply(r));
    }

    /// Votes for held accepts whose gap has filled (by a vote, a commit or a
    /// catch-up reply).
    fn vote_held(&mut self, fx: &mut Effects<MdlMsg>) {
        if self.early_accepts.is_empty() {
            return;
        }
        loop {
            let end = self.prefix_end(self.promised);
            let Some((from, a)) = self.early_accepts.remove(&end) else {
                break;
            };
            if a.ballot == self.promised {
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
        let r = AcceptReply::answer(m.ballot, m.slot, true, self.promised);
        fx.send(from, MdlMsg::AcceptReply(r));
    }

    /// The end of the prefix of slots chosen or accepted at `b`.
    fn prefix_end(&mut self, b: u64) -> u64 {
        if self.prefix.0 != b || self.prefix.1 < self.commit_index {
            self.prefix = (b, self.commit_index);
        }
        let mut i = self.prefix.1;
        while let Some(s) = self.log.get(i) {
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

    /// Leader: count a vote; a majority chooses the slot.
    pub fn handle_accept_reply(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: AcceptReply,
        fx: &mut Effects<MdlMsg>,
    ) {
        if !self.heard(from, now) || !ballot::sane(from, m.promised) {
            return;
        }
        let Role::Leader { ballot, .. } = self.role else {
            return;
        };
        match (self.log).tally(ballot, from, m.slot, m.ok, m.ballot, m.promised) {
            Tally::Outvoted(b) => self.observe_ballot(b, fx),
            Tally::Counted(acks) if self.majority(acks) => self.choose(m.slot, fx),
            _ => {}
        }
    }

    /// Leader: the slot is chosen; peers that did not get the accept get the value.
    fn choose(&mut self, slot: u64, fx: &mut Effects<MdlMsg>) {
        let peers = self.peers();
        let Some(s) = self.log.get_mut(slot) else {
            return;
        };
        if s.state != SlotState::Committed {
            fx.persist(&Record::CommitMark { slot });
        }
        s.state = SlotState::Committed;
        let missing = peers & !s.sent_to & !s.acks;
        if missing != 0 {
            let c = Commit {
                ballot: s.ballot,
                slot,
                cmds: s.entry.clone(),
            };
            fx.send_set(missing, MdlMsg::Commit(c));
        }
        self.advance_commit();
    }

    /// Moves the commit index over chosen slots.
    pub(crate) fn advance_commit(&mut self) {
        while self
            .log
            .get(self.commit_index)
            .is_some_and(|s| s.state == SlotState::Committed)
        {
            self.commit_index += 1;
        }
        self.known_commit = self.known_commit.max(self.commit_index);
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
        if self.leader_hint == Some(from) && !self.is_leader() {
            self.election.heard_leader(now);
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
        self.advance_commit();
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
        if m.ballot < self.promised {
            return;
        }
        self.observe_ballot(m.ballot, fx);
        if self.is_leader() {
            return;
        }
        self.leader_hint = Some(ballot::owner(m.ballot));
        self.election.heard_leader(now);
        self.log
            .commit_voted_at(self.commit_index, m.up_to, m.ballot, fx);
        self.advance_commit();
        self.known_commit = self.known_commit.max(m.up_to);
    }

    /// Asks the leader for chosen slots this replica lacks.
    pub(crate) fn catch_up(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        if self.is_leader() || self.known_commit <= self.commit_index {
            return;
        }
        if now.saturating_sub(self.catchup_at) < self.cfg.retransmit_ns {
            return;
        }
        let Some(l) = self.leader_hint.filter(|l| self.same_shard(*l)) else {
            return;
        };
        self.catchup_at = now;
        let r = CatchupRequest {
            from_slot: self.commit_index,
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
        if m.from_slot < self.log.base() {
            // Never silence: the asker fetches our snapshot instead.
            return self.compacted(from, m.from_slot, fx);
        }
        let slots: Vec<SlotReport> = self
            .log
            .from(m.from_slot)
            .take_while(|(i, _)| *i < self.commit_index)
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
            if r.committed && self.slot_in_window(r.slot) && !self.log.committed_at(r.slot) {
                self.catchup_fetched += 1;
                self.learn_chosen(r.slot, r.ballot, r.cmds, fx);
            }
        }
        self.chosen_learned(fx);
        self.catchup_at = 0;
    }

    /// Another shard's leader `from` announced that it leads at `b` (a
    /// `CommitShort` across shards): remember it if it is the newest heard.
    fn note_shard_leader(&mut self, from: ReplicaId, b: u64) {
        let s = from as usize / self.cfg.n.max(1);
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
        let total = self.cfg.n * self.cfg.shards;
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
                up_to: self.commit_index,
            }),
        );
    }

    /// Election timer: a follower whose shard leader stayed silent for its
    /// randomized timeout campaigns (the `BeLeader` path). A replica that
    /// knows its journal is behind waits longer, so a fresher one normally
    /// goes first.
    pub(crate) fn tick_election(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        match self.role {
            // Candidates retransmit their Prepare and learn of a higher ballot
            // from refusals; leaders have nobody to wait for.
            Role::Leader { .. } | Role::Candidate(_) => self.election.heard_leader(now),
            Role::Follower => {
                let (p, ci, known) = (self.promised, self.commit_index, self.known_commit);
                if self.election.follower_due(now, p, ci, known) {
                    self.campaign(now, fx);
                }
            }
        }
    }

    /// The master lost sight of the shard leader and suggests this replica
    /// take over: with elections on, campaign once the leader has been silent
    /// here too for [`crate::Config::hint_quiet_ns`]; with elections off, obey at once.
    pub fn handle_leader_hint(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        self.now = now;
        let follower = matches!(self.role, Role::Follower);
        match (self.election).on_master_hint(now, follower, self.cfg.hint_quiet_ns) {
            OnHint::Lead => self.handle_be_leader(now, fx),
            OnHint::Tick => self.tick_election(now, fx),
            OnHint::Nothing => {}
        }
    }

    /// The master (or an operator) asks this replica to lead its shard: run phase 1.
    pub fn handle_be_leader(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        self.now = now;
        self.campaign(now, fx);
    }

    /// Runs phase 1 with the next ballot of ours above anything promised.
    fn campaign(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        if self.is_leader() {
            return;
        }
        let round = ballot::round(self.promised) + 1;
        let b = ballot::make(round, self.cfg.id);
        info!(ballot = b, "campaigning for shard leadership");
        // Its own promise: a restart must not campaign at this ballot again.
        self.promised = b;
        fx.persist(&Record::Promise { ballot: b });
        let c = Candidate::new(&self.log, b, self.commit_index, self.cfg.id, now);
        self.role = Role::Candidate(c);
        fx.send_set(
            self.peers(),
            MdlMsg::Prepare(Prepare {
                ballot: b,
                from_slot: self.commit_index,
            }),
        );
        self.maybe_lead(now, fx);
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
        let (promised, ci, leading) = (self.promised, self.commit_index, self.is_leader());
        match (self.log).check_prepare(m.ballot, m.from_slot, promised, ci, leading) {
            Phase1b::Refuse(r) => return fx.send(from, MdlMsg::PrepareReply(r)),
            Phase1b::Compacted => return self.compacted(from, m.from_slot, fx),
            Phase1b::Promise => {}
        }
        self.observe_ballot(m.ballot, fx);
        let r = self
            .log
            .promise(m.ballot, self.promised, self.commit_index, m.from_slot);
        fx.send(from, MdlMsg::PrepareReply(r));
    }

    /// Candidate: collect promises; a majority makes this replica the leader.
    pub fn handle_prepare_reply(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: PrepareReply,
        fx: &mut Effects<MdlMsg>,
    ) {
        if !self.heard(from, now)
            || !ballot::sane(from, m.promised)
            || m.slots.iter().any(|r| !ballot::valid(r.ballot))
        {
            return;
        }
        if !m.ok {
            if m.promised > self.promised {
                self.observe_ballot(m.promised, fx);
            }
            return;
        }
        self.known_commit = self.known_commit.max(m.commit_index);
        let window_end = self.commit_index.saturating_add(self.cfg.slot_window);
        let Role::Candidate(c) = &mut self.role else {
            return;
        };
        if m.ballot != c.ballot {
            return;
        }
        if c.merge(from, m.slots, window_end).is_err() {
            // A fresher replica campaigns while this one catches up from the leader.
            return self.step_down(fx);
        }
        self.maybe_lead(now, fx);
    }

    /// Becomes leader once a majority promised: re-proposes every reported
    /// slot at the new ballot (holes become no-ops), then waits for them to
    /// execute before re-placing unordered operations (`failover.rs`).
    fn maybe_lead(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        let Role::Candidate(c) = &self.role else {
            return;
        };
        if !self.majority(c.promises) {
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
            recovery: Recovery {
                after_slot: end,
                ..Recovery::default()
            },
        };
        let me = self.cfg.shard() as usize;
        self.shard_leaders[me] = Some(self.cfg.id);
        self.leader_hint = Some(self.cfg.id);
        self.prefix = (c.ballot, self.commit_index);
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
        self.advance_commit();
        self.last_heartbeat = 0;
        self.last_announce = None;
        self.announce(now, fx);
    }

    /// Leader and candidate timers: retransmissions and heartbeats.
    pub(crate) fn tick_journal(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        let peers = self.peers();
        match &mut self.role {
            Role::Candidate(c) => {
                if let Some(missing) = c.retransmit(now, self.cfg.retransmit_ns, peers) {
                    let p = Prepare {
                        ballot: c.ballot,
                        from_slot: c.from_slot,
                    };
                    fx.send_set(missing, MdlMsg::Prepare(p));
                }
            }
            Role::Leader {
                ballot, next_slot, ..
            } => {
                let (ballot, end) = (*ballot, *next_slot);
                let mut resend = Vec::new();
                for (i, s) in self.log.range_mut(self.commit_index, end) {
                    if s.state == SlotState::Accepted
                        && now.saturating_sub(s.sent_at) >= self.cfg.retransmit_ns
                    {
                        s.sent_at = now;
                        s.sent_to = peers;
                        resend.push((i, s.acks, s.entry.clone()));
                    }
                }
                // In slot order, so followers' prefixes fill from the front.
                for (slot, acks, entry) in resend {
                    fx.send_set(
                        peers & !acks,
                        MdlMsg::Accept(Accept {
                            ballot,
                            slot,
                            cmds: entry,
                        }),
                    );
                }
                if now.saturating_sub(self.last_heartbeat) >= self.cfg.heartbeat_ns
                    || self.commit_index > self.announced
                {
                    self.last_heartbeat = now;
                    self.announced = self.commit_index;
                    fx.send_set(
                        peers,
                        MdlMsg::CommitShort(CommitShort {
                            ballot,
                            up_to: self.commit_index,
                        }),
                    );
                }
            }
            Role::Follower => self.catch_up(now, fx),
        }
    }
}
