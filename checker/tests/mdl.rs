//! The MDL checkers: the model's example histories, agreement with the
//! linearizability checker on single-dispatch histories, the white-box checks
//! one by one, malformed input, and the black-box search against a brute-force
//! oracle.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use checker::history::{Outcome, Record};
use checker::linear::{self, Initial, Options, Verdict};
use checker::{check_logs, check_mdl};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Building histories.

fn rec(client: u64, seq: u64, op: &str, key: &str, value: Option<&str>, t: (u64, u64)) -> Record {
    Record {
        client,
        seq,
        pred: None,
        op: op.into(),
        key: key.into(),
        value: value.map(String::from),
        expected: None,
        swapped: None,
        invoke_ns: t.0,
        return_ns: Some(t.1),
        outcome: Outcome::Ok,
    }
}
fn put(client: u64, seq: u64, key: &str, value: &str, t: (u64, u64)) -> Record {
    rec(client, seq, "put", key, Some(value), t)
}
fn get(client: u64, seq: u64, key: &str, value: Option<&str>, t: (u64, u64)) -> Record {
    rec(client, seq, "get", key, value, t)
}
fn cas(
    client: u64,
    seq: u64,
    key: &str,
    expected: Option<&str>,
    new: &str,
    swapped: bool,
    t: (u64, u64),
) -> Record {
    Record {
        expected: expected.map(String::from),
        swapped: Some(swapped),
        ..rec(client, seq, "cas", key, Some(new), t)
    }
}
fn after(r: Record, pred: u64) -> Record {
    r.with_pred(Some(pred))
}
fn failed(r: Record) -> Record {
    Record {
        outcome: Outcome::Fail,
        ..r
    }
}
fn unknown(r: Record) -> Record {
    Record {
        outcome: Outcome::Unknown,
        return_ns: None,
        swapped: None,
        value: if r.op == "get" { None } else { r.value },
        ..r
    }
}
fn mdl(h: &[Record]) -> Verdict {
    check_mdl(h, &Options::default()).verdict
}
fn lin(h: &[Record]) -> Verdict {
    linear::check(h, &Options::default()).verdict
}
/// One replica per shard.
fn logs(shards: &[&[(u64, u64)]]) -> Vec<Vec<Vec<(u64, u64)>>> {
    shards.iter().map(|s| vec![s.to_vec()]).collect()
}

// ---------------------------------------------------------------------------
// The model's example histories.

/// H1: P1 multi-dispatches w(x,1) then w(y,1); P2 multi-dispatches r(y) then
/// r(x). Concurrently, every pair of answers but (y=1, x=absent) is MDL.
#[test]
fn h1_reads_of_a_chained_pair_of_writes() {
    let h = vec![
        put(1, 1, "x", "1", (0, 2)),
        after(put(1, 2, "y", "1", (1, 3)), 1),
        get(2, 1, "y", Some("1"), (4, 6)),
        after(get(2, 2, "x", Some("1"), (5, 7)), 1),
    ];
    assert_eq!(mdl(&h), Verdict::Ok);
    for (ry, rx) in [
        (None, None),
        (None, Some("1")),
        (Some("1"), Some("1")),
        (Some("1"), None),
    ] {
        let h = vec![
            put(1, 1, "x", "1", (0, 10)),
            after(put(1, 2, "y", "1", (1, 11)), 1),
            get(2, 1, "y", ry, (0, 10)),
            after(get(2, 2, "x", rx, (1, 11)), 1),
        ];
        let want = if (ry, rx) == (Some("1"), None) {
            Verdict::Violation
        } else {
            Verdict::Ok
        };
        let r = check_mdl(&h, &Options::default());
        assert_eq!(r.verdict, want, "r(y)={ry:?} r(x)={rx:?}");
        // Both chains cross x and y: one component.
        assert_eq!(r.keys, 1);
        // Plain linearizability misses the forbidden outcome.
        assert_eq!(lin(&h), Verdict::Ok);
    }
}

/// H2: a long write, its short chained successor, and two sequential reads
/// of another client that see the successor but not the write.
#[test]
fn h2_is_linearizable_but_not_mdl() {
    let h = vec![
        put(1, 1, "x", "1", (0, 7)),
        after(put(1, 2, "y", "1", (1, 2)), 1),
        get(2, 1, "y", Some("1"), (3, 4)),
        get(2, 2, "x", None, (5, 6)),
    ];
    assert_eq!(lin(&h), Verdict::Ok);
    let r = check_mdl(&h, &Options::default());
    assert_eq!(r.verdict, Verdict::Violation);
    let cx = r.violation.unwrap();
    assert_eq!(cx.key, "x,y");
    assert!(cx.explanation.contains("issue order"), "{}", cx.explanation);
    // Reading the write instead is fine.
    let mut fixed = h.clone();
    fixed[3].value = Some("1".into());
    assert_eq!(mdl(&fixed), Verdict::Ok);
}

/// H3: the chain head fails, its successor succeeds and is seen.
#[test]
fn h3_failures_must_be_suffix_closed() {
    let reads = [
        get(2, 1, "n", Some("1"), (10, 11)),
        get(2, 2, "m", None, (12, 13)),
    ];
    let h: Vec<Record> = [
        failed(put(1, 1, "m", "1", (0, 5))),
        after(put(1, 2, "n", "1", (1, 6)), 1),
    ]
    .into_iter()
    .chain(reads.clone())
    .collect();
    let r = check_mdl(&h, &Options::default());
    assert_eq!(r.verdict, Verdict::Violation);
    let cx = r.violation.unwrap();
    assert!(
        cx.explanation.contains("suffix-closed"),
        "{}",
        cx.explanation
    );
    assert_eq!(cx.operations.len(), 2);
    assert_eq!(cx.key, "m,n");
    // Even without the reads: an ok successor of a failed operation.
    assert_eq!(mdl(&h[..2]), Verdict::Violation);
    // The head unanswered instead: it must have taken effect before its
    // successor, so m cannot read absent after n read 1.
    let mut h_unknown = h.clone();
    h_unknown[0] = unknown(put(1, 1, "m", "1", (0, 5)));
    assert_eq!(mdl(&h_unknown), Verdict::Violation);
    h_unknown[3].value = Some("1".into());
    assert_eq!(mdl(&h_unknown), Verdict::Ok);
    // Both failed, nothing seen: fine.
    let both = vec![
        failed(put(1, 1, "m", "1", (0, 5))),
        failed(after(put(1, 2, "n", "1", (1, 6)), 1)),
        get(2, 1, "n", None, (10, 11)),
        get(2, 2, "m", None, (12, 13)),
    ];
    assert_eq!(mdl(&both), Verdict::Ok);
    // A failed head whose unanswered successor is seen: the successor cannot
    // have taken effect.
    let ghost = vec![
        failed(put(1, 1, "m", "1", (0, 5))),
        unknown(after(put(1, 2, "n", "1", (1, 6)), 1)),
        get(2, 1, "n", Some("1"), (10, 11)),
    ];
    assert_eq!(mdl(&ghost), Verdict::Violation);
    assert_eq!(lin(&ghost), Verdict::Ok);
}

/// H4: client 1 chains a1 (key A) then b2 (key B); client 2 chains b3 (B)
/// then a4 (A), all concurrent. a1 reads a4's write and b3 reads b2's, so
/// a4 < a1 < b2 < b3 < a4.
fn h4(cyclic: bool) -> Vec<Record> {
    vec![
        get(1, 1, "A", Some("a4"), (0, 10)),
        after(put(1, 2, "B", "b2", (1, 11)), 1),
        get(2, 1, "B", if cyclic { Some("b2") } else { None }, (0, 10)),
        after(put(2, 2, "A", "a4", (1, 11)), 1),
    ]
}

#[test]
fn h4_cross_shard_cycle_is_rejected_by_both_checkers() {
    let (a1, b2, b3, a4) = ((1, 1), (1, 2), (2, 1), (2, 2));
    let h = h4(true);
    assert_eq!(lin(&h), Verdict::Ok);
    assert_eq!(mdl(&h), Verdict::Violation);
    let r = check_logs(&h, &logs(&[&[a4, a1], &[b2, b3]]));
    assert_eq!(r.verdict, Verdict::Violation);
    let cx = r.violation.unwrap();
    assert!(cx.explanation.contains("cycle of 4"), "{}", cx.explanation);
    assert_eq!(cx.operations.len(), 4);
    assert!(cx.explanation.contains("issue order") && cx.explanation.contains("shard 1 log"));
    // b3 reads absent instead: order b3, a4, a1, b2.
    let h = h4(false);
    assert_eq!(mdl(&h), Verdict::Ok);
    let r = check_logs(&h, &logs(&[&[a4, a1], &[b3, b2]]));
    assert_eq!(r.verdict, Verdict::Ok, "{:?}", r.violation);
    assert_eq!((r.checked, r.keys), (4, 2));
}

// ---------------------------------------------------------------------------
// Single dispatch: the same verdicts as the linearizability checker.

#[test]
fn single_dispatch_histories_agree_with_linearizability() {
    let histories: Vec<Vec<Record>> = vec![
        // sequential, two keys
        vec![
            put(1, 1, "a", "1", (0, 1)),
            put(2, 1, "b", "2", (0, 1)),
            get(1, 2, "a", Some("1"), (2, 3)),
            get(2, 2, "b", Some("2"), (2, 3)),
        ],
        // stale read
        vec![
            put(1, 1, "k", "a", (0, 1)),
            put(1, 2, "k", "b", (2, 3)),
            get(2, 1, "k", Some("a"), (4, 5)),
        ],
        // concurrent read may see either value
        vec![put(1, 1, "k", "a", (0, 10)), get(2, 1, "k", None, (5, 6))],
        // new then old
        vec![
            put(1, 1, "k", "a", (0, 10)),
            get(2, 1, "k", Some("a"), (1, 2)),
            get(2, 2, "k", None, (3, 4)),
        ],
        // failed write seen
        vec![
            failed(put(1, 1, "k", "x", (0, 1))),
            get(2, 1, "k", Some("x"), (5, 6)),
        ],
        // unknown write seen, then not seen
        vec![
            unknown(put(1, 1, "k", "x", (0, 1))),
            get(2, 1, "k", Some("x"), (5, 6)),
            get(2, 2, "k", None, (7, 8)),
        ],
        // cas and delete
        vec![
            put(1, 1, "k", "a", (0, 1)),
            cas(1, 2, "k", Some("a"), "b", true, (2, 3)),
            cas(1, 3, "k", Some("a"), "c", false, (4, 5)),
            get(1, 4, "k", Some("b"), (6, 7)),
            rec(1, 5, "delete", "k", None, (8, 9)),
            cas(1, 6, "k", None, "d", true, (10, 11)),
            get(1, 7, "k", Some("d"), (12, 13)),
        ],
        vec![
            put(1, 1, "k", "a", (0, 1)),
            cas(1, 2, "k", Some("a"), "b", false, (2, 3)),
        ],
        // one client on two keys, sequentially: no chain, two components
        vec![
            put(1, 1, "a", "1", (0, 1)),
            put(1, 2, "b", "1", (2, 3)),
            get(2, 1, "b", Some("1"), (4, 5)),
            get(2, 2, "a", None, (6, 7)),
        ],
    ];
    let mut seen = HashSet::new();
    for (i, h) in histories.iter().enumerate() {
        let want = lin(h);
        seen.insert(format!("{want:?}"));
        let r = check_mdl(h, &Options::default());
        assert_eq!(r.verdict, want, "history {i}");
        assert_eq!(r.operations, h.len());
    }
    assert_eq!(seen.len(), 2, "both verdicts covered");
    // Keys of one client's single-dispatch operations stay separate components.
    let last = histories.last().unwrap();
    assert_eq!(check_mdl(last, &Options::default()).keys, 2);
    // An unknown start binds on the first read, as in the register checker.
    let any = Options {
        initial: Initial::Any,
        ..Default::default()
    };
    let h = vec![
        get(1, 1, "k", Some("z"), (0, 1)),
        get(2, 1, "k", Some("z"), (2, 3)),
    ];
    assert_eq!(check_mdl(&h, &any).verdict, Verdict::Ok);
    assert_eq!(mdl(&h), Verdict::Violation);
}

// ---------------------------------------------------------------------------
// Components, limits, speed.

#[test]
fn a_swapping_cas_may_replace_the_value_it_needed() {
    // put v1; an unanswered delete; a cas from absent to v0 that swapped. The
    // delete must have taken effect; the cas itself ends the absent value.
    let h = vec![
        put(1, 1, "B", "v1", (0, 1)),
        unknown(rec(1, 2, "delete", "B", None, (4, 0))),
        cas(1, 3, "B", None, "v0", true, (5, 6)),
    ];
    assert_eq!(mdl(&h), Verdict::Ok);
    assert_eq!(
        mdl(&h[..1].iter().chain(&h[2..]).cloned().collect::<Vec<_>>()),
        Verdict::Violation
    );
}

#[test]
fn chains_join_keys_into_components() {
    let h = vec![
        put(1, 1, "a", "1", (0, 5)),
        after(put(1, 2, "b", "1", (1, 5)), 1),
        put(2, 1, "c", "1", (0, 5)),
        after(put(2, 2, "d", "1", (1, 5)), 1),
        after(put(2, 3, "e", "1", (2, 5)), 2),
        put(3, 1, "f", "1", (0, 1)),
    ];
    let r = check_mdl(&h, &Options::default());
    assert_eq!(r.verdict, Verdict::Ok);
    // {a,b}, {c,d,e}, {f}
    assert_eq!((r.keys, r.checked, r.operations), (3, 6, 6));
    // A chain through a failed head does not join keys, and its operations
    // leave the search.
    let h = vec![
        failed(put(1, 1, "a", "1", (0, 5))),
        failed(after(put(1, 2, "b", "1", (1, 5)), 1)),
    ];
    let r = check_mdl(&h, &Options::default());
    assert_eq!((r.verdict, r.keys, r.checked), (Verdict::Ok, 2, 0));
}

#[test]
fn unanswered_operations_take_their_chain_suffix_with_them() {
    // An unanswered head with an ok successor must have taken effect.
    let h = vec![
        unknown(put(1, 1, "a", "1", (0, 0))),
        after(put(1, 2, "b", "1", (1, 2)), 1),
        get(2, 1, "a", None, (3, 4)),
    ];
    assert_eq!(mdl(&h), Verdict::Violation);
    // Without the ok successor it may be left out, and so may its successor.
    let h = vec![
        unknown(put(1, 1, "a", "1", (0, 0))),
        unknown(after(put(1, 2, "b", "1", (1, 2)), 1)),
        get(2, 1, "b", Some("1"), (3, 4)),
        get(2, 2, "a", None, (5, 6)),
    ];
    assert_eq!(mdl(&h), Verdict::Violation, "b's write needs a's before it");
    assert_eq!(lin(&h), Verdict::Ok);
    let h = vec![
        unknown(put(1, 1, "a", "1", (0, 0))),
        unknown(after(put(1, 2, "b", "1", (1, 2)), 1)),
        get(2, 1, "a", None, (3, 4)),
        get(2, 2, "b", None, (5, 6)),
    ];
    assert_eq!(mdl(&h), Verdict::Ok);
    // An unanswered chain may take effect late, in order.
    let h = vec![
        unknown(put(1, 1, "a", "1", (0, 0))),
        unknown(after(put(1, 2, "b", "1", (1, 2)), 1)),
        get(2, 1, "b", None, (3, 4)),
        get(2, 2, "a", Some("1"), (5, 6)),
        get(2, 3, "b", Some("1"), (7, 8)),
    ];
    assert_eq!(mdl(&h), Verdict::Ok);
}

#[test]
fn the_search_budget_gives_undecided() {
    // Eight clients each chain two concurrent writes on neighbouring keys (one
    // component), then a read sees a value nobody wrote: only trying the
    // orders of the writes shows it, and a tiny budget gives up first.
    let mut h = Vec::new();
    for c in 0..8u64 {
        h.push(put(c, 1, &format!("k{c}"), &format!("x{c}"), (c, 100 + c)));
        let next = format!("k{}", (c + 1) % 8);
        h.push(after(
            put(c, 2, &next, &format!("y{c}"), (c + 1, 100 + c)),
            1,
        ));
    }
    h.push(get(99, 1, "k0", Some("zz"), (300, 301)));
    let tight = Options {
        max_states: 0,
        ..Default::default()
    };
    let r = check_mdl(&h, &tight);
    assert_eq!(
        (r.verdict, r.keys, r.keys_undecided),
        (Verdict::Undecided, 1, 1)
    );
    assert_eq!(mdl(&h), Verdict::Violation);
    h.pop();
    assert_eq!(mdl(&h), Verdict::Ok);
    // More concurrent operations than the window: undecided, not wrong.
    let wide: Vec<Record> = (0..600)
        .map(|i| put(i + 1, 1, "k", &format!("v{i}"), (i, 1_000 + i)))
        .collect();
    assert_eq!(mdl(&wide), Verdict::Undecided);
}

#[test]
fn a_long_chained_history_is_fast() {
    // 500 rounds of: client 1 chains put(a), put(b); client 2 then chains
    // get(b), get(a) and sees both. One component, 2,000 operations.
    let mut h = Vec::new();
    for i in 0..500u64 {
        let t = 10 * i;
        let v = format!("v{i}");
        h.push(put(1, 2 * i + 1, "a", &v, (t, t + 3)));
        h.push(after(put(1, 2 * i + 2, "b", &v, (t + 1, t + 4)), 2 * i + 1));
        h.push(get(2, 2 * i + 1, "b", Some(&v), (t + 5, t + 8)));
        h.push(after(
            get(2, 2 * i + 2, "a", Some(&v), (t + 6, t + 9)),
            2 * i + 1,
        ));
    }
    let t = Instant::now();
    let r = check_mdl(&h, &Options::default());
    assert_eq!((r.verdict, r.keys), (Verdict::Ok, 1));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // The (1,0) outcome in the last round is caught.
    let last = h.len() - 1;
    h[last].value = Some("v498".into());
    assert_eq!(mdl(&h), Verdict::Violation);
}

#[test]
fn unanswered_and_failed_operations_in_a_long_history() {
    for every in [3u64, 50] {
        let mut h = Vec::new();
        for i in 0..2000u64 {
            let t = 10 * i + 1;
            let v = format!("v{i}");
            h.push(put(1, 2 * i + 1, "a", &v, (t, t + 3)));
            h.push(get(2, 2 * i + 1, "a", Some(&v), (t + 5, t + 8)));
            if i % every == 0 {
                // never seen, unanswered read, failed write
                h.push(unknown(put(3, i, "a", "zz", (t, 0))));
                h.push(unknown(get(4, i, "a", None, (t, 0))));
                h.push(failed(put(5, i, "a", "yy", (t, t + 1))));
            }
        }
        let r = check_mdl(&h, &Options::default());
        assert_eq!(r.verdict, Verdict::Ok, "every {every}");
        assert!(
            r.states < 3 * h.len() as u64,
            "every {every}: {} states",
            r.states
        );
    }
}

/// A pseudo-random MDL execution: `clients` clients on `keys` keys, each
/// issuing chains of 1 to 4 operations whose intervals overlap, executed at a
/// point inside each interval after the chain predecessor. Written values are
/// unique; a tenth of the operations are unanswered, and when such an
/// operation did not take effect, the rest of its chain fails.
fn simulated(clients: u64, keys: u64, chains_each: u64, seed: u64) -> Vec<Record> {
    let mut x = seed;
    let mut rnd = move |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    // (point, record index)
    let mut events: Vec<(u64, usize)> = Vec::new();
    let mut h: Vec<Record> = Vec::new();
    let mut executed: Vec<bool> = Vec::new();
    for c in 0..clients {
        let mut t = rnd(50);
        let mut seq = 0;
        for _ in 0..chains_each {
            let len = 1 + rnd(4);
            let mut last_point = 0;
            let mut pred = None;
            let mut alive = true;
            let mut chain_end = t;
            for k in 0..len {
                seq += 1;
                let invoke = t + k * 2;
                let point = (invoke + rnd(40)).max(last_point + 1);
                let ret = point + 1 + rnd(20);
                chain_end = chain_end.max(ret);
                last_point = point;
                let key = format!("k{}", rnd(keys));
                let r = if rnd(2) == 0 {
                    put(c, seq, &key, &format!("c{c}s{seq}"), (invoke, ret))
                } else {
                    get(c, seq, &key, None, (invoke, ret))
                };
                let mut r = r.with_pred(pred);
                if !alive {
                    // after an unanswered operation that did not take effect
                    r = failed(r);
                } else if rnd(10) == 0 {
                    r = unknown(r);
                    alive = rnd(2) == 0;
                }
                executed.push(alive);
                events.push((point, h.len()));
                h.push(r);
                pred = Some(seq);
            }
            t = chain_end + rnd(30);
        }
    }
    events.sort_unstable();
    let mut store = std::collections::HashMap::new();
    for (_, i) in events {
        if !executed[i] {
            continue;
        }
        let r = &mut h[i];
        match r.op.as_str() {
            "put" => {
                store.insert(r.key.clone(), r.value.clone());
            }
            _ if r.outcome == Outcome::Ok => r.value = store.get(&r.key).cloned().flatten(),
            _ => {}
        }
    }
    h
}

#[test]
fn simulated_runs_of_a_few_hundred_operations_are_fast() {
    let t = Instant::now();
    for (clients, keys, chains, seed) in
        [(8, 4, 12, 0), (8, 4, 12, 1), (16, 8, 12, 2), (4, 2, 50, 3)]
    {
        let h = simulated(clients, keys, chains, seed);
        assert!(h.len() > 150, "{}", h.len());
        let r = check_mdl(&h, &Options::default());
        assert_eq!(r.verdict, Verdict::Ok, "seed {seed}: {:?}", r.violation);
        assert_eq!(r.keys, 1, "chains tie every key together");
        // A read of a value nobody wrote.
        let mut bad = h.clone();
        if let Some(i) = (0..bad.len()).find(|&i| {
            bad[i].op == "get" && bad[i].outcome == Outcome::Ok && bad[i].value.is_some()
        }) {
            bad[i].value = Some("never written".into());
            assert_eq!(mdl(&bad), Verdict::Violation);
        }
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

// ---------------------------------------------------------------------------
// Malformed input: explained, never a panic.

#[test]
fn malformed_chains_are_reported() {
    let cases: Vec<(Vec<Record>, &str)> = vec![
        (
            vec![after(put(1, 2, "a", "1", (0, 1)), 7)],
            "no such operation",
        ),
        (vec![after(put(1, 2, "a", "1", (0, 1)), 2)], "itself"),
        (
            vec![
                after(put(1, 1, "a", "1", (0, 1)), 2),
                after(put(1, 2, "a", "2", (0, 1)), 1),
            ],
            "loop",
        ),
        (
            vec![
                put(1, 1, "a", "1", (5, 6)),
                after(put(1, 2, "a", "2", (0, 1)), 1),
            ],
            "invoked later",
        ),
        (
            vec![
                put(1, 1, "a", "1", (0, 1)),
                put(1, 1, "a", "2", (0, 1)),
                after(put(1, 2, "a", "3", (2, 3)), 1),
            ],
            "several records",
        ),
        // Another client's seq does not count.
        (
            vec![
                put(2, 1, "a", "1", (0, 1)),
                after(put(1, 2, "a", "1", (2, 3)), 1),
            ],
            "no such",
        ),
    ];
    for (h, what) in cases {
        for r in [check_mdl(&h, &Options::default()), check_logs(&h, &[])] {
            assert_eq!(r.verdict, Verdict::Violation);
            let cx = r.violation.unwrap();
            assert!(
                cx.explanation.starts_with("malformed history") && cx.explanation.contains(what),
                "{what}: {}",
                cx.explanation
            );
        }
    }
}

#[test]
fn odd_operations_do_not_panic() {
    let h = vec![
        rec(1, 1, "scan", "a", Some("x"), (0, 1)),
        after(rec(1, 2, "noop", "b", None, (0, 1)), 1),
        put(1, 3, "a", "1", (2, 3)),
        rec(2, 1, "get", "a", Some("1"), (4, 5)),
        // returned before it was invoked
        put(3, 1, "c", "1", (9, 8)),
    ];
    let r = check_mdl(&h, &Options::default());
    assert_eq!(r.verdict, Verdict::Violation, "the backwards record");
    let r = check_mdl(&h[..4], &Options::default());
    assert_eq!(r.verdict, Verdict::Ok);
    let r = check_logs(&h[..4], &logs(&[&[(1, 1), (1, 3), (2, 1)], &[(1, 2)]]));
    assert_eq!(r.verdict, Verdict::Ok, "{:?}", r.violation);
    let r = check_logs(&h, &logs(&[&[(1, 1), (1, 3), (2, 1)], &[(1, 2), (3, 1)]]));
    assert_eq!(
        r.verdict,
        Verdict::Violation,
        "the backwards record is a cycle"
    );
    assert!(r.violation.unwrap().explanation.contains("cycle of 1"));
    assert_eq!(mdl(&[]), Verdict::Ok);
    assert_eq!(check_logs(&[], &[]).verdict, Verdict::Ok);
    assert_eq!(check_logs(&[], &[vec![]]).verdict, Verdict::Ok);
}

// ---------------------------------------------------------------------------
// White-box checks, one by one.

/// Client 1 chains put(a)=1 then put(b)=1; client 2 then reads b, then a,
/// with a cas between; shard 0 holds a, shard 1 holds b.
fn wb_history() -> Vec<Record> {
    vec![
        put(1, 1, "a", "1", (0, 3)),
        after(put(1, 2, "b", "1", (1, 4)), 1),
        get(2, 1, "b", Some("1"), (5, 6)),
        cas(2, 2, "a", Some("1"), "2", true, (7, 8)),
        get(2, 3, "a", Some("2"), (9, 10)),
        unknown(put(3, 1, "c", "9", (0, 0))),
        failed(put(4, 1, "d", "9", (0, 1))),
    ]
}
const A: &[(u64, u64)] = &[(1, 1), (2, 2), (2, 3)];
const B: &[(u64, u64)] = &[(1, 2), (2, 1)];

fn wb_violation(h: &[Record], logs: &[Vec<Vec<(u64, u64)>>], what: &str) {
    let r = check_logs(h, logs);
    assert_eq!(r.verdict, Verdict::Violation, "{what}");
    let cx = r.violation.unwrap();
    assert!(cx.explanation.contains(what), "{what}: {}", cx.explanation);
}

#[test]
fn white_box_accepts_a_good_run() {
    let h = wb_history();
    // Replicas lag behind: prefixes are fine.
    let good = vec![
        vec![A.to_vec(), A[..1].to_vec(), vec![]],
        vec![B.to_vec(), B.to_vec()],
    ];
    let r = check_logs(&h, &good);
    assert_eq!(r.verdict, Verdict::Ok, "{:?}", r.violation);
    assert_eq!((r.operations, r.checked, r.keys), (7, 5, 2));
    assert_eq!(r.states, 5 + 5, "five operations, five return instants");
    // The unanswered write may have been executed, once.
    let with_c = vec![vec![A.to_vec()], vec![[B, &[(3, 1)]].concat()]];
    assert_eq!(check_logs(&h, &with_c).verdict, Verdict::Ok);
    assert_eq!(mdl(&h), Verdict::Ok);
}

#[test]
fn white_box_replicas_must_agree() {
    let h = wb_history();
    let bad = vec![vec![A.to_vec(), vec![(1, 1), (2, 3)]], vec![B.to_vec()]];
    wb_violation(
        &h,
        &bad,
        "replica 1 executed client 2 seq 3 at position 1, where replica 0 executed client 2 seq 2",
    );
    assert_eq!(check_logs(&h, &bad).violation.unwrap().key, "shard 0");
}

#[test]
fn white_box_exactly_once() {
    let h = wb_history();
    wb_violation(&h, &logs(&[A, &[(1, 2), (2, 1), (1, 1)]]), "executed twice");
    wb_violation(
        &h,
        &logs(&[&[(1, 1), (1, 1), (2, 2), (2, 3)], B]),
        "executed twice",
    );
    wb_violation(&h, &logs(&[A, B, &[(3, 1), (3, 1)]]), "executed twice");
    wb_violation(
        &h,
        &logs(&[A, &[(1, 2)]]),
        "client 2 seq 1 was answered ok, but no shard log",
    );
    wb_violation(
        &h,
        &logs(&[A, &[(1, 2), (2, 1), (4, 1)]]),
        "failed, but shard 1 executed it",
    );
    wb_violation(
        &h,
        &logs(&[A, &[(1, 2), (2, 1), (5, 5)]]),
        "no such operation",
    );
}

#[test]
fn white_box_successors_of_absent_operations_stay_absent() {
    let mut h = wb_history();
    h.push(unknown(put(5, 1, "e", "1", (0, 0))));
    h.push(unknown(after(put(5, 2, "e", "2", (1, 0)), 1)));
    let ok = logs(&[A, B, &[(5, 1), (5, 2)]]);
    assert_eq!(check_logs(&h, &ok).verdict, Verdict::Ok);
    assert_eq!(
        check_logs(&h, &logs(&[A, B, &[(5, 1)]])).verdict,
        Verdict::Ok
    );
    wb_violation(
        &h,
        &logs(&[A, B, &[(5, 2)]]),
        "its chain predecessor client 5 seq 1 was never executed",
    );
}

#[test]
fn white_box_replayed_values_must_match() {
    let mut h = wb_history();
    h[4].value = Some("1".into());
    wb_violation(&h, &logs(&[A, B]), "read Some(\"1\") from key \"a\", but replaying shard 0's log gives Some(\"2\") at position 2 (written by client 2 seq 2)");
    let mut h = wb_history();
    h[2].value = None;
    wb_violation(
        &h,
        &logs(&[A, B]),
        "gives Some(\"1\") at position 1 (written by client 1 seq 2)",
    );
    let mut h = wb_history();
    h[3].swapped = Some(false);
    wb_violation(&h, &logs(&[A, B]), "reported swapped = false");
    // Order matters: the read before the write it saw.
    wb_violation(
        &wb_history(),
        &logs(&[A, &[(2, 1), (1, 2)]]),
        "the initial value",
    );
}

#[test]
fn white_box_orders_must_be_acyclic() {
    // A read logged after a write that was invoked only after the read returned.
    let h = vec![
        put(1, 1, "a", "1", (2, 3)),
        get(2, 1, "a", Some("1"), (0, 1)),
    ];
    wb_violation(&h, &logs(&[&[(1, 1), (2, 1)]]), "cycle of 2");
    wb_violation(&h, &logs(&[&[(1, 1), (2, 1)]]), "-[real time]->");
    let mut h = h;
    h[1].value = None;
    assert_eq!(
        check_logs(&h, &logs(&[&[(2, 1), (1, 1)]])).verdict,
        Verdict::Ok
    );
    // H2 with logs that replay correctly: shard a runs the read before the
    // chain head, shard b runs the chained write before the read of it.
    let h2 = vec![
        put(1, 1, "a", "1", (0, 7)),
        after(put(1, 2, "b", "1", (1, 2)), 1),
        get(2, 1, "b", Some("1"), (3, 4)),
        get(2, 2, "a", None, (5, 6)),
    ];
    let bad = logs(&[&[(2, 2), (1, 1)], &[(1, 2), (2, 1)]]);
    let r = check_logs(&h2, &bad);
    assert_eq!(r.verdict, Verdict::Violation);
    let cx = r.violation.unwrap();
    assert!(
        cx.explanation.contains("cycle of 4")
            && cx.explanation.contains("-[issue order]->")
            && cx.explanation.contains("-[shard 1 log]->")
            && cx.explanation.contains("-[real time]->"),
        "{}",
        cx.explanation
    );
    assert_eq!(cx.key, "a,b");
}

#[test]
fn white_box_is_fast_on_a_long_run() {
    // 100,000 operations in 50 rounds: each of 1,000 clients puts its key
    // (one of two shards), then, while the put is still outstanding, chains a
    // read that sees the round's last write of that key.
    let clients = 1_000u64;
    let mut h = Vec::new();
    let mut shard_logs: Vec<Vec<(u64, u64)>> = vec![Vec::new(), Vec::new()];
    for round in 0..50u64 {
        let seq = 2 * round + 1;
        for c in 0..clients {
            let t = round * 10_000 + c;
            let key = format!("k{}", c % 2);
            h.push(put(c, seq, &key, &format!("{c}-{round}"), (t, t + 6_000)));
            shard_logs[(c % 2) as usize].push((c, seq));
        }
        for c in 0..clients {
            let t = round * 10_000 + 5_001 + c;
            let key = format!("k{}", c % 2);
            let last = clients - 2 + c % 2;
            let seen = format!("{last}-{round}");
            h.push(after(get(c, seq + 1, &key, Some(&seen), (t, t + 10)), seq));
            shard_logs[(c % 2) as usize].push((c, seq + 1));
        }
    }
    assert_eq!(h.len(), 100_000);
    let logs: Vec<Vec<Vec<(u64, u64)>>> =
        shard_logs.into_iter().map(|l| vec![l.clone(), l]).collect();
    let t = Instant::now();
    let r = check_logs(&h, &logs);
    assert_eq!(r.verdict, Verdict::Ok, "{:?}", r.violation);
    assert_eq!(r.checked, 100_000);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Client 0's first put logged last: the values still replay, but its
    // chained read now comes before it.
    let mut logs = logs;
    for replica in &mut logs[0] {
        let first = replica.remove(0);
        replica.push(first);
    }
    let r = check_logs(&h, &logs);
    assert_eq!(r.verdict, Verdict::Violation);
    let cx = r.violation.unwrap();
    assert!(cx.explanation.contains("cycle"), "{}", cx.explanation);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

// ---------------------------------------------------------------------------
// Brute force: every set of unanswered operations to keep, every order.

#[derive(Debug, Clone)]
struct G {
    client: u64,
    seq: u64,
    key: u8,
    op: u8, // 0 put, 1 get, 2 delete, 3 cas
    value: Option<u8>,
    expected: Option<u8>,
    swapped: Option<bool>,
    invoke: u64,
    ret: Option<u64>,
    outcome: Outcome,
    /// Index of the chain predecessor in the history.
    pred: Option<usize>,
}

fn brute(ops: &[G]) -> bool {
    let optional: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].outcome == Outcome::Unknown)
        .collect();
    for subset in 0..(1u32 << optional.len()) {
        let keep: Vec<bool> = (0..ops.len())
            .map(|i| {
                ops[i].outcome == Outcome::Ok
                    || optional
                        .iter()
                        .position(|&o| o == i)
                        .is_some_and(|b| subset >> b & 1 == 1)
            })
            .collect();
        let mut dead = HashSet::new();
        if orders(ops, &keep, 0, [None, None], &mut dead) {
            return true;
        }
    }
    false
}

/// Whether the kept operations not in `placed` can follow, in some order.
fn orders(
    ops: &[G],
    keep: &[bool],
    placed: u32,
    store: [Option<u8>; 2],
    dead: &mut HashSet<(u32, [Option<u8>; 2])>,
) -> bool {
    let left: Vec<usize> = (0..ops.len())
        .filter(|&i| keep[i] && placed >> i & 1 == 0)
        .collect();
    if left.is_empty() {
        return true;
    }
    if dead.contains(&(placed, store)) {
        return false;
    }
    for &b in &left {
        let o = &ops[b];
        // issue order: the predecessor first (so it must be kept)
        if o.pred.is_some_and(|p| placed >> p & 1 == 0) {
            continue;
        }
        // real time: nothing kept that returned before b was invoked is still left
        if left.iter().any(|&a| {
            a != b && ops[a].outcome == Outcome::Ok && ops[a].ret.is_some_and(|r| r < o.invoke)
        }) {
            continue;
        }
        let k = o.key as usize;
        let mut next = store;
        let answered = o.outcome == Outcome::Ok;
        match o.op {
            0 => next[k] = o.value,
            1 => {
                if answered && store[k] != o.value {
                    continue;
                }
            }
            2 => next[k] = None,
            _ => {
                let hit = store[k] == o.expected;
                if answered && o.swapped.is_some_and(|s| s != hit) {
                    continue;
                }
                if hit {
                    next[k] = o.value;
                }
            }
        }
        if orders(ops, keep, placed | 1 << b, next, dead) {
            return true;
        }
    }
    dead.insert((placed, store));
    false
}

fn to_record(ops: &[G], o: &G) -> Record {
    let s = |v: Option<u8>| v.map(|x| format!("v{x}"));
    Record {
        client: o.client,
        seq: o.seq,
        pred: o.pred.map(|p| ops[p].seq),
        op: ["put", "get", "delete", "cas"][o.op as usize].into(),
        key: ["A", "B"][o.key as usize].into(),
        value: if o.op == 2 { None } else { s(o.value) },
        expected: if o.op == 3 { s(o.expected) } else { None },
        swapped: if o.op == 3 { o.swapped } else { None },
        invoke_ns: o.invoke,
        return_ns: o.ret,
        outcome: o.outcome,
    }
}

/// A generated history, whether it was changed after the execution, and the
/// shard logs (one per key) of that execution.
type Case = (Vec<G>, bool, Vec<Vec<(u64, u64)>>);

type Raw = (u64, u8, u8, u8, Option<u8>, u64, u64, u8, u8, u8);

/// A history of at most 7 operations by at most 2 clients on at most 2 keys,
/// with chains. When `real`, it comes from an execution that respects MDL
/// (each operation at a point inside its interval, after its chain
/// predecessor, failures suffix-closed), possibly with one answer mutated;
/// the shard logs (one per key) of that execution come with it.
fn history() -> impl Strategy<Value = Case> {
    history_with(|_, r| r)
}

fn history_with(shape: fn(usize, Raw) -> Raw) -> impl Strategy<Value = Case> {
    let op = (
        1u64..3,                      // client
        0u8..2,                       // key
        0u8..4,                       // op
        0u8..3,                       // value
        proptest::option::of(0u8..3), // expected
        0u64..20,                     // invoke
        1u64..12,                     // duration
        0u8..10,                      // outcome
        any::<u8>(),                  // pred choice
        any::<u8>(),                  // execution point / unknown executed
    );
    (
        proptest::collection::vec(op, 1..=7),
        any::<bool>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(
            move |(raw, real, mutate, mdl): (Vec<Raw>, bool, u8, bool)| {
                let raw = raw
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| shape(i, r))
                    .collect();
                build(raw, real, mutate, mdl)
            },
        )
}

/// Like [`history`], shaped after the model's examples: client 1 mostly
/// writes, client 2 mostly reads, each chaining almost every operation to the
/// previous one, with long overlapping intervals.
fn chained_history() -> impl Strategy<Value = Case> {
    history_with(|i, r| {
        let (client, op) = if i % 2 == 0 {
            (1, if r.2 == 3 { 3 } else { 0 })
        } else {
            (2, if r.2 == 0 { 0 } else { 1 })
        };
        let outcome = if r.7 < 2 { r.7 } else { 9 }; // mostly answered
        (
            client,
            r.1,
            op,
            r.3,
            r.4,
            r.5,
            r.6 + 4,
            outcome,
            r.8 | 2,
            r.9,
        )
    })
}

/// With `mdl` false the execution ignores the chains (a successor may run
/// before its predecessor, or without it): linearizable, often not MDL.
fn build(mut raw: Vec<Raw>, real: bool, mutate: u8, mdl: bool) -> Case {
    // Issue order = invocation order.
    raw.sort_by_key(|r| r.5);
    let n = raw.len();
    let mut ops: Vec<G> = Vec::with_capacity(n);
    let mut point = vec![0u64; n];
    let mut executed = vec![false; n];
    for (i, &(client, key, op, value, expected, invoke, len, outcome, pc, pt)) in
        raw.iter().enumerate()
    {
        let earlier: Vec<usize> = (0..i).filter(|&j| ops[j].client == client).collect();
        // Mostly the latest earlier operation still outstanding, as a client
        // would chain; sometimes any earlier one, or none.
        let outstanding = earlier
            .iter()
            .rev()
            .find(|&&j| ops[j].ret.is_some_and(|r| r > invoke));
        let pred = match (pc % 4, earlier.last()) {
            (_, None) | (0, _) => None,
            (1, Some(_)) => Some(earlier[pc as usize % earlier.len()]),
            (_, Some(&last)) => Some(*outstanding.unwrap_or(&last)),
        };
        let mut ret = invoke + len;
        let mut outcome = match outcome {
            0 => Outcome::Fail,
            1 | 2 => Outcome::Unknown,
            _ => Outcome::Ok,
        };
        let alive = match pred {
            Some(p) if mdl => executed[p],
            _ => true,
        };
        executed[i] = alive
            && match outcome {
                Outcome::Ok => true,
                Outcome::Fail => false,
                Outcome::Unknown => pt & 1 == 1,
            };
        if !alive && outcome == Outcome::Ok {
            outcome = Outcome::Fail;
        }
        point[i] = invoke + pt as u64 % len;
        if let Some(p) = pred.filter(|_| mdl) {
            point[i] = point[i].max(point[p] + 1);
        }
        if point[i] >= ret {
            ret = point[i] + 1;
        }
        ops.push(G {
            client,
            seq: earlier.len() as u64 + 1,
            key,
            op,
            value: if op == 1 { None } else { Some(value) },
            expected,
            swapped: None,
            invoke,
            ret: Some(ret),
            outcome,
            pred,
        });
    }
    // Execute in point order (chain predecessors first on ties) to fill in answers.
    let mut order: Vec<usize> = (0..n).filter(|&i| executed[i]).collect();
    order.sort_by_key(|&i| (point[i], i));
    let mut store = [None, None];
    let mut shard_logs = vec![Vec::new(), Vec::new()];
    for &i in &order {
        let o = &mut ops[i];
        let k = o.key as usize;
        shard_logs[k].push((o.client, o.seq));
        match o.op {
            0 => store[k] = o.value,
            1 => o.value = store[k],
            2 => store[k] = None,
            _ => {
                let hit = store[k] == o.expected;
                o.swapped = Some(hit);
                if hit {
                    store[k] = o.value;
                }
            }
        }
    }
    for o in &mut ops {
        if o.outcome == Outcome::Unknown {
            o.ret = None;
            o.swapped = None;
            if o.op == 1 {
                o.value = None;
            }
        }
    }
    let mutated = !real || !mdl || mutate < 86; // about a third of the real ones
    if mutated {
        let i = mutate as usize % n;
        let o = &mut ops[i];
        match (o.op, mutate / 64) {
            (_, 0) if o.outcome == Outcome::Fail => o.outcome = Outcome::Ok,
            (1, _) => o.value = o.value.map_or(Some(2), |x| Some((x + 1) % 3)),
            (3, _) if o.swapped.is_some() => o.swapped = o.swapped.map(|b| !b),
            _ => o.value = o.value.map(|x| (x + 1) % 3),
        }
    }
    (ops, mutated, shard_logs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(30_000))]
    #[test]
    fn agrees_with_brute_force((ops, mutated, shard_logs) in prop_oneof![history(), chained_history()]) {
        let records: Vec<Record> = ops.iter().map(|o| to_record(&ops, o)).collect();
        let expect = if brute(&ops) { Verdict::Ok } else { Verdict::Violation };
        let r = check_mdl(&records, &Options::default());
        prop_assert_eq!(r.verdict, expect, "history: {:#?}", records);
        if !mutated {
            prop_assert_eq!(expect, Verdict::Ok, "an execution is MDL: {:#?}", records);
            let logs: Vec<Vec<Vec<(u64, u64)>>> = shard_logs.into_iter().map(|l| vec![l]).collect();
            let w = check_logs(&records, &logs);
            prop_assert_eq!(w.verdict, Verdict::Ok, "{:?} {:#?}", w.violation, records);
        }
    }
}
