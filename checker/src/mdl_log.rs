//! White-box multi-dispatch linearizability check, from the servers' executed
//! logs: it scales to long runs, where the black-box search of [`crate::mdl`]
//! cannot.
//!
//! Input: the client history and, for every shard and every replica of it, the
//! (client, seq) of each operation the replica executed, in execution order
//! (no-ops removed). The checks, in order, each reported with an explanation:
//!
//! 1. **Replica agreement**: every replica's sequence is a prefix of the
//!    longest one of its shard, which is taken as the shard's log.
//! 2. **Exactly once, suffix-closed**: every `ok` operation is in exactly one
//!    shard log, once; no `fail` operation is in any; an unanswered operation
//!    is in at most one, at most once; an operation whose chain predecessor is
//!    in no log is in no log either; every logged operation is in the history.
//! 3. **Values**: replaying each shard log on a key-value store whose keys
//!    start absent gives every `ok` `get` the value its client saw, and every
//!    `ok` `cas` the swap result its client saw.
//! 4. **Acyclicity**: shard order (consecutive log entries), issue order (each
//!    logged operation after its chain predecessor) and real time (an
//!    operation that returned before another was invoked comes first) have no
//!    cycle together. Real time is encoded through a chain of barrier nodes,
//!    one per distinct return instant in time order: an operation points to
//!    the barrier of its return, and the latest barrier strictly before an
//!    operation's invocation points to it, so the graph has O(n) edges (built
//!    in O(n log n)). The cycle search is Kahn's algorithm, iterative.
//!
//! When all four hold, any topological order of that graph is an order the
//! definition of MDL asks for: it respects the shard logs (so the replayed
//! values), issue order and real time, and contains exactly the operations
//! that took effect.
//!
//! `noop` and operations the checker does not know leave the store unchanged
//! when replayed.

use std::collections::HashMap;

use crate::history::{Outcome, Record};
use crate::linear::{Counterexample, Report, Verdict};
use crate::mdl::{chains, counterexample, keys_of, name, violation};

/// Checks a history against the logs its servers executed: `logs[shard][replica]`
/// is the sequence of (client, seq) that replica executed, in order, with
/// no-ops already removed (see the [module documentation](self) for the
/// checks).
///
/// The report's `keys` counts shards, `checked` the operations found in the
/// shard logs, and `states` the nodes of the order graph (logged operations
/// plus one barrier per distinct return instant). A counterexample's `key`
/// lists the keys of the operations it shows (for a replica disagreement,
/// `shard N`).
pub fn check_logs(records: &[Record], logs: &[Vec<Vec<(u64, u64)>>]) -> Report {
    let chains = match chains(records) {
        Ok(c) => c,
        Err(cx) => return violation(records, cx),
    };
    let n = records.len();
    let mut report = Report {
        verdict: Verdict::Ok,
        operations: n,
        checked: 0,
        keys: logs.len(),
        keys_undecided: 0,
        states: 0,
        violation: None,
    };
    let found = |report: Report, cx: Counterexample| Report {
        verdict: Verdict::Violation,
        violation: Some(cx),
        ..report
    };
    let ops_of = |ids: &[(u64, u64)]| -> Vec<usize> {
        ids.iter()
            .filter_map(|id| chains.by_id.get(id).copied())
            .collect()
    };
    let id_name = |(c, q): (u64, u64)| format!("client {c} seq {q}");

    // 1. Replicas of a shard agree.
    let mut longest: Vec<&[(u64, u64)]> = Vec::with_capacity(logs.len());
    for (sh, replicas) in logs.iter().enumerate() {
        let Some((best_rep, best)) = replicas.iter().enumerate().max_by_key(|(_, l)| l.len())
        else {
            longest.push(&[]);
            continue;
        };
        for (rep, l) in replicas.iter().enumerate() {
            if let Some(pos) = l.iter().zip(best.iter()).position(|(a, b)| a != b) {
                let (a, b) = (l[pos], best[pos]);
                let mut cx = counterexample(
                    records,
                    &ops_of(&[a, b]),
                    format!(
                        "shard {sh}: replica {rep} executed {} at position {pos}, where replica {best_rep} executed {}: the replicas of a shard must execute the same sequence",
                        id_name(a),
                        id_name(b)
                    ),
                );
                cx.key = format!("shard {sh}");
                return found(report, cx);
            }
        }
        longest.push(best);
    }

    // 2. Exactly once, nothing failed, suffix-closed.
    let mut at: Vec<Option<(usize, usize)>> = vec![None; n];
    let mut present: Vec<usize> = Vec::new();
    for (sh, log) in longest.iter().enumerate() {
        for (pos, &id) in log.iter().enumerate() {
            if chains.ambiguous.contains(&id) {
                let dups: Vec<usize> = (0..n)
                    .filter(|&j| (records[j].client, records[j].seq) == id)
                    .collect();
                let why = format!(
                    "malformed history: shard {sh} executed {} at position {pos}, but the history has several records with that client and seq",
                    id_name(id)
                );
                return found(report, counterexample(records, &dups, why));
            }
            let Some(&i) = chains.by_id.get(&id) else {
                let cx = Counterexample {
                    key: format!("shard {sh}"),
                    explanation: format!(
                        "shard {sh} executed {} at position {pos}, but the history has no such operation",
                        id_name(id)
                    ),
                    operations: Vec::new(),
                };
                return found(report, cx);
            };
            if let Some((sh0, pos0)) = at[i] {
                let why = format!(
                    "{} was executed twice: by shard {sh0} at position {pos0} and by shard {sh} at position {pos}",
                    name(&records[i])
                );
                return found(report, counterexample(records, &[i], why));
            }
            if records[i].outcome == Outcome::Fail {
                let why = format!(
                    "{} failed, but shard {sh} executed it at position {pos}",
                    name(&records[i])
                );
                return found(report, counterexample(records, &[i], why));
            }
            at[i] = Some((sh, pos));
            present.push(i);
        }
    }
    report.checked = present.len();
    if let Some(i) = (0..n).find(|&i| records[i].outcome == Outcome::Ok && at[i].is_none()) {
        let why = format!(
            "{} was answered ok, but no shard log contains it",
            name(&records[i])
        );
        return found(report, counterexample(records, &[i], why));
    }
    for &i in &present {
        if let Some(j) = chains.pred[i].filter(|&j| at[j].is_none()) {
            let (sh, pos) = at[i].unwrap_or_default();
            let why = format!(
                "shard {sh} executed {} at position {pos}, but its chain predecessor {} was never executed: the successors of an operation that did not take effect must not take effect either",
                name(&records[i]),
                name(&records[j])
            );
            return found(report, counterexample(records, &[j, i], why));
        }
    }

    // 3. Replay each shard log.
    for (sh, log) in longest.iter().enumerate() {
        // key -> (value, record that wrote it)
        let mut store: HashMap<&str, (Option<&str>, usize)> = HashMap::new();
        for (pos, id) in log.iter().enumerate() {
            let Some(&i) = chains.by_id.get(id) else {
                continue;
            };
            let r = &records[i];
            let (cur, writer) = match store.get(r.key.as_str()) {
                Some(&(v, w)) => (v, Some(w)),
                None => (None, None),
            };
            let origin = || match writer {
                Some(w) => format!("written by {}", name(&records[w])),
                None => "the initial value".to_string(),
            };
            let shown = |i: usize| -> Vec<usize> { writer.into_iter().chain([i]).collect() };
            match r.op.as_str() {
                "put" => {
                    store.insert(&r.key, (r.value.as_deref(), i));
                }
                "delete" => {
                    store.insert(&r.key, (None, i));
                }
                "get" if r.outcome == Outcome::Ok && r.value.as_deref() != cur => {
                    let why = format!(
                        "{} read {:?} from key {:?}, but replaying shard {sh}'s log gives {:?} at position {pos} ({})",
                        name(r),
                        r.value,
                        r.key,
                        cur,
                        origin()
                    );
                    return found(report, counterexample(records, &shown(i), why));
                }
                "cas" => {
                    let hit = cur == r.expected.as_deref();
                    if r.outcome == Outcome::Ok && r.swapped.is_some_and(|s| s != hit) {
                        let why = format!(
                            "{} on key {:?} reported swapped = {}, but replaying shard {sh}'s log gives {:?} at position {pos} ({}) against the expected {:?}",
                            name(r),
                            r.key,
                            !hit,
                            cur,
                            origin(),
                            r.expected
                        );
                        return found(report, counterexample(records, &shown(i), why));
                    }
                    if hit {
                        store.insert(&r.key, (r.value.as_deref(), i));
                    }
                }
                _ => {}
            }
        }
    }

    // 4. Shard order, issue order and real time are acyclic.
    let graph = Graph::build(
        records,
        &chains.pred,
        &at,
        &present,
        &longest,
        &chains.by_id,
    );
    report.states = graph.nodes as u64;
    if let Some(cycle) = graph.cycle() {
        return found(report, graph.explain(records, &present, &cycle));
    }
    report
}

/// How one node of the order graph must precede another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// Consecutive in this shard's log.
    Log(usize),
    /// Chain predecessor and successor.
    Issue,
    /// Part of a real-time path through the barriers.
    Time,
}

/// Nodes `0..ops` are the logged operations (in the order of `present`),
/// `ops..nodes` the barriers; edges in both directions, compressed.
struct Graph {
    ops: usize,
    nodes: usize,
    fwd_start: Vec<usize>,
    fwd: Vec<usize>,
    rev_start: Vec<usize>,
    rev: Vec<(usize, Edge)>,
}

impl Graph {
    fn build(
        records: &[Record],
        pred: &[Option<usize>],
        at: &[Option<(usize, usize)>],
        present: &[usize],
        logs: &[&[(u64, u64)]],
        by_id: &HashMap<(u64, u64), usize>,
    ) -> Graph {
        let ops = present.len();
        let mut node = vec![usize::MAX; records.len()];
        for (k, &i) in present.iter().enumerate() {
            node[i] = k;
        }
        let ret = |i: usize| {
            let r = &records[i];
            r.return_ns.filter(|_| r.outcome == Outcome::Ok)
        };
        let mut times: Vec<u64> = present.iter().filter_map(|&i| ret(i)).collect();
        times.sort_unstable();
        times.dedup();
        let nodes = ops + times.len();
        let mut edges: Vec<(usize, usize, Edge)> = Vec::with_capacity(4 * ops + times.len());
        for (sh, log) in logs.iter().enumerate() {
            for w in log.windows(2) {
                if let (Some(&a), Some(&b)) = (by_id.get(&w[0]), by_id.get(&w[1])) {
                    edges.push((node[a], node[b], Edge::Log(sh)));
                }
            }
        }
        for &i in present {
            if let Some(j) = pred[i].filter(|&j| at[j].is_some()) {
                edges.push((node[j], node[i], Edge::Issue));
            }
            if let Some(t) = ret(i) {
                let b = times.partition_point(|&x| x < t);
                edges.push((node[i], ops + b, Edge::Time));
            }
            let before = times.partition_point(|&x| x < records[i].invoke_ns);
            if before > 0 {
                edges.push((ops + before - 1, node[i], Edge::Time));
            }
        }
        for b in 1..times.len() {
            edges.push((ops + b - 1, ops + b, Edge::Time));
        }
        let mut fwd_start = vec![0usize; nodes + 1];
        let mut rev_start = vec![0usize; nodes + 1];
        for &(a, b, _) in &edges {
            fwd_start[a + 1] += 1;
            rev_start[b + 1] += 1;
        }
        for v in 0..nodes {
            fwd_start[v + 1] += fwd_start[v];
            rev_start[v + 1] += rev_start[v];
        }
        let mut fwd = vec![0usize; edges.len()];
        let mut rev = vec![(0usize, Edge::Time); edges.len()];
        let (mut fi, mut ri) = (fwd_start.clone(), rev_start.clone());
        for &(a, b, e) in &edges {
            fwd[fi[a]] = b;
            fi[a] += 1;
            rev[ri[b]] = (a, e);
            ri[b] += 1;
        }
        Graph {
            ops,
            nodes,
            fwd_start,
            fwd,
            rev_start,
            rev,
        }
    }

    /// Some cycle, as (node, kind of the edge to the next node) in edge order,
    /// starting at an operation; `None` if the graph is acyclic.
    fn cycle(&self) -> Option<Vec<(usize, Edge)>> {
        let mut indeg: Vec<usize> = (0..self.nodes)
            .map(|v| self.rev_start[v + 1] - self.rev_start[v])
            .collect();
        let mut ready: Vec<usize> = (0..self.nodes).filter(|&v| indeg[v] == 0).collect();
        let mut done = 0;
        while let Some(v) = ready.pop() {
            done += 1;
            for &w in &self.fwd[self.fwd_start[v]..self.fwd_start[v + 1]] {
                indeg[w] -= 1;
                if indeg[w] == 0 {
                    ready.push(w);
                }
            }
        }
        if done == self.nodes {
            return None;
        }
        // Every node left has a predecessor left: walk backwards until a node repeats.
        let start = (0..self.nodes).find(|&v| indeg[v] > 0)?;
        let mut pos = vec![usize::MAX; self.nodes];
        // (node, kind of the edge from the next node in the walk to it)
        let mut walk: Vec<(usize, Edge)> = Vec::new();
        let mut v = start;
        while pos[v] == usize::MAX {
            pos[v] = walk.len();
            let &(u, e) = self.rev[self.rev_start[v]..self.rev_start[v + 1]]
                .iter()
                .find(|(u, _)| indeg[*u] > 0)?;
            walk.push((v, e));
            v = u;
        }
        // walk[pos[v]..] is the cycle backwards: walk[k+1].0 -> walk[k].0 by walk[k].1.
        let back = &walk[pos[v]..];
        let len = back.len();
        let mut cycle: Vec<(usize, Edge)> = (0..len)
            .rev()
            .map(|k| {
                let from = back[(k + 1) % len].0;
                (from, back[k].1)
            })
            .collect();
        let first_op = cycle.iter().position(|&(v, _)| v < self.ops)?;
        cycle.rotate_left(first_op);
        Some(cycle)
    }

    fn explain(
        &self,
        records: &[Record],
        present: &[usize],
        cycle: &[(usize, Edge)],
    ) -> Counterexample {
        // Collapse barrier runs into one real-time step between operations.
        let mut steps: Vec<(usize, Edge)> = Vec::new();
        for &(v, e) in cycle {
            if v < self.ops {
                steps.push((present[v], e));
            } else if let Some(last) = steps.last_mut() {
                last.1 = Edge::Time;
            }
        }
        const SHOWN: usize = 16;
        let mut text = String::new();
        for &(i, e) in steps.iter().take(SHOWN) {
            let how = match e {
                Edge::Log(sh) => format!("shard {sh} log"),
                Edge::Issue => "issue order".to_string(),
                Edge::Time => "real time".to_string(),
            };
            text.push_str(&format!("{} -[{how}]-> ", name(&records[i])));
        }
        if steps.len() > SHOWN {
            text.push_str("... -> ");
        }
        if let Some(&(i, _)) = steps.first() {
            text.push_str(&name(&records[i]));
        }
        let shown: Vec<usize> = steps.iter().take(SHOWN).map(|&(i, _)| i).collect();
        Counterexample {
            key: keys_of(shown.iter().map(|&i| records[i].key.as_str())),
            explanation: format!(
                "shard order, issue order and real time form a cycle of {} operations, so no single order respects them all: {text}",
                steps.len()
            ),
            operations: shown.iter().map(|&i| records[i].clone()).collect(),
        }
    }
}
