//! Elections: PreVote, votes for up-to-date logs only, CheckQuorum, and
//! leadership transfer.
//!
//! - A follower whose leader stays silent for its randomized timeout first
//!   asks for pre-votes at `term + 1` without taking that term. Only with a
//!   majority of pre-votes does it take the term and ask for real votes, so
//!   a replica cut off for a while comes back with the term it left with
//!   and deposes nobody.
//! - A voter refuses (pre-)votes while it heard a live leader within an
//!   election timeout (CheckQuorum's lease), unless the candidate was
//!   handed leadership by that leader ([`TimeoutNow`]).
//! - A leader that has not heard a majority within an election timeout
//!   steps down.

use genericsmr::effects::Effects;
use genericsmr::ReplicaId;
use tracing::info;

use crate::messages::{Entry, HandOver, RaftMsg, RequestVote, RequestVoteReply, TimeoutNow};
use crate::replica::{Leading, Progress, Replica, Role};

impl Replica {
    /// Whether a candidate's log ending at `(last_index, last_term)` is at
    /// least as up to date as ours.
    fn up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.log.last_term(), self.log.last())
    }

    /// Election timer and, as leader, CheckQuorum.
    pub(crate) fn tick_election(&mut self, now: u64, fx: &mut Effects<RaftMsg>) {
        match self.role {
            Role::Leader(_) => {
                self.election.heard_leader(now);
                self.check_quorum(now, fx);
            }
            Role::Follower | Role::PreCandidate(_) | Role::Candidate(_) => {
                let eager = now < self.eager_until
                    && self
                        .leader_heard_at
                        .is_none_or(|t| now.saturating_sub(t) >= self.cfg.hint_quiet_ns)
                    && now.saturating_sub(self.election.last_heard()) >= self.cfg.hint_quiet_ns;
                if self.election.due(now, false) || eager {
                    info!(
                        term = self.term,
                        failures = self.election.failures(),
                        "no leader heard within the election timeout: campaigning"
                    );
                    self.campaign(now, fx);
                }
            }
        }
    }

    /// Starts a campaign: pre-votes first (unless turned off).
    pub(crate) fn campaign(&mut self, now: u64, fx: &mut Effects<RaftMsg>) {
        self.election.campaigned(now);
        if !self.cfg.pre_vote {
            return self.start_election(now, false, fx);
        }
        let me = Self::bit(self.cfg.id);
        self.role = Role::PreCandidate(me);
        fx.broadcast(RaftMsg::RequestVote(RequestVote {
            term: self.term + 1,
            last_index: self.log.last(),
            last_term: self.log.last_term(),
            pre_vote: true,
            transfer: false,
        }));
        if self.majority(me) {
            self.start_election(now, false, fx);
        }
    }

    /// Takes the next term, votes for itself and asks for votes.
    fn start_election(&mut self, now: u64, transfer: bool, fx: &mut Effects<RaftMsg>) {
        self.enter_term(self.term + 1, fx);
        self.vote = Some(self.cfg.id);
        self.persist_hard_state(fx);
        let me = Self::bit(self.cfg.id);
        self.role = Role::Candidate(me);
        info!(term = self.term, transfer, "campaigning");
        fx.broadcast(RaftMsg::RequestVote(RequestVote {
            term: self.term,
            last_index: self.log.last(),
            last_term: self.log.last_term(),
            pre_vote: false,
            transfer,
        }));
        if self.majority(me) {
            self.become_leader(now, fx);
        }
    }

    /// A (pre-)vote request.
    pub fn handle_request_vote(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: RequestVote,
        fx: &mut Effects<RaftMsg>,
    ) {
        let refuse = |r: &Self, fx: &mut Effects<RaftMsg>| {
            fx.send(
                from,
                RaftMsg::RequestVoteReply(RequestVoteReply {
                    term: r.term,
                    granted: false,
                    pre_vote: m.pre_vote,
                }),
            )
        };
        if m.term < self.term || (m.pre_vote && m.term == self.term && self.leader.is_some()) {
            return refuse(self, fx);
        }
        if !m.transfer && m.term > self.term && self.in_lease(now) {
            // A live leader is heard here: whoever campaigns is cut off
            // from it, not the other way round.
            return refuse(self, fx);
        }
        let fresh = self.up_to_date(m.last_index, m.last_term);
        if m.pre_vote {
            let granted = fresh && (m.term > self.term || self.vote.is_none_or(|v| v == from));
            return fx.send(
                from,
                RaftMsg::RequestVoteReply(RequestVoteReply {
                    term: if granted { m.term } else { self.term },
                    granted,
                    pre_vote: true,
                }),
            );
        }
        self.enter_term(m.term, fx);
        let granted = fresh && self.vote.is_none_or(|v| v == from);
        if granted && self.vote.is_none() {
            self.vote = Some(from);
            self.persist_hard_state(fx);
        }
        if granted {
            // A candidate we voted for gets a full timeout to win.
            self.election.heard_leader(now);
        }
        fx.send(
            from,
            RaftMsg::RequestVoteReply(RequestVoteReply {
                term: self.term,
                granted,
                pre_vote: false,
            }),
        );
    }

    /// A (pre-)vote answer.
    pub fn handle_request_vote_reply(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: RequestVoteReply,
        fx: &mut Effects<RaftMsg>,
    ) {
        if m.term > self.term && !(m.pre_vote && m.granted) {
            return self.enter_term(m.term, fx);
        }
        if !m.granted {
            return;
        }
        let quorum = self.cfg.quorum();
        let won = |v: u64| v.count_ones() as usize >= quorum;
        match &mut self.role {
            Role::PreCandidate(votes) if m.pre_vote && m.term == self.term + 1 => {
                *votes |= Self::bit(from);
                if won(*votes) {
                    self.start_election(now, false, fx);
                }
            }
            Role::Candidate(votes) if !m.pre_vote && m.term == self.term => {
                *votes |= Self::bit(from);
                if won(*votes) {
                    self.become_leader(now, fx);
                }
            }
            _ => {}
        }
    }

    /// Won the election: append a no-op of this term (a leader commits
    /// only by counting entries of its own term) and start replicating.
    fn become_leader(&mut self, now: u64, fx: &mut Effects<RaftMsg>) {
        info!(term = self.term, last = self.log.last(), "elected leader");
        let last = self.log.last();
        let progress = (0..self.cfg.n)
            .map(|_| Progress {
                next: last + 1,
                matched: 0,
                sent_at: now,
                heard_at: now,
                ..Default::default()
            })
            .collect();
        self.role = Role::Leader(Leading {
            progress,
            since: now,
            heartbeat_at: now,
            transfer: None,
        });
        self.leader = Some(self.cfg.id);
        self.leader_heard_at = Some(now);
        self.eager_until = 0;
        self.append(
            Entry {
                term: self.term,
                cmds: Vec::new(),
            },
            fx,
        );
        self.replicate(now, true, fx);
        self.maybe_commit(fx);
    }

    /// CheckQuorum: a leader that has not heard a majority within an
    /// election timeout steps down (a follower whose pre-vote then wins on
    /// the majority side takes over without being held off by it).
    fn check_quorum(&mut self, now: u64, fx: &mut Effects<RaftMsg>) {
        let t = self.cfg.election_timeout_ns;
        if !self.cfg.check_quorum || t == 0 {
            return;
        }
        let me = self.cfg.id as usize;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if now.saturating_sub(l.since) < t {
            return;
        }
        let heard = l
            .progress
            .iter()
            .enumerate()
            .filter(|(j, p)| *j == me || now.saturating_sub(p.heard_at) < t)
            .count();
        if heard < self.cfg.quorum() {
            info!(
                term = self.term,
                heard, "no word from a majority within an election timeout: stepping down"
            );
            self.leader = None;
            self.leader_heard_at = None;
            self.become_follower(fx);
            self.election.heard_leader(now);
        }
    }

    /// Leader: sends `TimeoutNow` to the transfer's target once its log
    /// matches ours to the end; gives the transfer up after a timeout.
    pub(crate) fn advance_transfer(&mut self, now: u64, fx: &mut Effects<RaftMsg>) {
        let last = self.log.last();
        let term = self.term;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let Some((to, until, sent)) = l.transfer else {
            return;
        };
        if now >= until {
            info!(to, "leadership transfer timed out");
            l.transfer = None;
            return;
        }
        if !sent && l.progress[to as usize].matched == last {
            info!(to, term, "handing leadership over");
            fx.send(to, RaftMsg::TimeoutNow(TimeoutNow { term }));
            l.transfer = Some((to, until, true));
        }
    }

    /// The leader hands over to us: campaign at once, past the lease.
    pub fn handle_timeout_now(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: TimeoutNow,
        fx: &mut Effects<RaftMsg>,
    ) {
        if m.term != self.term || self.is_leader() || self.leader != Some(from) {
            return;
        }
        self.election.campaigned(now);
        self.start_election(now, true, fx);
    }

    /// A follower asks us (the leader) to hand leadership over to it.
    pub fn handle_hand_over(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: HandOver,
        fx: &mut Effects<RaftMsg>,
    ) {
        if m.term != self.term {
            return;
        }
        self.transfer_to(now, from, fx);
    }

    /// Starts a leadership transfer to `to`: it is caught up, then told to
    /// campaign. New proposals are refused meanwhile.
    pub(crate) fn transfer_to(&mut self, now: u64, to: ReplicaId, fx: &mut Effects<RaftMsg>) {
        let until = now + self.cfg.election_timeout_ns.max(self.cfg.retransmit_ns);
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if to == self.cfg.id || to as usize >= self.cfg.n {
            return;
        }
        info!(to, "leadership transfer requested");
        l.transfer = Some((to, until, false));
        self.replicate(now, false, fx);
        self.advance_transfer(now, fx);
    }

    /// The master or an operator asks this replica to lead (`hint` false),
    /// or hints that the leader is gone (`hint` true).
    pub fn handle_be_leader(&mut self, now: u64, hint: bool, fx: &mut Effects<RaftMsg>) {
        self.now = now;
        if hint {
            if !self.election.enabled() {
                return self.handle_be_leader(now, false, fx);
            }
            if matches!(self.role, Role::Follower) {
                self.election.hint(self.cfg.hint_quiet_ns);
                self.tick_election(now, fx);
            }
            return;
        }
        match self.role {
            Role::Leader(_) | Role::Candidate(_) | Role::PreCandidate(_) => {}
            Role::Follower => {
                let window = 4 * self.cfg.election_timeout_ns.max(self.cfg.hint_quiet_ns);
                self.eager_until = now + window;
                match self.leader {
                    // A leader heard lately: ask it to hand over (it
                    // catches us up first); if it has gone quiet, campaign.
                    Some(l) => {
                        fx.send(l, RaftMsg::HandOver(HandOver { term: self.term }));
                        self.tick_election(now, fx);
                    }
                    _ => self.campaign(now, fx),
                }
            }
        }
    }
}
