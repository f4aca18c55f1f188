//! Catch-up (fetching chosen slots a replica lacks) and recovery of a replica
//! that restarted without its durable log.
//!
//! Recovery rule: such a replica may have promised or voted before it crashed
//! and forgotten it. It therefore does not vote until a majority of the *other*
//! replicas told it their promised ballot and log end, and it has learned the
//! chosen value of every slot below the highest log end reported. Any majority
//! that included its lost votes intersects those answers, so it neither reports
//! an empty slot where it voted nor accepts below a promise it gave (see
//! `docs/paxos.md` for what this mode does not cover).

use genericsmr::effects::Effects;
use tracing::info;

use crate::messages::{
    bit, CatchupReply, CatchupRequest, ChosenSlot, PaxosMsg, Record, RecoveryInfo, RecoveryQuery,
};
use crate::multi::host::Host;
use crate::replica::{Recovery, Replica, Role};

/// Bytes of commands, roughly, in one catch-up reply.
const CATCHUP_REPLY_BYTES: usize = 4 << 20;

impl Replica {
    /// Asks a peer (the leader if known) for chosen slots from our commit index,
    /// unless a request is already out and not yet timed out.
    pub(crate) fn request_catchup(
        &mut self,
        now: u64,
        hint: Option<u8>,
        fx: &mut Effects<PaxosMsg>,
    ) {
        if let Some(t) = self.px.catchup_at {
            if now.saturating_sub(t) < self.cfg.group.retransmit_ns {
                return;
            }
        }
        let me = self.cfg.group.id;
        let to = self
            .px
            .leader_hint
            .filter(|l| *l != me)
            .or(hint.filter(|h| *h != me));
        if let Some(to) = to {
            self.fetch_from(now, to, fx);
        }
    }

    /// Asks `to` for chosen slots from our commit index, whether or not a
    /// request is already out (for a peer known to be ahead).
    pub(crate) fn fetch_from(&mut self, now: u64, to: u8, fx: &mut Effects<PaxosMsg>) {
        self.px.catchup_at = Some(now);
        let m = CatchupRequest {
            from_slot: self.px.commit_index,
            max: self.cfg.catchup_chunk,
        };
        fx.send(to, PaxosMsg::CatchupRequest(m));
    }

    /// Serves chosen slots from our committed prefix.
    pub fn handle_catchup_request(
        &mut self,
        now: u64,
        from: u8,
        m: CatchupRequest,
        fx: &mut Effects<PaxosMsg>,
    ) {
        self.heard(from, now);
        if m.from_slot < self.px.log.base() {
            // Never silence: the asker fetches our snapshot instead.
            return self.compacted(from, m.from_slot, fx);
        }
        let mut slots = Vec::new();
        let mut bytes = 0;
        let end = self
            .px
            .commit_index
            .min(m.from_slot.saturating_add(m.max as u64));
        for slot in m.from_slot..end {
            let Some(s) = self.slot(slot) else { break };
            bytes += s.wire_len() + 16;
            slots.push(ChosenSlot {
                slot,
                cmds: s.cmds().into_owned(),
            });
            if bytes > CATCHUP_REPLY_BYTES {
                break;
            }
        }
        fx.send(
            from,
            PaxosMsg::CatchupReply(CatchupReply {
                commit_index: self.px.commit_index,
                slots,
            }),
        );
    }

    /// Stores fetched chosen slots and keeps fetching while behind.
    pub fn handle_catchup_reply(
        &mut self,
        now: u64,
        from: u8,
        m: CatchupReply,
        fx: &mut Effects<PaxosMsg>,
    ) {
        self.heard(from, now);
        self.px.catchup_at = None;
        self.px.known_commit = self.px.known_commit.max(m.commit_index);
        let got = !m.slots.is_empty();
        for c in m.slots {
            if !self.slot_in_window(c.slot) {
                break; // catch-up is contiguous from our commit index: this is garbage
            }
            if !self.committed_at(c.slot) {
                self.px.catchup_fetched += 1;
                self.learn_chosen(c.slot, c.cmds, fx, false);
            }
        }
        self.advance(fx);
        if got && self.px.commit_index < m.commit_index {
            // The peer that answered is alive and has more: keep fetching from it.
            self.fetch_from(now, from, fx);
        } else if got && self.px.commit_index < self.px.known_commit {
            self.request_catchup(now, Some(from), fx);
        }
    }

    /// Starts recovery after a restart without a durable log: no votes until
    /// the group has told us what we might have forgotten.
    pub fn start_recovery(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) {
        self.px.nonce += 1;
        info!("restarted without a durable log: recovering before voting");
        self.role = Role::Recovering(Recovery {
            nonce: self.px.nonce,
            asked_at: now,
            answers: 0,
            max_promised: 0,
            max_end: 0,
            target: None,
        });
        fx.broadcast(PaxosMsg::RecoveryQuery(RecoveryQuery {
            nonce: self.px.nonce,
        }));
    }

    /// Answers a recovering peer (unless we are recovering too: our answer would prove nothing).
    pub fn handle_recovery_query(
        &mut self,
        now: u64,
        from: u8,
        m: RecoveryQuery,
        fx: &mut Effects<PaxosMsg>,
    ) {
        self.heard(from, now);
        if self.is_recovering() {
            return;
        }
        let r = RecoveryInfo {
            nonce: m.nonce,
            promised: self.px.promised,
            log_end: self.log_end(),
            commit_index: self.px.commit_index,
        };
        fx.send(from, PaxosMsg::RecoveryInfo(r));
    }

    /// Collects answers; once a majority of the others answered, the target is fixed.
    pub fn handle_recovery_info(
        &mut self,
        now: u64,
        from: u8,
        m: RecoveryInfo,
        fx: &mut Effects<PaxosMsg>,
    ) {
        self.heard(from, now);
        if !self.sane_ballot(from, m.promised) {
            return;
        }
        self.px.known_commit = self.px.known_commit.max(m.commit_index);
        let need = self.cfg.group.quorum();
        let Role::Recovering(r) = &mut self.role else {
            return;
        };
        if m.nonce != r.nonce || r.target.is_some() || r.answers & bit(from) != 0 {
            return;
        }
        r.answers |= bit(from);
        r.max_promised = r.max_promised.max(m.promised);
        r.max_end = r.max_end.max(m.log_end);
        // A majority of the *others*: it meets every majority our lost votes were part of.
        if (r.answers.count_ones() as usize) < need {
            return;
        }
        r.target = Some(r.max_end);
        let (p, target) = (r.max_promised, r.max_end);
        if p > self.px.promised {
            self.px.promised = p;
            fx.persist(&Record::Promise { ballot: p });
        }
        info!(
            target,
            promised = p,
            "recovery: learning every slot below the target before voting"
        );
        self.request_catchup(now, Some(from), fx);
        self.check_recovered();
    }

    /// Leaves recovery once every slot below the target is committed here.
    pub(crate) fn check_recovered(&mut self) {
        if let Role::Recovering(Recovery {
            target: Some(t), ..
        }) = self.role
        {
            if self.px.commit_index >= t {
                info!(
                    commit_index = self.px.commit_index,
                    "recovered: voting again"
                );
                self.role = Role::Follower;
            }
        }
    }

    /// Recovery and catch-up timers.
    pub(crate) fn tick_learner(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) {
        if let Role::Recovering(r) = &mut self.role {
            if r.target.is_none() && now.saturating_sub(r.asked_at) >= self.cfg.group.retransmit_ns
            {
                r.asked_at = now;
                fx.broadcast(PaxosMsg::RecoveryQuery(RecoveryQuery { nonce: r.nonce }));
            }
        }
        if self.px.commit_index < self.px.known_commit {
            self.request_catchup(now, None, fx);
        }
    }
}
