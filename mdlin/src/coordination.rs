//! Coordination between shard leaders, the timestamp rule, and failures.
//!
//! An operation with a predecessor becomes *CC* (committed and coordinated)
//! when its round 1 is chosen and its predecessor's leader said the
//! predecessor is safe to follow. At CC it takes timestamp
//! `max(pred_ts + 1, shard_ts)` and its order entry is appended. Its own
//! successor's request is answered at CC in fast mode, or once its order
//! entry is chosen and executed in safe mode. An operation still waiting
//! after `coord_timeout` fails: the failure is replicated (a `Fail` entry)
//! before the client or any successor hears of it, and every later request
//! for it is answered with a failure, so failures close the suffix of a chain.

use genericsmr::command::{Op, Outcome};
use genericsmr::effects::{accepted, Effects};
use genericsmr::ReplicaId;

use crate::messages::{CoordReply, CoordReq, Entry, MdlMsg, OpId};
use crate::replica::{pred_id, Coord, CoordMode, Replica, Role};

/// Most coordination requests queued for predecessors this leader has not seen.
const MAX_WAITING_CRS: usize = 1 << 20;

impl Replica {
    /// A coordination request for `m.pred`, an operation of this shard, from a
    /// client (`asker` none) or from the successor's leader retrying.
    pub fn handle_coord_req(
        &mut self,
        now: u64,
        asker: Option<ReplicaId>,
        m: CoordReq,
        fx: &mut Effects<MdlMsg>,
    ) {
        if !self.is_leader() || m.succ_shard as usize >= self.cfg.shards {
            return;
        }
        if m.pred.client != m.succ.client || m.pred.seq >= m.succ.seq {
            tracing::warn!(
                ?m,
                "dropping a coordination request that is not a chain edge"
            );
            return;
        }
        if let Some(ts) = self.known_ts.get(&m.pred).copied() {
            return self.send_coord_reply(asker, m.succ_shard, m.succ, m.pred, true, ts, fx);
        }
        if self.failed.contains(&m.pred) {
            return self.send_coord_reply(asker, m.succ_shard, m.succ, m.pred, false, 0, fx);
        }
        if self.waiting_crs.len() >= MAX_WAITING_CRS && !self.waiting_crs.contains_key(&m.pred) {
            return;
        }
        let w = self.waiting_crs.entry(m.pred).or_default();
        match w.iter_mut().find(|(s, ..)| *s == m.succ) {
            Some(e) => {
                if asker.is_some() {
                    e.2 = asker;
                }
            }
            None => w.push((m.succ, m.succ_shard, asker, now)),
        }
    }

    /// Sends a coordination reply to the successor's leader (itself when the
    /// successor is on this shard).
    #[allow(clippy::too_many_arguments)]
    fn send_coord_reply(
        &mut self,
        asker: Option<ReplicaId>,
        shard: u8,
        succ: OpId,
        pred: OpId,
        ok: bool,
        ts: u64,
        fx: &mut Effects<MdlMsg>,
    ) {
        let ballot = self.promised;
        let r = CoordReply {
            succ,
            pred,
            ok,
            ts,
            ballot,
        };
        if shard == self.cfg.shard() {
            self.local.push_back(r);
            return;
        }
        let to = asker.or(self.shard_leaders[shard as usize]);
        if let Some(to) = to {
            fx.send(to, MdlMsg::CoordReply(r));
        }
        // Without a known leader the successor's leader asks again later.
    }

    /// Tells every queued successor of `op` its fate.
    pub(crate) fn answer_waiting(&mut self, op: OpId, ok: bool, ts: u64, fx: &mut Effects<MdlMsg>) {
        if let Some(w) = self.waiting_crs.remove(&op) {
            for (succ, shard, asker, _) in w {
                self.send_coord_reply(asker, shard, succ, op, ok, ts, fx);
            }
        }
    }

    /// The predecessor's leader answered.
    pub fn handle_coord_reply(&mut self, now: u64, m: CoordReply, fx: &mut Effects<MdlMsg>) {
        if !self.is_leader() {
            return;
        }
        let Some(o) = self.ops.get(&m.succ) else {
            // Kept for its operation; fenced when it is used (`admit.rs`).
            if self.early.len() < MAX_WAITING_CRS
                && !self.known_ts.contains_key(&m.succ)
                && !self.failed.contains(&m.succ)
            {
                self.early.insert(m.succ, (now, m));
            }
            return;
        };
        let Some(p) = o.pred.filter(|p| pred_id(m.succ, *p) == m.pred) else {
            tracing::warn!(
                ?m,
                "dropping a coordination reply about the wrong predecessor"
            );
            return;
        };
        if self.fenced(p.shard, m.ballot) {
            // From a leader the predecessor's shard replaced before a newer
            // one asked this shard about successors: not honoured.
            return;
        }
        let Some(o) = self.ops.get_mut(&m.succ) else {
            return;
        };
        if !matches!(o.coord, Coord::Waiting { .. }) {
            return;
        }
        if m.ok {
            o.coord = Coord::Ready(m.ts);
            self.try_cc(now, m.succ, fx);
        } else {
            self.fail_op(now, m.succ, fx);
        }
    }

    /// Whether a coordination reply from `shard`'s leader at `ballot` no longer
    /// counts here (see `Entry::Fence`).
    pub(crate) fn fenced(&self, shard: u8, ballot: u64) -> bool {
        self.fences.get(shard as usize).is_some_and(|f| ballot < *f)
    }

    /// Handles coordination replies between operations of this shard.
    pub(crate) fn drain_local(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        while let Some(r) = self.local.pop_front() {
            self.handle_coord_reply(now, r, fx);
        }
    }

    /// CC: once committed and coordinated, take a timestamp, answer the
    /// successor (fast mode) and append the order entry.
    pub(crate) fn try_cc(&mut self, now: u64, op: OpId, fx: &mut Effects<MdlMsg>) {
        let Some(o) = self.ops.get_mut(&op) else {
            return;
        };
        let Coord::Ready(pred_ts) = o.coord else {
            return;
        };
        // A recovered operation is placed by the failover procedure, in its order.
        if !o.committed || o.recovered {
            return;
        }
        o.coord = Coord::Done;
        let pred = o.pred.map(|p| pred_id(op, p));
        self.place(now, op, pred_ts, pred, fx);
    }

    /// Gives `op` its timestamp and order entry.
    pub(crate) fn place(
        &mut self,
        now: u64,
        op: OpId,
        pred_ts: u64,
        pred: Option<OpId>,
        fx: &mut Effects<MdlMsg>,
    ) {
        let ts = (pred_ts + 1).max(self.shard_ts);
        self.shard_ts = ts + 1;
        if self.cfg.mode == CoordMode::Fast {
            self.remember(now, op, ts, pred);
            self.answer_waiting(op, true, ts, fx);
        }
        self.append(now, Entry::Order { op, ts }, fx);
        if self.cfg.mode == CoordMode::Fast {
            self.answer_blind_write(op, fx);
        }
    }

    /// Fast mode: a put or delete is answered once CC and its order entry
    /// is appended, as Multi-Paxos answers a write once its slot is chosen. Its
    /// effect needs no result and it will take effect: its round 1 is chosen
    /// and its predecessor is safe. Nothing admitted later can be ordered
    /// before it, here or after a failover: later entries here come after its
    /// order entry (if one of them is chosen, so is this one, by the prefix
    /// rule), and a new leader re-places it before serving anything new.
    fn answer_blind_write(&mut self, op: OpId, fx: &mut Effects<MdlMsg>) {
        let blind = self
            .unordered
            .get(&op)
            .is_some_and(|(cmd, ..)| matches!(cmd.op, Op::Put | Op::Delete));
        if !blind {
            return;
        }
        let me = self.local_id();
        if let Some(conn) = self.ops.get_mut(&op).and_then(|o| o.conn.take()) {
            fx.reply(conn, accepted(op.client, op.seq, me, Outcome::default()));
        }
    }

    /// Fails an operation that is not CC: replicate the failure first; the
    /// client and successors hear of it when the entry executes.
    pub(crate) fn fail_op(&mut self, now: u64, op: OpId, fx: &mut Effects<MdlMsg>) {
        let Some(o) = self.ops.get_mut(&op) else {
            return;
        };
        if matches!(o.coord, Coord::Done | Coord::Failing) {
            return;
        }
        o.coord = Coord::Failing;
        self.append(now, Entry::Fail { op }, fx);
    }

    /// Leader timers of waiting operations: ask the predecessor's current
    /// leader again, and fail what waited too long.
    pub(crate) fn tick_coord(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        let Role::Leader { .. } = self.role else {
            return;
        };
        let mut ask = Vec::new();
        let mut fail = Vec::new();
        for (op, o) in self.ops.iter_mut() {
            let Coord::Waiting { last_ask } = &mut o.coord else {
                continue;
            };
            let Some(p) = o.pred else {
                continue;
            };
            if !o.recovered && now.saturating_sub(o.since) >= self.cfg.coord_timeout_ns {
                fail.push(*op);
            } else if now.saturating_sub(*last_ask) >= self.cfg.coord_retry_ns {
                *last_ask = now;
                ask.push((*op, p));
            }
        }
        ask.sort_unstable_by_key(|(op, _)| *op);
        fail.sort_unstable();
        let me = self.cfg.shard();
        for (op, p) in ask {
            let req = CoordReq {
                pred: pred_id(op, p),
                succ: op,
                succ_shard: me,
            };
            if p.shard == me {
                self.handle_coord_req(now, None, req, fx);
            } else if let Some(l) = self.shard_leaders.get(p.shard as usize).copied().flatten() {
                fx.send(l, MdlMsg::CoordReq(req));
            }
        }
        for op in fail {
            tracing::debug!(?op, "coordination timed out: failing the operation");
            self.fail_op(now, op, fx);
        }
        let keep = self.cfg.keep_ns;
        self.early.retain(|_, (t, _)| now.saturating_sub(*t) < keep);
        self.waiting_crs.retain(|_, w| {
            w.retain(|(.., t)| now.saturating_sub(*t) < keep);
            !w.is_empty()
        });
        self.expire_buffered(now, fx);
        self.drain_local(now, fx);
    }
}
