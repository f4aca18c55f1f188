//! Client proposals: dedup, per-client FIFO admission, and the start of
//! round 1 (or the one-round path of an operation without a predecessor).
//!
//! Each client numbers its operations per shard (`shard_seq`, contiguous from
//! 0). The leader admits them in that order; one that arrives early waits in a
//! bounded per-client buffer until the gap fills (a retry fills it), and is
//! dropped if it waits longer than the coordination timeout.

use genericsmr::effects::{accepted, reject, Effects};
use genericsmr::messages::ReplyStatus;
use genericsmr::state::Check;
use genericsmr::ConnId;

use crate::messages::{Entry, MdlMsg, MdlPropose, OpId, UNSEQUENCED};
use crate::replica::{Coord, LiveOp, Replica, Role};

impl Replica {
    /// A client's operation.
    pub fn handle_propose(
        &mut self,
        now: u64,
        conn: ConnId,
        m: MdlPropose,
        fx: &mut Effects<MdlMsg>,
    ) {
        let op = OpId::of(&m.cmd);
        match &mut self.role {
            Role::Follower => {
                return fx.reply(
                    conn,
                    reject(op.client, op.seq, ReplyStatus::NotLeader, self.hint()),
                )
            }
            Role::Recovering(never) => match *never {},
            Role::Candidate(_) => {
                return fx.reply(
                    conn,
                    reject(op.client, op.seq, ReplyStatus::Unavailable, self.me_hint()),
                )
            }
            Role::Leader { own: recovery, .. } => {
                if !recovery.started || !recovery.ops.is_empty() {
                    if recovery.held.len() >= 65_536 {
                        return fx.reply(
                            conn,
                            reject(op.client, op.seq, ReplyStatus::Unavailable, self.me_hint()),
                        );
                    }
                    recovery.held.push((conn, m));
                    return;
                }
            }
        }
        if let Some(p) = m.pred {
            if p.shard as usize >= self.cfg.shards || p.seq >= op.seq {
                // Not a chain this deployment can have: refused, never applied
                // (and refused the same way on every retry).
                tracing::warn!(
                    ?op,
                    ?p,
                    "refusing an operation whose predecessor cannot exist"
                );
                return fx.reply(
                    conn,
                    reject(op.client, op.seq, ReplyStatus::Failed, self.me_hint()),
                );
            }
        }
        if self.settled(op, conn, fx) {
            // A predecessor failed before it arrived (`fail_unadmitted`)
            // still takes its number, or the client's later operations here
            // would wait for it.
            let next = self.next_admission(op.client);
            if m.shard_seq != UNSEQUENCED && m.shard_seq == next {
                self.admit_next.insert(op.client, next + 1);
                self.release_buffered(now, op.client, fx);
            }
            return;
        }
        if m.shard_seq == UNSEQUENCED {
            // Outside the per-shard numbering (chains need no FIFO admission
            // for safety: coordination orders them).
            return self.start(now, conn, m, fx);
        }
        let next = self.next_admission(op.client);
        if m.shard_seq < next {
            // Admitted before but neither live nor remembered: its outcome is forgotten.
            return fx.reply(
                conn,
                reject(op.client, op.seq, ReplyStatus::Stale, self.me_hint()),
            );
        }
        if m.shard_seq > next {
            let buf = self.buffered.entry(op.client).or_default();
            if buf.len() >= self.cfg.max_buffered && !buf.contains_key(&m.shard_seq) {
                return fx.reply(
                    conn,
                    reject(op.client, op.seq, ReplyStatus::Unavailable, self.me_hint()),
                );
            }
            buf.insert(m.shard_seq, (now, conn, m));
            return;
        }
        self.admit(now, conn, m, fx);
        self.release_buffered(now, op.client, fx);
    }

    /// The `shard_seq` the leader admits next from `client`.
    fn next_admission(&self, client: u64) -> u64 {
        self.admit_next
            .get(&client)
            .copied()
            .or_else(|| self.next_shard_seq.get(&client).copied())
            .unwrap_or(0)
    }

    /// Admits the client's buffered proposals that are next in line.
    fn release_buffered(&mut self, now: u64, client: u64, fx: &mut Effects<MdlMsg>) {
        loop {
            let next = self.admit_next.get(&client).copied().unwrap_or(0);
            let Some(buf) = self.buffered.get_mut(&client) else {
                break;
            };
            let Some((_, conn, m)) = buf.remove(&next) else {
                break;
            };
            if buf.is_empty() {
                self.buffered.remove(&client);
            }
            if self.settled(OpId::of(&m.cmd), conn, fx) {
                // Its number is taken all the same.
                self.admit_next.insert(client, next + 1);
                continue;
            }
            self.admit(now, conn, m, fx);
        }
    }

    /// A single-dispatch client's plain proposal (the generic `Propose`): a
    /// chain head outside any per-shard numbering, so existing clients and
    /// tools work against MDLin unchanged.
    pub fn handle_plain_propose(
        &mut self,
        now: u64,
        conn: ConnId,
        m: genericsmr::messages::Propose,
        fx: &mut Effects<MdlMsg>,
    ) {
        let p = MdlPropose {
            cmd: m.cmd,
            shard_seq: UNSEQUENCED,
            pred: None,
        };
        self.handle_propose(now, conn, p, fx)
    }

    /// An operation this leader already knows: a retry of one in flight
    /// (answered on the newest connection) or one executed or failed here
    /// (answered now). True if so.
    fn settled(&mut self, op: OpId, conn: ConnId, fx: &mut Effects<MdlMsg>) -> bool {
        if let Some(o) = self.ops.get_mut(&op) {
            o.conn = Some(conn);
            return true;
        }
        self.answer_known(op, conn, fx)
    }

    /// Answers an operation already executed or failed here; true if it did.
    fn answer_known(&mut self, op: OpId, conn: ConnId, fx: &mut Effects<MdlMsg>) -> bool {
        if self.failed.contains(&op) {
            fx.reply(
                conn,
                reject(op.client, op.seq, ReplyStatus::Failed, self.me_hint()),
            );
            return true;
        }
        match self.px.sm.check(op.client, op.seq) {
            Check::Done(out) => {
                fx.reply(
                    conn,
                    accepted(op.client, op.seq, self.local_id(), out.clone()),
                );
                true
            }
            Check::Stale => {
                fx.reply(
                    conn,
                    reject(op.client, op.seq, ReplyStatus::Stale, self.me_hint()),
                );
                true
            }
            Check::Fresh => false,
        }
    }

    /// Admits an operation nothing here knows yet, taking its number.
    fn admit(&mut self, now: u64, conn: ConnId, m: MdlPropose, fx: &mut Effects<MdlMsg>) {
        self.admit_next.insert(m.cmd.client, m.shard_seq + 1);
        self.start(now, conn, m, fx);
    }

    /// Starts a new operation: a head is ordered at once (one round),
    /// anything else is replicated in round 1 and waits for coordination.
    fn start(&mut self, now: u64, conn: ConnId, m: MdlPropose, fx: &mut Effects<MdlMsg>) {
        let op = OpId::of(&m.cmd);
        let Some(pred) = m.pred else {
            let ts = self.shard_ts;
            self.shard_ts += 1;
            self.ops.insert(
                op,
                LiveOp {
                    pred: None,
                    committed: true,
                    coord: Coord::Done,
                    conn: Some(conn),
                    since: now,
                    recovered: false,
                },
            );
            return self.append(
                now,
                Entry::Head {
                    cmd: m.cmd,
                    shard_seq: m.shard_seq,
                    ts,
                },
                fx,
            );
        };
        // An early reply counts if it is about this predecessor and its
        // sender is not fenced off by now.
        let early = self.early.remove(&op).map(|(_, r)| r).filter(|r| {
            r.pred == crate::replica::pred_id(op, pred) && !self.fenced(pred.shard, r.ballot)
        });
        let coord = match early {
            Some(r) if r.ok => Coord::Ready(r.ts),
            Some(_) => Coord::Failing,
            None => Coord::Waiting { last_ask: now },
        };
        let failing = coord == Coord::Failing;
        self.ops.insert(
            op,
            LiveOp {
                pred: Some(pred),
                committed: false,
                coord,
                conn: Some(conn),
                since: now,
                recovered: false,
            },
        );
        if failing {
            // Its predecessor already failed: never replicate it at all.
            return self.append(now, Entry::Fail { op }, fx);
        }
        self.append(
            now,
            Entry::Pending {
                cmd: m.cmd,
                shard_seq: m.shard_seq,
                pred: Some(pred),
            },
            fx,
        );
    }

    /// Drops buffered proposals whose gap did not fill in time.
    pub(crate) fn expire_buffered(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        let limit = self.cfg.coord_timeout_ns;
        let mut dropped = Vec::new();
        self.buffered.retain(|_, b| {
            b.retain(|_, (since, conn, m)| {
                let keep = now.saturating_sub(*since) < limit;
                if !keep {
                    dropped.push((*conn, OpId::of(&m.cmd)));
                }
                keep
            });
            !b.is_empty()
        });
        dropped.sort_unstable();
        for (conn, op) in dropped {
            fx.reply(
                conn,
                reject(op.client, op.seq, ReplyStatus::Unavailable, self.me_hint()),
            );
        }
    }
}
