//! The checker on hand-written histories, and against a brute-force oracle.

use checker::history::{Outcome, Record};
use checker::linear::{check, Initial, Options, Verdict};
use proptest::prelude::*;

fn rec(op: &str, value: Option<&str>, invoke: u64, ret: Option<u64>, outcome: Outcome) -> Record {
    Record {
        client: invoke,
        seq: invoke,
        pred: None,
        op: op.into(),
        key: "k".into(),
        value: value.map(String::from),
        expected: None,
        swapped: None,
        invoke_ns: invoke,
        return_ns: ret,
        outcome,
    }
}
fn ok(op: &str, value: Option<&str>, invoke: u64, ret: u64) -> Record {
    rec(op, value, invoke, Some(ret), Outcome::Ok)
}
fn cas(
    expected: Option<&str>,
    new: &str,
    swapped: Option<bool>,
    invoke: u64,
    ret: Option<u64>,
) -> Record {
    let outcome = if ret.is_some() {
        Outcome::Ok
    } else {
        Outcome::Unknown
    };
    Record {
        expected: expected.map(String::from),
        swapped,
        ..rec("cas", Some(new), invoke, ret, outcome)
    }
}
fn verdict(h: &[Record]) -> Verdict {
    check(h, &Options::default()).verdict
}

#[test]
fn sequential_history_is_ok_and_a_stale_read_is_not() {
    let h = vec![
        ok("put", Some("a"), 0, 1),
        ok("get", Some("a"), 2, 3),
        ok("put", Some("b"), 4, 5),
        ok("get", Some("b"), 6, 7),
    ];
    assert_eq!(verdict(&h), Verdict::Ok);
    let stale = vec![
        ok("put", Some("a"), 0, 1),
        ok("put", Some("b"), 2, 3),
        ok("get", Some("a"), 4, 5),
    ];
    let r = check(&stale, &Options::default());
    assert_eq!(r.verdict, Verdict::Violation);
    let ce = r.violation.unwrap();
    assert_eq!(ce.key, "k");
    assert!(!ce.operations.is_empty() && ce.explanation.contains("real time"));
}

#[test]
fn concurrent_operations_may_go_either_way() {
    // The read overlaps the write: old or new value are both fine.
    for seen in [None, Some("a")] {
        let h = vec![ok("put", Some("a"), 0, 10), ok("get", seen, 5, 6)];
        assert_eq!(verdict(&h), Verdict::Ok, "read {seen:?}");
    }
    // But two reads in sequence may not see new then old.
    let h = vec![
        ok("put", Some("a"), 0, 10),
        ok("get", Some("a"), 1, 2),
        ok("get", None, 3, 4),
    ];
    assert_eq!(verdict(&h), Verdict::Violation);
}

#[test]
fn failed_writes_never_happened_and_unknown_ones_may_have() {
    let failed = vec![
        rec("put", Some("x"), 0, None, Outcome::Fail),
        ok("get", Some("x"), 5, 6),
    ];
    assert_eq!(verdict(&failed), Verdict::Violation);
    let unknown = vec![
        rec("put", Some("x"), 0, None, Outcome::Unknown),
        ok("get", Some("x"), 5, 6),
    ];
    assert_eq!(verdict(&unknown), Verdict::Ok);
    let never = vec![
        rec("put", Some("x"), 0, None, Outcome::Unknown),
        ok("get", None, 5, 6),
    ];
    assert_eq!(verdict(&never), Verdict::Ok);
    // It may take effect late, but only once: absent, x, absent again needs a second write.
    let flicker = vec![
        rec("put", Some("x"), 0, None, Outcome::Unknown),
        ok("get", Some("x"), 5, 6),
        ok("get", None, 7, 8),
    ];
    assert_eq!(verdict(&flicker), Verdict::Violation);
    // An unknown write cannot take effect before it was invoked.
    let early = vec![
        ok("get", Some("x"), 0, 1),
        rec("put", Some("x"), 5, None, Outcome::Unknown),
    ];
    assert_eq!(verdict(&early), Verdict::Violation);
}

#[test]
fn compare_and_swap_and_delete() {
    let h = vec![
        ok("put", Some("a"), 0, 1),
        cas(Some("a"), "b", Some(true), 2, Some(3)),
        cas(Some("a"), "c", Some(false), 4, Some(5)),
        ok("get", Some("b"), 6, 7),
        ok("delete", None, 8, 9),
        cas(None, "d", Some(true), 10, Some(11)),
        ok("get", Some("d"), 12, 13),
    ];
    assert_eq!(verdict(&h), Verdict::Ok);
    let wrong = vec![
        ok("put", Some("a"), 0, 1),
        cas(Some("a"), "b", Some(false), 2, Some(3)),
    ];
    assert_eq!(verdict(&wrong), Verdict::Violation);
}

#[test]
fn keys_are_independent_and_an_unknown_start_binds_on_the_first_read() {
    let mut h = vec![ok("put", Some("a"), 0, 1), ok("get", Some("a"), 2, 3)];
    let mut other = ok("get", Some("z"), 0, 1);
    other.key = "other".into();
    h.push(other);
    assert_eq!(verdict(&h), Verdict::Violation, "a fresh store has no 'z'");
    let any = Options {
        initial: Initial::Any,
        ..Default::default()
    };
    assert_eq!(check(&h, &any).verdict, Verdict::Ok);
    let r = check(&h, &any);
    assert_eq!((r.keys, r.operations), (2, 3));
}

#[test]
fn too_much_concurrency_is_undecided_not_wrong() {
    // 600 writes all overlapping each other exceed the search window, when
    // values repeat and the search must decide.
    let h: Vec<Record> = (0..600)
        .map(|i| ok("put", Some(&format!("v{}", i % 2)), i, 1_000 + i))
        .collect();
    assert_eq!(verdict(&h), Verdict::Undecided);
    // With distinct values the zones decide the same shape at once.
    let mut unique: Vec<Record> = (0..600)
        .map(|i| ok("put", Some(&format!("v{i}")), i, 1_000 + i))
        .collect();
    unique.push(ok("get", Some("v17"), 2_000, 2_001));
    assert_eq!(verdict(&unique), Verdict::Ok);
    // ...and a read the last write certainly overwrote is caught.
    unique.push(ok("put", Some("w"), 2_002, 2_003));
    unique.push(ok("get", Some("v17"), 2_004, 2_005));
    assert_eq!(verdict(&unique), Verdict::Violation);
}

#[test]
fn a_request_that_waits_out_hundreds_of_others_is_still_decided() {
    // One write waits (a failover, say) while 300 others on its key come and
    // go one after another; a read at the end sees the slow write.
    let mut h = vec![ok("put", Some("slow"), 0, 10_000)];
    for i in 0..300u64 {
        h.push(ok("put", Some(&format!("v{i}")), 10 + 2 * i, 11 + 2 * i));
    }
    h.push(ok("get", Some("slow"), 9_000, 10_500));
    assert_eq!(verdict(&h), Verdict::Ok);
    // Reading an overwritten value instead is caught.
    let last = h.len() - 1;
    h[last] = ok("get", Some("v5"), 9_000, 10_500);
    assert_eq!(verdict(&h), Verdict::Violation);
}

#[test]
fn a_long_sequential_history_is_fast() {
    let mut h = Vec::new();
    for i in 0..200_000u64 {
        let v = format!("v{}", i % 7);
        h.push(ok("put", Some(&v), 4 * i, 4 * i + 1));
        h.push(ok("get", Some(&v), 4 * i + 2, 4 * i + 3));
    }
    let t = std::time::Instant::now();
    assert_eq!(verdict(&h), Verdict::Ok);
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
}

// ---------------------------------------------------------------------------
// Brute force: every subset of the optional operations, every order.

#[derive(Debug, Clone)]
struct BOp {
    op: u8, // 0 put, 1 get, 2 delete, 3 cas
    value: Option<u8>,
    expected: Option<u8>,
    swapped: Option<bool>,
    invoke: u64,
    ret: Option<u64>,
    outcome: Outcome,
}

fn brute(ops: &[BOp]) -> bool {
    // Drop what never happened or says nothing, as the checker's documented rules say.
    let ops: Vec<&BOp> = ops
        .iter()
        .filter(|o| o.outcome != Outcome::Fail && !(o.op == 1 && o.outcome == Outcome::Unknown))
        .collect();
    let optional: Vec<usize> = (0..ops.len())
        .filter(|i| ops[*i].outcome == Outcome::Unknown)
        .collect();
    for subset in 0..(1u32 << optional.len()) {
        let chosen: Vec<usize> = (0..ops.len())
            .filter(|i| {
                ops[*i].outcome == Outcome::Ok
                    || optional
                        .iter()
                        .position(|o| o == i)
                        .is_some_and(|b| subset >> b & 1 == 1)
            })
            .collect();
        if permutations_ok(
            &ops,
            &chosen,
            &mut Vec::new(),
            &mut vec![false; chosen.len()],
        ) {
            return true;
        }
    }
    false
}

fn permutations_ok(
    ops: &[&BOp],
    chosen: &[usize],
    order: &mut Vec<usize>,
    used: &mut Vec<bool>,
) -> bool {
    if order.len() == chosen.len() {
        return legal(ops, order);
    }
    for k in 0..chosen.len() {
        if !used[k] {
            used[k] = true;
            order.push(chosen[k]);
            if permutations_ok(ops, chosen, order, used) {
                return true;
            }
            order.pop();
            used[k] = false;
        }
    }
    false
}

fn legal(ops: &[&BOp], order: &[usize]) -> bool {
    // Real time: if a returned before b was invoked, a comes first.
    for (x, &a) in order.iter().enumerate() {
        for &b in &order[..x] {
            if ops[a].ret.is_some_and(|r| r < ops[b].invoke) {
                return false;
            }
        }
    }
    let mut v: Option<u8> = None;
    for &i in order {
        let o = ops[i];
        match o.op {
            0 => v = o.value,
            1 => {
                if v != o.value {
                    return false;
                }
            }
            2 => v = None,
            _ => {
                let hit = v == o.expected;
                match o.swapped {
                    Some(s) if s != hit => return false,
                    _ => {}
                }
                if hit {
                    v = o.value;
                }
            }
        }
    }
    true
}

fn to_record(o: &BOp) -> Record {
    let s = |v: Option<u8>| v.map(|x| format!("v{x}"));
    Record {
        client: 1,
        seq: o.invoke,
        pred: None,
        op: ["put", "get", "delete", "cas"][o.op as usize].into(),
        key: "k".into(),
        value: if o.op == 2 { None } else { s(o.value) },
        expected: if o.op == 3 { s(o.expected) } else { None },
        swapped: if o.op == 3 { o.swapped } else { None },
        invoke_ns: o.invoke,
        return_ns: o.ret,
        outcome: o.outcome,
    }
}

/// A history from a real sequential execution at random points (linearizable
/// unless `mutate` changes an answer), or fully random.
fn history() -> impl Strategy<Value = Vec<BOp>> {
    let op = (
        0u8..4,
        proptest::option::of(0u8..3),
        proptest::option::of(0u8..3),
        0u64..30,
        1u64..15,
        0u8..10,
    );
    (
        proptest::collection::vec(op, 1..7),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(raw, real, mutate)| {
            let mut ops: Vec<BOp> = raw
                .iter()
                .map(|&(op, value, expected, start, len, o)| BOp {
                    op,
                    value: if op == 1 { None } else { value.or(Some(0)) },
                    expected,
                    swapped: None,
                    invoke: start,
                    ret: Some(start + len),
                    outcome: match o {
                        0 => Outcome::Fail,
                        1 => Outcome::Unknown,
                        _ => Outcome::Ok,
                    },
                })
                .collect();
            // Execute at a point inside each interval, in point order, to fill in answers.
            let mut order: Vec<usize> = (0..ops.len()).collect();
            order.sort_by_key(|i| (ops[*i].invoke + ops[*i].ret.unwrap()) / 2 * 16 + *i as u64);
            let mut v: Option<u8> = None;
            for i in order {
                let o = &mut ops[i];
                if o.outcome == Outcome::Fail {
                    continue;
                }
                match o.op {
                    0 => v = o.value,
                    1 => o.value = v,
                    2 => v = None,
                    _ => {
                        let hit = v == o.expected;
                        o.swapped = Some(hit);
                        if hit {
                            v = o.value;
                        }
                    }
                }
            }
            for o in &mut ops {
                if o.outcome == Outcome::Unknown {
                    o.ret = None;
                    if o.op == 3 {
                        o.swapped = None;
                    }
                }
            }
            if !real || mutate % 3 == 0 {
                let i = mutate as usize % ops.len();
                match ops[i].op {
                    1 => ops[i].value = ops[i].value.map_or(Some(2), |x| Some((x + 1) % 3)),
                    3 => ops[i].swapped = ops[i].swapped.map(|b| !b),
                    _ => ops[i].value = ops[i].value.map(|x| (x + 1) % 3),
                }
            }
            ops
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn agrees_with_brute_force(ops in history()) {
        let records: Vec<Record> = ops.iter().map(to_record).collect();
        let expect = if brute(&ops) { Verdict::Ok } else { Verdict::Violation };
        prop_assert_eq!(verdict(&records), expect, "history: {:?}", ops);
    }
}

/// A long, concurrent history of unique values with one stale read in the
/// middle: the check finds it, and the witness is the handful of operations
/// that show it, not the key's whole history.
#[test]
fn a_stale_read_among_thousands_is_shown_with_a_small_witness() {
    let mut h = Vec::new();
    let mut t = 0u64;
    // Writers overlap their neighbours; each read follows the write it sees.
    for i in 0..2_000u64 {
        let v = format!("c1-s{i}");
        h.push(Record {
            client: 1,
            seq: i,
            ..ok("put", Some(&v), t, t + 15)
        });
        h.push(Record {
            client: 2,
            seq: i,
            ..ok("get", Some(&v), t + 16, t + 18)
        });
        t += 20;
    }
    assert_eq!(verdict(&h), Verdict::Ok);
    // Client 3 reads, well after it was overwritten, the value of put 500.
    let stale_at = 1_200 * 20 + 17;
    h.push(Record {
        client: 3,
        seq: 1,
        ..ok("get", Some("c1-s500"), stale_at, stale_at + 1)
    });
    let r = check(&h, &Options::default());
    assert_eq!(r.verdict, Verdict::Violation);
    let cx = r.violation.expect("a counterexample");
    let who: Vec<(u64, u64)> = cx.operations.iter().map(|o| (o.client, o.seq)).collect();
    assert!(
        who.contains(&(3, 1)),
        "the stale read is in the witness: {who:?}"
    );
    assert!(who.contains(&(1, 500)), "and the write it read: {who:?}");
    assert!(cx.operations.len() <= 4, "a small witness: {}", cx.table());
    // The witness alone is a violation too.
    assert_eq!(verdict(&cx.operations), Verdict::Violation);
    assert!(cx.table().contains("c1-s500"));
}

/// A read of a value nobody wrote is reported at once, on its own.
#[test]
fn a_read_of_a_value_never_written_is_its_own_witness() {
    let mut h: Vec<Record> = (0..500u64)
        .map(|i| Record {
            seq: i,
            ..ok("put", Some(&format!("v{i}")), i * 10, i * 10 + 5)
        })
        .collect();
    h.push(ok("get", Some("nobody"), 2_000, 2_001));
    let r = check(&h, &Options::default());
    assert_eq!(r.verdict, Verdict::Violation);
    let cx = r.violation.expect("a counterexample");
    assert_eq!(cx.operations.len(), 1);
    assert!(
        cx.explanation.contains("no operation wrote"),
        "{}",
        cx.explanation
    );
}

/// Puts with distinct values and gets, as every bench run records: the
/// checker decides these by zones, not by search, so they get their own
/// comparison with brute force. Reads see what a real execution gave them,
/// or (now and then) any written value or nothing.
fn unique_history() -> impl Strategy<Value = Vec<BOp>> {
    let op = (any::<bool>(), 0u64..30, 1u64..15, 0u8..10, 0u8..8);
    (proptest::collection::vec(op, 1..8), any::<u8>()).prop_map(|(raw, mutate)| {
        let mut ops: Vec<BOp> = raw
            .iter()
            .enumerate()
            .map(|(i, &(put, start, len, o, _))| BOp {
                op: if put { 0 } else { 1 },
                value: put.then_some(i as u8),
                expected: None,
                swapped: None,
                invoke: start,
                ret: Some(start + len),
                outcome: match o {
                    0 => Outcome::Fail,
                    1 => Outcome::Unknown,
                    _ => Outcome::Ok,
                },
            })
            .collect();
        let mut order: Vec<usize> = (0..ops.len()).collect();
        order.sort_by_key(|i| (ops[*i].invoke + ops[*i].ret.unwrap()) / 2 * 16 + *i as u64);
        let mut v: Option<u8> = None;
        for i in order {
            let o = &mut ops[i];
            match (o.outcome, o.op) {
                (Outcome::Fail, _) => {}
                (_, 0) => v = o.value,
                _ => o.value = v,
            }
        }
        for o in &mut ops {
            if o.outcome == Outcome::Unknown {
                o.ret = None;
            }
        }
        if mutate % 2 == 0 {
            let i = mutate as usize / 2 % ops.len();
            if ops[i].op == 1 {
                let pick = raw[i].4 as usize % (ops.len() + 1);
                ops[i].value = (pick < ops.len() && ops[pick].op == 0).then_some(pick as u8);
            }
        }
        ops
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]
    #[test]
    fn zones_agree_with_brute_force(ops in unique_history()) {
        let records: Vec<Record> = ops.iter().map(to_record).collect();
        let expect = if brute(&ops) { Verdict::Ok } else { Verdict::Violation };
        prop_assert_eq!(verdict(&records), expect, "history: {:?}", ops);
    }
}
