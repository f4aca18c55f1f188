//! Linearizability of a key-value history, key by key.
//!
//! A key is a register: `put` and `delete` write it, `get` reads it, `cas`
//! compares and writes. A history is linearizable when every key's operations
//! can be put in one order that respects real time (an operation that returned
//! before another was invoked comes first) and the register's semantics.
//!
//! The search (Wing and Gong's, memoised as in Lowe's checkers) keeps a state
//! of (which operations are placed, the register's value). Operations are
//! sorted by invocation, so "placed" is a prefix plus a window of at most 512
//! operations after it: with modest concurrency per key the state space stays
//! small. The next operation to place must have been invoked before every
//! unplaced, answered operation returned. Outcomes: `fail` never took effect
//! (dropped); `unknown` may have taken effect at any time after invocation or
//! never (an optional operation with no return time; an unknown `get` says
//! nothing and is dropped).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::history::{Outcome, Record};
use crate::register::{Kind, Val, Values, ABSENT, ANY};
use crate::search::{depth_first, Search, Window, WINDOW};

/// The value of a key before the history starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Initial {
    /// Every key starts absent (a fresh cluster).
    Absent,
    /// Any starting value (a cluster with earlier data): the first read decides.
    Any,
}

/// Limits of the search.
#[derive(Debug, Clone)]
pub struct Options {
    /// Value of every key before the history.
    pub initial: Initial,
    /// States explored per key, beyond two per operation, before the key is
    /// declared undecided.
    pub max_states: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            initial: Initial::Absent,
            max_states: 2_000_000,
        }
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every key is linearizable.
    Ok,
    /// Some key is not.
    Violation,
    /// No violation found, but some key exceeded the search limits.
    Undecided,
    /// No violation found, but the history could not have shown one (no
    /// reads, or none of a key written twice). The searches never return it;
    /// [`crate::HistoryStats::judge`] turns `Ok` into it.
    Vacuous,
}

/// The operations of a key that cannot be linearized, around where every
/// attempted order got stuck.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Counterexample {
    /// The key.
    pub key: String,
    /// Why, in words.
    pub explanation: String,
    /// The key's operations from shortly before the point no order got past, in invocation order.
    pub operations: Vec<Record>,
}

/// What a check found, and how much it looked at.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// Records in the history.
    pub operations: usize,
    /// Operations that constrained the search (answered ones and unanswered writes).
    pub checked: usize,
    /// Keys checked.
    pub keys: usize,
    /// Keys for which the search gave up.
    pub keys_undecided: usize,
    /// Search states explored in all.
    pub states: u64,
    /// The first violation found, if any.
    pub violation: Option<Counterexample>,
}

#[derive(Debug, Clone, Copy)]
struct Op {
    kind: Kind,
    invoke: u64,
    ret: u64,
    /// No answer: may be placed, or left out.
    optional: bool,
    /// Index of the record in the history.
    rec: usize,
}

/// Checks a whole history.
pub fn check(records: &[Record], opts: &Options) -> Report {
    let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        by_key.entry(r.key.as_str()).or_default().push(i);
    }
    let mut keys: Vec<&str> = by_key.keys().copied().collect();
    keys.sort_unstable();
    let mut report = Report {
        verdict: Verdict::Ok,
        operations: records.len(),
        checked: 0,
        keys: keys.len(),
        keys_undecided: 0,
        states: 0,
        violation: None,
    };
    for key in keys {
        let ops = key_ops(records, &by_key[key]);
        report.checked += ops.len();
        let (outcome, states) = search(&ops, opts);
        report.states += states;
        match outcome {
            Search::Found => {}
            Search::GaveUp => report.keys_undecided += 1,
            Search::Stuck(at) => {
                if report.violation.is_none() {
                    report.violation = Some(counterexample(records, key, &ops, at));
                }
            }
        }
    }
    report.verdict = if report.violation.is_some() {
        Verdict::Violation
    } else if report.keys_undecided > 0 {
        Verdict::Undecided
    } else {
        Verdict::Ok
    };
    report
}

/// The constraining operations of one key, sorted by invocation.
fn key_ops(records: &[Record], idx: &[usize]) -> Vec<Op> {
    let mut values = Values::default();
    let mut ops = Vec::new();
    for &i in idx {
        let r = &records[i];
        let optional = match r.outcome {
            Outcome::Fail => continue,
            Outcome::Unknown => true,
            Outcome::Ok => false,
        };
        let kind = match Kind::of(r, optional, &mut values) {
            // An unanswered read (or an unknown operation) says nothing.
            Kind::Nop => continue,
            k => k,
        };
        let ret = if optional {
            u64::MAX
        } else {
            r.return_ns.unwrap_or(u64::MAX)
        };
        ops.push(Op {
            kind,
            invoke: r.invoke_ns,
            ret,
            optional,
            rec: i,
        });
    }
    ops.sort_by_key(|o| (o.invoke, o.rec));
    ops
}

/// A search state: operations `..p` placed, plus those whose bit is set in `mask`
/// (bit `i` = operation `p + i`), and the register's value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct State {
    p: usize,
    mask: Window,
    val: Val,
}

impl State {
    fn normalized(mut self) -> State {
        self.p += self.mask.take_front();
        self
    }
}

fn search(ops: &[Op], opts: &Options) -> (Search, u64) {
    let n = ops.len();
    // Enough for a history that linearizes on the first try, plus the budget for detours.
    let budget = opts.max_states.saturating_add(2 * n);
    let start = State {
        p: 0,
        mask: Window::default(),
        val: if opts.initial == Initial::Any {
            ANY
        } else {
            ABSENT
        },
    };
    depth_first(
        start,
        budget,
        |s| s.p,
        |s| s.p == n,
        |s, out| successors(ops, s, out),
    )
}

/// The states reachable from `s` by placing one operation, best first (the
/// operation that must be placed soonest, i.e. returns earliest, first).
/// Returns false when the concurrency exceeds the window.
fn successors(ops: &[Op], s: &State, out: &mut Vec<State>) -> bool {
    out.clear();
    // The earliest return among unplaced answered operations bounds what may go next.
    let mut min_ret = u64::MAX;
    for (i, o) in ops.iter().enumerate().skip(s.p) {
        if o.invoke > min_ret {
            break;
        }
        let placed = s.mask.has(i - s.p);
        if !placed && !o.optional {
            min_ret = min_ret.min(o.ret);
        }
    }
    if dead_end(ops, s, min_ret) {
        return true;
    }
    let mut cands: Vec<(u64, usize)> = Vec::new();
    for (i, o) in ops.iter().enumerate().skip(s.p) {
        if o.invoke > min_ret {
            break;
        }
        let off = i - s.p;
        if off >= WINDOW {
            return false;
        }
        if !s.mask.has(off) {
            cands.push((o.ret, off));
        }
    }
    cands.sort_unstable();
    let mut vals = Vec::new();
    for (_, off) in cands {
        let o = &ops[s.p + off];
        vals.clear();
        o.kind.apply(s.val, &mut vals);
        if o.optional {
            vals.push(s.val); // it may never have taken effect
        }
        for &v in &vals {
            out.push(
                State {
                    p: s.p,
                    mask: s.mask.with(off),
                    val: v,
                }
                .normalized(),
            );
        }
    }
    true
}

/// Whether some placeable read can never be satisfied from state `s`: it needs
/// a value that is not current, and no unplaced write that could still come
/// before it (invoked before the read returned) writes that value. Pruning such
/// states keeps the search from trying every order of the operations around it.
fn dead_end(ops: &[Op], s: &State, min_ret: u64) -> bool {
    if s.val == ANY {
        return false;
    }
    let unplaced = |i: usize| !s.mask.has(i - s.p);
    for (i, r) in ops.iter().enumerate().skip(s.p) {
        if r.invoke > min_ret {
            break;
        }
        let Kind::Read(want) = r.kind else { continue };
        if want == s.val || !unplaced(i) {
            continue;
        }
        let producible = ops
            .iter()
            .enumerate()
            .skip(s.p)
            .take_while(|(_, w)| w.invoke <= r.ret)
            .any(|(j, w)| {
                unplaced(j)
                    && match w.kind {
                        Kind::Write(v) => v == want,
                        Kind::Cas { new, swapped, .. } => new == want && swapped != Some(false),
                        Kind::Read(_) | Kind::Nop => false,
                    }
            });
        if !producible {
            return true;
        }
    }
    false
}

fn counterexample(records: &[Record], key: &str, ops: &[Op], at: usize) -> Counterexample {
    let from = at.saturating_sub(4);
    let to = (at + 8).min(ops.len());
    let explanation = format!(
        "no order of the {} operations on key {key:?} that respects real time and register semantics gets past operation {} of them (client {}, seq {}); shown: operations {from}..{to} in invocation order",
        ops.len(),
        at + 1,
        records[ops[at.min(ops.len() - 1)].rec].client,
        records[ops[at.min(ops.len() - 1)].rec].seq,
    );
    Counterexample {
        key: key.to_string(),
        explanation,
        operations: ops[from..to]
            .iter()
            .map(|o| records[o.rec].clone())
            .collect(),
    }
}
