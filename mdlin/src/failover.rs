//! A new shard leader's second step: re-placing operations that are
//! committed (round 1 chosen) but neither ordered nor failed.
//!
//! Phase 1 (`journal.rs`) recovers the journal itself. What it cannot recover
//! is whether the old leader had already coordinated such an operation and
//! told its successor a timestamp: coordination is not replicated. So:
//!
//! - **Safe mode**: a coordination reply is only ever sent for an ordered
//!   operation, so none of these has a successor yet. They simply become
//!   waiting operations again (asking their predecessors' leaders anew) and
//!   new operations are served at once.
//! - **Fast mode**: each one may have a successor somewhere that already
//!   holds a timestamp. The new leader serves nothing new until all are
//!   placed. It asks every shard leader for the timestamp of each one's
//!   successor (`SuccTsRequest`), and its predecessor's leader for the
//!   predecessor's timestamp (an ordinary coordination request). It places
//!   them in the order of their successors' timestamps (lowest first; chains
//!   of this shard inherit their successor's bound), each at
//!   `max(pred_ts + 1, shard_ts)`, where `shard_ts` starts above every
//!   recovered order entry. Order entries the old leader made after one of
//!   these could not have been chosen (the prefix rule), so every recovered
//!   timestamp is at most what the old leader gave, and stays below any
//!   successor's. Such an operation never fails by timeout: it may already
//!   have a successor that took effect.
//!
//! **Fences.** The old leader may still be running (cut off from its shard,
//! not from the others) or have replies in flight, with timestamps the new
//! leader does not keep. So a shard answers a successor query from shard A's
//! leader at ballot `b` only once its journal holds a chosen
//! `Fence { shard: A, ballot: b }`: from its execution on, coordination
//! replies from A's leaders below `b` are ignored here, and replies held but
//! not acted on are forgotten (those operations ask A's current leader
//! again). What the answer reported is then final, and because the fence is
//! in the journal, every later leader of this shard inherits it.

use std::collections::HashMap;

use genericsmr::effects::Effects;
use genericsmr::ReplicaId;

use crate::messages::{CoordReq, Entry, MdlMsg, OpId, SuccTsReply, SuccTsRequest};

/// Successor bounds at or above this only come from "no successor known"
/// (and the chain bounds derived from it): such operations are free.
const FREE_BOUND: u64 = u64::MAX / 2;
use crate::replica::{bit, pred_id, Coord, CoordMode, LiveOp, Replica, Role};

impl Replica {
    /// Leader: once the inherited journal is executed, start re-placing; then
    /// place what is ready, in order.
    pub(crate) fn progress_recovery(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        let executed = self.px.executed;
        let Role::Leader { own: recovery, .. } = &mut self.role else {
            return;
        };
        if !recovery.started {
            if executed < recovery.after_slot {
                return;
            }
            recovery.started = true;
            self.start_recovery(now, fx);
        }
        self.place_recovered(now, fx);
    }

    fn start_recovery(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        let fast = self.cfg.mode == CoordMode::Fast;
        let mut ops: Vec<OpId> = self.unordered.keys().copied().collect();
        ops.sort_unstable();
        tracing::info!(
            ops = ops.len(),
            fast,
            "re-placing committed, unordered operations"
        );
        let me = self.cfg.shard();
        for op in &ops {
            let Some((_, _, pred)) = self.unordered.get(op).cloned() else {
                continue;
            };
            let coord = if pred.is_some() {
                Coord::Waiting { last_ask: now }
            } else {
                Coord::Ready(0)
            };
            self.ops.insert(
                *op,
                LiveOp {
                    pred,
                    committed: true,
                    coord,
                    conn: None,
                    since: now,
                    recovered: fast,
                },
            );
            if let Some(p) = pred {
                let req = CoordReq {
                    pred: pred_id(*op, p),
                    succ: *op,
                    succ_shard: me,
                };
                if p.shard == me {
                    self.handle_coord_req(now, None, req, fx);
                } else if let Some(l) = self.shard_leaders[p.shard as usize] {
                    fx.send(l, MdlMsg::CoordReq(req));
                }
            }
        }
        // An operation whose predecessor is of this shard but unknown to the
        // executed journal: the predecessor's round 1 was never chosen (the
        // journal holds everything chosen), so this one was never CC and told
        // no successor anything; and the predecessor can never be admitted
        // (its shard_seq is below this one's). Phase 1 can bring such an
        // operation back from an old ballot's suffix, above slots a newer
        // ballot rewrote (a crashed leader restarting on its journal). Fail
        // it rather than wait forever.
        let orphans: Vec<OpId> = ops
            .iter()
            .filter(|op| {
                let Some(Some(p)) = self.unordered.get(op).map(|(_, _, p)| *p) else {
                    return false;
                };
                let pred = pred_id(**op, p);
                p.shard == me
                    && !self.unordered.contains_key(&pred)
                    && !self.failed.contains(&pred)
                    && matches!(
                        self.px.sm.check(pred.client, pred.seq),
                        genericsmr::state::Check::Fresh
                    )
            })
            .copied()
            .collect();
        for op in orphans {
            tracing::info!(?op, "its predecessor was never replicated here: failing it");
            self.fail_op(now, op, fx);
        }
        if !fast {
            // Nothing was promised about them: ordinary waiting operations.
            for op in ops {
                self.try_cc(now, op, fx);
            }
            return self.release_held(now, fx);
        }
        self.px.nonce += 1;
        let nonce = self.px.nonce;
        let own = self.succ_ts_for(&ops);
        let Role::Leader { own: recovery, .. } = &mut self.role else {
            return;
        };
        recovery.nonce = nonce;
        recovery.succ_ts = ops.iter().copied().zip(own).collect();
        recovery.answered = bit(me);
        recovery.ops = ops;
        recovery.asked_at = now;
        if self.cfg.shards == 1 {
            // No other shard to ask.
            return self.sort_recovered();
        }
        self.ask_succ_ts(fx);
    }

    /// Sends the successor query to every shard that has not answered.
    fn ask_succ_ts(&mut self, fx: &mut Effects<MdlMsg>) {
        let Role::Leader { own: recovery, .. } = &self.role else {
            return;
        };
        if recovery.ops.is_empty() || recovery.sorted {
            return;
        }
        let Role::Leader { ballot, .. } = self.role else {
            return;
        };
        let Role::Leader { own: recovery, .. } = &self.role else {
            return;
        };
        let req = SuccTsRequest {
            nonce: recovery.nonce,
            ops: recovery.ops.clone(),
            ballot,
        };
        for s in 0..self.cfg.shards {
            if recovery.answered & bit(s as u8) == 0 {
                if let Some(l) = self.shard_leaders[s] {
                    fx.send(l, MdlMsg::SuccTsRequest(req.clone()));
                }
            }
        }
    }

    /// What this shard knows of each operation's successor: its timestamp if
    /// ordered or coordinated here; if the successor is here, committed but
    /// not ordered, one below its own successor's; otherwise `u64::MAX`.
    fn succ_ts_for(&self, ops: &[OpId]) -> Vec<u64> {
        let mut unplaced: HashMap<OpId, OpId> = HashMap::new();
        for (op, (_, _, pred)) in &self.unordered {
            if let Some(p) = pred {
                unplaced.insert(pred_id(*op, *p), *op);
            }
        }
        for (op, o) in &self.ops {
            if let (Some(p), false) = (o.pred, matches!(o.coord, Coord::Done)) {
                unplaced.insert(pred_id(*op, p), *op);
            }
        }
        ops.iter()
            .map(|op| match self.succ_index.get(op) {
                Some(ts) => *ts,
                None => unplaced
                    .get(op)
                    .and_then(|s| self.succ_index.get(s))
                    .map_or(u64::MAX, |ts| ts.saturating_sub(1)),
            })
            .collect()
    }

    /// Executes a `Fence` entry (every replica): replies from `shard`'s
    /// leaders below `ballot` no longer count here. A leader forgets the
    /// replies from that shard it holds but has not acted on (it cannot tell
    /// their ballots apart; those operations ask the shard's current leader
    /// again) and answers the successor query the fence was written for.
    pub(crate) fn raise_fence(&mut self, shard: u8, ballot: u64, fx: &mut Effects<MdlMsg>) {
        let s = shard as usize;
        if s >= self.cfg.shards || s == self.cfg.shard() as usize {
            tracing::error!(shard, "a fence entry for a shard it cannot be about");
            return;
        }
        if ballot <= self.fences[s] {
            return;
        }
        self.fences[s] = ballot;
        if !self.is_leader() {
            return;
        }
        for o in self.ops.values_mut() {
            if o.pred.is_some_and(|p| p.shard == shard) && matches!(o.coord, Coord::Ready(_)) {
                o.coord = Coord::Waiting { last_ask: 0 };
            }
        }
        let answerable = self.fence_asks[s]
            .as_ref()
            .is_some_and(|(_, m)| m.ballot <= ballot);
        if answerable {
            if let Some((from, m)) = self.fence_asks[s].take() {
                self.answer_succ_ts(from, &m, fx);
            }
        }
    }

    /// Any shard leader: a recovering leader's successor query. Answered once
    /// a fence for the asker's ballot is chosen and executed here (appended
    /// now if need be): see the module docs.
    pub fn handle_succ_ts_request(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: SuccTsRequest,
        fx: &mut Effects<MdlMsg>,
    ) {
        // Only once the journal inherited from phase 1 is executed is what
        // this leader knows of ordered successors complete; the asker retries.
        let ready = matches!(&self.role, Role::Leader { own: recovery, .. } if recovery.started);
        let shard = from as usize / self.cfg.group.n;
        if !ready
            || m.ops.len() > 1 << 20
            || shard >= self.cfg.shards
            || shard == self.cfg.shard() as usize
        {
            return;
        }
        if m.ballot <= self.fences[shard] {
            return self.answer_succ_ts(from, &m, fx);
        }
        if m.ballot > self.fence_proposed[shard] {
            self.fence_proposed[shard] = m.ballot;
            let fence = Entry::Fence {
                shard: shard as u8,
                ballot: m.ballot,
            };
            self.append(now, fence, fx);
        }
        // Answered when the fence executes (or on a retry after it did).
        self.fence_asks[shard] = Some((from, m));
    }

    /// Sends what this shard knows of the asked operations' successors.
    fn answer_succ_ts(&mut self, to: ReplicaId, m: &SuccTsRequest, fx: &mut Effects<MdlMsg>) {
        let ts = self.succ_ts_for(&m.ops);
        let r = SuccTsReply {
            nonce: m.nonce,
            shard: self.cfg.shard(),
            ts,
        };
        fx.send(to, MdlMsg::SuccTsReply(r));
    }

    /// Recovering leader: one shard's answer.
    pub fn handle_succ_ts_reply(&mut self, now: u64, m: SuccTsReply, fx: &mut Effects<MdlMsg>) {
        let shards = self.cfg.shards;
        let Role::Leader { own: recovery, .. } = &mut self.role else {
            return;
        };
        if m.nonce != recovery.nonce
            || recovery.sorted
            || m.shard as usize >= shards
            || m.ts.len() != recovery.ops.len()
        {
            return;
        }
        recovery.answered |= bit(m.shard);
        for (op, ts) in recovery.ops.iter().zip(m.ts) {
            let e = recovery.succ_ts.entry(*op).or_insert(u64::MAX);
            *e = (*e).min(ts);
        }
        let all = if shards == 64 {
            u64::MAX
        } else {
            (1u64 << shards) - 1
        };
        if recovery.answered == all {
            self.sort_recovered();
            self.place_recovered(now, fx);
        }
    }

    /// Fixes the placement order: by successor timestamp, where a client's
    /// earlier operation is bounded by its later ones (the later may be a
    /// chain successor; and issue order must hold among them anyway), so a
    /// client's operations are placed in issue order.
    fn sort_recovered(&mut self) {
        let Role::Leader { own: recovery, .. } = &mut self.role else {
            return;
        };
        let mut desc: Vec<OpId> = recovery.ops.clone();
        desc.sort_unstable_by(|a, b| b.cmp(a));
        let mut later: Option<(u64, u64)> = None;
        for op in desc {
            let own = recovery.succ_ts.get(&op).copied().unwrap_or(u64::MAX);
            let bound = match later {
                Some((client, b)) if client == op.client => own.min(b.saturating_sub(1)),
                _ => own,
            };
            recovery.succ_ts.insert(op, bound);
            later = Some((op.client, bound));
        }
        let key = |op: &OpId| (recovery.succ_ts.get(op).copied().unwrap_or(u64::MAX), *op);
        let mut ops = std::mem::take(&mut recovery.ops);
        ops.sort_unstable_by_key(key);
        recovery.ops = ops;
        recovery.sorted = true;
    }

    /// Places recovered operations whose predecessor is known. Those with a
    /// known successor bound go strictly in order, first: each must stay below
    /// its bound. The rest (no successor coordinated anywhere) are free: each
    /// goes as soon as its predecessor is known and its client's earlier ones
    /// are placed, so two shards recovering at once cannot wait on each other
    /// through them. New operations are served once all are placed.
    fn place_recovered(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        loop {
            let Role::Leader { own: recovery, .. } = &mut self.role else {
                return;
            };
            if !recovery.started {
                return;
            }
            if recovery.ops.is_empty() {
                return self.release_held(now, fx);
            }
            if !recovery.sorted {
                return;
            }
            let bounded = |op: &OpId| recovery.succ_ts.get(op).is_some_and(|b| *b < FREE_BOUND);
            let pick = if bounded(&recovery.ops[0]) {
                Some(0)
            } else {
                // Every remaining one is free: the first ready one whose
                // client has no earlier operation still waiting.
                recovery.ops.iter().enumerate().position(|(i, op)| {
                    let earlier = recovery.ops[..i].iter().any(|o| o.client == op.client);
                    !earlier
                        && !matches!(
                            self.ops.get(op).map(|o| o.coord),
                            Some(Coord::Waiting { .. })
                        )
                })
            };
            let Some(i) = pick else {
                return;
            };
            let op = recovery.ops[i];
            let Some(o) = self.ops.get_mut(&op) else {
                // Failed (or executed) meanwhile.
                recovery.ops.remove(i);
                continue;
            };
            match o.coord {
                Coord::Ready(pred_ts) => {
                    o.coord = Coord::Done;
                    let pred = o.pred.map(|p| pred_id(op, p));
                    recovery.ops.remove(i);
                    self.place(now, op, pred_ts, pred, fx);
                }
                Coord::Failing | Coord::Done => {
                    recovery.ops.remove(i);
                }
                Coord::Waiting { .. } => return,
            }
        }
    }

    /// Recovery finished: handle the proposals held meanwhile.
    fn release_held(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        let Role::Leader { own: recovery, .. } = &mut self.role else {
            return;
        };
        if recovery.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut recovery.held);
        for (conn, m) in held {
            self.handle_propose(now, conn, m, fx);
        }
    }

    /// Recovering leader timers: ask shards that have not answered again.
    pub(crate) fn tick_recovery(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        let retransmit = self.cfg.group.retransmit_ns;
        let Role::Leader { own: recovery, .. } = &mut self.role else {
            return;
        };
        if recovery.ops.is_empty()
            || recovery.sorted
            || now.saturating_sub(recovery.asked_at) < retransmit
        {
            return;
        }
        recovery.asked_at = now;
        self.ask_succ_ts(fx);
    }
}
