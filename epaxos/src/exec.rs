//! Execution: the committed dependency graph, cut into strongly connected
//! components with an iterative Tarjan (no recursion, so no stack overflow
//! on long chains).
//!
//! Tarjan emits a component only after every component it can reach, so each
//! one is executed as soon as it is emitted: its commands by (sequence
//! number, leader, instance), which every replica computes alike from the
//! same committed attributes. A traversal that meets an uncommitted instance
//! stops; every instance on its path is marked blocked for the rest of the
//! pass, so one pass costs O(instances + edges). The blocking instance is
//! noted as waited on, which starts recovery if it stays uncommitted.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};

use genericsmr::effects::{accepted, reject, Effects};
use genericsmr::messages::ReplyStatus;
use genericsmr::ReplicaId;

use crate::messages::{Entry, EpaxosMsg, Record};
use crate::replica::{Replica, Status};

type Node = (ReplicaId, u64);

struct Mark {
    index: u32,
    low: u32,
    on_stack: bool,
}

/// Tarjan's marks per instance (aHash: hashed for every instance executed).
type Marks = HashMap<Node, Mark, ahash::RandomState>;
/// Instances whose execution waits on something uncommitted.
type Blocked = HashSet<Node, ahash::RandomState>;

impl Replica {
    /// Executes every committed instance whose dependencies allow it.
    pub(crate) fn execute(&mut self, now: u64, fx: &mut Effects<EpaxosMsg>) {
        if self.to_execute.is_empty() {
            return;
        }
        let mut marks = Marks::default();
        let mut blocked = Blocked::default();
        let starts: Vec<Node> = self.to_execute.iter().copied().collect();
        for s in starts {
            if !marks.contains_key(&s) && !blocked.contains(&s) && self.is_pending(s) {
                self.tarjan(s, now, &mut marks, &mut blocked, fx);
            }
        }
    }

    fn is_pending(&self, (l, i): Node) -> bool {
        self.spaces[l as usize]
            .get(i)
            .is_some_and(|x| x.status == Status::Committed)
    }

    /// The instances `(l, i)` depends on directly that are not executed yet.
    fn successors(&self, (l, i): Node) -> Vec<Node> {
        let Some(x) = self.spaces[l as usize].get(i) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (r, &d) in x.deps.iter().enumerate() {
            let r8 = r as ReplicaId;
            let done = self.spaces[r].executed_upto;
            if r8 == l {
                // Its own leader's earlier instance, and any later one it saw.
                if i > done {
                    out.push((l, i - 1));
                }
                if d > i + 1 {
                    out.push((l, d - 1));
                }
            } else if d > done {
                out.push((r8, d - 1));
            }
        }
        out
    }

    fn tarjan(
        &mut self,
        start: Node,
        now: u64,
        marks: &mut Marks,
        blocked: &mut Blocked,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let mut next_index = marks.len() as u32;
        let mut stack: Vec<Node> = Vec::new();
        // The explicit call stack: a node and the successors still to visit.
        let mut calls: Vec<(Node, Vec<Node>)> = Vec::new();
        let mut enter = |v: Node, me: &Self, marks: &mut Marks, stack: &mut Vec<Node>| {
            marks.insert(
                v,
                Mark {
                    index: next_index,
                    low: next_index,
                    on_stack: true,
                },
            );
            next_index += 1;
            stack.push(v);
            let mut succ = me.successors(v);
            succ.reverse();
            succ
        };
        let succ = enter(start, self, marks, &mut stack);
        calls.push((start, succ));
        while let Some(top) = calls.last_mut() {
            let v = top.0;
            if let Some(w) = top.1.pop() {
                if blocked.contains(&w) {
                    return self.block(&stack, blocked);
                }
                match marks.get(&w) {
                    Some(m) => {
                        if m.on_stack {
                            let wi = m.index;
                            let mv = marks.get_mut(&v).expect("v is marked");
                            mv.low = mv.low.min(wi);
                        }
                        // Otherwise w's component is already executed.
                    }
                    None => {
                        let (wl, wi) = w;
                        let committed = self.spaces[wl as usize]
                            .get(wi)
                            .is_some_and(|x| x.status.is_committed());
                        if !committed {
                            self.wait_on(w, now);
                            return self.block(&stack, blocked);
                        }
                        if self.spaces[wl as usize]
                            .get(wi)
                            .is_some_and(|x| x.status == Status::Executed)
                        {
                            continue;
                        }
                        let s = enter(w, self, marks, &mut stack);
                        calls.push((w, s));
                    }
                }
                continue;
            }
            // Every successor of v is done.
            calls.pop();
            let (vi, vl) = {
                let m = &marks[&v];
                (m.index, m.low)
            };
            if let Some((u, _)) = calls.last() {
                let mu = marks.get_mut(u).expect("u is marked");
                mu.low = mu.low.min(vl);
            }
            if vl == vi {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    if let Some(m) = marks.get_mut(&w) {
                        m.on_stack = false;
                    }
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                self.run_component(comp, fx);
            }
        }
    }

    /// Everything on the path can reach an uncommitted instance.
    fn block(&self, stack: &[Node], blocked: &mut Blocked) {
        blocked.extend(stack.iter().copied());
    }

    /// Notes that this replica waits on `(l, i)` since `now` (recovery starts
    /// if it stays uncommitted past the grace period).
    pub(crate) fn wait_on(&mut self, (l, i): Node, now: u64) {
        let n = self.cfg.n;
        if !self.in_window(l, i) {
            return;
        }
        if let Some(x) = self.spaces[l as usize].entry(i, n) {
            if x.waiting_since.is_none() && !x.status.is_committed() {
                x.waiting_since = Some(now);
                self.waited.push(Reverse((now, l, i)));
            }
        }
    }

    /// Re-executes, at restart, the instances the durable log says were
    /// executed, in that order.
    pub(crate) fn replay_executions(&mut self, order: &[Node], fx: &mut Effects<EpaxosMsg>) {
        for &(l, i) in order {
            if self.is_pending((l, i)) {
                self.run_component(vec![(l, i)], fx);
            }
        }
    }

    fn run_component(&mut self, mut comp: Vec<Node>, fx: &mut Effects<EpaxosMsg>) {
        comp.sort_by_key(|&(l, i)| {
            let seq = self.spaces[l as usize].get(i).map_or(0, |x| x.seq);
            (seq, l, i)
        });
        let me = self.cfg.id;
        for (l, i) in comp {
            self.to_execute.remove(&(l, i));
            if fx.keeps_records() {
                // The execution order, so that a restart replays exactly it.
                fx.persist(&Entry::instance(&Record {
                    leader: l,
                    instance: i,
                    ballot: 0,
                    vballot: 0,
                    status: Status::Executed as u8,
                    unchanged: false,
                    cmds: Vec::new(),
                    seq: 0,
                    deps: Vec::new(),
                }));
            }
            let Some(x) = self.spaces[l as usize].get_mut(i) else {
                continue;
            };
            x.status = Status::Executed;
            let cmds = std::mem::take(&mut x.cmds);
            for c in &cmds {
                let out = self.state.execute_checked(c);
                if let Some(conn) = self.waiting.remove(&(c.client, c.seq)) {
                    let r = match out {
                        Some(out) => accepted(c.client, c.seq, me, out),
                        None => reject(c.client, c.seq, ReplyStatus::Stale, Some(me)),
                    };
                    fx.reply(conn, r);
                }
            }
            if let Some(x) = self.spaces[l as usize].get_mut(i) {
                x.cmds = cmds;
            }
            self.executed += 1;
            if self.cfg.record_commits {
                self.exec_log.push((l, i));
            }
            self.spaces[l as usize].advance_executed();
        }
    }

    /// Drops executed instances that every replica has executed, or that are
    /// older than the kept window.
    pub(crate) fn forget_executed(&mut self) {
        let keep = self.cfg.keep_executed;
        let keep_bytes = self.cfg.compact_bytes / 4;
        for (sp, all) in self.spaces.iter_mut().zip(&self.everywhere) {
            while sp.base < sp.executed_upto
                && (sp.base + keep < sp.executed_upto
                    || sp.base < *all
                    || sp.kept_bytes > keep_bytes)
                && !sp.slots.is_empty()
            {
                sp.forget_first();
            }
        }
    }
}
