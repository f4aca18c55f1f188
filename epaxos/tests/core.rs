//! The EPaxos core through its handlers, with a hand-driven network: fast
//! path, slow path, order-independence of the fast-path decision, every
//! recovery case, Sutra's counterexample, and execution order.

use bytes::Bytes;
use epaxos::messages::*;
use epaxos::{Config, Replica, Status};
use genericsmr::command::Command;
use genericsmr::effects::Effects;
use genericsmr::messages::{Propose, ReplyStatus};
use sim::{manual, Boot};

type Msg = manual::Msg<EpaxosMsg>;

/// The shared manual-delivery network (`sim::manual`) of EPaxos cores,
/// where every step ends with a flush, as a burst does in the runtime.
struct Net {
    inner: manual::Net<Replica>,
}

impl std::ops::Deref for Net {
    type Target = manual::Net<Replica>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Net {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl Net {
    fn new(n: usize) -> Net {
        Net::with(n, |_| {})
    }

    fn with(n: usize, f: impl Fn(&mut Config)) -> Net {
        let cfgs: Vec<Config> = (0..n)
            .map(|i| {
                let mut c = Config::new(i as u8, n);
                c.record_commits = true;
                f(&mut c);
                c
            })
            .collect();
        let inner = manual::Net::new(
            n,
            Box::new(move |i, boot, _now, _fx| {
                let mut r = Replica::new(cfgs[i as usize].clone());
                if let Boot::Durable(recs) = boot {
                    r.restore(&recs).expect("replay");
                }
                r
            }),
        );
        Net { inner }
    }

    fn on(&mut self, i: u8, f: impl FnOnce(&mut Replica, u64, &mut Effects<EpaxosMsg>)) {
        if self.down[i as usize] {
            return;
        }
        self.inner.on(i, |r, now, fx| {
            f(r, now, fx);
            r.flush(now, fx);
        });
    }

    fn propose(&mut self, at: u8, cmd: Command) {
        self.on(at, |r, now, fx| {
            r.handle_propose(now, 7, Propose { cmd }, fx)
        });
    }

    /// Delivers queued messages matching `p` (and what they cause) until none is left.
    fn run_where(&mut self, p: impl Fn(&Msg) -> bool) {
        for _ in 0..1_000_000 {
            let Some(k) = self.queue.iter().position(&p) else {
                return;
            };
            let m = self.queue.remove(k).expect("found above");
            self.deliver(m);
        }
        panic!("the network does not settle");
    }

    fn drop_where(&mut self, p: impl Fn(&Msg) -> bool) {
        self.queue.retain(|m| !p(m));
    }

    fn tick_all(&mut self, dt: u64) {
        self.inner.tick_all(dt)
    }

    /// Replica `i` crashes and restarts from what it persisted.
    fn restart(&mut self, i: u8) {
        self.restart_durable(i)
    }

    fn attrs(&self, r: u8, l: u8, i: u64) -> Option<(Status, u64, Vec<u64>)> {
        self.r(r)
            .instance(l, i)
            .map(|x| (x.status, x.seq, x.deps.clone()))
    }

    fn committed(&self, r: u8, l: u8, i: u64) -> bool {
        self.r(r)
            .instance(l, i)
            .is_some_and(|x| x.status.is_committed())
    }

    fn oks(&self) -> usize {
        self.replies
            .iter()
            .filter(|(_, _, p)| p.status == ReplyStatus::Ok)
            .count()
    }
}

/// A heartbeat from a replica that started `next` instances and executed
/// nothing, in a group of `n`.
fn fresh_progress(next: u64, n: usize) -> Progress {
    Progress {
        next,
        executed: vec![0; n],
        everywhere: vec![0; n],
        forgotten: vec![0; n],
    }
}

fn put(client: u64, seq: u64, key: &str) -> Command {
    Command::put(client, seq, Bytes::from(key.to_string()), Bytes::from("v"))
}

fn to(t: u8) -> impl Fn(&Msg) -> bool {
    move |m: &Msg| m.1 == t
}

#[test]
fn fast_quorum_sizes_follow_the_optimised_rule() {
    let fq = |n| Config::new(0, n).fast_quorum();
    assert_eq!((fq(3), fq(5), fq(7), fq(9), fq(11)), (2, 3, 5, 6, 8));
}

#[test]
fn no_conflict_commits_on_the_fast_path_everywhere() {
    let mut net = Net::new(3);
    net.propose(0, put(1, 1, "a"));
    net.run();
    assert_eq!(net.r(0).commit_paths(), (1, 0));
    for r in 0..3 {
        assert!(net.committed(r, 0, 0), "replica {r} learned the commit");
        assert_eq!(net.r(r).executed_count(), 1);
    }
    assert_eq!(net.oks(), 1);
}

#[test]
fn concurrent_conflicts_take_the_slow_path_and_execute_alike() {
    let mut net = Net::new(3);
    net.propose(0, put(1, 1, "k"));
    net.propose(1, put(2, 1, "k"));
    // Each PreAccept reaches the other leader after it started its own.
    net.run();
    let (fast, slow) = (net.r(0).commit_paths(), net.r(1).commit_paths());
    assert!(
        slow.1 + fast.1 >= 1,
        "someone took the slow path: {fast:?} {slow:?}"
    );
    for l in 0..2 {
        let a = net.attrs(0, l, 0);
        for r in 1..3 {
            assert_eq!(
                net.attrs(r, l, 0).map(|a| (a.1, a.2)),
                a.clone().map(|a| (a.1, a.2))
            );
        }
    }
    let order = net.r(0).executed_order().to_vec();
    assert_eq!(order.len(), 2);
    for r in 1..3 {
        assert_eq!(net.r(r as u8).executed_order(), &order[..]);
    }
}

#[test]
fn fast_path_decision_does_not_depend_on_reply_order() {
    // Five replicas: fast quorum 3 (the leader and two). Replica 4 saw a
    // conflicting instance first, so its vote changes the attributes.
    let outcome = |order: [u8; 4]| {
        let mut net = Net::new(5);
        net.propose(4, put(9, 1, "k"));
        net.drop_where(|_| true); // its instance stays local to replica 4
        net.propose(0, put(1, 1, "k"));
        for t in order {
            net.run_where(|m| m.1 == t && matches!(m.2, EpaxosMsg::PreAccept(_)));
        }
        net.run_where(|m| m.1 == 0);
        (net.r(0).commit_paths(), net.attrs(0, 0, 0))
    };
    let a = outcome([4, 1, 2, 3]);
    let b = outcome([1, 2, 3, 4]);
    let c = outcome([2, 4, 3, 1]);
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(a.0, (1, 0), "three unchanged votes are a fast quorum");
}

#[test]
fn recovery_of_a_preaccepted_instance_after_its_leader_dies() {
    let mut net = Net::new(3);
    net.propose(0, put(1, 1, "k"));
    // The PreAccept reaches replica 1 only; the leader dies before any reply.
    net.drop_where(to(2));
    net.run_where(to(1));
    net.down[0] = true;
    net.drop_where(to(0));
    // Replica 1 proposes a conflicting command: it waits on instance (0, 0).
    net.propose(1, put(2, 1, "k"));
    net.run();
    for _ in 0..200 {
        net.tick_all(50_000_000);
        net.run();
    }
    assert!(net.committed(1, 0, 0) && net.committed(2, 0, 0));
    assert_eq!(net.attrs(1, 0, 0), net.attrs(2, 0, 0));
    assert!(net.committed(1, 1, 0));
    assert_eq!(net.r(1).executed_order(), net.r(2).executed_order());
}

#[test]
fn recovery_keeps_a_fast_commit_whose_announcement_was_lost() {
    let mut net = Net::new(3);
    net.propose(0, put(1, 1, "k"));
    net.run_where(|m| matches!(m.2, EpaxosMsg::PreAccept(_)) && m.1 == 1);
    net.run_where(|m| m.1 == 0);
    assert!(net.committed(0, 0, 0), "fast commit at the leader");
    let chosen = net.attrs(0, 0, 0).map(|a| (a.1, a.2));
    // Every commit announcement is lost and the leader dies.
    net.queue.clear();
    net.down[0] = true;
    net.propose(2, put(2, 1, "k"));
    for _ in 0..200 {
        net.tick_all(50_000_000);
        net.drop_where(to(0));
        net.run();
    }
    for r in 1..3 {
        assert_eq!(
            net.attrs(r, 0, 0).map(|a| (a.1, a.2)),
            chosen,
            "replica {r}"
        );
        assert!(net.committed(r, 0, 0));
    }
}

#[test]
fn recovery_commits_a_noop_when_nobody_has_the_command() {
    let mut net = Net::new(3);
    net.propose(0, put(1, 1, "k"));
    net.queue.clear(); // nothing left the leader
    net.down[0] = true;
    // Replica 1 hears (by its heartbeat) that instance (0, 0) exists.
    net.on(1, |r, now, fx| {
        r.handle_progress(now, 0, fresh_progress(1, 3), fx)
    });
    for _ in 0..200 {
        net.tick_all(50_000_000);
        net.drop_where(to(0));
        net.run();
    }
    for r in 1..3 {
        let x = net.r(r).instance(0, 0).expect("known");
        assert!(x.status.is_committed());
        assert!(x.cmds.is_empty(), "a no-op");
    }
}

/// Sutra's counterexample (On the Correctness of Egalitarian Paxos, 2019):
/// three replicas, two conflicting commands, lost messages and three
/// competing recoveries of one instance. Deciding from promised ballots
/// commits two different dependency sets; deciding from vote ballots does not.
#[test]
fn sutra_counterexample_commits_one_value() {
    let mut net = Net::new(3);
    let (p1, p2, p3) = (0u8, 1u8, 2u8);
    // p3 proposes c1; its PreAccept to p2 is lost (p1 gets nothing either).
    net.propose(p3, put(3, 1, "k"));
    net.queue.clear();
    // p1 proposes c2; p3 pre-accepts it with a dependency on c1, reply lost.
    net.propose(p1, put(1, 1, "k"));
    net.drop_where(to(p2));
    net.run_where(|m| m.1 == p3 && matches!(m.2, EpaxosMsg::PreAccept(_)));
    net.drop_where(|m| m.1 == p1);
    assert_eq!(net.attrs(p3, p1, 0).map(|a| a.2[p3 as usize]), Some(1));
    // Recovery by p3 with {p2, p3}; its Accept to p2 is lost.
    net.now += 1_000_000_000;
    net.on(p3, |r, now, fx| {
        r.handle_progress(now, p1, fresh_progress(1, 3), fx);
        r.tick(now + 1_000_000_000, fx);
    });
    net.run_where(|m| m.0 != p1 && m.1 != p1 && !matches!(m.2, EpaxosMsg::Accept(_)));
    net.drop_where(|m| matches!(m.2, EpaxosMsg::Accept(_)) || m.1 == p1);
    // Recovery by p2 with {p1, p2}; p3 hears nothing of it.
    net.now += 1_000_000_000;
    net.on(p2, |r, now, fx| {
        r.handle_progress(now, p1, fresh_progress(1, 3), fx);
        r.tick(now + 1_000_000_000, fx);
    });
    for _ in 0..20 {
        net.drop_where(|m| m.1 == p3 || m.0 == p3);
        net.run_where(|m| m.1 != p3 && m.0 != p3);
    }
    // Then p1 recovers twice with {p1, p3}, and everyone talks.
    for _ in 0..3 {
        net.now += 1_000_000_000;
        net.on(p1, |r, now, fx| r.tick(now, fx));
        net.drop_where(|m| m.1 == p2 || m.0 == p2);
        net.run_where(|m| m.1 != p2 && m.0 != p2);
    }
    for _ in 0..100 {
        net.tick_all(100_000_000);
        net.run();
    }
    for r in [p1, p2, p3] {
        assert!(net.r(r).recoveries() >= 1, "replica {r} ran a recovery");
    }
    // Every commit of instance p1.0 anywhere (instances are forgotten once
    // executed everywhere, so look at the commit records).
    let key = (p1 as u64) << 56;
    let values: Vec<u64> = (0..3)
        .flat_map(|r| net.r(r as u8).commits_from(0).to_vec())
        .filter(|(k, _)| *k == key)
        .map(|(_, h)| h)
        .collect();
    assert_eq!(values.len(), 3, "every replica committed p1.0");
    assert!(
        values.iter().all(|v| *v == values[0]),
        "instance p1.0 committed with different attributes: {values:?}"
    );
    assert_eq!(net.r(0).executed_order(), net.r(1).executed_order());
    assert_eq!(net.r(1).executed_order(), net.r(2).executed_order());
}

#[test]
fn commit_is_announced_to_a_leader_that_missed_it() {
    let mut net = Net::new(3);
    net.propose(0, put(1, 1, "k"));
    net.run_where(|m| matches!(m.2, EpaxosMsg::PreAccept(_)));
    net.drop_where(|m| m.1 == 0); // the votes are lost
    net.down[0] = true;
    net.propose(1, put(2, 1, "k"));
    for _ in 0..100 {
        net.tick_all(50_000_000);
        net.drop_where(to(0));
        net.run();
    }
    assert!(net.committed(1, 0, 0));
    // The leader comes back and retransmits: a peer answers with the commit.
    net.down[0] = false;
    for _ in 0..20 {
        net.tick_all(250_000_000);
        net.run();
    }
    assert!(net.r(0).executed_order().contains(&(0, 0)));
    assert_eq!(net.r(0).executed_order(), net.r(1).executed_order());
    // Executed everywhere: every replica has forgotten the instance and its key.
    for r in 0..3 {
        assert_eq!(net.r(r as u8).everywhere_executed(), &[1, 1, 0]);
        assert!(net.r(r as u8).instance(0, 0).is_none());
        assert_eq!(net.r(r as u8).conflict_keys(), 0);
    }
}

#[test]
fn a_superseded_leader_learns_a_commit_nobody_sent_it() {
    let mut net = Net::new(3);
    net.propose(0, put(1, 1, "k"));
    net.run_where(|m| matches!(m.2, EpaxosMsg::PreAccept(_)) && m.1 == 1);
    // Replica 0 hears only recovery requests: replica 1 takes the instance
    // over (its Prepare supersedes 0's own ballot) and commits it, and every
    // answer and commit meant for 0 is lost.
    let to_leader_lost = |m: &Msg| {
        m.1 == 0
            && !matches!(
                m.2,
                EpaxosMsg::Prepare(_) | EpaxosMsg::Accept(_) | EpaxosMsg::TryPreAccept(_)
            )
    };
    for _ in 0..100 {
        if net.committed(1, 0, 0) && net.committed(2, 0, 0) {
            break;
        }
        net.tick_all(50_000_000);
        for _ in 0..1000 {
            net.drop_where(to_leader_lost);
            let Some(m) = net.queue.pop_front() else {
                break;
            };
            net.deliver(m);
        }
    }
    assert!(net.committed(1, 0, 0) && net.committed(2, 0, 0));
    assert!(
        !net.committed(0, 0, 0),
        "the commit never reached the leader"
    );
    // Nobody will tell it: the leader must ask, as it would about any
    // instance it waits on.
    for _ in 0..40 {
        net.tick_all(50_000_000);
        net.run();
    }
    assert!(net.r(0).executed_order().contains(&(0, 0)));
    assert_eq!(net.r(0).executed_order(), net.r(1).executed_order());
}

/// Runs `rounds` rounds in which every replica proposes a conflicting command
/// while messages are delivered late and out of order (so a newer conflicting
/// instance is always in flight). Returns the most committed-but-unexecuted
/// instances any replica held, and the executed count every 500 rounds.
fn conflict_stream(inflight: usize, rounds: usize) -> (u64, Vec<u64>, Net) {
    let mut net = Net::with(3, |c| c.max_inflight = inflight);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut seq = [0u64; 3];
    let (mut worst, mut executed_at) = (0, Vec::new());
    for round in 0..rounds {
        for r in 0..3u8 {
            seq[r as usize] += 1;
            net.propose(r, put(100 + r as u64, seq[r as usize], "hot"));
        }
        // Deliver a random half of what is in flight, in random order.
        for _ in 0..net.queue.len().div_ceil(2) {
            let j = (next() % net.queue.len() as u64) as usize;
            let m = net.queue.remove(j).expect("in range");
            net.deliver(m);
        }
        for r in 0..net.n as u8 {
            let r = net.r(r);
            worst = worst.max(r.committed_count() - r.executed_count());
        }
        if round % 500 == 499 {
            executed_at.push(net.r(0).executed_count());
        }
    }
    (worst, executed_at, net)
}

/// Execution livelock ("EPaxos Revisited"): with the in-flight bound, the
/// unexecuted part of the graph stays small and execution keeps pace; without
/// it, committed instances pile up waiting for ever-growing components.
#[test]
fn a_steady_stream_of_conflicts_keeps_executing() {
    let (worst, executed_at, mut net) = conflict_stream(4, 3000);
    let (unbounded_worst, _, _) = conflict_stream(1 << 20, 600);
    println!("most unexecuted: {worst} bounded, {unbounded_worst} unbounded");
    assert!(
        worst < 100,
        "{worst} committed instances waited for execution"
    );
    assert!(
        unbounded_worst > 5 * worst,
        "the bound is what keeps it small"
    );
    for w in executed_at.windows(2) {
        assert!(w[1] > w[0] + 100, "execution stalled: {executed_at:?}");
    }
    net.run();
    let order = net.r(0).executed_order().to_vec();
    assert_eq!(net.r(1).executed_order(), &order[..]);
    assert_eq!(net.r(2).executed_order(), &order[..]);
}

/// Replicas 0 (the command leader) and 4 go down; replica 2 learns that
/// instance (0, 0) exists and recovers it.
fn recover_with_leader_and_one_more_down(net: &mut Net) {
    net.down[0] = true;
    net.down[4] = true;
    net.on(2, |r, now, fx| {
        r.handle_progress(now, 0, fresh_progress(1, 5), fx)
    });
    for _ in 0..100 {
        net.tick_all(50_000_000);
        net.run();
    }
}

/// Five replicas; the command leader and one more are down. Only one replica
/// saw the PreAccept (and took it unchanged): the fast path may have been
/// taken (fast quorum 3), or not. Waiting for more replies would wait for
/// ever; TryPreAccept asks the others whether the leader's attributes still
/// fit, and a majority holding them lets recovery choose them.
#[test]
fn try_preaccept_resolves_an_ambiguous_recovery() {
    let mut net = Net::new(5);
    net.propose(0, put(1, 1, "k"));
    let original = net.attrs(0, 0, 0).map(|a| (a.1, a.2));
    net.run_where(|m| m.1 == 1 && matches!(m.2, EpaxosMsg::PreAccept(_)));
    net.queue.clear();
    recover_with_leader_and_one_more_down(&mut net);
    for r in 1..4 {
        assert!(net.committed(r, 0, 0), "replica {r} committed");
        assert_eq!(
            net.attrs(r, 0, 0).map(|a| (a.1, a.2)),
            original,
            "replica {r}"
        );
    }
}

/// The same ambiguity, but a replica knows a committed conflicting instance
/// that the leader's attributes leave out and that does not depend on the
/// instance: those attributes cannot have been chosen, and recovery runs
/// phase 1 again, committing one value everywhere.
#[test]
fn try_preaccept_refuted_by_a_committed_conflict_restarts() {
    let mut net = Net::new(5);
    net.propose(0, put(1, 1, "k"));
    net.run_where(|m| m.1 == 1 && matches!(m.2, EpaxosMsg::PreAccept(_)));
    net.queue.clear();
    // Replica 3 commits a conflicting command of its own, unaware of (0, 0).
    net.propose(3, put(3, 1, "k"));
    net.run_where(|m| m.0 != 0 && m.1 != 0 && m.1 != 1 && m.0 != 1);
    assert!(net.committed(3, 3, 0));
    net.queue.clear();
    recover_with_leader_and_one_more_down(&mut net);
    let values: Vec<_> = (1..4)
        .map(|r| net.attrs(r, 0, 0).map(|a| (a.0.is_committed(), a.1, a.2)))
        .collect();
    assert!(
        values.iter().all(|v| v.as_ref().is_some_and(|v| v.0)),
        "{values:?}"
    );
    assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
    // The command (3, 0) is ordered before (0, 0) or after it, alike everywhere.
    assert_eq!(net.r(1).executed_order(), net.r(2).executed_order());
    assert_eq!(net.r(2).executed_order(), net.r(3).executed_order());
}

/// A restarted replica must not refute a TryPreAccept with an instance that
/// every replica had executed, and so may have dropped from its conflict
/// table: the fast quorum of the instance under recovery could not have seen
/// it. Replica 4 commits and executes J on key k with everyone, the
/// heartbeats spread that everyone executed it, replica 4 restarts from its
/// log, and then a recovery asks it whether (0, 0), on k and with no
/// dependency on J, still fits. It must not say that it cannot have been
/// chosen (before the fix, its forgotten knowledge restarted at zero and J
/// came back from the log into its conflict table, and it refuted).
#[test]
fn a_restarted_replica_does_not_refute_with_what_everyone_executed() {
    let mut net = Net::new(5);
    net.propose(2, put(2, 1, "k"));
    net.run();
    assert!(
        (0..5).all(|r| net.committed(r, 2, 0)),
        "J committed everywhere"
    );
    for _ in 0..4 {
        net.tick_all(20_000_000);
        net.run();
    }
    assert_eq!(
        net.r(4).everywhere_executed()[2],
        1,
        "replica 4 knows J ran everywhere"
    );
    net.restart(4);
    let reply = net.try_preaccept_k(4, 1);
    assert!(
        !reply.refutes,
        "refuted with an instance every replica executed: {reply:?}"
    );
}

/// One heartbeat naming a far instance number makes a replica wait on (and
/// allocate) at most `progress_wait_max` instances, not every one up to it.
#[test]
fn one_heartbeat_allocates_a_bounded_number_of_waits() {
    let mut net = Net::with(3, |c| c.progress_wait_max = 64);
    net.on(1, |r, now, fx| {
        r.handle_progress(now, 0, fresh_progress(100_000, 3), fx)
    });
    assert!(
        net.r(1).instance(0, 63).is_some(),
        "waits on the first ones"
    );
    assert!(
        net.r(1).instance(0, 64).is_none() && net.r(1).instance(0, 99_999).is_none(),
        "allocated nothing past the bound"
    );
}

/// A replica that slept while its peers forgot what it needs learns so from
/// a heartbeat, fetches a snapshot in several chunks, installs it, and then
/// executes alike with the others: same state, same executed count.
#[test]
fn a_replica_behind_the_horizon_installs_a_snapshot_and_converges() {
    let mut net = Net::with(3, |c| {
        c.keep_executed = 4;
        c.transfer.chunk_bytes = 64;
    });
    net.down[2] = true;
    for i in 0..40u64 {
        let at = (i % 2) as u8;
        net.propose(at, put(10 + at as u64, i + 1, &format!("k{}", i % 7)));
        net.run();
        net.tick_all(20_000_000);
        net.run();
    }
    assert!(
        net.r(0).instance(0, 0).is_none(),
        "replica 0 forgot its first instances"
    );
    net.down[2] = false;
    for _ in 0..10 {
        net.tick_all(20_000_000);
        net.run();
    }
    let (installed, _) = net.r(2).snapshots();
    assert_eq!(installed, 1, "replica 2 installed a snapshot");
    // The installed snapshot is the base of a compacted log, not a record
    // appended to a growing one.
    // The disk as replay reads it: the snapshot file's record, then the log.
    let recs = genericsmr::durable::parse_records(&net.disk[2]).expect("parses");
    assert_eq!(
        recs.first().and_then(|r| r.first()),
        Some(&2),
        "no snapshot file"
    );
    assert!(
        recs[1..].iter().all(|r| r.first() != Some(&2)),
        "a snapshot entry in the log"
    );
    let sent: u64 = (0..2).map(|r| net.r(r as u8).snapshots().1).sum();
    assert!(sent >= 1);
    for r in 0..2 {
        assert_eq!(net.r(r as u8).state().digest(), net.r(2).state().digest());
        assert_eq!(net.r(r as u8).executed_count(), net.r(2).executed_count());
    }
    // It serves: a command it leads commits and executes everywhere.
    net.propose(2, put(12, 1, "k0"));
    net.run();
    for _ in 0..3 {
        net.tick_all(20_000_000);
        net.run();
    }
    for r in 0..2 {
        assert_eq!(net.r(r as u8).state().digest(), net.r(2).state().digest());
    }
    // And it restarts from its log, snapshot included, to the same state.
    let before = net.r(2).state().digest();
    net.restart(2);
    assert_eq!(net.r(2).state().digest(), before);
}

/// With every in-flight instance taken, proposals queue; at `max_queued`
/// the replica stops taking client requests (they wait in the runtime's
/// client lane and in TCP, so its memory does not follow the clients'
/// windows), and takes them again once instances execute, without any
/// client request to wake it.
#[test]
fn a_replica_with_its_queue_full_takes_no_client_requests_until_it_drains() {
    let mut net = Net::with(3, |c| {
        c.max_inflight = 1;
        c.max_queued = 3;
    });
    assert!(net.r(0).accepting());
    // The first starts an instance; the next three wait for it.
    for seq in 1..=4 {
        net.propose(0, put(9, seq, &format!("q{seq}")));
    }
    assert!(
        !net.r(0).accepting(),
        "three proposals queued behind the one in flight: no more taken"
    );
    net.run();
    assert!(
        net.r(0).accepting(),
        "executed and drained by the replica's own messages and timers"
    );
    assert_eq!(net.oks(), 4, "every proposal answered");
}

impl Net {
    /// Replica `at`'s answer to recoverer `from` asking whether (0, 0), a
    /// put on key k with no dependencies, fits (five replicas).
    fn try_preaccept_k(&mut self, at: u8, from: u8) -> TryPreAcceptReply {
        let mut reply = None;
        self.on(at, |r, now, fx| {
            r.handle_try_preaccept(
                now,
                from,
                TryPreAccept {
                    leader: 0,
                    instance: 0,
                    ballot: make_ballot(1, from),
                    cmds: vec![put(1, 1, "k")],
                    seq: 1,
                    deps: vec![0; 5],
                },
                fx,
            );
            for (_, m) in &fx.sends {
                if let EpaxosMsg::TryPreAcceptReply(m) = m {
                    reply = Some(m.clone());
                }
            }
        });
        reply.expect("an answer")
    }

    /// Client proposals that reach replica `at` in one burst (one flush),
    /// as the runtime delivers what a connection read at once: with
    /// batching they may share an instance.
    fn propose_burst(&mut self, at: u8, cmds: Vec<Command>) {
        self.on(at, |r, now, fx| {
            for cmd in cmds {
                r.handle_propose(now, 7, Propose { cmd }, fx);
            }
        });
    }

    /// Over replica `r`'s instances of leader `l` still held: the commands
    /// of those not executed, and the encoded bytes of those executed.
    fn held(&self, r: u8, l: u8) -> (usize, usize) {
        let (mut open, mut executed) = (0, 0);
        for i in 0..100_000 {
            let Some(x) = self.r(r).instance(l, i) else {
                continue;
            };
            if x.status == Status::Executed {
                executed += x.cmds.iter().map(Command::wire_len).sum::<usize>();
            } else {
                open += x.cmds.len();
            }
        }
        (open, executed)
    }
}

/// A command leader whose instances cannot commit (both peers unreachable)
/// puts at most `max_queued` commands into its instances, however many
/// instances the in-flight bound would allow, and then stops taking client
/// requests. With batching an instance may hold thousands of commands, so a
/// bound in instances alone let a stalled replica hold millions.
#[test]
fn a_command_leader_holds_at_most_its_pipeline_of_commands_in_open_instances() {
    let mut net = Net::with(3, |c| {
        c.batch = true;
        c.batch_max = 64;
        c.max_queued = 100;
    });
    net.down[1] = true;
    net.down[2] = true;
    let mut sent = 0u64;
    for burst in 0..10u64 {
        if !net.r(0).accepting() {
            break;
        }
        let cmds = (0..50)
            .map(|k| put(9, burst * 50 + k + 1, &format!("b{burst}k{k}")))
            .collect();
        net.propose_burst(0, cmds);
        sent += 50;
        net.run();
    }
    let (open, _) = net.held(0, 0);
    assert!(
        open <= 100,
        "{open} commands in open instances of the {sent} taken (bound 100)"
    );
    assert!(
        !net.r(0).accepting(),
        "at the bound the replica takes no more client requests"
    );
    // Once the peers are back everything taken commits and is answered.
    net.down[1] = false;
    net.down[2] = false;
    for _ in 0..40 {
        net.tick_all(250_000_000);
        net.run();
    }
    assert_eq!(net.oks() as u64, sent, "every proposal taken is answered");
    assert!(net.r(0).accepting());
    assert_eq!(net.held(0, 0).0, 0);
}

/// While a peer is down, the others keep executed instances for it to fetch
/// one by one only up to a quarter of the byte bound (`compact_bytes`), not
/// `keep_executed` instances of whatever size: with batching those are
/// thousands of commands each. The peer that comes back past what was kept
/// installs a snapshot and converges.
#[test]
fn executed_instances_kept_for_a_down_peer_stay_within_a_quarter_of_the_byte_bound() {
    let mut net = Net::with(3, |c| {
        c.batch = true;
        c.batch_max = 64;
        c.keep_executed = 1 << 20;
        c.compact_bytes = 16 << 10;
    });
    net.down[2] = true;
    let mut largest = 0;
    for burst in 0..40u64 {
        let cmds: Vec<Command> = (0..50)
            .map(|k| put(9, burst * 50 + k + 1, &format!("b{burst}k{k}")))
            .collect();
        largest = largest.max(cmds.iter().map(Command::wire_len).sum::<usize>());
        net.propose_burst(0, cmds);
        net.run();
        net.tick_all(20_000_000);
        net.run();
    }
    assert_eq!(net.oks(), 2000);
    for r in 0..2u8 {
        let (_, kept) = net.held(r, 0);
        assert!(
            kept <= (16 << 10) / 4 + largest,
            "replica {r} keeps {kept} B of executed commands for its down peer"
        );
    }
    net.down[2] = false;
    for _ in 0..10 {
        net.tick_all(20_000_000);
        net.run();
    }
    assert_eq!(net.r(2).snapshots().0, 1, "replica 2 installed a snapshot");
    for r in 0..2u8 {
        assert_eq!(net.r(r).state().digest(), net.r(2).state().digest());
        assert_eq!(net.r(r).executed_count(), net.r(2).executed_count());
    }
}

/// An instance forgotten only because of the bounds on what is kept (the
/// horizon, or the byte bound), not because every replica executed it, may
/// still conflict: a replica that forgot it gives no ok to a TryPreAccept
/// whose attributes leave it out. Replica 4 is down, so nobody knows J ran
/// everywhere; replica 1 forgets J, then is asked whether (0, 0), on J's key
/// and with no dependency on J, fits. Before, it pre-accepted.
#[test]
fn a_forgotten_conflict_not_executed_everywhere_gets_no_ok() {
    let horizon = |c: &mut Config| c.keep_executed = 0;
    let bytes = |c: &mut Config| c.compact_bytes = 4;
    for (name, bound) in [
        ("horizon", &horizon as &dyn Fn(&mut Config)),
        ("bytes", &bytes),
    ] {
        let mut net = Net::with(5, bound);
        net.down[4] = true;
        net.propose(2, put(2, 1, "k"));
        net.run();
        for _ in 0..4 {
            net.tick_all(20_000_000);
            net.run();
        }
        assert_eq!(net.oks(), 1, "{name}: J is answered");
        assert!(
            net.r(1).instance(2, 0).is_none(),
            "{name}: replica 1 forgot J"
        );
        assert_eq!(net.r(1).everywhere_executed()[2], 0, "{name}");
        let reply = net.try_preaccept_k(1, 3);
        assert!(
            !reply.ok,
            "{name}: pre-accepted past a forgotten conflict: {reply:?}"
        );
    }
}
