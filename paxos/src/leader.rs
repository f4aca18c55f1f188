//! Proposals, phase 1 as a candidate, and phase 2 as the leader.

use genericsmr::command::Command;
use genericsmr::effects::Effects;
use genericsmr::messages::{Propose, ReplyStatus};
use genericsmr::state::Check;
use genericsmr::ConnId;
use tracing::info;

use crate::messages::PaxosMsg;
use crate::multi::host::Host;
use crate::replica::{accepted, reject, Replica, Role};

/// Phase-1 attempts per request to lead (from the master or an operator)
/// before leaving it to the election timers.
pub(crate) const MAX_CAMPAIGNS: u32 = 3;

impl Replica {
    /// A client proposal. A leader (or candidate) queues it for the next slot; anyone
    /// else answers "not leader" with a hint.
    pub fn handle_propose(
        &mut self,
        _now: u64,
        conn: ConnId,
        m: Propose,
        fx: &mut Effects<PaxosMsg>,
    ) {
        let cmd = m.cmd;
        match self.role {
            Role::Leader { .. } | Role::Candidate(_) => {}
            Role::Recovering(_) => {
                return fx.reply(
                    conn,
                    reject(
                        cmd.client,
                        cmd.seq,
                        ReplyStatus::Unavailable,
                        self.px.leader_hint,
                    ),
                );
            }
            Role::Follower => {
                #[cfg(feature = "broken")]
                if self.cfg.broken == Some(crate::broken::Broken::FollowerReads)
                    && cmd.op == genericsmr::command::Op::Get
                {
                    // Broken on purpose: a read served from this replica's
                    // own, possibly stale, state machine.
                    let value = self
                        .px
                        .sm
                        .kv()
                        .get(&cmd.key)
                        .map(bytes::Bytes::copy_from_slice);
                    let out = genericsmr::command::Outcome { value, flag: false };
                    return fx.reply(conn, accepted(cmd.client, cmd.seq, self.cfg.group.id, out));
                }
                return fx.reply(
                    conn,
                    reject(
                        cmd.client,
                        cmd.seq,
                        ReplyStatus::NotLeader,
                        self.px.leader_hint,
                    ),
                );
            }
        }
        let (client, seq, me) = (cmd.client, cmd.seq, self.cfg.group.id);
        match self.px.sm.check(client, seq) {
            // Already executed: answer with the first outcome.
            Check::Done(out) => return fx.reply(conn, accepted(client, seq, me, out.clone())),
            Check::Stale => {
                return fx.reply(conn, reject(client, seq, ReplyStatus::Stale, Some(me)))
            }
            Check::Fresh => {}
        }
        let key = (cmd.client, cmd.seq);
        if let Some(c) = self.waiting.get_mut(&key) {
            // A retry of a command in flight here: answer on the newest connection.
            *c = conn;
            return;
        }
        if cmd.wire_len() > self.cfg.max_command_bytes {
            return fx.reply(
                conn,
                reject(
                    cmd.client,
                    cmd.seq,
                    ReplyStatus::TooLarge,
                    Some(self.cfg.group.id),
                ),
            );
        }
        if self.pending.len() >= self.cfg.max_pending {
            return fx.reply(
                conn,
                reject(
                    cmd.client,
                    cmd.seq,
                    ReplyStatus::Unavailable,
                    Some(self.cfg.group.id),
                ),
            );
        }
        self.waiting.insert(key, conn);
        self.pending.push_back(cmd);
    }

    /// Called after each burst of handled events: turns queued proposals into slots
    /// (everything queued at once shares a slot when batching, so a lone request
    /// is never held back) and announces commit progress.
    pub fn flush(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) {
        let Role::Leader { ballot, .. } = self.role else {
            return;
        };
        if !self.pending.is_empty() {
            let targets = self.phase2_targets(now);
            while !self.pending.is_empty() {
                let take = if self.cfg.batch {
                    let mut bytes = 0;
                    let fits = self
                        .pending
                        .iter()
                        .take(self.cfg.batch_max)
                        .take_while(|c| {
                            bytes += c.wire_len();
                            bytes <= self.cfg.max_batch_bytes
                        });
                    fits.count().max(1)
                } else {
                    1
                };
                let window_end = self.window_end();
                let Role::Leader { next_slot, .. } = &mut self.role else {
                    unreachable!()
                };
                // Never propose into a slot already known to be chosen
                // (compacted slots are chosen too).
                let held = &self.px.log;
                *next_slot = (*next_slot).max(held.base());
                while held.committed_at(*next_slot) {
                    *next_slot += 1;
                }
                if *next_slot > window_end {
                    // No slot open past our window (acceptors would refuse it, and
                    // the next candidate would have to, see `handle_prepare_reply`):
                    // the rest waits for commits.
                    break;
                }
                let slot = *next_slot;
                *next_slot += 1;
                let cmds: Vec<Command> = self.pending.drain(..take).collect();
                self.propose_at(now, ballot, slot, cmds, targets, fx);
            }
        }
        if self.px.commit_index > self.px.announced {
            // A new commit: tell the peers at once rather than at the next heartbeat.
            self.announce_commit(now, ballot, fx);
        }
    }

    /// The peers phase-2 messages go to: all of them, or with `thrifty` the
    /// `quorum - 1` heard from most recently.
    fn phase2_targets(&self, _now: u64) -> u64 {
        self.accept_targets_by(|j| std::cmp::Reverse(self.px.last_heard[j as usize]))
    }

    /// The master asks this replica to lead: run phase 1 with a ballot above
    /// anything promised, covering every slot from the first unchosen one.
    pub fn handle_be_leader(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) {
        self.px.now = now;
        match self.role {
            Role::Leader { .. } | Role::Recovering(_) => {}
            Role::Candidate(_) | Role::Follower => self.campaign(now, self.px.promised, 1, fx),
        }
    }

    /// The master lost sight of the leader and suggests we take over (see
    /// [`Host::on_master_hint`]).
    pub fn handle_leader_hint(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) {
        self.on_master_hint(now, fx);
    }

    /// Finishes every slot reported in phase 1 (re-proposing the value of the
    /// highest ballot, or a no-op in a hole) and starts serving proposals.
    pub(crate) fn become_leader(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) {
        let Role::Candidate(c) = std::mem::replace(&mut self.role, Role::Follower) else {
            return;
        };
        let b = c.ballot;
        let end = c.end();
        info!(ballot = b, from = c.from_slot, to = end, "elected leader");
        self.role = Role::Leader {
            ballot: b,
            next_slot: end,
            own: (),
        };
        self.px.leader_hint = Some(self.cfg.group.id);
        let mut best = c.best;
        let all = self.peers();
        for slot in c.from_slot..end {
            if self.committed_at(slot) {
                // Learned to be chosen while campaigning: nothing to propose.
                continue;
            }
            match best.remove(&slot) {
                Some((_, true, cmds)) => self.learn_chosen(slot, cmds, fx, true),
                Some((_, false, cmds)) => self.propose_at(now, b, slot, cmds, all, fx),
                None => self.propose_at(now, b, slot, Vec::new(), all, fx),
            }
        }
        self.announce_commit(now, b, fx);
        self.flush(now, fx);
    }

    /// The receive prelude of every peer message: notes when `from` was
    /// heard (thrifty sends go to the freshest peers). Every peer may talk
    /// to a Multi-Paxos replica: always true.
    pub(crate) fn heard(&mut self, from: u8, now: u64) -> bool {
        self.px.now = now;
        if let Some(h) = self.px.last_heard.get_mut(from as usize) {
            *h = now;
        }
        true
    }
}
