//! Coordination between shard leaders, the timestamp rule, and failures.
//!
//! An operation with a predecessor becomes *CC* (committed and coordinated)
//! when its round 1 is chosen and its predecessor's leader said the
//! predecessor is safe to follow. At CC it takes timestamp
//! `max(pred_ts + 1, shard_ts)` and its order entry is appended. Its own
//! successor's request is answered at CC in fast mode, or once its order
//! entry is chosen and executed in safe mode; its client is answered once it
//! executes, in both modes. An operation still waiting after `coord_timeout`
//! fails: the failure is replicated (a `Fail` entry) before the client or any
//! successor hears of it, and every later request for it is answered with a
//! failure, so failures close the suffix of a chain. A predecessor this
//! leader was asked for over a whole `coord_timeout` and never admitted fails
//! the same way (see [`Replica::fail_unadmitted`]).

use genericsmr::effects::Effects;
use genericsmr::state::Check;
use genericsmr::ReplicaId;

use crate::messages::{CoordReply, CoordReq, Entry, MdlMsg, OpId};
use crate::replica::{pred_id, Coord, CoordMode, LiveOp, Replica, Role};

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
        let ballot = self.px.promised;
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
        if o.coord == Coord::Failing {
            // Failing already (perhaps before it arrived: `fail_unadmitted`).
            return;
        }
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
        // The client hears when the order entry executes, whatever the
        // operation: only a chosen position survives a failover (see
        // `run` in `exec.rs`, and docs/mdlin.md on seed 21794).
        self.append(now, Entry::Order { op, ts }, fx);
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
        self.fail_unadmitted(now, fx);
        self.expire_buffered(now, fx);
        self.drain_local(now, fx);
    }

    /// Fails every predecessor asked for over a whole coordination timeout
    /// that this leader never admitted (nor executed or failed): a replicated
    /// `Fail`, so no leader of this shard admits it later, and its waiting
    /// successors hear `ok = false` once it executes.
    ///
    /// Safe: nothing is CC before its predecessor is committed, so such a
    /// successor told no one anything. Needed: a successor that a new leader
    /// re-placed (fast mode) never fails by timeout, since it may have
    /// coordinated its own successor; when two shards recover at once, each
    /// can re-place an operation whose predecessor is a new proposal the
    /// other holds until its own recovery ends, and both waited for good
    /// (`bench sim` seeds 21820 and 22750 of `--shards 2 --drop 0.05 --keys 5`).
    /// Only a leader whose inherited journal is executed decides this: its
    /// journal then holds everything chosen, so the predecessor was never
    /// committed here.
    pub(crate) fn fail_unadmitted(&mut self, now: u64, fx: &mut Effects<MdlMsg>) {
        let ready = matches!(&self.role, Role::Leader { own: recovery, .. } if recovery.started);
        if !ready {
            return;
        }
        let limit = self.cfg.coord_timeout_ns;
        let mut stale: Vec<OpId> = self
            .waiting_crs
            .iter()
            .filter(|(p, w)| {
                w.iter().any(|(.., t)| now.saturating_sub(*t) >= limit) && self.unadmitted(**p)
            })
            .map(|(p, _)| *p)
            .collect();
        stale.sort_unstable();
        for op in stale {
            tracing::debug!(?op, "a predecessor never admitted: failing it");
            // Live until its failure executes: a proposal of it meanwhile is
            // answered then (`admit.rs`, `settled`).
            self.ops.insert(
                op,
                LiveOp {
                    pred: None,
                    committed: false,
                    coord: Coord::Failing,
                    conn: None,
                    since: now,
                    recovered: false,
                },
            );
            self.append(now, Entry::Fail { op }, fx);
        }
    }

    /// Whether nothing here knows `op`: not live, not committed, not
    /// executed, not failed.
    fn unadmitted(&self, op: OpId) -> bool {
        !self.ops.contains_key(&op)
            && !self.unordered.contains_key(&op)
            && !self.failed.contains(&op)
            && !self.known_ts.contains_key(&op)
            && matches!(self.px.sm.check(op.client, op.seq), Check::Fresh)
    }
}
