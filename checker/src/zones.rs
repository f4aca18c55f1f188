//! The fast decision for a key whose writes all write distinct values and
//! which has only puts and gets (Gibbons and Korach's zones): every read then
//! names the one write it saw, and linearizability is a property of
//! intervals, decided in O(n log n) with no search at all.
//!
//! A value's cluster is its write and the reads of it. Let `f` be the
//! earliest return in the cluster and `l` the latest invocation. If `f < l`
//! the value must be held all through `[f, l]` (a forward zone); otherwise the
//! whole cluster fits at one instant of `[l, f]` (a backward zone). The key is
//! linearizable exactly when every read's write was invoked before the read
//! returned, no two forward zones meet, and no backward zone lies inside a
//! forward zone.
//!
//! Real time is strict (an operation precedes another only if it returned
//! before the other was invoked), so times are doubled and returns moved a
//! half step later: equal times then overlap, and the intervals are closed.

use crate::linear::Op;
use crate::register::{Kind, ABSENT};

/// Whether the zones decide this key: only puts and gets, no two writes of one
/// value, and no write of "absent" (the initial value is absent).
pub(crate) fn applies(ops: &[Op], writers: &[Vec<usize>]) -> bool {
    ops.iter()
        .all(|o| matches!(o.kind, Kind::Read(_) | Kind::Write(_)))
        && writers[ABSENT as usize].is_empty()
        && writers.iter().all(|w| w.len() <= 1)
}

/// The key's verdict by zones (see the module docs); call only where
/// [`applies`] holds and every read value other than absent has a writer.
pub(crate) fn linearizable(ops: &[Op], writers: &[Vec<usize>]) -> bool {
    // Closed intervals in half steps; an unanswered write read by someone
    // returns "never" and one nobody read is left out (it may never have run).
    let inv = |t: u64| i128::from(t) * 2;
    let ret = |t: u64| {
        if t == u64::MAX {
            i128::MAX
        } else {
            i128::from(t) * 2 + 1
        }
    };
    let values = writers.len();
    // Per value: (earliest return, latest invocation) over its cluster.
    let mut first_ret = vec![i128::MAX; values];
    let mut last_inv = vec![i128::MIN; values];
    let mut read = vec![false; values];
    for o in ops {
        if let Kind::Read(v) = o.kind {
            let v = v as usize;
            read[v] = true;
            first_ret[v] = first_ret[v].min(ret(o.ret));
            last_inv[v] = last_inv[v].max(inv(o.invoke));
        }
    }
    // The initial absent value is written before everything.
    if read[ABSENT as usize] {
        first_ret[ABSENT as usize] = first_ret[ABSENT as usize].min(i128::MIN / 2);
    }
    for (v, w) in writers.iter().enumerate() {
        let Some(&j) = w.first() else {
            if read[v] && v != ABSENT as usize {
                return false; // a value read that nothing wrote
            }
            continue;
        };
        let (i, r) = (ops[j].invoke, ops[j].ret);
        if ops[j].optional && !read[v] {
            continue;
        }
        if read[v] && inv(i) > first_ret[v] {
            return false; // a read returned before its write was invoked
        }
        first_ret[v] = first_ret[v].min(ret(r));
        last_inv[v] = last_inv[v].max(inv(i));
    }
    let mut forward: Vec<(i128, i128)> = Vec::new();
    let mut backward: Vec<(i128, i128)> = Vec::new();
    for v in 0..values {
        let (f, l) = (first_ret[v], last_inv[v]);
        if l == i128::MIN {
            continue; // no cluster
        }
        if f < l {
            forward.push((f, l));
        } else {
            backward.push((l, f));
        }
    }
    forward.sort_unstable();
    if forward.windows(2).any(|p| p[1].0 <= p[0].1) {
        return false;
    }
    // The forward zone starting last at or before a backward zone's start is
    // the only one that could hold it (they are disjoint).
    !backward.iter().any(|&(from, to)| {
        let k = forward.partition_point(|z| z.0 <= from);
        k > 0 && forward[k - 1].1 >= to
    })
}
