//! Execution of the chosen journal, strictly in slot order, on every replica.
//!
//! `Pending` entries only record the operation (it is committed, not yet
//! ordered); `Order` and `Head` entries apply it to the state machine; `Fail`
//! entries make the tombstone. The leader hooks in here: a committed
//! operation may become CC, an executed one is answered (and in safe mode its
//! successors are told), a failed one is answered with a failure.

use genericsmr::effects::{accepted, reject, Effects};
use genericsmr::messages::ReplyStatus;

use crate::messages::{Entry, MdlMsg, OpId};
use crate::replica::{pred_id, CoordMode, Replica};

impl Replica {
    /// Executes every chosen slot not executed yet.
    pub(crate) fn execute(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        while let Some((i, entry)) = self.px.next_to_execute() {
            self.apply_entry(now, &entry, fx);
            self.px.executed_one(i, entry);
        }
        self.maybe_compact(fx);
    }

    fn bump_seq(&mut self, client: u64, shard_seq: u64) {
        if shard_seq == crate::messages::UNSEQUENCED {
            return;
        }
        let n = self.next_shard_seq.entry(client).or_insert(0);
        *n = (*n).max(shard_seq + 1);
    }

    fn apply_entry(&mut self, now: u64, entry: &Entry, fx: &mut Effects<MdlMsg>) {
        match entry {
            Entry::Noop => {}
            Entry::Pending {
                cmd,
                shard_seq,
                pred,
            } => {
                let op = OpId::of(cmd);
                self.bump_seq(op.client, *shard_seq);
                let done =
                    self.failed.contains(&op) || self.px.sm.lookup(op.client, op.seq).is_some();
                if done {
                    return;
                }
                self.unordered
                    .entry(op)
                    .or_insert_with(|| (cmd.clone(), *shard_seq, *pred));
                if let Some(o) = self.ops.get_mut(&op) {
                    o.committed = true;
                    self.try_cc(now, op, fx);
                }
            }
            Entry::Order { op, ts } => {
                let Some((cmd, _, pred)) = self.unordered.remove(op) else {
                    if self.px.sm.lookup(op.client, op.seq).is_none() {
                        tracing::error!(?op, "an order entry for an operation never replicated");
                    }
                    return;
                };
                let pred = pred.map(|p| pred_id(*op, p));
                self.run(now, &cmd, *ts, pred, fx);
            }
            Entry::Head { cmd, shard_seq, ts } => {
                self.bump_seq(cmd.client, *shard_seq);
                self.run(now, cmd, *ts, None, fx);
            }
            Entry::Fail { op } => {
                self.unordered.remove(op);
                if self.px.sm.lookup(op.client, op.seq).is_some() {
                    tracing::error!(?op, "a failure entry for an executed operation");
                    return;
                }
                self.failed.insert(*op);
                if let Some(o) = self.ops.remove(op) {
                    if let Some(c) = o.conn {
                        fx.reply(
                            c,
                            reject(op.client, op.seq, ReplyStatus::Failed, self.me_hint()),
                        );
                    }
                }
                if self.is_leader() {
                    self.answer_waiting(*op, false, 0, fx);
                }
            }
            Entry::Fence { shard, ballot } => self.raise_fence(*shard, *ballot, fx),
        }
    }

    /// Applies an ordered operation and answers it.
    fn run(
        &mut self,
        now: u64,
        cmd: &genericsmr::command::Command,
        ts: u64,
        pred: Option<OpId>,
        fx: &mut Effects<MdlMsg>,
    ) {
        let op = OpId::of(cmd);
        self.shard_ts = self.shard_ts.max(ts + 1);
        if self.px.sm.lookup(op.client, op.seq).is_some() {
            // Ordered twice (a retry after failover): it took effect once.
            return;
        }
        let Some(out) = self.px.sm.execute_checked(cmd) else {
            return;
        };
        if self.cfg.record_order {
            self.exec_order.push(op);
            self.exec_ts.push(ts);
        }
        let fast_cc = self.cfg.mode == CoordMode::Fast && self.known_ts.contains_key(&op);
        if !fast_cc {
            self.remember(now, op, ts, pred);
        }
        if self.is_leader() {
            // Safe mode (and heads in both modes): successors hear of it now.
            if !fast_cc {
                self.answer_waiting(op, true, ts, fx);
            }
            if let Some(o) = self.ops.remove(&op) {
                if let Some(c) = o.conn {
                    fx.reply(c, accepted(op.client, op.seq, self.local_id(), out));
                }
            }
        }
    }
}
