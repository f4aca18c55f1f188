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
//!
//! What keeps a long, concurrent history cheap:
//! - a read that matches the current value is placed at once (placing it
//!   later can never help), and so is a compare-and-swap known to have failed;
//! - a state in which some placeable read can no longer get its value (no
//!   unplaced write of it that could still come first) is dropped, found through
//!   an index of the operations that write each value;
//! - a read of a value nothing wrote before it returned fails at once;
//! - keys are checked on all cores.
//!
//! A violation is reported with a small witness: operations are removed from
//! the failing key while the rest still cannot be linearized, keeping every
//! write some kept operation may have read (see [`shrink`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::history::{Outcome, Record};
use crate::register::{Kind, Val, Values, ABSENT, ANY};
use crate::search::{depth_first, Search, Window, WINDOW};
use crate::zones;

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

impl Counterexample {
    /// The witness as a table for people: one operation per line with its
    /// client, seq, kind, values and times (milliseconds since the run
    /// started), in invocation order.
    pub fn table(&self) -> String {
        let ms = |ns: u64| format!("{:.3}", ns as f64 / 1e6);
        let short = |v: &Option<String>| match v {
            None => "(absent)".to_string(),
            Some(s) if s.chars().count() > 40 => {
                format!("{}...", s.chars().take(40).collect::<String>())
            }
            Some(s) => format!("{s:?}"),
        };
        let mut out = format!("{}\n", self.explanation);
        out.push_str(&format!(
            "  {:<20} {:>8}  {:<6} {:<16} {:<46} {:>12} {:>12}  {}\n",
            "client", "seq", "op", "key", "value", "invoke ms", "return ms", "outcome"
        ));
        for r in &self.operations {
            let value = match (r.op.as_str(), &r.expected) {
                ("cas", e) => format!("{} -> {}", short(e), short(&r.value)),
                ("delete", _) => String::new(),
                _ => short(&r.value),
            };
            let outcome = match (r.outcome, r.swapped) {
                (Outcome::Ok, Some(true)) => "ok, swapped".to_string(),
                (Outcome::Ok, Some(false)) => "ok, not swapped".to_string(),
                (o, _) => format!("{o:?}").to_lowercase(),
            };
            out.push_str(&format!(
                "  {:<20} {:>8}  {:<6} {:<16} {:<46} {:>12} {:>12}  {}\n",
                r.client,
                r.seq,
                r.op,
                r.key,
                value,
                ms(r.invoke_ns),
                r.return_ns.map_or("-".to_string(), ms),
                outcome
            ));
        }
        out
    }
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

/// One constraining operation of a key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    /// What it does to the register.
    pub(crate) kind: Kind,
    /// When it was invoked.
    pub(crate) invoke: u64,
    /// When it returned; `u64::MAX` without an answer.
    pub(crate) ret: u64,
    /// No answer: may be placed, or left out.
    pub(crate) optional: bool,
    /// Index of the record in the history.
    rec: usize,
}

/// One key's constraining operations, sorted by invocation, and for each
/// interned value the operations that may write it.
struct KeyOps {
    ops: Vec<Op>,
    /// `writers[v]`: indices into `ops` of the operations that may leave value `v`.
    writers: Vec<Vec<usize>>,
}

impl KeyOps {
    fn new(ops: Vec<Op>, values: usize) -> KeyOps {
        let mut writers = vec![Vec::new(); values + 1];
        for (i, o) in ops.iter().enumerate() {
            if let Some(v) = o.kind.may_write() {
                writers[v as usize].push(i);
            }
        }
        KeyOps { ops, writers }
    }

    /// The operations at `keep` (indices into `ops`, ascending) alone.
    fn subset(&self, keep: &[usize]) -> KeyOps {
        let ops = keep.iter().map(|&i| self.ops[i]).collect();
        KeyOps::new(ops, self.writers.len() - 1)
    }
}

/// Checks a whole history.
pub fn check(records: &[Record], opts: &Options) -> Report {
    let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        by_key.entry(r.key.as_str()).or_default().push(i);
    }
    let mut keys: Vec<&str> = by_key.keys().copied().collect();
    keys.sort_unstable();
    let outcomes = on_all_cores(keys.len(), |k| {
        let key = key_ops(records, &by_key[keys[k]]);
        let (outcome, states) = search(&key, opts);
        (key.ops.len(), outcome, states)
    });
    let mut report = Report {
        verdict: Verdict::Ok,
        operations: records.len(),
        checked: 0,
        keys: keys.len(),
        keys_undecided: 0,
        states: 0,
        violation: None,
    };
    for (key, (checked, outcome, states)) in keys.iter().zip(outcomes) {
        report.checked += checked;
        report.states += states;
        match outcome {
            Search::Found => {}
            Search::GaveUp => report.keys_undecided += 1,
            Search::Stuck(_) => {
                if report.violation.is_none() {
                    let ops = key_ops(records, &by_key[key]);
                    report.violation = Some(counterexample(records, key, &ops, opts));
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

/// `f(0..n)`, computed on every core (keys are independent), in order.
fn on_all_cores<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |c| c.get())
        .min(n);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = f(i);
                if let Ok(mut out) = out.lock() {
                    out[i] = Some(r);
                }
            });
        }
    });
    out.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// The constraining operations of one key, sorted by invocation.
fn key_ops(records: &[Record], idx: &[usize]) -> KeyOps {
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
    KeyOps::new(ops, values.len())
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

fn initial(opts: &Options) -> Val {
    match opts.initial {
        Initial::Any => ANY,
        Initial::Absent => ABSENT,
    }
}

fn search(key: &KeyOps, opts: &Options) -> (Search, u64) {
    search_within(key, opts, opts.max_states)
}

fn search_within(key: &KeyOps, opts: &Options, max_states: usize) -> (Search, u64) {
    let n = key.ops.len();
    if let Some(at) = unwritten_read(key, opts) {
        return (Search::Stuck(at), 0);
    }
    if opts.initial == Initial::Absent && zones::applies(&key.ops, &key.writers) {
        let ok = zones::linearizable(&key.ops, &key.writers);
        return (if ok { Search::Found } else { Search::Stuck(0) }, n as u64);
    }
    // Enough for a history that linearizes on the first try, plus the budget for detours.
    let budget = max_states.saturating_add(2 * n);
    let start = State {
        p: 0,
        mask: Window::default(),
        val: initial(opts),
    };
    depth_first(
        start,
        budget,
        |s| s.p,
        |s| s.p == n,
        |s, out| successors(key, s, out),
    )
}

/// The first answered read whose value no operation invoked before the read
/// returned may have written (and that is not the initial value): no order can
/// place it, whatever the rest does.
fn unwritten_read(key: &KeyOps, opts: &Options) -> Option<usize> {
    if opts.initial == Initial::Any {
        return None;
    }
    key.ops.iter().position(|r| match r.kind {
        Kind::Read(want) => {
            want != ABSENT
                && !key.writers[want as usize]
                    .iter()
                    .any(|&j| key.ops[j].invoke <= r.ret)
        }
        _ => false,
    })
}

/// The states reachable from `s` by placing one operation, best first (the
/// operation that must be placed soonest, i.e. returns earliest, first).
/// Returns false when the concurrency exceeds the window.
fn successors(key: &KeyOps, s: &State, out: &mut Vec<State>) -> bool {
    let ops = &key.ops;
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
    let mut cands: Vec<(u64, usize)> = Vec::new();
    for (i, o) in ops.iter().enumerate().skip(s.p) {
        if o.invoke > min_ret {
            break;
        }
        let off = i - s.p;
        if off >= WINDOW {
            return false;
        }
        if s.mask.has(off) {
            continue;
        }
        // A placeable operation that reads the current value and changes
        // nothing can go first in any order that works: place it alone.
        if !o.optional && o.kind.keeps(s.val) {
            out.push(
                State {
                    p: s.p,
                    mask: s.mask.with(off),
                    val: s.val,
                }
                .normalized(),
            );
            return true;
        }
        if let Kind::Read(want) = o.kind {
            if s.val != ANY && !producible(key, s, want, o.ret) {
                return true; // this read can never be placed from here
            }
        }
        cands.push((o.ret, off));
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

/// Whether some unplaced operation invoked before `by` may still write `want`.
fn producible(key: &KeyOps, s: &State, want: Val, by: u64) -> bool {
    key.writers[want as usize]
        .iter()
        .any(|&j| j >= s.p && !s.mask.has(j - s.p) && key.ops[j].invoke <= by)
}

/// The violation on `key`, shrunk to a small witness.
fn counterexample(records: &[Record], key: &str, ops: &KeyOps, opts: &Options) -> Counterexample {
    let (keep, minimal) = shrink(ops, opts);
    let shown: Vec<Record> = keep
        .iter()
        .map(|&i| records[ops.ops[i].rec].clone())
        .collect();
    if let [lone] = shown.as_slice() {
        return Counterexample {
            key: key.to_string(),
            explanation: format!(
                "on key {key:?}, client {} seq {} read a value that no operation wrote before the read returned (the key had {} operations in all)",
                lone.client,
                lone.seq,
                ops.ops.len()
            ),
            operations: shown,
        };
    }
    let explanation = format!(
        "the {} operations below on key {key:?} cannot be linearized: no order of them respects real time and register semantics{}; the key had {} operations in all",
        shown.len(),
        if minimal {
            " (removing any one that is not the only possible source of a value read makes them linearizable)"
        } else {
            " (the shrinking stopped at its budget; a smaller witness may exist)"
        },
        ops.ops.len(),
    );
    Counterexample {
        key: key.to_string(),
        explanation,
        operations: shown,
    }
}

/// Search states the shrinking of one counterexample may spend in all.
const SHRINK_BUDGET: u64 = 20_000_000;
/// Search states one trial of the shrinking may spend.
const TRIAL_STATES: usize = 200_000;

/// A small subset of the key's operations that still cannot be linearized,
/// as indices into `key.ops`, and whether it is minimal (no single removable
/// operation can go).
///
/// Removing an operation is sound (a linearizable history stays
/// linearizable) for reads, and for writes whose value no kept operation
/// reads or expects: in any valid order of the whole, each kept read still
/// follows the same last write. A compare-and-swap that may have failed reads
/// "anything but", so while one is kept, no write is removed. Removal goes in
/// halving chunks (delta debugging), then one by one.
fn shrink(key: &KeyOps, opts: &Options) -> (Vec<usize>, bool) {
    let mut keep: Vec<usize> = (0..key.ops.len()).collect();
    let mut spent = 0u64;
    let mut chunk = (keep.len() / 2).max(1);
    loop {
        let mut changed = false;
        let mut at = 0;
        while at < keep.len() {
            if spent > SHRINK_BUDGET {
                return (keep, false);
            }
            let drop: Vec<usize> = keep[at..(at + chunk).min(keep.len())].to_vec();
            let trial = removable(key, &keep, &drop);
            if trial.len() < keep.len() {
                let (outcome, states) = search_within(&key.subset(&trial), opts, TRIAL_STATES);
                spent += states;
                if matches!(outcome, Search::Stuck(_)) {
                    keep = trial;
                    changed = true;
                    continue; // the same position now holds the next operations
                }
            }
            at += chunk;
        }
        if !changed {
            if chunk == 1 {
                return (keep, true);
            }
            chunk = (chunk / 2).max(1);
        }
    }
}

/// `keep` without those of `drop` whose removal is sound (see [`shrink`]).
fn removable(key: &KeyOps, keep: &[usize], drop: &[usize]) -> Vec<usize> {
    let mut gone: Vec<usize> = drop.to_vec();
    loop {
        let rest: Vec<usize> = keep.iter().copied().filter(|i| !gone.contains(i)).collect();
        let blocks_writes = rest.iter().any(|&i| match key.ops[i].kind {
            Kind::Cas { swapped, .. } => swapped != Some(true),
            _ => false,
        });
        let referenced = |v: Val| {
            rest.iter().any(|&i| match key.ops[i].kind {
                Kind::Read(w) => w == v,
                Kind::Cas { expected, .. } => expected == v,
                _ => false,
            })
        };
        let before = gone.len();
        gone.retain(|&i| match key.ops[i].kind.may_write() {
            None => true,
            Some(v) => !blocks_writes && !referenced(v),
        });
        if gone.len() == before {
            return rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: Kind, invoke: u64, ret: u64) -> Op {
        Op {
            kind,
            invoke,
            ret,
            optional: false,
            rec: invoke as usize,
        }
    }

    #[test]
    fn a_write_some_kept_read_saw_is_never_removed() {
        // put 1, put 2, get 1 (stale): the witness is all three, since the
        // read of 1 needs its write and the overwrite is what makes it stale.
        let ops = vec![
            op(Kind::Write(1), 0, 1),
            op(Kind::Write(2), 2, 3),
            op(Kind::Read(1), 4, 5),
            op(Kind::Read(2), 6, 7),
            op(Kind::Write(3), 8, 9),
        ];
        let key = KeyOps::new(ops, 3);
        let (keep, minimal) = shrink(&key, &Options::default());
        assert!(minimal);
        assert_eq!(keep, vec![0, 1, 2]);
        assert_eq!(
            removable(&key, &keep, &[0]),
            keep,
            "the read's source stays"
        );
    }
}
