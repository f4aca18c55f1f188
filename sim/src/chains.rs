//! Multi-dispatch clients (for protocols with `Caps::multi_dispatch`) and
//! the checks of their histories.
//!
//! Each application request of a client issues up to `fanout` operations
//! back to back, chained: each names the client's previous outstanding one
//! as its predecessor, and the protocol turns each into messages
//! ([`Protocol::chained_request`]) for the leaders of the shards involved.
//! Answers are delivered in issue order. The run is then checked by both MDL
//! checkers (the black-box search over the history and the white-box checks
//! over every replica's executed order, from [`Protocol::audit`]), by the
//! order stamps the protocol reports, and for operations stuck at a leader.

use std::collections::HashMap;

use bytes::Bytes;
use checker::history::{Outcome, Record};
use genericsmr::command::{Command, Outcome as CmdOutcome};
use genericsmr::messages::{ProposeReply, ReplyStatus};
use genericsmr::protocol::ChainedOp;
use genericsmr::shard::shard_of;
use rand::Rng;

use crate::{Kind, Protocol, Sim};

/// One client's scripted chain: its operations, issued at once at
/// `start_ns` instead of the random workload.
#[derive(Debug, Clone)]
pub struct Script {
    /// When the chain is issued (ns).
    pub start_ns: u64,
    /// (write?, key) per operation, in issue order; writes put a unique value.
    pub ops: Vec<(bool, String)>,
}

/// The multi-dispatch workload (instead of single closed-loop operations).
#[derive(Debug, Clone)]
pub struct Chains {
    /// Application requests per client.
    pub requests: usize,
    /// Operations per request: exactly this many, or uniformly 1..=fanout
    /// with `random_fanout`.
    pub fanout: usize,
    /// Draw each request's fanout at random.
    pub random_fanout: bool,
    /// Issue one operation at a time, without chains (the single-dispatch
    /// baseline on the same shards).
    pub single_dispatch: bool,
    /// Share of writes, in percent.
    pub write_pct: u32,
    /// Chance, in per mille, that a chained operation is "lost": it reaches
    /// its leader only `late_ns` later, as from a client that stalled
    /// mid-chain. Its successors fail; it may still succeed.
    pub lose_per_mille: u32,
    /// How late a lost operation arrives (ns).
    pub late_ns: u64,
    /// A client resends an unanswered operation after this long (ns).
    pub retry_ns: u64,
    /// A client gives up on an operation after this long (ns): unknown.
    pub give_up_ns: u64,
    /// Scripted clients (one chain each) instead of the random workload.
    pub scripts: Vec<Script>,
}

impl Default for Chains {
    /// 15 requests of 1 to 4 operations, half writes.
    fn default() -> Self {
        Chains {
            requests: 15,
            fanout: 4,
            random_fanout: true,
            single_dispatch: false,
            write_pct: 50,
            lose_per_mille: 0,
            late_ns: 5_000_000_000,
            retry_ns: 400_000_000,
            give_up_ns: 8_000_000_000,
            scripts: Vec::new(),
        }
    }
}

/// `logs[shard][replica]`: a replica's executed order, as (client, seq).
pub type Logs = Vec<Vec<Vec<(u64, u64)>>>;
/// `stamps[shard][replica][i]`: the stamp `logs[shard][replica][i]` executed with.
pub type Stamps = Vec<Vec<Vec<u64>>>;

/// One operation of a request in flight.
#[derive(Clone)]
pub(crate) struct OpRec {
    op: ChainedOp,
    invoked: u64,
    answer: Option<(u64, ReplyStatus, CmdOutcome)>,
    given_up: bool,
}

/// A multi-dispatch client's state.
#[derive(Default)]
pub(crate) struct ChainClient {
    seq: u64,
    shard_seq: HashMap<u8, u64>,
    done: usize,
    /// The request in flight: its operations.
    current: Vec<OpRec>,
    started: u64,
    delivered: usize,
    /// Operations of the request not issued yet (single dispatch).
    remaining: usize,
    /// Whether every operation of the request so far was answered.
    complete: bool,
}

impl<R: Protocol> Sim<R> {
    fn chains(&self) -> &Chains {
        self.cfg.chains.as_ref().expect("a multi-dispatch run")
    }

    /// Schedules every client's first request.
    pub(crate) fn start_chains(&mut self) {
        let scripts = self.chains().scripts.clone();
        if scripts.is_empty() {
            for c in 0..self.chain_clients.len() {
                self.at(20_000_000 + c as u64 * 100_000, Kind::Issue(c));
            }
        } else {
            for (c, sc) in scripts.iter().enumerate() {
                self.at(sc.start_ns, Kind::Issue(c));
            }
        }
    }

    /// Whether every client finished its requests.
    pub(crate) fn chains_done(&self) -> bool {
        let ch = self.chains();
        // With scripts, only the scripted clients issue (one request each).
        let want = |c: usize| match ch.scripts.len() {
            0 => ch.requests,
            s if c < s => 1,
            _ => 0,
        };
        self.chain_clients
            .iter()
            .enumerate()
            .all(|(i, c)| c.current.is_empty() && c.done >= want(i))
    }

    /// Starts client `c`'s next request.
    pub(crate) fn issue(&mut self, c: usize) {
        let ch = self.chains().clone();
        if self.chain_clients[c].done >= ch.requests || !self.faulty() {
            return;
        }
        let fanout = if let Some(sc) = ch.scripts.get(c) {
            if self.chain_clients[c].done > 0 {
                return;
            }
            sc.ops.len()
        } else if ch.random_fanout {
            self.rng.gen_range(1..=ch.fanout)
        } else {
            ch.fanout
        };
        let cl = &mut self.chain_clients[c];
        cl.started = self.now;
        cl.remaining = fanout;
        cl.complete = true;
        self.issue_ops(c);
    }

    /// Issues the request's next operations: all of them, chained, or one
    /// (single dispatch).
    fn issue_ops(&mut self, c: usize) {
        let ch = self.chains().clone();
        let count = if ch.single_dispatch {
            1
        } else {
            self.chain_clients[c].remaining
        };
        self.chain_clients[c].remaining -= count;
        self.chain_clients[c].delivered = 0;
        let mut prev: Option<(u64, u8)> = None;
        for _ in 0..count {
            let scripted = ch
                .scripts
                .get(c)
                .and_then(|sc| sc.ops.get(self.chain_clients[c].current.len()).cloned());
            let key = match &scripted {
                Some((_, k)) => k.clone(),
                None => format!("k{}", self.rng.gen_range(0..self.cfg.keys)),
            };
            let shard = shard_of(key.as_bytes(), self.cfg.shards as u32) as u8;
            let cl = &mut self.chain_clients[c];
            cl.seq += 1;
            let seq = cl.seq;
            let ss = cl.shard_seq.entry(shard).or_insert(0);
            let shard_seq = *ss;
            *ss += 1;
            let id = c as u64 + 1;
            let write = match &scripted {
                Some((w, _)) => *w,
                None => self.rng.gen_range(0..100) < ch.write_pct,
            };
            let cmd = if write {
                let value = Bytes::from(format!("{id}.{seq}"));
                Command::put(id, seq, Bytes::from(key), value)
            } else {
                Command::get(id, seq, Bytes::from(key))
            };
            let lost = prev.is_some()
                && ch.lose_per_mille > 0
                && self.rng.gen_range(0..1000) < ch.lose_per_mille;
            let op = ChainedOp {
                cmd,
                shard,
                shard_seq,
                pred: prev,
            };
            prev = Some((seq, shard));
            self.chain_clients[c].current.push(OpRec {
                op,
                invoked: self.now,
                answer: None,
                given_up: false,
            });
            let idx = self.chain_clients[c].current.len() - 1;
            let first = if lost {
                self.now + ch.late_ns
            } else {
                self.send_op(c, idx);
                self.now + ch.retry_ns
            };
            self.at(first, Kind::Retry { client: c, idx });
        }
    }

    /// Sends operation `idx` of client `c`'s request to the leaders it concerns.
    fn send_op(&mut self, c: usize, idx: usize) {
        let op = self.chain_clients[c].current[idx].op.clone();
        for (shard, msg) in R::chained_request(&op) {
            let shard = shard as usize;
            let to = self.leader_of(shard);
            let d = self.delay() + self.client_delay(c, shard, &msg);
            self.at(self.now + d, Kind::ClientMsg { client: c, to, msg });
        }
    }

    /// The retry timer of operation `idx` of client `c`.
    pub(crate) fn retry(&mut self, c: usize, idx: usize) {
        let ch = self.chains().clone();
        let Some(op) = self.chain_clients[c].current.get(idx) else {
            return;
        };
        if op.answer.is_some() || op.given_up {
            return;
        }
        if self.now.saturating_sub(op.invoked) >= ch.give_up_ns {
            self.chain_clients[c].current[idx].given_up = true;
            return self.deliver(c);
        }
        self.send_op(c, idx);
        self.at(self.now + ch.retry_ns, Kind::Retry { client: c, idx });
    }

    /// An answer to client `c`.
    pub(crate) fn chain_reply(&mut self, c: usize, r: ProposeReply) {
        let now = self.now;
        let cl = &mut self.chain_clients[c];
        let Some(idx) = cl.current.iter().position(|o| o.op.cmd.seq == r.seq) else {
            return;
        };
        if cl.current[idx].answer.is_some() || cl.current[idx].given_up {
            return;
        }
        match r.status {
            ReplyStatus::Ok | ReplyStatus::Failed | ReplyStatus::Stale | ReplyStatus::TooLarge => {
                cl.current[idx].answer = Some((now, r.status, r.outcome));
                self.deliver(c);
            }
            // Retried on the client's timer, at the leader known then.
            ReplyStatus::NotLeader | ReplyStatus::Unavailable => {}
        }
    }

    /// Delivers answers in issue order; when all are in, records them and
    /// goes on with the request (single dispatch) or the next request.
    fn deliver(&mut self, c: usize) {
        let now = self.now;
        let cl = &mut self.chain_clients[c];
        while cl.delivered < cl.current.len() {
            let o = &cl.current[cl.delivered];
            if o.answer.is_none() && !o.given_up {
                break;
            }
            cl.delivered += 1;
        }
        if cl.delivered < cl.current.len() {
            return;
        }
        self.record_ops(c);
        if self.chain_clients[c].remaining > 0 {
            return self.issue_ops(c);
        }
        let cl = &mut self.chain_clients[c];
        cl.done += 1;
        if cl.complete {
            self.latencies.push(now - cl.started);
        }
        let think = self.rng.gen_range(0..2_000_000);
        self.at(now + think, Kind::Issue(c));
    }

    /// Moves the delivered operations into the history.
    fn record_ops(&mut self, c: usize) {
        let cl = &mut self.chain_clients[c];
        let ops = std::mem::take(&mut cl.current);
        // Answers are delivered in issue order: each at the latest answer so far.
        let mut delivered = 0;
        for o in &ops {
            if let Some((t, ..)) = o.answer {
                delivered = delivered.max(t);
            }
            let cmd = &o.op.cmd;
            let rec = match &o.answer {
                Some((_, ReplyStatus::Ok, out)) => {
                    self.acked += 1;
                    Record::of(cmd, o.invoked, Some((delivered, out)), Outcome::Ok)
                }
                Some((_, ReplyStatus::Failed, _)) => Record::of(
                    cmd,
                    o.invoked,
                    Some((delivered, &CmdOutcome::default())),
                    Outcome::Fail,
                ),
                _ => {
                    cl.complete = false;
                    Record::of(cmd, o.invoked, None, Outcome::Unknown)
                }
            };
            self.history.push(rec.with_pred(o.op.pred.map(|p| p.0)));
        }
    }

    /// At the end: whatever is still unanswered is unknown.
    pub(crate) fn finish_chains(&mut self) {
        for c in 0..self.chain_clients.len() {
            if !self.chain_clients[c].current.is_empty() {
                for o in self.chain_clients[c].current.iter_mut() {
                    if o.answer.is_none() {
                        o.given_up = true;
                    }
                }
                self.record_ops(c);
            }
        }
    }

    /// Each replica's executed order, `logs[shard][replica]` as (client,
    /// seq), and the stamps it executed them with (deposed replicas left out:
    /// they never learn their shard went on without them).
    pub(crate) fn executed_logs(&self) -> (Logs, Stamps) {
        let mut logs = vec![Vec::new(); self.cfg.shards];
        let mut stamps = vec![Vec::new(); self.cfg.shards];
        for (g, node) in self.nodes.iter().enumerate() {
            let Some(core) = node.core.as_ref().filter(|_| !self.deposed[g]) else {
                continue;
            };
            let a = core.audit();
            let sh = self.shard(g as genericsmr::ReplicaId);
            logs[sh].push(a.executed.iter().map(|e| (e.client, e.seq)).collect());
            stamps[sh].push(a.executed.iter().map(|e| e.stamp).collect());
        }
        (logs, stamps)
    }

    /// The checks of a multi-dispatch run beyond agreement and convergence:
    /// the white-box MDL check over every replica's executed order, the
    /// order stamps, and no operation stuck at a live leader. The black-box
    /// search runs in [`crate::run`]. The error says which failed.
    pub(crate) fn check_chains(
        &self,
        logs: &[Vec<Vec<(u64, u64)>>],
        stamps: &[Vec<Vec<u64>>],
    ) -> Result<(), String> {
        let wb = checker::mdl_log::check_logs(&self.history, logs);
        if wb.verdict != checker::Verdict::Ok {
            return Err(format!("white-box MDL check: {:?}", wb.violation));
        }
        check_stamps(&self.history, logs, stamps)?;
        let stuck: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(g, _)| !self.deposed[*g] && !self.cut[*g])
            .filter_map(|(_, n)| n.core.as_ref())
            .map(|c| c.audit())
            .filter(|a| a.in_flight > 0)
            .map(|a| format!("{} ({})", a.in_flight, a.in_flight_detail))
            .collect();
        if !stuck.is_empty() {
            return Err(format!(
                "operations stuck at a leader: {}",
                stuck.join("; ")
            ));
        }
        Ok(())
    }
}

/// Checks the order stamps of the executed operations (for a protocol that
/// reports them: all zero is none): they strictly increase along each
/// shard's executed order, and every executed operation's is above its
/// chain predecessor's (when that executed too). Ordering everything by
/// stamp is then an order that respects every shard and every chain, the
/// witness of MDLin's safety argument; stricter than MDL itself.
pub fn check_stamps(
    history: &[Record],
    logs: &[Vec<Vec<(u64, u64)>>],
    stamps: &[Vec<Vec<u64>>],
) -> Result<(), String> {
    if stamps.iter().flatten().flatten().all(|s| *s == 0) {
        return Ok(());
    }
    let mut ts: HashMap<(u64, u64), u64> = HashMap::new();
    for (sh, (logs, stamps)) in logs.iter().zip(stamps).enumerate() {
        // The longest executed order of the shard (the others are prefixes of it).
        let Some((log, stamps)) = logs.iter().zip(stamps).max_by_key(|(l, _)| l.len()) else {
            continue;
        };
        let mut last: Option<u64> = None;
        for (op, t) in log.iter().zip(stamps) {
            if last.is_some_and(|l| *t <= l) {
                return Err(format!(
                    "shard {sh}: {op:?} executed with stamp {t}, not above the previous {last:?}"
                ));
            }
            last = Some(*t);
            ts.insert(*op, *t);
        }
    }
    for h in history {
        let Some(p) = h.pred else { continue };
        if let (Some(t), Some(pt)) = (ts.get(&(h.client, h.seq)), ts.get(&(h.client, p))) {
            if t <= pt {
                return Err(format!(
                    "operation ({}, {}) executed with stamp {t}, not above its chain \
                     predecessor ({}, {p})'s {pt}",
                    h.client, h.seq, h.client
                ));
            }
        }
    }
    Ok(())
}
