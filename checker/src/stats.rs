//! What a history lets the checker see: how many operations, reads and
//! writes, how many distinct values, and whether any key was both
//! overwritten and read. A history without that (write-only, or every read
//! on a key written at most once) is linearizable by construction, so an
//! `ok` on it proves little: [`HistoryStats::vacuous`] says why.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::history::{Outcome, Record};
use crate::linear::Verdict;

/// Counts over a history, shared by every user of the checker so reports agree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryStats {
    /// Records in the history.
    pub operations: usize,
    /// `get` records (answered or not).
    pub reads: usize,
    /// `put`, `cas` and `delete` records (answered or not).
    pub writes: usize,
    /// Distinct values among the `put` and `cas` records.
    pub distinct_values: usize,
    /// Distinct keys.
    pub keys: usize,
    /// Keys with at least two writes.
    pub overwritten_keys: usize,
    /// Answered reads that returned a value (not absent).
    pub reads_with_value: usize,
    /// Overwritten keys that also have an answered read: where a lost or
    /// stale write could show.
    pub observable_keys: usize,
}

impl HistoryStats {
    /// The counts of `records`.
    pub fn of(records: &[Record]) -> HistoryStats {
        let mut s = HistoryStats {
            operations: records.len(),
            ..Default::default()
        };
        let mut values: HashSet<&str> = HashSet::new();
        // Per key: (writes, answered reads).
        let mut keys: HashMap<&str, (usize, usize)> = HashMap::new();
        for r in records {
            let k = keys.entry(r.key.as_str()).or_default();
            match r.op.as_str() {
                "get" => {
                    s.reads += 1;
                    if r.outcome == Outcome::Ok {
                        k.1 += 1;
                        s.reads_with_value += r.value.is_some() as usize;
                    }
                }
                "put" | "cas" | "delete" => {
                    s.writes += 1;
                    k.0 += 1;
                    if let (Some(v), "put" | "cas") = (&r.value, r.op.as_str()) {
                        values.insert(v);
                    }
                }
                _ => {}
            }
        }
        s.distinct_values = values.len();
        s.keys = keys.len();
        s.overwritten_keys = keys.values().filter(|(w, _)| *w >= 2).count();
        s.observable_keys = keys.values().filter(|(w, r)| *w >= 2 && *r > 0).count();
        s
    }

    /// Why a check of this history cannot show a violation, or `None` when it
    /// can: it needs an answered read, on a key written at least twice.
    pub fn vacuous(&self) -> Option<String> {
        if self.reads == 0 {
            Some("no reads".into())
        } else if self.observable_keys == 0 {
            Some(format!(
                "no key is both written twice and read ({} reads, {} overwritten keys)",
                self.reads, self.overwritten_keys
            ))
        } else {
            None
        }
    }

    /// `verdict`, turned into [`Verdict::Vacuous`] when it is `Ok` on a
    /// history that could not have shown a violation.
    pub fn judge(&self, verdict: Verdict) -> Verdict {
        if verdict == Verdict::Ok && self.vacuous().is_some() {
            Verdict::Vacuous
        } else {
            verdict
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        client: u64,
        seq: u64,
        op: &str,
        key: &str,
        value: Option<&str>,
        outcome: Outcome,
    ) -> Record {
        Record {
            client,
            seq,
            pred: None,
            op: op.into(),
            key: key.into(),
            value: value.map(String::from),
            expected: None,
            swapped: None,
            invoke_ns: seq * 10,
            return_ns: (outcome != Outcome::Unknown).then_some(seq * 10 + 5),
            outcome,
        }
    }

    #[test]
    fn counts_reads_writes_values_and_keys() {
        let h = vec![
            rec(1, 1, "put", "a", Some("x"), Outcome::Ok),
            rec(1, 2, "put", "a", Some("y"), Outcome::Ok),
            rec(1, 3, "get", "a", Some("y"), Outcome::Ok),
            rec(1, 4, "put", "b", Some("x"), Outcome::Unknown),
            rec(1, 5, "get", "b", None, Outcome::Ok),
            rec(1, 6, "get", "c", None, Outcome::Fail),
            rec(1, 7, "delete", "b", None, Outcome::Ok),
        ];
        let s = HistoryStats::of(&h);
        assert_eq!(
            s,
            HistoryStats {
                operations: 7,
                reads: 3,
                writes: 4,
                distinct_values: 2,
                keys: 3,
                overwritten_keys: 2,
                reads_with_value: 1,
                observable_keys: 2,
            }
        );
        assert_eq!(s.vacuous(), None);
        assert_eq!(s.judge(Verdict::Ok), Verdict::Ok);
    }

    #[test]
    fn write_only_or_unobservable_histories_are_vacuous() {
        let writes = vec![
            rec(1, 1, "put", "a", Some("x"), Outcome::Ok),
            rec(1, 2, "put", "a", Some("y"), Outcome::Ok),
        ];
        let s = HistoryStats::of(&writes);
        assert_eq!(s.vacuous().as_deref(), Some("no reads"));
        assert_eq!(s.judge(Verdict::Ok), Verdict::Vacuous);
        // A violation or an undecided search is reported as it is.
        assert_eq!(s.judge(Verdict::Violation), Verdict::Violation);
        assert_eq!(s.judge(Verdict::Undecided), Verdict::Undecided);
        // Reads only of keys written once, or failed reads of overwritten keys.
        let mut h = writes.clone();
        h.push(rec(1, 3, "put", "b", Some("z"), Outcome::Ok));
        h.push(rec(1, 4, "get", "b", Some("z"), Outcome::Ok));
        h.push(rec(1, 5, "get", "a", None, Outcome::Fail));
        let s = HistoryStats::of(&h);
        assert!(
            s.vacuous().is_some_and(|w| w.contains("written twice")),
            "{s:?}"
        );
        assert_eq!(s.judge(Verdict::Ok), Verdict::Vacuous);
        // One answered read of the overwritten key makes it a real check.
        h.push(rec(1, 6, "get", "a", Some("y"), Outcome::Ok));
        assert_eq!(HistoryStats::of(&h).judge(Verdict::Ok), Verdict::Ok);
    }
}
