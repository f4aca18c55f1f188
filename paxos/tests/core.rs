//! Tests of the pure Multi-Paxos core through its handlers, with no sockets:
//! a deterministic in-memory network of `Replica` cores with a virtual clock,
//! explicit delivery order, message loss, crashes and partitions.
//!
//! The network is the shared manual-delivery harness, `sim::manual::Net`.
//! Every delivery is followed by safety checks: no two
//! replicas ever hold different committed values for a slot (including replicas
//! that crashed since), every slot below a replica's commit index is committed,
//! and two replicas that executed the same number of slots hold the same state.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use genericsmr::command::{Command, Op};
use genericsmr::durable::{DurableLog, SyncPolicy};
use genericsmr::effects::{Dest, Effects};
use genericsmr::messages::{role, ReplyStatus};
use genericsmr::wire::Marshal;
use paxos::messages::*;
use paxos::{Config, Replica, SlotState};
use sim::manual;
use sim::Boot;

// ---------------------------------------------------------------------------
// Harness: the shared manual-delivery network (`sim::manual`), with the
// Multi-Paxos settings and checks.
// ---------------------------------------------------------------------------

/// A peer message in flight: (from, to, message).
type Msg = manual::Msg<PaxosMsg>;

const T0: u64 = manual::T0;

/// Splits what `Effects::persist` produced into payloads, as replay does.
fn split_records(disk: &[u8]) -> Vec<Bytes> {
    genericsmr::durable::parse_records(disk).unwrap()
}

fn kind(m: &PaxosMsg) -> &'static str {
    manual::kind::<Replica>(m)
}

fn is(m: &Msg, from: u8, to: u8, k: &str) -> bool {
    manual::Net::<Replica>::is(m, from, to, k)
}

/// The shared network of Multi-Paxos cores, with each replica's settings.
struct Net {
    inner: manual::Net<Replica>,
    cfgs: Vec<Config>,
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
    fn new(n: usize) -> Self {
        Self::with(n, |_| {})
    }

    fn with(n: usize, f: impl Fn(&mut Config)) -> Self {
        let cfgs: Vec<Config> = (0..n)
            .map(|i| {
                let mut c = Config::new(i as u8, n);
                f(&mut c);
                c
            })
            .collect();
        let boot_cfgs = cfgs.clone();
        let mut inner = manual::Net::new(
            n,
            Box::new(move |i, boot, now, fx| {
                let mut r = Replica::new(boot_cfgs[i as usize].clone());
                match boot {
                    Boot::Fresh => {}
                    Boot::Durable(recs) => r.restore(&recs).unwrap(),
                    Boot::Amnesia => r.start_recovery(now, fx),
                }
                r
            }),
        );
        // Beyond agreement: every slot below the commit index is committed.
        inner.check = Some(Box::new(|i, r: &Replica| {
            let base = r.log_base();
            for (s, slot) in r.log().iter().enumerate() {
                let s = base + s as u64;
                if s < r.commit_index() {
                    assert_eq!(
                        slot.state,
                        SlotState::Committed,
                        "replica {i}: slot {s} below the commit index is not committed"
                    );
                }
            }
        }));
        Net { inner, cfgs }
    }

    /// Advances the clock and runs every live replica's timers.
    fn tick_all(&mut self, dt: u64) {
        self.inner.tick_all(dt)
    }

    /// Alternates timer rounds (retransmission period) and full delivery.
    fn settle(&mut self, rounds: usize) {
        let dt = self.cfgs[0].group.retransmit_ns;
        self.inner.settle_every(rounds, dt);
    }

    fn elect(&mut self, i: u8) {
        self.be_leader(i);
        self.run();
        assert!(self.r(i).is_leader(), "replica {i} did not become leader");
    }

    fn value(&self, i: u8, key: &str) -> Option<Bytes> {
        self.r(i)
            .state()
            .kv()
            .get(key.as_bytes())
            .map(bytes::Bytes::copy_from_slice)
    }

    /// Committed commands of replica `i`, slot by slot.
    fn committed(&self, i: u8) -> Vec<Vec<Command>> {
        let r = self.r(i);
        r.log()[..(r.commit_index() - r.log_base()) as usize]
            .iter()
            .map(|s| s.cmds().into_owned())
            .collect()
    }

    /// All the given replicas committed and executed the same slots and hold the same state.
    fn assert_converged(&self, ids: &[u8]) {
        let first = ids[0];
        for &i in ids {
            assert_eq!(
                self.r(i).commit_index(),
                self.r(first).commit_index(),
                "commit index of {i}"
            );
            assert_eq!(
                self.r(i).executed(),
                self.r(i).commit_index(),
                "replica {i} did not execute all"
            );
            assert_eq!(
                self.committed(i),
                self.committed(first),
                "committed log of {i}"
            );
            assert_eq!(
                self.r(i).state().digest(),
                self.r(first).state().digest(),
                "digest of {i}"
            );
        }
    }
}

fn put(client: u64, seq: u64, k: &str, v: &str) -> Command {
    Command::put(
        client,
        seq,
        Bytes::copy_from_slice(k.as_bytes()),
        Bytes::copy_from_slice(v.as_bytes()),
    )
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("paxos-core-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Election and the normal case
// ---------------------------------------------------------------------------

#[test]
fn leader_election_with_three_replicas() {
    let mut net = Net::new(3);
    assert_eq!(net.r(0).status(0).role, role::FOLLOWER);
    net.be_leader(0);
    assert_eq!(net.r(0).status(0).role, role::CANDIDATE);
    assert_eq!(net.in_flight(|m| kind(&m.2) == "Prepare"), 2);
    // One promise (plus its own) is a majority of three.
    assert_eq!(net.deliver_where(|m| is(m, 0, 1, "Prepare")), 1);
    assert_eq!(net.deliver_where(|m| is(m, 1, 0, "PrepareReply")), 1);
    let st = net.r(0).status(7);
    assert_eq!(st.role, role::LEADER);
    assert_eq!(st.nonce, 7);
    assert_eq!(st.ballot, ballot::make(1, 0));
    assert_eq!(st.leader, Some(0));
    net.run();
    for i in 1..3 {
        let st = net.r(i).status(0);
        assert_eq!(st.role, role::FOLLOWER);
        assert_eq!(st.ballot, ballot::make(1, 0));
        assert_eq!(st.leader, Some(0));
    }
}

#[test]
fn candidate_without_a_majority_is_not_leader() {
    let mut net = Net::new(5);
    net.be_leader(0);
    net.deliver_where(|m| is(m, 0, 1, "Prepare"));
    net.deliver_where(|m| m.1 == 0);
    assert_eq!(
        net.r(0).status(0).role,
        role::CANDIDATE,
        "two of five is not a majority"
    );
    net.deliver_where(|m| is(m, 0, 2, "Prepare"));
    net.deliver_where(|m| m.1 == 0);
    assert!(net.r(0).is_leader());
}

#[test]
fn a_group_of_one_decides_alone() {
    let mut net = Net::new(1);
    net.elect(0);
    net.submit(0, 1, put(1, 1, "k", "v"));
    assert_eq!(net.only_reply(1, 1).2.status, ReplyStatus::Ok);
    assert_eq!(net.r(0).commit_index(), 1);
    assert_eq!(net.value(0, "k"), Some(b("v")));
}

#[test]
fn proposals_commit_and_execute_everywhere() {
    let mut net = Net::new(3);
    net.elect(0);
    net.submit(0, 10, put(7, 1, "k", "v1"));
    // Nothing is decided before the votes arrive.
    assert!(net.reply(7, 1).is_empty());
    assert_eq!(net.r(0).commit_index(), 0);
    net.run();
    let (from, conn, rep) = net.only_reply(7, 1);
    assert_eq!(
        (from, conn, rep.status, rep.leader),
        (0, 10, ReplyStatus::Ok, Some(0))
    );

    net.submit(0, 11, put(8, 1, "j", "w"));
    net.submit(0, 12, Command::get(7, 2, b("k")));
    net.run();
    let (_, conn, rep) = net.only_reply(7, 2);
    assert_eq!(conn, 12);
    assert_eq!(rep.status, ReplyStatus::Ok);
    assert_eq!(
        rep.outcome.value,
        Some(b("v1")),
        "a GET returns the value written before it"
    );
    assert_eq!(net.only_reply(8, 1).2.status, ReplyStatus::Ok);

    net.assert_converged(&[0, 1, 2]);
    for i in 0..3 {
        assert_eq!(net.r(i).commit_index(), 3);
        assert_eq!(net.r(i).state().applied(), 3);
        assert_eq!(net.value(i, "k"), Some(b("v1")));
        assert_eq!(net.value(i, "j"), Some(b("w")));
        assert_ne!(net.r(i).state().digest(), 0);
    }
}

/// The pipeline bound (`GroupConfig::pipeline`, `--pipeline`): a leader with as
/// many slots proposed and not chosen takes no more client requests until
/// some are chosen; followers always take them (to reroute them).
#[test]
fn a_leader_holds_clients_back_at_its_pipeline_bound() {
    let mut net = Net::with(3, |c| c.group.pipeline = 2);
    net.elect(0);
    assert!(net.r(0).accepting(), "an idle leader takes requests");
    net.submit(0, 10, put(7, 1, "k", "v1"));
    assert!(net.r(0).accepting(), "one slot in flight of two");
    net.submit(0, 11, put(7, 2, "k", "v2"));
    assert!(
        !net.r(0).accepting(),
        "two slots proposed and none chosen: the leader is at its bound"
    );
    assert!(net.r(1).accepting(), "a follower takes requests");
    net.run();
    assert!(net.r(0).accepting(), "both chosen: it takes requests again");
    assert_eq!(net.only_reply(7, 2).2.status, ReplyStatus::Ok);
    assert_eq!(net.value(1, "k"), Some(b("v2")));
}

/// The bound counts commands, not slots: with batching a slot holds a whole
/// burst, so a leader whose followers cannot be reached took 100 slots of
/// them before. With a bound of 100 and bursts of 50 it now stops after
/// two bursts, and once the followers are back every one is answered.
#[test]
fn a_leader_bounds_the_commands_it_has_in_flight_not_the_slots() {
    let mut net = Net::with(3, |c| {
        c.group.pipeline = 100;
        c.batch = true;
    });
    net.elect(0);
    net.partition(&[0], &[1, 2]);
    let mut taken = 0u64;
    for burst in 0..10u64 {
        if !net.r(0).accepting() {
            break;
        }
        for k in 0..50 {
            let seq = burst * 50 + k + 1;
            net.propose(0, 10, put(7, seq, &format!("k{seq}"), "v"));
        }
        net.flush(0);
        taken += 50;
    }
    assert_eq!(
        taken, 100,
        "bursts taken before the leader stopped at its bound of 100 commands"
    );
    assert!(!net.r(0).accepting());
    net.heal();
    for _ in 0..20 {
        net.tick_all(100_000_000);
        net.run();
    }
    assert!(net.r(0).accepting(), "all chosen: it takes requests again");
    for seq in 1..=taken {
        assert_eq!(net.only_reply(7, seq).2.status, ReplyStatus::Ok);
    }
    // Within one burst too: commands taken and not yet proposed count.
    for seq in taken + 1..=taken + 100 {
        net.propose(0, 10, put(7, seq, &format!("k{seq}"), "v"));
    }
    assert!(
        !net.r(0).accepting(),
        "100 commands queued for the next flush: at the bound"
    );
    net.flush(0);
    net.run();
    assert!(net.r(0).accepting());
}

#[test]
fn cas_and_delete_outcomes_reach_the_client() {
    let mut net = Net::with(3, |c| c.reply_after_exec = true);
    net.elect(0);
    net.submit(0, 1, Command::cas(1, 1, b("k"), None, b("a")));
    net.submit(0, 2, Command::cas(1, 2, b("k"), Some(b("zzz")), b("b")));
    net.submit(0, 3, put(1, 3, "k", "c"));
    net.submit(0, 4, Command::delete(1, 4, b("k")));
    net.run();
    let o1 = net.only_reply(1, 1).2.outcome;
    assert!(o1.flag && o1.value.is_none());
    let o2 = net.only_reply(1, 2).2.outcome;
    assert!(!o2.flag);
    assert_eq!(o2.value, Some(b("a")));
    // With reply_after_exec a put reports the value it replaced.
    assert_eq!(net.only_reply(1, 3).2.outcome.value, Some(b("a")));
    let o4 = net.only_reply(1, 4).2.outcome;
    assert!(o4.flag);
    assert_eq!(o4.value, Some(b("c")));
    net.assert_converged(&[0, 1, 2]);
    assert_eq!(net.r(2).state().kv().len(), 0);
}

#[test]
fn batching_puts_a_burst_in_one_slot() {
    for batch in [true, false] {
        let mut net = Net::with(3, |c| c.batch = batch);
        net.elect(0);
        for i in 0..10u64 {
            net.propose(0, 100 + i, put(i + 1, 1, &format!("k{i}"), "v"));
        }
        assert_eq!(
            net.in_flight(|m| kind(&m.2) == "Accept"),
            0,
            "proposals wait for the flush"
        );
        net.flush(0);
        let slots = if batch { 1 } else { 10 };
        assert_eq!(net.r(0).log().len(), slots, "batch={batch}");
        assert_eq!(net.in_flight(|m| kind(&m.2) == "Accept"), 2 * slots);
        if batch {
            assert_eq!(net.r(0).log()[0].cmds().len(), 10);
        } else {
            assert!(net.r(0).log().iter().all(|s| s.cmds().len() == 1));
        }
        net.run();
        for i in 0..10u64 {
            assert_eq!(net.only_reply(i + 1, 1).2.status, ReplyStatus::Ok);
        }
        net.assert_converged(&[0, 1, 2]);
        for r in 0..3 {
            assert_eq!(net.r(r).commit_index(), slots as u64);
            assert_eq!(net.r(r).state().applied(), 10);
        }
    }
}

#[test]
fn batches_are_capped_at_batch_max() {
    let mut net = Net::with(3, |c| {
        c.batch = true;
        c.batch_max = 4;
    });
    net.elect(0);
    for i in 0..10u64 {
        net.propose(0, i, put(i + 1, 1, "k", "v"));
    }
    net.flush(0);
    let sizes: Vec<usize> = net.r(0).log().iter().map(|s| s.cmds().len()).collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    net.run();
    net.assert_converged(&[0, 1, 2]);
}

// ---------------------------------------------------------------------------
// Failover
// ---------------------------------------------------------------------------

#[test]
fn new_leader_finishes_accepted_slots_and_fills_holes_with_noops() {
    let mut net = Net::new(3);
    net.elect(0);
    for s in 0..3u64 {
        net.submit(0, s, put(1, s + 1, "a", &format!("{s}")));
    }
    net.run();
    assert_eq!(net.r(2).commit_index(), 3);

    let x = put(2, 1, "x", "X");
    let y = put(3, 1, "y", "Y");
    let z = put(4, 1, "z", "Z");
    // Slot 3: accepted by replica 1 only; the leader never hears back.
    net.submit(0, 20, x.clone());
    net.drop_where(|m| is(m, 0, 2, "Accept"));
    net.deliver_where(|m| is(m, 0, 1, "Accept"));
    net.drop_where(|m| is(m, 1, 0, "AcceptReply"));
    // Slot 4: nobody else accepts.
    net.submit(0, 21, y.clone());
    net.drop_where(|m| kind(&m.2) == "Accept");
    // Slot 5: accepted by replica 1 only.
    net.submit(0, 22, z.clone());
    net.drop_where(|m| is(m, 0, 2, "Accept"));
    net.deliver_where(|m| is(m, 0, 1, "Accept"));
    net.drop_where(|m| m.0 == 0 || m.1 == 0);
    assert_eq!(net.r(1).log()[3].state, SlotState::Accepted);
    assert_eq!(net.r(0).commit_index(), 3);
    net.crash(0);

    net.elect(1);
    net.run();
    net.assert_converged(&[1, 2]);
    for i in [1, 2] {
        let log = net.committed(i);
        assert_eq!(log.len(), 6);
        assert_eq!(
            log[3],
            vec![x.clone()],
            "the accepted value is kept, not replaced by a no-op"
        );
        assert!(log[4].is_empty(), "the hole becomes a no-op");
        assert_eq!(log[5], vec![z.clone()]);
        assert_eq!(net.value(i, "x"), Some(b("X")));
        assert_eq!(net.value(i, "y"), None);
        assert_eq!(net.value(i, "z"), Some(b("Z")));
    }

    // The old leader comes back from its durable log: it held Y in slot 4 at the
    // old ballot and must learn the no-op instead.
    net.restart_durable(0);
    assert_eq!(net.r(0).log()[4].cmds(), vec![y]);
    net.settle(3);
    net.assert_converged(&[0, 1, 2]);
    assert!(net.committed(0)[4].is_empty());
    assert_eq!(net.value(0, "y"), None);
}

#[test]
fn new_leader_adopts_the_highest_ballot_value() {
    // Slot 0 holds A at ballot b1 on replica 0 and B at b2 > b1 on replica 1; a
    // leader whose phase 1 hears both must re-propose B.
    let mut net = Net::new(5);
    net.elect(0);
    let a = put(1, 1, "k", "A");
    net.submit(0, 1, a.clone());
    net.drop_where(|_| true);
    // Replica 1 leads with {1, 3, 4} and proposes B in slot 0; only it holds B.
    net.be_leader(1);
    net.drop_where(|m| m.1 == 0 || m.1 == 2);
    net.run();
    assert!(net.r(1).is_leader());
    let bv = put(2, 1, "k", "B");
    net.submit(1, 2, bv.clone());
    net.drop_where(|_| true);
    assert_eq!(net.r(1).log()[0].cmds(), vec![bv.clone()]);
    assert!(net.r(1).log()[0].ballot > net.r(0).log()[0].ballot);
    // Replica 2 campaigns with {2, 0, 1}: the higher report first, then the lower.
    net.be_leader(2);
    net.drop_where(|m| m.1 == 3 || m.1 == 4);
    net.deliver_where(|m| kind(&m.2) == "Prepare");
    net.deliver_where(|m| is(m, 1, 2, "PrepareReply"));
    assert!(!net.r(2).is_leader());
    net.deliver_where(|m| is(m, 0, 2, "PrepareReply"));
    assert!(net.r(2).is_leader());
    assert_eq!(
        net.r(2).log()[0].cmds(),
        vec![bv.clone()],
        "B has the higher ballot"
    );
    net.settle(2);
    net.assert_converged(&[0, 1, 2, 3, 4]);
    assert_eq!(net.committed(4), vec![vec![bv]]);
    assert_eq!(net.value(3, "k"), Some(b("B")));
}

/// A candidate more than `slot_window` slots behind what a peer reports must
/// not lead from the end of its window: the slots past it are chosen already.
/// It refuses to lead, fetches the chosen prefix from that peer, and leads
/// once asked again.
#[test]
fn far_behind_candidate_catches_up_instead_of_leading() {
    const WINDOW: u64 = 64;
    let mut net = Net::with(3, |c| c.group.slot_window = WINDOW);
    // Replica 2 hears nothing while 0 and 1 choose three windows' worth of slots.
    net.partition(&[2], &[0, 1]);
    net.elect(0);
    let ahead = 3 * WINDOW;
    for s in 0..ahead {
        let cmd = put(1, s + 1, &format!("k{}", s % 5), &format!("a{s}"));
        net.submit(0, s, cmd);
        net.run();
    }
    assert_eq!(net.r(1).commit_index(), ahead);
    assert_eq!(net.r(2).commit_index(), 0);
    // The leader goes silent and 2, reachable again, is asked to lead, with a
    // proposal queued while it campaigns.
    net.crash(0);
    net.heal();
    net.be_leader(2);
    let c = put(2, 1, "k0", "c");
    net.propose(2, 1000, c.clone());
    net.run();
    assert!(
        !net.r(2).is_leader(),
        "a candidate {ahead} slots behind must not lead"
    );
    let (_, _, rep) = net.only_reply(2, 1);
    assert_eq!(rep.status, ReplyStatus::NotLeader);
    assert_eq!(
        net.r(2).commit_index(),
        ahead,
        "it fetched the chosen prefix from the peer that reported it"
    );
    // Caught up, it leads from where the group is.
    net.elect(2);
    net.submit(2, 1001, c.clone());
    net.settle(2);
    net.assert_converged(&[1, 2]);
    assert_eq!(net.r(1).commit_index(), ahead + 1);
    assert_eq!(net.committed(1)[ahead as usize], vec![c]);
    assert_eq!(net.value(2, "k0"), Some(b("c")));
}

/// A leader opens no slot more than `slot_window` past its commit index (the
/// acceptors would refuse it anyway). Otherwise a deposed leader's open slots
/// would be reported beyond every other candidate's window, and none of them
/// could lead.
#[test]
fn leader_opens_no_slot_past_its_window() {
    const WINDOW: u64 = 8;
    let mut net = Net::with(3, |c| c.group.slot_window = WINDOW);
    net.elect(0);
    // Cut off, the leader gets three windows' worth of proposals.
    net.partition(&[0], &[1, 2]);
    for s in 0..3 * WINDOW {
        net.submit(0, s, put(1, s + 1, "k", &format!("v{s}")));
    }
    net.run();
    assert_eq!(
        net.r(0).log().len() as u64,
        WINDOW + 1,
        "slots 0..={WINDOW} open, the rest queued"
    );
    // Replica 1 campaigns and hears the deposed leader's report: it can lead.
    net.heal();
    net.elect(1);
    net.settle(2);
    net.assert_converged(&[0, 1, 2]);
    assert_eq!(net.r(1).commit_index(), WINDOW + 1);
    for s in WINDOW + 1..3 * WINDOW {
        let (from, _, rep) = net.only_reply(1, s + 1);
        assert_eq!((from, rep.status), (0, ReplyStatus::NotLeader));
    }
}

// ---------------------------------------------------------------------------
// Stepping down and redirection
// ---------------------------------------------------------------------------

#[test]
fn leader_steps_down_on_a_refused_accept() {
    let mut net = Net::new(3);
    net.elect(0);
    net.submit(0, 11, put(1, 1, "a", "1"));
    net.submit(0, 12, put(2, 1, "b", "2"));
    net.drop_where(|_| true);
    let higher = ballot::make(5, 2);
    net.deliver((
        2,
        0,
        PaxosMsg::AcceptReply(AcceptReply {
            ballot: ballot::make(1, 0),
            slot: 0,
            ok: false,
            promised: higher,
        }),
    ));
    assert_eq!(net.r(0).status(0).role, role::FOLLOWER);
    assert_eq!(net.r(0).promised(), higher);
    for (client, conn) in [(1, 11), (2, 12)] {
        let (_, c, rep) = net.only_reply(client, 1);
        assert_eq!(c, conn);
        assert_eq!(rep.status, ReplyStatus::NotLeader);
        assert_eq!(
            rep.leader,
            Some(2),
            "the hint names the owner of the higher ballot"
        );
    }
    // It no longer accepts proposals.
    net.submit(0, 13, put(3, 1, "c", "3"));
    let rep = net.only_reply(3, 1).2;
    assert_eq!((rep.status, rep.leader), (ReplyStatus::NotLeader, Some(2)));
    assert_eq!(net.in_flight(|_| true), 0);
}

/// A leader told that a peer compacted a slot it asked about is a stale one
/// (a current leader is never behind a peer's executed point): it steps down,
/// telling its clients to go elsewhere, and fetches the peer's snapshot to
/// install it as a follower.
#[test]
fn a_leader_behind_a_peers_compaction_point_steps_down_to_fetch_its_snapshot() {
    let mut net = Net::new(3);
    net.elect(0);
    net.submit(0, 11, put(1, 1, "a", "1"));
    net.drop_where(|_| true);
    net.deliver((2, 0, PaxosMsg::Compacted(Compacted { what: 100 })));
    assert_eq!(net.r(0).status(0).role, role::FOLLOWER);
    let (_, conn, rep) = net.only_reply(1, 1);
    assert_eq!((conn, rep.status), (11, ReplyStatus::NotLeader));
    assert_eq!(net.in_flight(|m| is(m, 0, 2, "SnapshotRequest")), 1);
}

#[test]
fn stale_accept_replies_are_ignored() {
    let mut net = Net::new(3);
    net.elect(0);
    net.submit(0, 1, put(1, 1, "a", "1"));
    net.drop_where(|_| true);
    // A refusal at a lower-or-equal ballot, and a vote for another ballot: no effect.
    let b1 = ballot::make(1, 0);
    net.deliver((
        1,
        0,
        PaxosMsg::AcceptReply(AcceptReply {
            ballot: b1,
            slot: 0,
            ok: false,
            promised: b1,
        }),
    ));
    net.deliver((
        1,
        0,
        PaxosMsg::AcceptReply(AcceptReply {
            ballot: ballot::make(0, 1),
            slot: 0,
            ok: true,
            promised: b1,
        }),
    ));
    assert!(net.r(0).is_leader());
    assert_eq!(net.r(0).commit_index(), 0);
    assert!(net.replies.is_empty());
    // The same vote twice is one vote: in a group of five, 1's vote twice is no majority.
    let mut net = Net::new(5);
    net.elect(0);
    net.submit(0, 1, put(1, 1, "a", "1"));
    net.drop_where(|_| true);
    let ok = AcceptReply {
        ballot: b1,
        slot: 0,
        ok: true,
        promised: b1,
    };
    net.deliver((1, 0, PaxosMsg::AcceptReply(ok.clone())));
    net.deliver((1, 0, PaxosMsg::AcceptReply(ok.clone())));
    assert_eq!(net.r(0).commit_index(), 0);
    net.deliver((3, 0, PaxosMsg::AcceptReply(ok)));
    assert_eq!(net.r(0).commit_index(), 1);
}

#[test]
fn leader_steps_down_on_a_higher_prepare_and_its_value_survives() {
    let mut net = Net::new(3);
    net.elect(0);
    let a = put(1, 1, "a", "1");
    net.submit(0, 11, a.clone());
    net.drop_where(|_| true);
    net.be_leader(1);
    // The old leader hears the higher Prepare first.
    assert_eq!(net.deliver_where(|m| is(m, 1, 0, "Prepare")), 1);
    assert_eq!(net.r(0).status(0).role, role::FOLLOWER);
    let (_, conn, rep) = net.only_reply(1, 1);
    assert_eq!((conn, rep.status), (11, ReplyStatus::NotLeader));
    assert_eq!(rep.leader, Some(1), "the hint names the new candidate");
    assert_eq!(net.r(0).leader_hint(), Some(1));
    net.run();
    assert!(net.r(1).is_leader());
    // The old leader's own vote was reported in phase 1, so the new leader chose it.
    net.settle(1);
    net.assert_converged(&[0, 1, 2]);
    assert_eq!(net.committed(2), vec![vec![a]]);
    // A retry at the new leader is answered from the dedup table.
    net.submit(1, 12, put(1, 1, "a", "1"));
    let oks: Vec<_> = net
        .reply(1, 1)
        .into_iter()
        .filter(|r| r.2.status == ReplyStatus::Ok)
        .collect();
    assert_eq!(oks.len(), 1);
    assert_eq!((oks[0].0, oks[0].1), (1, 12));
}

#[test]
fn prepare_at_a_lower_ballot_is_refused_and_the_candidate_retries_higher() {
    let mut net = Net::new(3);
    net.elect(0);
    let b1 = ballot::make(1, 0);
    // A stale prepare at a lower ballot is refused with our promise.
    net.deliver((
        2,
        1,
        PaxosMsg::Prepare(Prepare {
            ballot: ballot::make(0, 2),
            from_slot: 0,
        }),
    ));
    let refused = net.take_where(|m| is(m, 1, 2, "PrepareReply"));
    match &refused[..] {
        [(_, _, PaxosMsg::PrepareReply(r))] => {
            assert!(!r.ok);
            assert_eq!(r.promised, b1);
        }
        other => panic!("{other:?}"),
    }
    // A candidate refused by a higher promise campaigns again above it.
    let mut net = Net::new(3);
    net.deliver((
        0,
        1,
        PaxosMsg::Prepare(Prepare {
            ballot: ballot::make(7, 0),
            from_slot: 0,
        }),
    ));
    net.drop_where(|_| true);
    net.be_leader(2);
    let first = net.r(2).promised();
    assert_eq!(first, ballot::make(1, 2));
    net.deliver_where(|m| is(m, 2, 1, "Prepare"));
    net.deliver_where(|m| is(m, 1, 2, "PrepareReply"));
    assert_eq!(net.r(2).status(0).role, role::CANDIDATE);
    assert_eq!(
        net.r(2).promised(),
        ballot::make(8, 2),
        "the candidate retried just above the refusal"
    );
    // The first round's promise from 0 is for a stale ballot and does not count.
    net.run();
    assert!(net.r(2).is_leader());
    assert_eq!(net.r(2).promised(), ballot::make(8, 2));
    assert_eq!(net.r(0).promised(), ballot::make(8, 2));
}

#[test]
fn follower_redirects_proposals_to_the_leader() {
    let mut net = Net::new(3);
    net.submit(1, 5, put(1, 1, "k", "v"));
    let (_, conn, rep) = net.only_reply(1, 1);
    assert_eq!(
        (conn, rep.status, rep.leader),
        (5, ReplyStatus::NotLeader, None)
    );
    net.elect(0);
    net.submit(1, 6, put(1, 2, "k", "v"));
    net.submit(2, 7, put(1, 3, "k", "v"));
    let (from, conn, rep) = net.only_reply(1, 2);
    assert_eq!(
        (from, conn, rep.status, rep.leader),
        (1, 6, ReplyStatus::NotLeader, Some(0))
    );
    assert_eq!(net.only_reply(1, 3).2.leader, Some(0));
    assert_eq!(net.r(1).status(0).leader, Some(0));
    // Redirection never creates a slot.
    assert_eq!(net.in_flight(|m| kind(&m.2) == "Accept"), 0);
    assert_eq!(net.r(1).log().len(), 0);
}

#[test]
fn pending_proposals_beyond_the_limit_are_refused() {
    let mut net = Net::with(3, |c| c.max_pending = 2);
    net.elect(0);
    for s in 1..=3 {
        net.propose(0, s, put(1, s, "k", "v"));
    }
    let (_, _, rep) = net.only_reply(1, 3);
    assert_eq!(rep.status, ReplyStatus::Unavailable);
    net.flush(0);
    net.run();
    assert_eq!(net.only_reply(1, 1).2.status, ReplyStatus::Ok);
    assert_eq!(net.only_reply(1, 2).2.status, ReplyStatus::Ok);
}

// ---------------------------------------------------------------------------
// Exactly-once execution
// ---------------------------------------------------------------------------

#[test]
fn duplicate_proposals_apply_once_even_across_a_leader_change() {
    let mut net = Net::new(3);
    net.elect(0);
    net.submit(0, 1, Command::cas(5, 1, b("k"), None, b("a")));
    net.run();
    let first = net.only_reply(5, 1).2;
    assert_eq!(first.status, ReplyStatus::Ok);
    assert!(first.outcome.flag && first.outcome.value.is_none());
    net.submit(0, 2, put(6, 1, "k", "b"));
    net.run();

    // A retry of an executed command is answered at once with the first outcome.
    net.submit(0, 3, Command::cas(5, 1, b("k"), None, b("a")));
    assert_eq!(
        net.in_flight(|_| true),
        0,
        "a retry of an executed command starts no slot"
    );
    let retry = net.reply(5, 1);
    assert_eq!(retry.len(), 2);
    assert_eq!(retry[1].1, 3);
    assert_eq!(retry[1].2.outcome, first.outcome);
    for i in 0..3 {
        assert_eq!(net.r(i).state().applied(), 2);
        assert_eq!(net.value(i, "k"), Some(b("b")));
    }

    // In flight during a leader change: accepted by replica 1 only, then the
    // client retries at the new leader while it campaigns.
    let c2 = Command::cas(5, 2, b("k"), Some(b("b")), b("c"));
    net.submit(0, 4, c2.clone());
    net.drop_where(|m| is(m, 0, 2, "Accept"));
    net.deliver_where(|m| is(m, 0, 1, "Accept"));
    net.drop_where(|m| is(m, 1, 0, "AcceptReply"));
    net.be_leader(1);
    net.propose(1, 5, c2.clone());
    net.run();
    net.settle(1);
    assert!(net.r(1).is_leader());
    net.assert_converged(&[0, 1, 2]);
    // The command sits in two slots (re-proposed, and the retry) but applied once.
    let copies = net
        .committed(1)
        .iter()
        .flatten()
        .filter(|c| **c == c2)
        .count();
    assert_eq!(copies, 2);
    for i in 0..3 {
        assert_eq!(net.r(i).state().applied(), 3, "replica {i}");
        assert_eq!(net.r(i).state().duplicates(), 1, "replica {i}");
        assert_eq!(net.value(i, "k"), Some(b("c")));
    }
    let replies = net.reply(5, 2);
    let old = replies
        .iter()
        .find(|r| r.1 == 4)
        .expect("the old leader answers its waiting proposal");
    assert_eq!(old.2.status, ReplyStatus::NotLeader);
    let new = replies
        .iter()
        .find(|r| r.1 == 5)
        .expect("the new leader answers the retry");
    assert_eq!(new.2.status, ReplyStatus::Ok);
    assert!(
        new.2.outcome.flag,
        "the retry gets the first (successful) outcome"
    );
    assert_eq!(new.2.outcome.value, Some(b("b")));
}

#[test]
fn retry_of_a_command_in_flight_is_answered_once_on_the_newest_connection() {
    let mut net = Net::new(3);
    net.elect(0);
    net.submit(0, 1, put(1, 1, "k", "v"));
    net.submit(0, 2, put(1, 1, "k", "v"));
    assert_eq!(
        net.r(0).log().len(),
        1,
        "the retry did not take a second slot"
    );
    net.run();
    let (_, conn, rep) = net.only_reply(1, 1);
    assert_eq!((conn, rep.status), (2, ReplyStatus::Ok));
    assert_eq!(net.r(2).state().applied(), 1);
}

// ---------------------------------------------------------------------------
// Catch-up and recovery
// ---------------------------------------------------------------------------

#[test]
fn lagging_replica_catches_up_after_a_heartbeat() {
    let mut net = Net::with(3, |c| {
        if c.group.id == 2 {
            c.catchup_chunk = 16;
        }
    });
    net.elect(0);
    net.partition(&[2], &[0, 1]);
    for s in 0..50u64 {
        net.submit(
            0,
            s,
            put(9, s + 1, &format!("k{}", s % 7), &format!("v{s}")),
        );
        net.run();
    }
    assert_eq!(net.r(1).commit_index(), 50);
    assert_eq!(net.r(2).commit_index(), 0);
    assert_eq!(net.r(2).log().len(), 0);
    net.heal();
    // The next heartbeat tells replica 2 how far the group got.
    let hb = net.cfgs[0].group.heartbeat_ns;
    net.tick_all(hb);
    assert_eq!(net.in_flight(|m| is(m, 0, 2, "CommitShort")), 1);
    net.run();
    assert_eq!(net.r(2).catchup_fetched(), 50);
    assert_eq!(net.r(2).status(0).catchup_fetched, 50);
    assert_eq!(net.count("CatchupReply", 2), 4, "50 slots in chunks of 16");
    net.assert_converged(&[0, 1, 2]);
}

#[test]
fn commit_short_commits_held_values_without_fetching() {
    let mut net = Net::new(3);
    net.elect(0);
    for s in 0..5u64 {
        net.submit(0, s, put(1, s + 1, "k", &format!("{s}")));
    }
    // Replica 2 gets every Accept but no CommitShort until later.
    net.deliver_where(|m| kind(&m.2) == "Accept");
    net.deliver_where(|m| m.1 == 0);
    net.drop_where(|_| true);
    assert_eq!(net.r(2).commit_index(), 0);
    let hb = net.cfgs[0].group.heartbeat_ns;
    net.tick_all(hb);
    net.run();
    assert_eq!(net.r(2).commit_index(), 5);
    assert_eq!(net.r(2).catchup_fetched(), 0);
    assert_eq!(net.count("CatchupRequest", 0), 0);
    net.assert_converged(&[0, 1, 2]);
}

#[test]
fn recovery_without_a_durable_log_waits_for_a_majority_before_voting() {
    let mut net = Net::new(3);
    net.elect(0);
    for s in 0..5u64 {
        net.submit(0, s, put(1, s + 1, &format!("k{s}"), "v"));
    }
    net.run();
    let b1 = net.r(0).promised();

    // Replica 2 loses everything.
    net.restart_amnesiac(2);
    assert_eq!(net.r(2).status(0).role, role::RECOVERING);
    assert!(net.r(2).is_recovering());
    let queries = net.take_where(|m| kind(&m.2) == "RecoveryQuery");
    assert_eq!(queries.len(), 2);

    // A proposal it receives is refused as unavailable.
    net.submit(2, 99, put(7, 1, "z", "z"));
    assert_eq!(net.only_reply(7, 1).2.status, ReplyStatus::Unavailable);

    // It does not vote: Accepts and Prepares get no answer and change nothing.
    net.submit(0, 5, put(1, 6, "k5", "v"));
    assert_eq!(net.deliver_where(|m| is(m, 0, 2, "Accept")), 1);
    net.deliver((
        1,
        2,
        PaxosMsg::Prepare(Prepare {
            ballot: ballot::make(9, 1),
            from_slot: 0,
        }),
    ));
    assert_eq!(
        net.in_flight(|m| m.0 == 2),
        0,
        "a recovering replica sent a vote"
    );
    assert_eq!(net.r(2).promised(), 0);
    assert!(net
        .r(2)
        .log()
        .iter()
        .all(|s| s.state != SlotState::Accepted));
    net.run();
    // Heartbeats may let it fetch the committed prefix, but it still must not vote.
    net.tick_all(net.cfgs[0].group.heartbeat_ns);
    net.run();
    assert!(net.r(2).is_recovering());

    // Leave a slot accepted at the leader only: part of what 2 must learn first.
    net.submit(0, 6, put(1, 7, "k6", "v"));
    let held = net.take_where(|m| kind(&m.2) == "Accept");
    assert_eq!(held.len(), 2);

    // One answer of two is not enough in a group of three.
    let mut queries = queries.into_iter();
    net.deliver(queries.next().unwrap());
    net.run();
    assert!(net.r(2).is_recovering());
    net.deliver(queries.next().unwrap());
    net.run();
    assert!(
        net.r(2).is_recovering(),
        "slot 6 is in the leader's log and not yet committed"
    );
    assert_eq!(
        net.r(2).promised(),
        b1,
        "it adopted the highest promise reported"
    );

    // The leader retransmits; the slot commits; replica 2 learns it and votes again.
    net.settle(2);
    assert!(!net.r(2).is_recovering());
    assert_eq!(net.r(2).status(0).role, role::FOLLOWER);
    net.assert_converged(&[0, 1, 2]);
    assert_eq!(net.r(2).commit_index(), 7);

    let before = net.count("AcceptReply", 0);
    net.submit(0, 7, put(1, 8, "k7", "v"));
    net.deliver_where(|m| is(m, 0, 2, "Accept"));
    assert_eq!(
        net.in_flight(|m| is(m, 2, 0, "AcceptReply")),
        1,
        "it votes again"
    );
    net.run();
    assert!(net.count("AcceptReply", 0) > before);
    net.assert_converged(&[0, 1, 2]);
}

#[test]
fn recovering_replica_does_not_answer_recovery_queries() {
    let mut net = Net::new(3);
    net.elect(0);
    net.restart_amnesiac(1);
    net.restart_amnesiac(2);
    // 1 and 2 ask each other (no answer) and 0 (answers): neither reaches a majority.
    net.settle(3);
    assert!(net.r(1).is_recovering());
    assert!(net.r(2).is_recovering());
    assert_eq!(
        net.count("RecoveryInfo", 1) + net.count("RecoveryInfo", 2),
        net.count("RecoveryQuery", 0)
    );
}

// ---------------------------------------------------------------------------
// Durable log
// ---------------------------------------------------------------------------

#[test]
fn restore_from_the_durable_log_rebuilds_the_replica() {
    let dir = TempDir::new("restore");
    let mut net = Net::new(3);
    for i in 0..3 {
        let (log, replay) =
            DurableLog::open(&dir.0.join(format!("r{i}.log")), SyncPolicy::Off).unwrap();
        assert!(replay.records.is_empty());
        net.logs[i] = Some(genericsmr::disk::Disk::new(log));
    }
    net.elect(0);
    for s in 0..10u64 {
        net.submit(
            0,
            s,
            put(3, s + 1, &format!("k{}", s % 4), &format!("v{s}")),
        );
    }
    net.run();
    net.submit(0, 10, Command::delete(3, 11, b("k0")));
    net.run();
    // One more slot accepted by replica 1 only.
    net.submit(0, 11, put(3, 12, "late", "x"));
    net.drop_where(|m| is(m, 0, 2, "Accept"));
    net.deliver_where(|m| is(m, 0, 1, "Accept"));
    net.drop_where(|_| true);
    net.logs = (0..3).map(|_| None).collect();

    for i in 0..3u8 {
        let (_, replay) =
            DurableLog::open(&dir.0.join(format!("r{i}.log")), SyncPolicy::Off).unwrap();
        assert_eq!(replay.truncated_bytes, 0);
        assert_eq!(
            replay.records,
            split_records(&net.disk[i as usize]),
            "the log holds what was persisted"
        );
        let mut r = Replica::new(Config::new(i, 3));
        r.restore(&replay.records).unwrap();
        let old = net.r(i);
        assert_eq!(r.promised(), old.promised(), "replica {i}");
        assert_eq!(r.commit_index(), old.commit_index(), "replica {i}");
        assert_eq!(r.executed(), old.executed(), "replica {i}");
        assert_eq!(r.log().len(), old.log().len(), "replica {i}");
        for (s, (a, o)) in r.log().iter().zip(old.log()).enumerate() {
            assert_eq!(
                (a.state, a.ballot, a.cmds()),
                (o.state, o.ballot, o.cmds()),
                "replica {i} slot {s}"
            );
        }
        assert_eq!(r.state().digest(), old.state().digest());
        assert_eq!(r.state().applied(), old.state().applied());
        assert_eq!(r.status(0).replayed, replay.records.len() as u64);
        assert!(
            !r.is_leader(),
            "a restarted replica does not lead until asked"
        );
    }
    assert_eq!(net.r(1).log()[11].state, SlotState::Accepted);

    // A restored replica keeps its promise: it refuses an Accept below it.
    let mut r = Replica::new(Config::new(1, 3));
    r.restore(&split_records(&net.disk[1])).unwrap();
    let mut fx = Effects::default();
    r.handle_accept(
        T0,
        2,
        Accept {
            ballot: ballot::make(0, 2),
            slot: 12,
            cmds: vec![],
        },
        &mut fx,
    );
    match &fx.sends[..] {
        [(Dest::Peer(2), PaxosMsg::AcceptReply(a))] => assert!(!a.ok),
        other => panic!("{other:?}"),
    }
}

#[test]
fn restarted_leader_does_not_lose_its_own_vote() {
    // The leader votes for its own proposal (and persists the vote) before sending
    // it; after a restart from its log, that vote is still reported in phase 1.
    let mut net = Net::new(3);
    net.elect(0);
    let a = put(1, 1, "a", "A");
    net.submit(0, 1, a.clone());
    net.drop_where(|_| true);
    net.crash(0);
    net.restart_durable(0);
    assert_eq!(net.r(0).log()[0].cmds(), vec![a.clone()]);
    // Replica 2 leads with {2, 0}: only 0's log holds A.
    net.be_leader(2);
    net.drop_where(|m| m.1 == 1);
    net.run();
    assert!(net.r(2).is_leader());
    assert_eq!(net.r(2).log()[0].cmds(), vec![a.clone()]);
    net.settle(2);
    net.assert_converged(&[0, 1, 2]);
    assert_eq!(net.committed(1), vec![vec![a]]);
}

// ---------------------------------------------------------------------------
// Thrifty
// ---------------------------------------------------------------------------

#[test]
fn thrifty_sends_accepts_to_a_bare_majority_and_commits_everywhere() {
    let mut net = Net::with(3, |c| c.group.thrifty = true);
    net.elect(0);
    for s in 0..5u64 {
        net.submit(0, s, put(1, s + 1, "k", &format!("{s}")));
        let accepts: Vec<u8> = net
            .queue
            .iter()
            .filter(|m| kind(&m.2) == "Accept")
            .map(|m| m.1)
            .collect();
        assert_eq!(accepts.len(), 1, "quorum - 1 = 1 peer");
        net.run();
    }
    net.assert_converged(&[0, 1, 2]);
    let accepted: Vec<usize> = (1..3).map(|i| net.count("Accept", i)).collect();
    let commits: Vec<usize> = (1..3).map(|i| net.count("Commit", i)).collect();
    assert_eq!(accepted.iter().sum::<usize>(), 5);
    assert_eq!(
        commits.iter().sum::<usize>(),
        5,
        "the peer left out gets each value by Commit"
    );
    for i in 1..3 {
        assert_eq!(accepted[i - 1] + commits[i - 1], 5);
        assert_eq!(net.r(i as u8).commit_index(), 5);
    }
}

#[test]
fn thrifty_falls_back_to_everyone_when_the_chosen_peer_is_down() {
    let mut net = Net::with(3, |c| c.group.thrifty = true);
    net.elect(0);
    net.submit(0, 1, put(1, 1, "k", "v"));
    let target = net.queue.iter().find(|m| kind(&m.2) == "Accept").unwrap().1;
    net.crash(target);
    net.run();
    assert_eq!(net.r(0).commit_index(), 0);
    net.tick_all(net.cfgs[0].group.retransmit_ns);
    net.run();
    assert_eq!(net.r(0).commit_index(), 1);
    assert_eq!(net.only_reply(1, 1).2.status, ReplyStatus::Ok);
    let other = 3 - target;
    net.assert_converged(&[0, other]);
}

// ---------------------------------------------------------------------------
// Partitions and stale leaders
// ---------------------------------------------------------------------------

#[test]
fn stale_leader_behind_a_partition_never_gets_its_values_chosen() {
    let mut net = Net::new(5);
    net.elect(0);
    net.submit(0, 1, put(1, 1, "k", "start"));
    net.run();
    let b1 = net.r(0).promised();

    net.partition(&[0, 1], &[2, 3, 4]);
    // The old leader keeps proposing; only replica 1 hears it.
    for s in 0..3u64 {
        net.submit(0, 10 + s, put(100, s + 1, "k", &format!("stale{s}")));
    }
    net.be_leader(2);
    net.run();
    assert!(net.r(2).is_leader());
    assert!(
        net.r(0).is_leader(),
        "the old leader has not heard of the new ballot"
    );
    let b2 = net.r(2).promised();
    assert!(b2 > b1);
    for s in 0..4u64 {
        net.submit(2, 20 + s, put(200, s + 1, "k", &format!("new{s}")));
    }
    net.run();
    net.tick_all(net.cfgs[0].group.retransmit_ns);
    net.run();
    assert_eq!(net.r(2).commit_index(), 5);
    assert_eq!(net.r(0).commit_index(), 1, "two of five cannot choose");
    assert_eq!(net.r(1).log()[1].ballot, b1);

    net.heal();
    net.settle(4);
    assert!(!net.r(0).is_leader());
    assert!(net.r(2).is_leader());
    net.assert_converged(&[0, 1, 2, 3, 4]);
    for s in 1..=3 {
        let (from, _, rep) = net.only_reply(100, s);
        assert_eq!((from, rep.status), (0, ReplyStatus::NotLeader));
        assert_eq!(rep.leader, Some(2), "the refusal names the new leader");
    }
    for i in 0..5 {
        assert!(
            !net.committed(i).iter().flatten().any(|c| c.client == 100),
            "replica {i} committed a stale value"
        );
        assert_eq!(net.value(i, "k"), Some(b("new3")));
    }
}

/// A stale leader that learns, through a Commit, a value chosen at a higher
/// ballot must not announce it in a CommitShort at its own ballot: a replica
/// that accepted the stale leader's value for that slot would commit it.
#[test]
fn stale_leader_learning_a_higher_commit_does_not_commit_its_value_elsewhere() {
    let mut net = Net::new(5);
    net.elect(0);
    // {0, 4} cannot reach {1, 2, 3}.
    net.partition(&[0, 4], &[1, 2, 3]);
    let p = put(100, 1, "k", "stale");
    net.submit(0, 1, p.clone());
    net.run();
    assert_eq!(
        net.r(4).log()[0].cmds(),
        vec![p.clone()],
        "replica 4 accepted the stale value"
    );
    // Replica 1 leads {1, 2, 3} and chooses its own value for slot 0; replica 2
    // votes for it but misses the commit announcement.
    net.elect(1);
    let q = put(200, 1, "k", "new");
    net.drops.push((1, 2, "CommitShort"));
    net.submit(1, 2, q.clone());
    net.run();
    net.drops.clear();
    assert_eq!(net.r(1).commit_index(), 1);
    assert_eq!(net.committed(1), vec![vec![q.clone()]]);
    assert_eq!(
        net.r(2).commit_index(),
        0,
        "2 missed the commit announcement"
    );
    // Replica 2 leads next; 1 reports the committed slot, so 2 broadcasts a Commit.
    // The link from 2 to the old leader 0 is back, but 0 misses the Prepare.
    net.cut[2][0] = false;
    net.be_leader(2);
    net.drop_where(|m| is(m, 2, 0, "Prepare"));
    net.run();
    assert!(net.r(2).is_leader());
    assert_eq!(net.count("Commit", 0), 1, "the old leader got the Commit");
    // A different value was chosen where it proposed: a higher ballot exists.
    assert!(!net.r(0).is_leader(), "the overruled leader steps down");
    assert_eq!(net.only_reply(100, 1).2.status, ReplyStatus::NotLeader);
    // The old leader must not have told 4 that 4's stale value is chosen.
    net.heal();
    net.settle(3);
    for i in 0..5 {
        assert!(
            !net.committed(i).iter().flatten().any(|c| c.client == 100),
            "replica {i} committed the stale value"
        );
    }
    net.assert_converged(&[0, 1, 2, 3, 4]);
}

/// A stale leader that learns, through a Commit, a value chosen at a higher ballot
/// in a slot it never proposed in must not make a replica holding a vote of an
/// intermediate ballot commit that vote: a CommitShort only vouches for votes at
/// exactly the sender's ballot.
#[test]
fn commit_short_does_not_vouch_for_votes_at_higher_ballots() {
    // Replica 2 runs thrifty, so its commits reach the replicas it left out by Commit.
    let mut net = Net::with(7, |c| c.group.thrifty = c.group.id == 2);
    // 0 leads at b with {0, 4, 5, 6}, proposes nothing yet and hears of nothing newer.
    net.partition(&[0], &[1, 2, 3]);
    net.elect(0);
    let b0 = net.r(0).promised();
    // 1 leads at a > b with {1, 2, 3, 4, 5, 6}; its value x reaches only replica 3.
    net.elect(1);
    let a = net.r(1).promised();
    assert!(a > b0);
    net.cut_one_way(&[1], &[2, 4, 5, 6]);
    let x = put(100, 1, "k", "x");
    net.submit(1, 1, x.clone());
    net.run();
    assert_eq!(
        (
            net.r(3).log()[0].ballot,
            net.r(3).log()[0].cmds().into_owned()
        ),
        (a, vec![x.clone()])
    );
    // 2 leads at c > a with {2, 4, 5, 6}, which never saw x, and chooses w there.
    net.now += 1_000;
    net.partition(&[2], &[1, 3]);
    net.elect(2);
    let w = put(200, 1, "k", "w");
    // Its thrifty Commit reaches the old leader 0 (but not its heartbeat, which would
    // depose 0).
    net.cut[2][0] = false;
    net.drops.push((2, 0, "CommitShort"));
    net.submit(2, 2, w.clone());
    net.run();
    assert_eq!(net.committed(2), vec![vec![w.clone()]]);
    assert_eq!(net.count("Commit", 0), 1);
    assert!(net.r(0).is_leader(), "0 still leads at b");
    assert_eq!(net.r(0).commit_index(), 1);
    // 0's CommitShort(b, 1) reaches 3, which holds x at a >= b: it must not commit x.
    net.cut[0][3] = false;
    net.tick_all(net.cfgs[0].group.heartbeat_ns);
    assert_eq!(net.deliver_where(|m| is(m, 0, 3, "CommitShort")), 1);
    assert_ne!(net.r(3).log()[0].state, SlotState::Committed);
    net.heal();
    net.drops.clear();
    net.settle(4);
    net.assert_converged(&[0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(net.committed(3), vec![vec![w]]);
}

/// A candidate that learns a slot is chosen while it campaigns does not propose
/// into it again once elected (which would turn a committed slot back into an
/// accepted one below the commit index).
#[test]
fn new_leader_does_not_repropose_a_slot_it_learned_during_phase_1() {
    let mut net = Net::new(3);
    net.elect(0);
    let v = put(1, 1, "k", "v");
    net.submit(0, 1, v.clone());
    // 2 accepts v but misses the commit announcement; 1 votes, 0 commits.
    net.deliver_where(|m| kind(&m.2) == "Accept");
    net.deliver_where(|m| is(m, 1, 0, "AcceptReply"));
    net.drop_where(|m| is(m, 0, 2, "CommitShort"));
    assert_eq!(net.r(0).commit_index(), 1);
    assert_eq!(net.r(2).commit_index(), 0);
    let hb = net.take_where(|m| is(m, 0, 1, "CommitShort"));
    net.drop_where(|_| true);
    // 2 campaigns from slot 0; meanwhile the old leader's heartbeat tells it slot 0 is chosen.
    net.be_leader(2);
    net.tick_all(net.cfgs[0].group.heartbeat_ns);
    net.deliver_where(|m| is(m, 0, 2, "CommitShort"));
    assert_eq!(net.r(2).commit_index(), 1);
    assert_eq!(net.r(2).status(0).role, role::CANDIDATE);
    // Then the promise arrives and 2 leads: slot 0 stays committed.
    net.deliver_where(|m| is(m, 2, 1, "Prepare"));
    net.deliver_where(|m| is(m, 1, 2, "PrepareReply"));
    assert!(net.r(2).is_leader());
    assert_eq!(net.r(2).log()[0].state, SlotState::Committed);
    for m in hb {
        net.deliver(m);
    }
    net.settle(2);
    net.assert_converged(&[0, 1, 2]);
    assert_eq!(net.committed(1), vec![vec![v]]);
}

/// A leader that learns (from a Commit of a higher ballot) that the slot it would
/// use next is chosen skips it instead of proposing into it.
#[test]
fn leader_does_not_propose_into_a_slot_it_knows_is_chosen() {
    let mut net = Net::new(3);
    net.elect(0);
    let b0 = net.r(0).promised();
    let q = put(2, 1, "q", "q");
    // What a thrifty leader at a higher ballot sends to a replica it left out.
    let higher = ballot::make(ballot::round(b0) + 1, 1);
    let c = Commit {
        ballot: higher,
        slot: 0,
        cmds: vec![q.clone()],
    };
    net.deliver((1, 0, PaxosMsg::Commit(c)));
    assert_eq!(net.r(0).commit_index(), 1);
    net.drop_where(|_| true);
    if net.r(0).is_leader() {
        let p = put(1, 1, "p", "p");
        net.submit(0, 1, p.clone());
        assert_eq!(net.r(0).log()[0].cmds(), vec![q.clone()]);
        assert_eq!(net.r(0).log()[0].state, SlotState::Committed);
        assert_eq!(net.r(0).log()[1].cmds(), vec![p.clone()]);
        // (Proposing p into slot 0 would have the heartbeat commit p there at 1 and 2.)
        net.settle(2);
        net.assert_converged(&[0, 1, 2]);
        assert_eq!(net.committed(1), vec![vec![q], vec![p]]);
    } else {
        // (Stepping down on the higher ballot is an acceptable answer too.)
        assert!(net.r(0).promised() >= higher);
    }
}

// ---------------------------------------------------------------------------
// Randomized safety
// ---------------------------------------------------------------------------

/// A small deterministic generator (64-bit LCG, high bits out).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Random delivery order, loss, duplication, client retries, leader changes,
/// partitions, crash-restarts from the durable log and (in half the runs) restarts
/// without it through recovery; the net checks safety after every step, and at the
/// end everyone must converge and every acknowledged command must be committed.
fn random_run(seed: u64, n: usize, steps: usize) {
    eprintln!("random schedule: seed {seed}, {n} replicas");
    let mut rng = Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF);
    let thrifty = rng.chance(50);
    let batch = rng.chance(50);
    let reply_after_exec = rng.chance(30);
    let amnesia = rng.chance(50);
    let mut durable = vec![true; n];
    let mut net = Net::with(n, |c| {
        c.group.thrifty = thrifty;
        c.batch = batch;
        c.reply_after_exec = reply_after_exec;
        c.catchup_chunk = 3;
        // Small enough that leaders fill it and candidates fall behind it
        // (seed 4 caught candidates that ignored reports past it).
        c.group.slot_window = 4;
    });
    let rt = net.cfgs[0].group.retransmit_ns;
    let mut seqs = [0u64; 4];
    let mut last: [Option<Command>; 4] = Default::default();
    let mut conn = 0;
    let first = rng.below(n as u64) as u8;
    net.be_leader(first);
    for _ in 0..steps {
        let dice = rng.below(1000);
        if dice < 600 {
            // Deliver (or lose, or duplicate) a random message in flight.
            if net.queue.is_empty() {
                continue;
            }
            let i = rng.below(net.queue.len() as u64) as usize;
            let m = net.queue.remove(i).unwrap();
            if rng.chance(10) {
                continue; // lost
            }
            if rng.chance(3) {
                net.queue.push_back(m.clone()); // duplicated
            }
            net.deliver(m);
        } else if dice < 800 {
            // A client proposal at a random replica (often the leader), sometimes a
            // retry of the client's previous command.
            let c = rng.below(4) as usize;
            let cmd = match &last[c] {
                Some(prev) if rng.chance(20) => prev.clone(),
                _ => {
                    seqs[c] += 1;
                    let (client, seq) = (c as u64 + 1, seqs[c]);
                    let key = format!("k{}", rng.below(3));
                    match rng.below(4) {
                        0 => Command::get(client, seq, b(&key)),
                        1 => Command::cas(client, seq, b(&key), None, b(&format!("c{seq}"))),
                        _ => put(client, seq, &key, &format!("p{c}-{seq}")),
                    }
                }
            };
            last[c] = Some(cmd.clone());
            let to = if rng.chance(70) {
                (0..n as u8)
                    .find(|i| net.r(*i).is_leader() && !net.down[*i as usize])
                    .unwrap_or(0)
            } else {
                rng.below(n as u64) as u8
            };
            conn += 1;
            if !net.down[to as usize] {
                if net.trace {
                    eprintln!("propose at {to}: {cmd:?}");
                }
                net.propose(to, conn, cmd);
                if rng.chance(70) {
                    net.flush(to);
                }
            }
        } else if dice < 930 {
            if net.trace {
                eprintln!("tick");
            }
            net.tick_all(if rng.chance(50) { rt } else { rt / 4 });
        } else if dice < 950 {
            let i = rng.below(n as u64) as u8;
            if !net.down[i as usize] {
                if net.trace {
                    eprintln!("be_leader {i}");
                }
                net.be_leader(i);
            }
        } else if dice < 965 {
            // Crash a replica; at most a minority is down or recovering at once.
            let i = rng.below(n as u64) as u8;
            let out = (0..n as u8)
                .filter(|j| net.down[*j as usize] || net.r(*j).is_recovering())
                .count();
            if !net.down[i as usize] && !net.r(i).is_recovering() && out + 1 < n.div_ceil(2) {
                if net.trace {
                    eprintln!("crash {i}");
                }
                net.crash(i);
            }
        } else if dice < 985 {
            // Restart a crashed replica: from its durable log, or, for a replica
            // that runs without one, through recovery. (Only while every other replica
            // is up and voting: recovery needs F+1 others, and state lost by more than
            // one replica at once is beyond what it promises.)
            if let Some(i) = (0..n as u8).find(|i| net.down[*i as usize]) {
                let calm = (0..n as u8)
                    .all(|j| j == i || (!net.down[j as usize] && !net.r(j).is_recovering()));
                if amnesia && calm && rng.chance(30) {
                    durable[i as usize] = false; // from now on it runs without a log
                }
                if durable[i as usize] {
                    if net.trace {
                        eprintln!("restart {i}");
                    }
                    net.restart_durable(i);
                } else if calm {
                    if net.trace {
                        eprintln!("restart {i} without a log");
                    }
                    net.restart_amnesiac(i);
                }
            }
        } else if dice < 993 {
            let a: Vec<u8> = (0..n as u8).filter(|_| rng.chance(40)).collect();
            let rest: Vec<u8> = (0..n as u8).filter(|i| !a.contains(i)).collect();
            if net.trace {
                eprintln!("partition {a:?} | {rest:?}");
            }
            net.partition(&a, &rest);
        } else {
            if net.trace {
                eprintln!("heal");
            }
            net.heal();
        }
    }
    // Heal everything and let a leader finish: everyone must converge.
    net.heal();
    for i in 0..n as u8 {
        if net.down[i as usize] && durable[i as usize] {
            net.restart_durable(i);
        }
    }
    // Like the master, ask a replica to lead while there is none; like clients, keep
    // some traffic going (a replica recovering without its log may wait for new slots
    // to fill its target). Replicas without a log come back one at a time.
    let mut filler = 0;
    let mut stabilize = |net: &mut Net, rng: &mut Lcg| {
        for _ in 0..30 {
            let leaders: Vec<u8> = (0..n as u8).filter(|i| net.r(*i).is_leader()).collect();
            let recovering = (0..n as u8).any(|j| net.r(j).is_recovering());
            let campaigning = (0..n as u8).any(|j| net.r(j).status(0).role == role::CANDIDATE);
            let done = |l: u8| net.r(l).commit_index() == net.r(l).log().len() as u64;
            if leaders.len() == 1 && !recovering && !campaigning && done(leaders[0]) {
                return;
            }
            if leaders.is_empty() {
                let candidates: Vec<u8> = (0..n as u8)
                    .filter(|i| !net.down[*i as usize] && !net.r(*i).is_recovering())
                    .collect();
                let c = candidates[rng.below(candidates.len() as u64) as usize];
                net.be_leader(c);
            } else if recovering {
                for _ in 0..8 {
                    filler += 1;
                    net.submit(leaders[0], 0, Command::get(99, filler, b("k0")));
                }
            }
            net.settle(2);
        }
    };
    stabilize(&mut net, &mut rng);
    for i in 0..n as u8 {
        if net.down[i as usize] {
            net.restart_amnesiac(i);
            stabilize(&mut net, &mut rng);
        }
    }
    if net.trace {
        for i in 0..n as u8 {
            let r = net.r(i);
            eprintln!(
                "final {i}: role {} promised {:#x} commit {} log_end {} leader {:?}",
                r.status(0).role,
                r.promised(),
                r.commit_index(),
                r.log().len(),
                r.leader_hint()
            );
        }
    }
    assert!(
        (0..n as u8).all(|i| !net.r(i).is_recovering()),
        "seed {seed}: a replica is still recovering"
    );
    let leaders: Vec<u8> = (0..n as u8).filter(|i| net.r(*i).is_leader()).collect();
    assert_eq!(
        leaders.len(),
        1,
        "seed {seed}: leaders after healing: {leaders:?}"
    );
    let leader = leaders[0];
    let all: Vec<u8> = (0..n as u8).collect();
    net.assert_converged(&all);
    // Every command a client was told is Ok is in the log, and the outcome it was
    // told is the one a sequential execution of the log gives (writes answered at
    // commit carry no outcome).
    let mut sm = genericsmr::state::StateMachine::default();
    let mut outcomes = HashMap::new();
    for c in net.committed(leader).into_iter().flatten() {
        let out = sm.execute(&c);
        outcomes.entry((c.client, c.seq)).or_insert((c.op, out));
    }
    assert_eq!(sm.digest(), net.r(leader).state().digest());
    for (_, _, rep) in &net.replies {
        if rep.status != ReplyStatus::Ok {
            continue;
        }
        let Some((op, out)) = outcomes.get(&(rep.client, rep.seq)) else {
            panic!(
                "seed {seed}: ({}, {}) was acknowledged but is not committed",
                rep.client, rep.seq
            );
        };
        if reply_after_exec || matches!(op, Op::Get | Op::Cas) {
            assert_eq!(
                &rep.outcome, out,
                "seed {seed}: outcome of ({}, {})",
                rep.client, rep.seq
            );
        }
    }
}

/// The seeds to run: `PAXOS_SEED=<n>` runs just that schedule (in each randomized
/// test); `PAXOS_SEEDS=<count>` runs that many from the start of the range.
fn seeds(range: std::ops::Range<u64>) -> Vec<u64> {
    let var = |name| {
        std::env::var(name)
            .ok()
            .and_then(|s: String| s.parse::<u64>().ok())
    };
    if let Some(s) = var("PAXOS_SEED") {
        return vec![s];
    }
    match var("PAXOS_SEEDS") {
        Some(count) => (range.start..range.start + count).collect(),
        None => range.collect(),
    }
}

#[test]
fn random_schedules_are_safe_with_three_replicas() {
    for seed in seeds(0..150) {
        random_run(seed, 3, 1500);
    }
}

#[test]
fn random_schedules_are_safe_with_five_replicas() {
    for seed in seeds(1000..1100) {
        random_run(seed, 5, 2000);
    }
}

// ---------------------------------------------------------------------------
// Compaction and snapshots
// ---------------------------------------------------------------------------

/// A group that compacts after a handful of slots, with small snapshot chunks.
fn compacting(n: usize) -> Net {
    Net::with(n, |c| {
        c.group.compaction.keep_executed = 8;
        c.group.compaction.compact_every = 8;
        c.group.transfer.chunk_bytes = 64;
    })
}

/// `count` puts of unique values through leader `l`, each delivered fully.
fn load(net: &mut Net, l: u8, client: u64, count: u64, tag: &str) {
    for s in 0..count {
        net.submit(
            l,
            s,
            put(
                client,
                s + 1,
                &format!("{tag}-k{}", s % 7),
                &format!("{tag}-v{s}"),
            ),
        );
        net.run();
    }
}

#[test]
fn a_follower_behind_the_compaction_point_catches_up_by_snapshot() {
    let mut net = compacting(3);
    net.elect(0);
    net.crash(2);
    load(&mut net, 0, 41, 64, "lag");
    let (base, exec) = (net.r(0).log_base(), net.r(0).executed());
    assert!(exec >= 64, "executed {exec}");
    assert!(
        base > 0 && base >= exec - 16,
        "leader base {base}, executed {exec}"
    );
    assert!(
        net.r(0).log().len() <= 16 + 2,
        "{} slots held",
        net.r(0).log().len()
    );
    assert!(net.r(0).snapshots().2 >= 4, "{:?}", net.r(0).snapshots());
    assert_eq!(net.r(2).executed(), 0);

    net.down[2] = false;
    net.settle(6);
    assert!(
        net.count("Compacted", 2) >= 1,
        "the leader answered Compacted"
    );
    assert!(
        net.count("SnapshotChunk", 2) > 1,
        "the snapshot came in several chunks"
    );
    assert_eq!(net.r(2).snapshots().0, 1, "one snapshot installed");
    assert_eq!(net.r(0).snapshots().1, 1, "one snapshot sent");
    assert_eq!(net.r(2).executed(), net.r(0).executed());
    assert_eq!(net.r(2).state().digest(), net.r(0).state().digest());
    assert_eq!(net.value(2, "lag-k0"), Some(b("lag-v63")));
    // Ordinary replication goes on above the snapshot.
    load(&mut net, 0, 42, 3, "after");
    net.settle(2);
    assert_eq!(net.r(2).executed(), net.r(0).executed());
    assert_eq!(net.r(2).state().digest(), net.r(0).state().digest());
    assert_eq!(net.value(2, "after-k2"), Some(b("after-v2")));
}

#[test]
fn a_candidate_behind_the_compaction_point_fetches_a_snapshot_instead_of_leading() {
    let mut net = compacting(3);
    net.elect(0);
    net.crash(2);
    load(&mut net, 0, 43, 40, "cand");
    net.down[2] = false;
    // Replica 2 campaigns from slot 0: every peer compacted it away.
    net.be_leader(2);
    net.run();
    assert!(
        !net.r(2).is_leader(),
        "a candidate that far behind must not lead"
    );
    assert!(net.count("Compacted", 2) >= 1);
    assert_eq!(net.r(2).snapshots().0, 1);
    assert_eq!(net.r(2).state().digest(), net.r(0).state().digest());
    assert_eq!(net.value(2, "cand-k4"), Some(b("cand-v39")));
    // The group still has a leader that serves.
    net.elect(0);
    net.submit(0, 99, put(44, 1, "cand-last", "cand-z"));
    net.settle(2);
    assert_eq!(net.value(2, "cand-last"), Some(b("cand-z")));
}

/// Opens a durable log per replica in `dir`.
fn open_logs(net: &mut Net, dir: &TempDir) {
    for i in 0..net.n {
        let (log, _) = DurableLog::open(&dir.0.join(format!("r{i}.log")), SyncPolicy::Off).unwrap();
        net.logs[i] = Some(genericsmr::disk::Disk::new(log));
    }
}

#[test]
fn a_compacted_replica_restarts_from_its_snapshot_file_and_log() {
    let dir = TempDir::new("compacted-restart");
    let mut net = compacting(3);
    open_logs(&mut net, &dir);
    net.elect(0);
    load(&mut net, 0, 45, 70, "dur");
    // One more slot accepted by replica 1 only: a vote above the snapshot.
    net.submit(0, 70, put(45, 71, "dur-late", "dur-x"));
    net.drop_where(|m| is(m, 0, 2, "Accept"));
    net.deliver_where(|m| is(m, 0, 1, "Accept"));
    net.drop_where(|_| true);
    net.logs = (0..3).map(|_| None).collect();
    for i in 0..3u8 {
        let log = dir.0.join(format!("r{i}.log"));
        let snap = genericsmr::durable::snapshot_path(&log);
        let (log_len, snap_len) = (
            std::fs::metadata(&log).unwrap().len(),
            std::fs::metadata(&snap).unwrap().len(),
        );
        // 16 slots' records at most, well under the 70 written.
        assert!(log_len < 16 * 120, "replica {i}: log of {log_len} bytes");
        assert!(snap_len > 0);
        let (_, replay) = DurableLog::open(&log, SyncPolicy::Off).unwrap();
        assert!(replay.from_snapshot, "replica {i}");
        assert_eq!(replay.records, split_records(&net.disk[i as usize]));
        let mut r = Replica::new(net.cfgs[i as usize].clone());
        r.restore(&replay.records).unwrap();
        let old = net.r(i);
        assert!(r.log_base() > 0, "replica {i} restarted from a snapshot");
        assert_eq!(r.promised(), old.promised(), "replica {i}");
        assert_eq!(r.commit_index(), old.commit_index(), "replica {i}");
        assert_eq!(r.executed(), old.executed(), "replica {i}");
        assert_eq!(r.state().digest(), old.state().digest(), "replica {i}");
        assert_eq!(r.state().applied(), old.state().applied(), "replica {i}");
        for s in r.log_base()..old.log_end() {
            let (a, o) = (r.slot(s).unwrap(), old.slot(s).unwrap());
            assert_eq!(
                (a.state, a.ballot, a.cmds()),
                (o.state, o.ballot, o.cmds()),
                "replica {i} slot {s}"
            );
        }
    }
    let late = net.r(0).log_end() - 1;
    assert_eq!(net.r(1).slot(late).unwrap().state, SlotState::Accepted);
}

#[test]
fn a_damaged_snapshot_file_is_an_error_naming_the_file_and_offset() {
    let dir = TempDir::new("damaged-snapshot");
    let mut net = compacting(3);
    open_logs(&mut net, &dir);
    net.elect(0);
    load(&mut net, 0, 46, 20, "dmg");
    net.logs = (0..3).map(|_| None).collect();
    let log = dir.0.join("r1.log");
    let snap = genericsmr::durable::snapshot_path(&log);
    let mut bytes = std::fs::read(&snap).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0x40;
    std::fs::write(&snap, &bytes).unwrap();
    let err = DurableLog::open(&log, SyncPolicy::Off).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&snap.display().to_string()), "{msg}");
    assert!(msg.contains("offset 8"), "{msg}");
    assert!(msg.contains("checksum"), "{msg}");
    // A snapshot record whose checksums hold but whose content is garbage is
    // an error of restore, not a panic.
    let mut r = Replica::new(net.cfgs[1].clone());
    let mut rec = BytesMut::new();
    Record::Snapshot(Bytes::from_static(b"not a snapshot")).marshal(&mut rec);
    assert!(r.restore(&[rec.freeze()]).is_err());
}

/// A crash between the two renames of a compaction leaves the new snapshot
/// file with the old log: replaying every record of the run after the
/// snapshot must give the same replica (records below it are ignored).
#[test]
fn a_new_snapshot_with_the_old_log_replays_to_the_same_state() {
    let scenario = |keep: u64, every: u64| {
        let mut net = Net::with(3, |c| {
            c.group.compaction.keep_executed = keep;
            c.group.compaction.compact_every = every;
        });
        net.elect(0);
        load(&mut net, 0, 47, 40, "win");
        net
    };
    let full = scenario(1 << 20, 1 << 20);
    let comp = scenario(8, 8);
    for i in 0..3u8 {
        let base = split_records(&comp.disk[i as usize]).remove(0);
        assert!(matches!(
            genericsmr::wire::decode_body::<Record>(base.clone()),
            Ok(Record::Snapshot(_))
        ));
        let old_log = split_records(&full.disk[i as usize]);
        assert!(old_log.len() > 40, "replica {i}: {} records", old_log.len());
        let mut recs = vec![base];
        recs.extend(old_log);
        let mut r = Replica::new(comp.cfgs[i as usize].clone());
        r.restore(&recs).unwrap();
        let c = comp.r(i);
        assert!(r.log_base() > 0, "replica {i}");
        assert_eq!(r.executed(), c.executed(), "replica {i}");
        assert_eq!(r.commit_index(), c.commit_index(), "replica {i}");
        assert_eq!(r.promised(), c.promised(), "replica {i}");
        assert_eq!(r.state().digest(), c.state().digest(), "replica {i}");
        assert_eq!(
            r.state().digest(),
            full.r(i).state().digest(),
            "replica {i}"
        );
    }
}

/// Over many slots the log held in memory and the files on disk stay within
/// what the settings allow, while status counters stay absolute.
#[test]
fn memory_and_disk_stay_bounded_over_many_slots() {
    let dir = TempDir::new("bounded");
    let mut net = Net::with(1, |c| {
        c.group.compaction.keep_executed = 100;
        c.group.compaction.compact_every = 50;
        // Exactly every 50 slots, whatever the snapshot's size.
        c.group.compaction.snapshot_ratio = 0;
    });
    open_logs(&mut net, &dir);
    net.elect(0);
    let mut most = 0;
    let log = dir.0.join("r0.log");
    let mut biggest_file = 0;
    for s in 0..3000u64 {
        net.submit(
            0,
            s,
            put(48, s + 1, &format!("mem-k{}", s % 5), &format!("mem-{s}")),
        );
        most = most.max(net.r(0).log().len());
        if s % 50 == 0 {
            biggest_file = biggest_file.max(std::fs::metadata(&log).unwrap().len());
        }
    }
    let r = net.r(0);
    assert_eq!(r.executed(), 3000);
    assert_eq!(r.commit_index(), 3000);
    assert_eq!(r.status(0).log_len, 3000, "log_len is the absolute end");
    assert!(most <= 151, "{most} slots held at once");
    assert!(r.log_base() >= 2850, "base {}", r.log_base());
    // About 50 slots of records (a vote and a commit mark, ~200 bytes a
    // slot) between compactions, where 3000 slots would take ~600 kB.
    assert!(
        biggest_file < 16_000,
        "log file reached {biggest_file} bytes"
    );
    assert_eq!(r.snapshots().2, (3000 - 100) / 50);
}

/// Batches make slots large: with a bound of 4 kB of executed commands and
/// slot bounds far away, compaction still runs, and memory holds about the
/// bound whatever the slots hold.
#[test]
fn large_batches_are_compacted_by_bytes() {
    let mut net = Net::with(3, |c| {
        c.group.compaction.keep_executed = 1 << 20;
        c.group.compaction.compact_every = 1 << 20;
        c.group.compaction.compact_bytes = 4096;
        c.batch = true;
        c.group.compaction.snapshot_ratio = 0;
    });
    net.elect(0);
    let mut most = 0;
    for b in 0..100u64 {
        // A batch of 20 puts, each about 40 bytes encoded: 800 bytes a slot.
        for j in 0..20u64 {
            let seq = b * 20 + j + 1;
            net.propose(
                0,
                seq,
                put(
                    49,
                    seq,
                    &format!("big-k{}", j % 7),
                    &format!("big-value-{seq:06}"),
                ),
            );
        }
        net.flush(0);
        net.run();
        let held: usize = net.r(0).log().iter().map(|x| x.cmds().len()).sum();
        most = most.max(held);
    }
    let r = net.r(0);
    assert_eq!(r.executed(), 100, "one slot per batch");
    assert!(
        r.log_base() > 80,
        "base {}: nothing compacted",
        r.log_base()
    );
    // The bound (4 kB, about 5 slots of 800 bytes) plus the slots in flight.
    assert!(most <= 8 * 20, "{most} commands held at once");
    net.settle(2);
    net.assert_converged(&[0, 1, 2]);
}
