//! Multi-dispatch linearizability (MDL) of a key-value history: a black-box
//! search over the recorded operations only.
//!
//! A client may have several operations in flight; each record names its chain
//! predecessor (`pred`, see [`Record`]). A history is MDL when the operations
//! that took effect can be put in one order that (1) obeys the key-value
//! semantics (`put`/`delete` write, `get` reads, `cas` compares and writes, as
//! in [`crate::linear`]), (2) puts every operation after its chain predecessor,
//! (3) respects real time (an operation that returned before another was
//! invoked comes first), and (4) keeps failures suffix-closed: an operation
//! whose chain predecessor never took effect did not take effect either.
//!
//! # The search
//!
//! Pre-checks first: every `pred` must name an operation of the same client
//! that is in the history and was not invoked after its successor, the links
//! must not loop, and no `ok` operation may have a `fail` operation among its
//! chain ancestors. Failed operations, and the chain successors of failed
//! operations (which are then all unanswered), can never be placed and leave
//! the search.
//!
//! The search is Wing and Gong's, memoised on (operations done, store state)
//! as in [`crate::linear`], with one more rule: an operation may be placed only
//! once its chain predecessor is. An unanswered operation may be placed after
//! its invocation or left out; leaving it out leaves out its whole chain
//! suffix (so it is allowed only when no `ok` operation follows it in its
//! chain). `fail` operations are never placed and every `ok` operation must be;
//! the search succeeds once every `ok` operation is placed. Leaving an
//! operation out constrains nothing else, so the search only ever leaves out
//! the earliest operation not done, when it has to move past it.
//!
//! MDL is not local, so keys cannot be checked one by one: a chain spanning two
//! keys ties their orders together. Keys are therefore grouped into components
//! (union-find, joining the keys of an operation and of its chain
//! predecessor) and each component, with every operation on its keys, is
//! searched on its own. That is sound: across components only real-time order
//! constrains, and orders that each respect real time always combine (the
//! argument that makes plain linearizability local). Keys that only
//! single-dispatch operations touch stay components of their own.
//!
//! # Representation
//!
//! A component's operations are sorted by invocation (chain predecessors first
//! on ties), so the done set is a prefix plus a window of 512 operations after
//! it, as in [`crate::linear`]: with modest concurrency the window never fills
//! and long components cost little per operation. The store state is one value
//! per key of the component; vectors of values are interned, so a search state
//! is a small fixed-size tuple (prefix length, window bits, id of the values)
//! whatever the number of keys, and each (values, key, new value) step is
//! computed once.
//!
//! A component joins many keys, and a wrong choice on one key would otherwise
//! be retried under every order of the others, so the search cuts early:
//!
//! - an unanswered `put` or `delete` whose value no answered `get` saw, on a
//!   key without `cas`, that no chain continues, is left out up front (it
//!   cannot be told from one that never took effect);
//! - a placeable operation that cannot change the store and is accepted as is
//!   (a `get` of the current value, a `cas` that did not swap, an unanswered
//!   `get`) is placed at once: placing it early never hurts;
//! - a state is abandoned when some `ok` read can no longer be satisfied: its
//!   value was overwritten and nothing left can write it again; or the key
//!   holds its value for the last time but something that must come before
//!   the read (one of its chain ancestors, or an operation that returned
//!   before the read or such an ancestor was invoked) would change it; or it
//!   is placeable now and no write of its value invoked in time is left.
//!
//! With these, components of a few hundred operations from 16 concurrent
//! clients on 8 keys take milliseconds; with tens of operations in flight at
//! once the search may run out of budget.
//!
//! The search gives up on a component (verdict [`Verdict::Undecided`]) when it
//! explores more than [`Options::max_states`] states beyond two per operation.
//! A branch that would need a wider window (more than 512 operations between
//! the earliest one not done and the last one that may go next, or an
//! unanswered operation to be left out with chain successors that far ahead)
//! is abandoned; the component is then undecided unless another branch
//! succeeds. An unanswered operation that is never seen costs a short detour:
//! the search may first try to place it late, meet the window limit, and back
//! up to leave it out.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::history::{Outcome, Record};
use crate::linear::{Counterexample, Initial, Options, Report, Verdict};
use crate::register::{Kind, Val, Values, ABSENT, ANY};
use crate::search::{depth_first, Search, Window, WINDOW};

// ---------------------------------------------------------------------------
// Chains, shared with the white-box checker.

/// The chain links of a history, by record index.
pub(crate) struct Chains {
    /// Index of each record's chain predecessor.
    pub(crate) pred: Vec<Option<usize>>,
    /// Number of chain ancestors of each record.
    pub(crate) depth: Vec<u32>,
    /// Record index of each (client, seq).
    pub(crate) by_id: HashMap<(u64, u64), usize>,
    /// (client, seq) pairs that more than one record has.
    pub(crate) ambiguous: HashSet<(u64, u64)>,
}

/// `client C seq S`, for explanations.
pub(crate) fn name(r: &Record) -> String {
    format!("client {} seq {}", r.client, r.seq)
}

/// The distinct keys of some records, sorted and joined by commas (at most 32
/// shown).
pub(crate) fn keys_of<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut keys: Vec<&str> = keys.into_iter().collect();
    keys.sort_unstable();
    keys.dedup();
    const SHOWN: usize = 32;
    let mut s = keys
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    if keys.len() > SHOWN {
        s.push_str(&format!(",... ({} keys)", keys.len()));
    }
    s
}

/// A counterexample made of some records of the history.
pub(crate) fn counterexample(records: &[Record], idx: &[usize], why: String) -> Counterexample {
    Counterexample {
        key: keys_of(idx.iter().map(|&i| records[i].key.as_str())),
        explanation: why,
        operations: idx.iter().map(|&i| records[i].clone()).collect(),
    }
}

/// A report of a violation found before any search.
pub(crate) fn violation(records: &[Record], cx: Counterexample) -> Report {
    Report {
        verdict: Verdict::Violation,
        operations: records.len(),
        checked: 0,
        keys: 0,
        keys_undecided: 0,
        states: 0,
        violation: Some(cx),
    }
}

/// Resolves every record's `pred`, rejecting links that are not a forest of
/// issue-ordered chains.
pub(crate) fn chains(records: &[Record]) -> Result<Chains, Counterexample> {
    let n = records.len();
    let mut by_id = HashMap::with_capacity(n);
    let mut ambiguous = HashSet::new();
    for (i, r) in records.iter().enumerate() {
        if by_id.insert((r.client, r.seq), i).is_some() {
            ambiguous.insert((r.client, r.seq));
        }
    }
    let malformed = |idx: &[usize], what: String| {
        counterexample(records, idx, format!("malformed history: {what}"))
    };
    let mut pred = vec![None; n];
    for (i, r) in records.iter().enumerate() {
        let Some(p) = r.pred else { continue };
        let id = (r.client, p);
        if ambiguous.contains(&id) {
            let dups: Vec<usize> = std::iter::once(i)
                .chain((0..n).filter(|&j| (records[j].client, records[j].seq) == id))
                .collect();
            return Err(malformed(
                &dups,
                format!(
                    "{} names seq {p} as its chain predecessor, but client {} has several records with seq {p}",
                    name(r),
                    r.client
                ),
            ));
        }
        let Some(&j) = by_id.get(&id) else {
            return Err(malformed(
                &[i],
                format!(
                    "{} names seq {p} as its chain predecessor, but the history has no such operation of client {}",
                    name(r),
                    r.client
                ),
            ));
        };
        if j == i {
            return Err(malformed(
                &[i],
                format!("{} names itself as its chain predecessor", name(r)),
            ));
        }
        if records[j].invoke_ns > r.invoke_ns {
            return Err(malformed(
                &[j, i],
                format!(
                    "{} names {} as its chain predecessor, which was invoked later ({} ns after it)",
                    name(r),
                    name(&records[j]),
                    records[j].invoke_ns - r.invoke_ns
                ),
            ));
        }
        pred[i] = Some(j);
    }
    // Depths, walking each chain up once; a walk that meets itself is a loop.
    const UNSET: u32 = u32::MAX;
    let mut depth = vec![UNSET; n];
    let mut on_path = vec![false; n];
    let mut path = Vec::new();
    for start in 0..n {
        let mut v = start;
        let mut d = loop {
            if depth[v] != UNSET {
                break depth[v].saturating_add(1);
            }
            if on_path[v] {
                let from = path.iter().position(|&x| x == v).unwrap_or(0);
                let cycle: Vec<usize> = path[from..].to_vec();
                return Err(malformed(
                    &cycle,
                    format!(
                        "the chain predecessors of {} loop back to it",
                        name(&records[v])
                    ),
                ));
            }
            on_path[v] = true;
            path.push(v);
            match pred[v] {
                None => break 0,
                Some(u) => v = u,
            }
        };
        while let Some(x) = path.pop() {
            on_path[x] = false;
            depth[x] = d;
            d = d.saturating_add(1);
        }
    }
    Ok(Chains {
        pred,
        depth,
        by_id,
        ambiguous,
    })
}

// ---------------------------------------------------------------------------
// The black-box check.

/// Checks a history for multi-dispatch linearizability, searching for an order
/// of the operations that took effect (see the [module documentation](self)).
///
/// The report's `keys` counts components (groups of keys that some client's
/// chain ties together, each searched on its own; a key no chain ties to another
/// is a component by itself) and `keys_undecided` the components the search
/// gave up on. `checked` counts the operations that entered a search (all but
/// failed ones, the chain successors of failed ones, and unanswered writes no
/// one can have seen). A counterexample's `key` lists the keys of its
/// component (or of its operations, for a malformed history or a failure that
/// is not suffix-closed), joined by commas.
pub fn check_mdl(records: &[Record], opts: &Options) -> Report {
    check_with(records, opts, true)
}

/// [`check_mdl`], with the reductions and prunings of the search turned off
/// when `prune` is false (to test them against the plain search).
fn check_with(records: &[Record], opts: &Options, prune: bool) -> Report {
    let chains = match chains(records) {
        Ok(c) => c,
        Err(cx) => return violation(records, cx),
    };
    let n = records.len();
    // Suffix closure: the nearest failed chain ancestor of every record.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| chains.depth[i]);
    let mut failed_ancestor: Vec<Option<usize>> = vec![None; n];
    for &i in &order {
        if let Some(j) = chains.pred[i] {
            failed_ancestor[i] = if records[j].outcome == Outcome::Fail {
                Some(j)
            } else {
                failed_ancestor[j]
            };
        }
    }
    for (i, r) in records.iter().enumerate() {
        let (Outcome::Ok, Some(f)) = (r.outcome, failed_ancestor[i]) else {
            continue;
        };
        let mut path = vec![i];
        let mut v = i;
        while let Some(u) = chains.pred[v] {
            path.push(u);
            if u == f {
                break;
            }
            v = u;
        }
        path.reverse();
        let why = format!(
            "{} on key {:?} was answered ok, but {} on key {:?}, earlier in its chain, failed: the successors of a failed operation must fail too (failures are suffix-closed)",
            name(r),
            r.key,
            name(&records[f]),
            records[f].key
        );
        return violation(records, counterexample(records, &path, why));
    }
    let doomed = |i: usize| records[i].outcome == Outcome::Fail || failed_ancestor[i].is_some();

    // Components of keys.
    let mut key_ids: HashMap<&str, usize> = HashMap::new();
    let key_of: Vec<usize> = records
        .iter()
        .map(|r| {
            let next = key_ids.len();
            *key_ids.entry(r.key.as_str()).or_insert(next)
        })
        .collect();
    let mut uf = UnionFind::new(key_ids.len());
    for i in 0..n {
        if let (false, Some(j)) = (doomed(i), chains.pred[i]) {
            uf.union(key_of[i], key_of[j]);
        }
    }
    let mut comp_of_root: HashMap<usize, usize> = HashMap::new();
    let mut comps: Vec<(Vec<&str>, Vec<usize>)> = Vec::new();
    let mut names: Vec<(&str, usize)> = key_ids.iter().map(|(k, &i)| (*k, i)).collect();
    names.sort_unstable();
    for &(k, id) in &names {
        let root = uf.find(id);
        let c = *comp_of_root.entry(root).or_insert_with(|| {
            comps.push((Vec::new(), Vec::new()));
            comps.len() - 1
        });
        comps[c].0.push(k);
    }
    for i in 0..n {
        if !doomed(i) {
            let c = comp_of_root[&uf.find(key_of[i])];
            comps[c].1.push(i);
        }
    }

    let mut report = Report {
        verdict: Verdict::Ok,
        operations: n,
        checked: 0,
        keys: comps.len(),
        keys_undecided: 0,
        states: 0,
        violation: None,
    };
    for (keys, idx) in &comps {
        if idx.is_empty() {
            continue;
        }
        let comp = Component::new(records, &chains, keys, idx, opts.initial, prune);
        report.checked += comp.ops.len();
        let (outcome, states) = comp.search(opts.max_states);
        report.states += states;
        match outcome {
            Search::Found => {}
            Search::GaveUp => report.keys_undecided += 1,
            Search::Stuck(at) => {
                if report.violation.is_none() {
                    report.violation = Some(comp.counterexample(records, at));
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

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind((0..n).collect())
    }
    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.0[a.max(b)] = a.min(b);
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Op {
    kind: Kind,
    /// Index of its key in the component.
    key: usize,
    invoke: u64,
    /// Return time; `u64::MAX` without an answer.
    ret: u64,
    /// Unanswered: may be placed, or left out with its chain suffix.
    optional: bool,
    /// Index of its chain predecessor in the component (always smaller).
    pred: Option<usize>,
    /// Index of the record in the history.
    rec: usize,
}

/// Value vectors, interned so that a search state names one by a number.
struct Vals {
    table: Vec<Rc<[Val]>>,
    index: HashMap<Rc<[Val]>, u32>,
    step: HashMap<(u32, usize, Val), u32>,
}

impl Vals {
    fn new(initial: Vec<Val>) -> Vals {
        let first: Rc<[Val]> = initial.into();
        Vals {
            table: vec![first.clone()],
            index: HashMap::from([(first, 0)]),
            step: HashMap::new(),
        }
    }

    fn get(&self, id: u32) -> Rc<[Val]> {
        self.table[id as usize].clone()
    }

    /// The id of vector `id` with `key` set to `v`.
    fn set(&mut self, id: u32, key: usize, v: Val) -> u32 {
        let cur = &self.table[id as usize];
        if cur[key] == v {
            return id;
        }
        if let Some(&t) = self.step.get(&(id, key, v)) {
            return t;
        }
        let mut next = cur.to_vec();
        next[key] = v;
        let t = match self.index.get(&next[..]) {
            Some(&t) => t,
            None => {
                let t = self.table.len() as u32;
                let rc: Rc<[Val]> = next.into();
                self.table.push(rc.clone());
                self.index.insert(rc, t);
                t
            }
        };
        self.step.insert((id, key, v), t);
        t
    }
}

/// A search state: operations `..p` done, plus those whose bit is set in
/// `mask` (bit `i` = operation `p + i`), and the store (an interned vector).
/// "Done" is placed or left out; an operation left out takes its chain
/// suffix with it, so an operation not done whose predecessor is done knows
/// that the predecessor was placed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct State {
    p: usize,
    mask: Window,
    vals: u32,
}

impl State {
    fn normalized(mut self) -> State {
        self.p += self.mask.take_front();
        self
    }
    fn done(&self, i: usize) -> bool {
        i < self.p || self.mask.has(i - self.p)
    }
}

/// One component: its keys and operations, sorted by invocation.
struct Component<'k> {
    keys: &'k [&'k str],
    ops: Vec<Op>,
    /// Chain successors of each operation.
    children: Vec<Vec<usize>>,
    /// Whether an `ok` operation follows each operation in its chain.
    ok_below: Vec<bool>,
    /// The first `ok` operation at or after each index (`n` if none).
    next_ok: Vec<usize>,
    /// For each (key, value) that some operation needs or writes: the `ok`
    /// operations that need the key to hold it (reads, and `cas` that swapped),
    /// and the operations that may write it, both in index order.
    uses: HashMap<(usize, Val), Uses>,
    /// For each key, its `ok` operations in index order.
    answered: Vec<Vec<usize>>,
    initial: Initial,
    /// Whether to use the reductions and prunings (always, but in tests).
    prune: bool,
}

#[derive(Default)]
struct Uses {
    readers: Vec<usize>,
    writers: Vec<usize>,
}

impl<'k> Component<'k> {
    fn new<'r>(
        records: &'r [Record],
        chains: &Chains,
        keys: &'k [&'k str],
        idx: &[usize],
        initial: Initial,
        prune: bool,
    ) -> Component<'k> {
        let key_index: HashMap<&str, usize> =
            keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let mut values = Values::default();
        // An unanswered put or delete whose value no answered get saw, on a key
        // without cas, that no chain continues, cannot be told from one that
        // never took effect: leave it out up front.
        let mut seen_values: HashSet<(&str, Option<&str>)> = HashSet::new();
        let mut cas_keys: HashSet<&str> = HashSet::new();
        let mut continued: HashSet<usize> = HashSet::new();
        for &i in idx {
            let r = &records[i];
            match (r.op.as_str(), r.outcome) {
                ("get", Outcome::Ok) => {
                    seen_values.insert((&r.key, r.value.as_deref()));
                }
                ("cas", _) => {
                    cas_keys.insert(&r.key);
                }
                _ => {}
            }
            if let Some(j) = chains.pred[i] {
                continued.insert(j);
            }
        }
        let invisible = |i: usize| {
            let r = &records[i];
            let written = match r.op.as_str() {
                "put" => r.value.as_deref(),
                "delete" => None,
                _ => return false,
            };
            prune
                && r.outcome == Outcome::Unknown
                && !cas_keys.contains(r.key.as_str())
                && !continued.contains(&i)
                && !seen_values.contains(&(r.key.as_str(), written))
        };
        let mut sorted: Vec<usize> = idx.iter().copied().filter(|&i| !invisible(i)).collect();
        sorted.sort_by_key(|&i| (records[i].invoke_ns, chains.depth[i], i));
        let local: HashMap<usize, usize> =
            sorted.iter().enumerate().map(|(l, &i)| (i, l)).collect();
        let mut ops = Vec::with_capacity(sorted.len());
        for &i in &sorted {
            let r = &records[i];
            let optional = r.outcome != Outcome::Ok;
            let kind = Kind::of(r, optional, &mut values);
            ops.push(Op {
                kind,
                key: key_index.get(r.key.as_str()).copied().unwrap_or(0),
                invoke: r.invoke_ns,
                ret: if optional {
                    u64::MAX
                } else {
                    r.return_ns.unwrap_or(u64::MAX)
                },
                optional,
                pred: chains.pred[i].and_then(|j| local.get(&j).copied()),
                rec: i,
            });
        }
        let n = ops.len();
        let mut children = vec![Vec::new(); n];
        for (l, o) in ops.iter().enumerate() {
            if let Some(p) = o.pred {
                children[p].push(l);
            }
        }
        let mut ok_below = vec![false; n];
        for l in (0..n).rev() {
            if let Some(p) = ops[l].pred {
                ok_below[p] |= !ops[l].optional || ok_below[l];
            }
        }
        let mut next_ok = vec![n; n + 1];
        for l in (0..n).rev() {
            next_ok[l] = if ops[l].optional { next_ok[l + 1] } else { l };
        }
        let mut uses: HashMap<(usize, Val), Uses> = HashMap::new();
        for (l, o) in ops.iter().enumerate() {
            match o.kind {
                Kind::Read(v) if !o.optional => uses.entry((o.key, v)).or_default().readers.push(l),
                Kind::Write(v) => uses.entry((o.key, v)).or_default().writers.push(l),
                Kind::Cas {
                    expected,
                    new,
                    swapped,
                } => {
                    if swapped == Some(true) && !o.optional {
                        uses.entry((o.key, expected)).or_default().readers.push(l);
                    }
                    if swapped != Some(false) {
                        uses.entry((o.key, new)).or_default().writers.push(l);
                    }
                }
                Kind::Read(_) | Kind::Nop => {}
            }
        }
        let mut answered = vec![Vec::new(); keys.len()];
        for (l, o) in ops.iter().enumerate() {
            if !o.optional {
                answered[o.key].push(l);
            }
        }
        Component {
            keys,
            ops,
            children,
            ok_below,
            next_ok,
            uses,
            answered,
            initial,
            prune,
        }
    }

    fn search(&self, max_states: usize) -> (Search, u64) {
        let n = self.ops.len();
        let budget = max_states.saturating_add(2 * n);
        let start_val = if self.initial == Initial::Any {
            ANY
        } else {
            ABSENT
        };
        let mut vals = Vals::new(vec![start_val; self.keys.len()]);
        let start = State {
            p: 0,
            mask: Window::default(),
            vals: 0,
        };
        depth_first(
            start,
            budget,
            |s| s.p,
            |s| self.finished(s),
            |s, out| self.successors(s, &mut vals, out),
        )
    }

    /// Whether every `ok` operation is done (the others are left out).
    fn finished(&self, s: &State) -> bool {
        let n = self.ops.len();
        let mut j = self.next_ok[s.p.min(n)];
        while j < n {
            if !s.done(j) {
                return false;
            }
            j = self.next_ok[j + 1];
        }
        true
    }

    /// The states reachable from `s` by placing one operation (best first: the
    /// one that must be placed soonest), or by leaving out the first
    /// operation not done. Returns false when the concurrency exceeds the window.
    fn successors(&self, s: &State, vals: &mut Vals, out: &mut Vec<State>) -> bool {
        out.clear();
        let ops = &self.ops;
        // The earliest return among answered operations not done bounds what may go next.
        let mut min_ret = u64::MAX;
        for (i, o) in ops.iter().enumerate().skip(s.p) {
            if o.invoke > min_ret {
                break;
            }
            if !o.optional && !s.done(i) {
                min_ret = min_ret.min(o.ret);
            }
        }
        let cur = vals.get(s.vals);
        if self.prune && self.dead_end(s, min_ret, &cur) {
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
            if s.mask.has(off) || o.pred.is_some_and(|p| !s.done(p)) {
                continue;
            }
            cands.push((o.ret, off));
        }
        let mut outcomes = Vec::new();
        // An operation that cannot change the store and is accepted as is goes
        // first, alone: any order that places it later also works with it here.
        for &(_, off) in cands.iter().filter(|_| self.prune) {
            let o = &ops[s.p + off];
            if !o.kind.read_only() {
                continue;
            }
            outcomes.clear();
            o.kind.apply(cur[o.key], &mut outcomes);
            if outcomes.first() == Some(&cur[o.key]) {
                out.push(
                    State {
                        mask: s.mask.with(off),
                        ..*s
                    }
                    .normalized(),
                );
                return true;
            }
        }
        cands.sort_unstable();
        for &(_, off) in &cands {
            let o = &ops[s.p + off];
            outcomes.clear();
            o.kind.apply(cur[o.key], &mut outcomes);
            for &v in &outcomes {
                let t = State {
                    p: s.p,
                    mask: s.mask.with(off),
                    vals: vals.set(s.vals, o.key, v),
                }
                .normalized();
                if v == cur[o.key]
                    || !self.prune
                    || !(self.lost(&t, o.key, cur[o.key]) || self.overwritten(&t, o.key, v))
                {
                    out.push(t);
                }
            }
        }
        // Leave out the first operation not done, with its chain suffix.
        if s.p < ops.len() && ops[s.p].optional && !self.ok_below[s.p] {
            let mut mask = s.mask.with(0);
            let mut todo = vec![s.p];
            let mut fits = true;
            while let Some(v) = todo.pop() {
                for &c in &self.children[v] {
                    if c - s.p >= WINDOW {
                        fits = false;
                        break;
                    }
                    mask = mask.with(c - s.p);
                    todo.push(c);
                }
            }
            if fits {
                out.push(State { mask, ..*s }.normalized());
            }
        }
        true
    }

    /// Whether, in state `s`, key `key` no longer holds `value` and never will
    /// again although some `ok` operation not done needs it: no operation not
    /// done can write it.
    fn lost(&self, s: &State, key: usize, value: Val) -> bool {
        if value == ANY {
            return false;
        }
        let Some(u) = self.uses.get(&(key, value)) else {
            return false;
        };
        let pending = |list: &[usize]| {
            let from = list.partition_point(|&i| i < s.p);
            list[from..].iter().any(|&i| !s.done(i))
        };
        pending(&u.readers) && !pending(&u.writers)
    }

    /// Whether, in state `s` where key `key` holds `value` and no operation not
    /// done can write it again, some `ok` reader of it not done can never be
    /// placed. The key must keep `value` from now until that reader, so every
    /// operation on the key that has to come before the reader must accept
    /// the value and leave it: the reader's chain ancestors not done, and the
    /// `ok` operations that returned before it or one of those ancestors was
    /// invoked. (The reader itself, a `cas`, may change it.)
    fn overwritten(&self, s: &State, key: usize, value: Val) -> bool {
        if value == ANY {
            return false;
        }
        let Some(u) = self.uses.get(&(key, value)) else {
            return false;
        };
        let from = u.writers.partition_point(|&i| i < s.p);
        if u.writers[from..].iter().any(|&i| !s.done(i)) {
            return false;
        }
        let keeps = |kind: &Kind| {
            let mut out = Vec::with_capacity(2);
            kind.apply(value, &mut out);
            out.contains(&value)
        };
        // The latest invocation among the readers and their chain ancestors.
        let mut latest = None;
        let from = u.readers.partition_point(|&i| i < s.p);
        // A bounded look: the pruning is an optimisation.
        for &r in u.readers[from..].iter().filter(|&&i| !s.done(i)).take(64) {
            let mut a = Some(r);
            while let Some(x) = a.filter(|&x| !s.done(x)) {
                let o = &self.ops[x];
                if x != r && o.key == key && !keeps(&o.kind) {
                    return true;
                }
                latest = latest.max(Some(o.invoke));
                a = o.pred;
            }
        }
        let Some(latest) = latest else {
            return false;
        };
        let list = &self.answered[key];
        let from = list.partition_point(|&i| i < s.p);
        list[from..]
            .iter()
            .take_while(|&&w| self.ops[w].invoke < latest)
            .any(|&w| !s.done(w) && self.ops[w].ret < latest && !keeps(&self.ops[w].kind))
    }

    /// Whether some placeable read can never be satisfied from state `s`: it
    /// needs a value its key does not hold, and no write not yet done that could
    /// still come before it (invoked before the read returned) writes it.
    fn dead_end(&self, s: &State, min_ret: u64, cur: &[Val]) -> bool {
        let ops = &self.ops;
        for (i, r) in ops.iter().enumerate().skip(s.p) {
            if r.invoke > min_ret {
                break;
            }
            let Kind::Read(want) = r.kind else { continue };
            let have = cur[r.key];
            if have == ANY || want == have || s.done(i) {
                continue;
            }
            let producible = ops
                .iter()
                .enumerate()
                .skip(s.p)
                .take_while(|(_, w)| w.invoke <= r.ret)
                .any(|(j, w)| {
                    w.key == r.key
                        && !s.done(j)
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

    fn counterexample(&self, records: &[Record], at: usize) -> Counterexample {
        let n = self.ops.len();
        let at = at.min(n.saturating_sub(1));
        let from = at.saturating_sub(4);
        let to = (at + 8).min(n);
        let r = &records[self.ops[at].rec];
        let explanation = format!(
            "no order of the {n} operations on keys {} that respects real time, each client's issue order (every operation after its chain predecessor) and key-value semantics gets past operation {} of them ({} on key {:?}); shown: operations {from}..{to} in invocation order",
            keys_of(self.keys.iter().copied()),
            at + 1,
            name(r),
            r.key,
        );
        Counterexample {
            key: keys_of(self.keys.iter().copied()),
            explanation,
            operations: self.ops[from..to]
                .iter()
                .map(|o| records[o.rec].clone())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no dependency needed).
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// A history of chained operations by 3 clients on 3 keys, with answers
    /// from an execution at a point inside each interval (after the chain
    /// predecessor), then sometimes one answer or outcome changed.
    fn history(rng: &mut Rng, len: usize) -> Vec<Record> {
        let mut h: Vec<Record> = Vec::new();
        let mut points: Vec<(u64, usize)> = Vec::new();
        let mut took_effect = Vec::new();
        let mut last: [Option<(u64, u64, bool)>; 3] = [None; 3]; // (seq, point, took effect)
        let mut clock = [0u64; 3];
        for _ in 0..len {
            let c = rng.below(3) as usize;
            let seq = h.iter().filter(|r| r.client == c as u64).count() as u64 + 1;
            clock[c] += rng.below(6);
            let invoke = clock[c];
            let chained = last[c].filter(|_| rng.below(3) > 0);
            let mut point = invoke + rng.below(8);
            let mut alive = true;
            if let Some((_, p, eff)) = chained {
                point = point.max(p + 1);
                alive = eff;
            }
            let ret = point + 1 + rng.below(6);
            let key = format!("k{}", rng.below(3));
            let v = format!("v{}", rng.below(4));
            let (op, value, expected) = match rng.below(6) {
                0 | 1 => ("put", Some(v), None),
                2 => ("delete", None, None),
                3 => ("cas", Some(v), Some(format!("v{}", rng.below(4)))),
                _ => ("get", None, None),
            };
            let mut outcome = match rng.below(8) {
                0 => Outcome::Fail,
                1 => Outcome::Unknown,
                _ => Outcome::Ok,
            };
            if !alive && outcome == Outcome::Ok {
                outcome = Outcome::Fail;
            }
            let effect = alive
                && match outcome {
                    Outcome::Ok => true,
                    Outcome::Fail => false,
                    Outcome::Unknown => rng.below(2) == 0,
                };
            h.push(Record {
                client: c as u64,
                seq,
                pred: chained.map(|(s, _, _)| s),
                op: op.into(),
                key,
                value,
                expected: expected.filter(|_| rng.below(4) > 0),
                swapped: None,
                invoke_ns: invoke,
                return_ns: (outcome != Outcome::Unknown).then_some(ret),
                outcome,
            });
            points.push((point, h.len() - 1));
            took_effect.push(effect);
            last[c] = Some((seq, point, effect));
        }
        points.sort_unstable();
        let mut store: HashMap<String, Option<String>> = HashMap::new();
        for (_, i) in points {
            if !took_effect[i] {
                continue;
            }
            let r = &mut h[i];
            let cur = store.get(&r.key).cloned().flatten();
            match r.op.as_str() {
                "put" => {
                    store.insert(r.key.clone(), r.value.clone());
                }
                "delete" => {
                    store.insert(r.key.clone(), None);
                }
                "cas" => {
                    let hit = cur == r.expected;
                    if r.outcome == Outcome::Ok {
                        r.swapped = Some(hit);
                    }
                    if hit {
                        store.insert(r.key.clone(), r.value.clone());
                    }
                }
                _ if r.outcome == Outcome::Ok => r.value = cur,
                _ => {}
            }
        }
        if rng.below(2) == 0 {
            let i = rng.below(h.len() as u64) as usize;
            let r = &mut h[i];
            match (r.op.as_str(), rng.below(3)) {
                (_, 0) if r.outcome == Outcome::Fail => r.outcome = Outcome::Ok,
                ("cas", _) => r.swapped = r.swapped.map(|b| !b),
                _ => r.value = Some(format!("v{}", rng.below(4))),
            }
        }
        h
    }

    #[test]
    fn prunings_do_not_change_verdicts() {
        let mut rng = Rng(7);
        let opts = Options {
            max_states: 200_000,
            ..Default::default()
        };
        let mut verdicts = HashMap::new();
        for case in 0..800 {
            let h = history(&mut rng, 8 + case % 21);
            let plain = check_with(&h, &opts, false);
            if plain.verdict == Verdict::Undecided {
                continue;
            }
            let pruned = check_with(&h, &opts, true);
            assert_eq!(pruned.verdict, plain.verdict, "case {case}: {h:#?}");
            *verdicts.entry(format!("{:?}", plain.verdict)).or_insert(0) += 1;
        }
        assert!(verdicts.values().all(|&n| n > 60), "{verdicts:?}");
    }

    #[test]
    fn chains_and_components() {
        let r = |client, seq, pred, key: &str| Record {
            client,
            seq,
            pred,
            op: "get".into(),
            key: key.into(),
            value: None,
            expected: None,
            swapped: None,
            invoke_ns: seq,
            return_ns: Some(seq + 10),
            outcome: Outcome::Ok,
        };
        let h = vec![
            r(1, 1, None, "a"),
            r(1, 2, Some(1), "b"),
            r(1, 3, Some(2), "c"),
            r(2, 1, None, "d"),
            r(2, 2, Some(1), "d"),
            r(1, 4, Some(2), "e"), // a fork: two successors of seq 2
        ];
        let c = chains(&h).unwrap();
        assert_eq!(c.depth, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(c.pred, vec![None, Some(0), Some(1), None, Some(3), Some(1)]);
        let report = check_mdl(&h, &Options::default());
        assert_eq!((report.verdict, report.keys), (Verdict::Ok, 2));
        let mut uf = UnionFind::new(4);
        uf.union(3, 1);
        uf.union(1, 2);
        assert_eq!(uf.find(3), uf.find(2));
        assert_ne!(uf.find(0), uf.find(3));
    }

    #[test]
    fn values_are_interned() {
        let mut v = Vals::new(vec![ABSENT; 3]);
        let a = v.set(0, 1, 5);
        let b = v.set(a, 2, 6);
        let other = v.set(0, 2, 6);
        let c = v.set(other, 1, 5);
        assert_eq!(b, c, "the same vector, reached in another order");
        assert_eq!(v.set(b, 2, 6), b);
        assert_eq!(&*v.get(b), &[ABSENT, 5, 6]);
    }
}
