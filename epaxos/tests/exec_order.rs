//! Property: for any set of committed instances with any dependencies,
//! delivered in any order to several replicas, every replica executes the
//! commands of each key in the same order (and so ends in the same state).

use bytes::Bytes;
use epaxos::messages::{Commit, EpaxosMsg};
use epaxos::{Config, Replica};
use genericsmr::command::Command;
use genericsmr::effects::Effects;
use proptest::prelude::*;

const N: usize = 3;

#[derive(Debug, Clone)]
struct Inst {
    leader: u8,
    instance: u64,
    key: u8,
    write: bool,
    seq: u64,
    deps: Vec<u64>,
}

fn instances(per_leader: u64) -> impl Strategy<Value = Vec<Inst>> {
    let one = (
        0..3u8,
        any::<bool>(),
        0..6u64,
        proptest::collection::vec(0..=per_leader, N),
    );
    proptest::collection::vec(one, (N as u64 * per_leader) as usize)
        .prop_map(move |raw| {
            raw.into_iter()
                .enumerate()
                .map(|(k, (key, write, seq, mut deps))| {
                    let leader = (k as u64 / per_leader) as u8;
                    let instance = k as u64 % per_leader;
                    // Every instance depends on its leader's earlier ones.
                    deps[leader as usize] = deps[leader as usize].max(instance);
                    Inst {
                        leader,
                        instance,
                        key,
                        write,
                        seq,
                        deps,
                    }
                })
                .collect::<Vec<_>>()
        })
        .prop_map(with_invariant)
}

/// EPaxos guarantees that of two conflicting committed instances at least one
/// depends on the other; random dependencies are completed to respect that.
fn with_invariant(mut v: Vec<Inst>) -> Vec<Inst> {
    let depends = |a: &Inst, b: &Inst| a.deps[b.leader as usize] > b.instance;
    for x in 0..v.len() {
        for y in 0..x {
            let (a, b) = (&v[x], &v[y]);
            let conflict = a.key == b.key && (a.write || b.write);
            if conflict && !depends(a, b) && !depends(b, a) {
                let (from, to) = if (a.seq + b.seq) % 2 == 0 {
                    (x, y)
                } else {
                    (y, x)
                };
                let (l, i) = (v[to].leader as usize, v[to].instance);
                v[from].deps[l] = v[from].deps[l].max(i + 1);
            }
        }
    }
    v
}

fn commit(x: &Inst) -> Commit {
    let key = Bytes::from(format!("k{}", x.key));
    let id = 1000 + x.leader as u64;
    let cmd = if x.write {
        Command::put(
            id,
            x.instance + 1,
            key,
            Bytes::from(format!("{}.{}", x.leader, x.instance)),
        )
    } else {
        Command::get(id, x.instance + 1, key)
    };
    Commit {
        leader: x.leader,
        instance: x.instance,
        cmds: vec![cmd],
        seq: x.seq,
        deps: x.deps.clone(),
    }
}

/// Executes `insts` delivered in `order`; returns, per key, the executed instances.
fn run(insts: &[Inst], order: &[usize]) -> (Vec<Vec<(u8, u64)>>, u128) {
    let mut c = Config::new(0, N);
    c.record_commits = true;
    let mut r = Replica::new(c);
    for &k in order {
        let mut fx = Effects::default();
        r.handle_peer(1, 1, EpaxosMsg::Commit(commit(&insts[k])), &mut fx);
        r.flush(1, &mut fx);
    }
    assert_eq!(
        r.executed_order().len(),
        insts.len(),
        "everything committed gets executed"
    );
    let mut per_key = vec![Vec::new(); 3];
    for &(l, i) in r.executed_order() {
        let x = insts
            .iter()
            .find(|x| x.leader == l && x.instance == i)
            .expect("known");
        per_key[x.key as usize].push((l, i, x.write));
    }
    // Reads between two writes may run in any order among themselves; what
    // must agree is each write's place relative to every conflicting command.
    let shape = per_key
        .into_iter()
        .map(|ops| {
            let mut out = Vec::new();
            let mut reads = Vec::new();
            for (l, i, w) in ops {
                if w {
                    reads.sort();
                    out.append(&mut reads);
                    out.push((l, i));
                } else {
                    reads.push((l, i));
                }
            }
            reads.sort();
            out.append(&mut reads);
            out
        })
        .collect();
    (shape, r.state().digest())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn every_delivery_order_executes_conflicts_alike(
        insts in instances(4),
        shuffles in proptest::collection::vec(any::<proptest::sample::Index>(), 3 * 12),
    ) {
        let n = insts.len();
        let base: Vec<usize> = (0..n).collect();
        let (want, digest) = run(&insts, &base);
        for round in 0..3 {
            let mut order = base.clone();
            for k in (1..n).rev() {
                let j = shuffles[round * 12 + k % 12].index(k + 1);
                order.swap(k, j);
            }
            let (got, d) = run(&insts, &order);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(d, digest);
        }
    }
}
