//! Handler-level tests of the Raft core on the shared manual-delivery
//! network (`sim::manual::Net`): PreVote, CheckQuorum, fast backtracking,
//! leadership transfer, and restarts from a compacted durable log. Every
//! step is checked by the harness (no two replicas commit different entries
//! at one index; equal executed counts mean equal states).
//!
//! PreVote and CheckQuorum each have a test that shows the scenario fails
//! with the mechanism switched off (the core settings behind the broken
//! variants `no-pre-vote` and `no-check-quorum`).

use genericsmr::command::Command;
use genericsmr::messages::ReplyStatus;
use raft::{Config, RaftMsg, Replica};
use sim::manual::Net;

/// Election timeout of these tests.
const T: u64 = 100_000_000;
/// One timer step.
const STEP: u64 = 5_000_000;

fn net_with(n: usize, f: impl Fn(&mut Config) + 'static) -> Net<Replica> {
    Net::new(
        n,
        Box::new(move |i, boot, now, _fx| {
            let mut c = Config::new(i, n);
            c.election_timeout_ns = T;
            c.heartbeat_ns = 10_000_000;
            c.retransmit_ns = 40_000_000;
            f(&mut c);
            Replica::boot_with(c, boot, now).expect("boots")
        }),
    )
}

/// Steps the clock `steps` times, delivering everything between steps.
fn run_for(net: &mut Net<Replica>, steps: usize) {
    for _ in 0..steps {
        net.run();
        net.tick_all(STEP);
    }
    net.run();
}

/// The replicas that lead (among those up).
fn leaders(net: &Net<Replica>) -> Vec<u8> {
    (0..net.n as u8)
        .filter(|i| !net.down[*i as usize] && net.r(*i).is_leader())
        .collect()
}

/// Elects replica `l` (the master's request) and lets it commit its no-op.
fn elect(net: &mut Net<Replica>, l: u8) {
    net.be_leader(l);
    run_for(net, 4);
    assert_eq!(leaders(net), vec![l], "replica {l} leads");
}

/// Proposes a put with a unique value at `to` and runs until it is answered.
fn put(net: &mut Net<Replica>, to: u8, client: u64, seq: u64) -> ReplyStatus {
    let value = format!("c{client}s{seq}");
    net.submit(to, client, Command::put(client, seq, "k", value));
    run_for(net, 4);
    net.only_reply(client, seq).2.status
}

/// A replica cut off from the others for many election timeouts comes back.
/// Returns whether the leader from before kept leading in the same term.
fn partitioned_follower_rejoins(pre_vote: bool) -> bool {
    let mut net = net_with(3, move |c| c.pre_vote = pre_vote);
    elect(&mut net, 0);
    assert_eq!(put(&mut net, 0, 1, 1), ReplyStatus::Ok);
    let term = net.r(0).term();
    net.partition(&[2], &[0, 1]);
    run_for(&mut net, (10 * T / STEP) as usize);
    assert!(
        net.r(0).is_leader(),
        "the healthy majority keeps its leader"
    );
    net.heal();
    run_for(&mut net, (3 * T / STEP) as usize);
    // Whatever happened, the group serves and replica 2 catches up.
    let l = leaders(&net);
    assert_eq!(l.len(), 1, "one leader: {l:?}");
    assert_eq!(put(&mut net, l[0], 1, 2), ReplyStatus::Ok);
    run_for(&mut net, 4);
    assert_eq!(net.r(2).applied(), net.r(l[0]).applied());
    assert_eq!(net.r(2).state().digest(), net.r(l[0]).state().digest());
    l == [0] && net.r(0).term() == term
}

#[test]
fn a_partitioned_follower_rejoins_without_deposing_the_leader() {
    assert!(partitioned_follower_rejoins(true));
}

#[test]
fn without_pre_vote_a_rejoining_follower_deposes_the_leader() {
    assert!(
        !partitioned_follower_rejoins(false),
        "the scenario above must catch a Raft without PreVote"
    );
}

/// The leader is cut off from both followers: how long it keeps leading
/// (None: still leading after five election timeouts).
fn isolated_leader_leads_for(check_quorum: bool) -> Option<u64> {
    let mut net = net_with(3, move |c| c.check_quorum = check_quorum);
    elect(&mut net, 0);
    assert_eq!(put(&mut net, 0, 1, 1), ReplyStatus::Ok);
    run_for(&mut net, 2);
    net.partition(&[0], &[1, 2]);
    let cut = net.now;
    for _ in 0..(5 * T / STEP) {
        net.run();
        net.tick_all(STEP);
        if !net.r(0).is_leader() {
            let led = net.now - cut;
            // The majority side elected its own leader meanwhile or soon.
            run_for(&mut net, (3 * T / STEP) as usize);
            let l = leaders(&net);
            assert!(
                l.len() == 1 && l[0] != 0,
                "a new leader on the majority side: {l:?}"
            );
            net.heal();
            run_for(&mut net, (2 * T / STEP) as usize);
            assert_eq!(put(&mut net, l[0], 1, 2), ReplyStatus::Ok);
            return Some(led);
        }
    }
    None
}

#[test]
fn a_leader_cut_off_from_a_majority_steps_down_within_an_election_timeout() {
    let led = isolated_leader_leads_for(true).expect("it stepped down");
    assert!(led <= T + STEP, "stepped down after {led} ns (timeout {T})");
}

#[test]
fn without_check_quorum_a_cut_off_leader_keeps_leading() {
    assert_eq!(
        isolated_leader_leads_for(false),
        None,
        "the scenario above must catch a Raft without CheckQuorum"
    );
}

/// An old leader with a long suffix of entries nobody else has, and a new
/// leader with a longer log of a later term: the new leader finds where the
/// logs diverge in a few round trips, not one per entry, and the stale
/// suffix is never executed.
#[test]
fn a_conflicting_suffix_is_skipped_a_term_at_a_time() {
    let mut net = net_with(3, |_| {});
    elect(&mut net, 0);
    assert_eq!(put(&mut net, 0, 1, 1), ReplyStatus::Ok);
    net.partition(&[0], &[1, 2]);
    for seq in 0..40 {
        // Each its own entry (no batching): 40 entries only replica 0 holds.
        net.submit(
            0,
            2,
            Command::put(2, seq + 1, "stale", format!("lost{seq}")),
        );
    }
    assert!(net.r(0).last_index() >= 42);
    net.drop_where(|_| true);
    // The majority elects replica 1 (the old leader still thinks it leads
    // until CheckQuorum; no message crosses).
    run_for(&mut net, (4 * T / STEP) as usize);
    let l = leaders(&net);
    let new = *l.iter().find(|i| **i != 0).expect("a new leader");
    for seq in 0..40 {
        assert_eq!(put(&mut net, new, 3, seq + 1), ReplyStatus::Ok);
    }
    // A leader elected now starts by assuming every follower holds its
    // whole log: it must walk back over both suffixes.
    let new = 3 - new;
    net.be_leader(new);
    run_for(&mut net, 6);
    assert!(net.r(new).is_leader());
    net.heal();
    let mut refusals = 0;
    for _ in 0..(2 * T / STEP) {
        while let Some(m) = net.queue.pop_front() {
            if let (0, to, RaftMsg::AppendEntriesReply(r)) = &m {
                if *to == new && !r.success {
                    refusals += 1;
                }
            }
            net.deliver(m);
        }
        net.tick_all(STEP);
    }
    assert!(refusals <= 3, "{refusals} refusals to find the divergence");
    assert_eq!(net.r(0).applied(), net.r(new).applied());
    assert_eq!(
        net.r(0).state().kv().get(b"stale"),
        None,
        "the stale suffix never ran"
    );
}

/// `set-leader` at a follower: the leader catches it up and hands over.
#[test]
fn set_leader_at_a_follower_transfers_leadership() {
    let mut net = net_with(3, |_| {});
    elect(&mut net, 0);
    for seq in 1..=3 {
        assert_eq!(put(&mut net, 0, 1, seq), ReplyStatus::Ok);
    }
    let term = net.r(0).term();
    net.be_leader(2);
    run_for(&mut net, 6);
    assert_eq!(leaders(&net), vec![2]);
    assert_eq!(net.r(2).term(), term + 1, "one election, no duel");
    for i in 0..3 {
        assert_eq!(net.r(i).leader_hint(), Some(2));
    }
    // A proposal at the old leader is sent on to the new one.
    net.submit(0, 9, Command::put(9, 1, "k", "x"));
    let r = net.only_reply(9, 1).2;
    assert_eq!((r.status, r.leader), (ReplyStatus::NotLeader, Some(2)));
    assert_eq!(put(&mut net, 2, 1, 4), ReplyStatus::Ok);
}

/// Compaction every 4 entries: a follower down meanwhile catches up by
/// snapshot, and every replica restarts from its compacted durable log to
/// the same state.
#[test]
fn compacted_logs_restart_and_a_lagging_follower_installs_a_snapshot() {
    let mut net = net_with(3, |c| {
        c.keep_executed = 2;
        c.compact_every = 2;
    });
    elect(&mut net, 0);
    net.crash(2);
    for seq in 1..=30 {
        assert_eq!(put(&mut net, 0, 1, seq), ReplyStatus::Ok);
    }
    assert!(net.r(0).log_base() > 10, "the leader compacted");
    net.restart_durable(2);
    run_for(&mut net, (2 * T / STEP) as usize);
    assert!(
        net.r(2).snapshot_counts().0 >= 1,
        "replica 2 installed a snapshot"
    );
    assert_eq!(net.r(2).state().digest(), net.r(0).state().digest());
    let before = net.r(0).state().digest();
    for i in 0..3 {
        net.crash(i);
    }
    for i in 0..3 {
        net.restart_durable(i);
    }
    run_for(&mut net, (5 * T / STEP) as usize);
    let l = leaders(&net);
    assert_eq!(l.len(), 1);
    assert_eq!(
        net.r(l[0]).state().digest(),
        before,
        "nothing lost in the restart"
    );
    assert_eq!(put(&mut net, l[0], 1, 31), ReplyStatus::Ok);
    run_for(&mut net, 4);
    for i in 0..3 {
        assert_eq!(net.r(i).state().digest(), net.r(l[0]).state().digest());
    }
}

/// A narrow pipeline (2 messages of at most 3 entries in flight): a
/// follower that missed 30 entries catches up without the leader ever
/// having more than that in flight to it.
#[test]
fn a_follower_behind_catches_up_through_a_bounded_pipeline() {
    let mut net = net_with(3, |c| {
        c.max_inflight = 2;
        c.max_msg_entries = 3;
    });
    elect(&mut net, 0);
    net.partition(&[2], &[0, 1]);
    for seq in 1..=30 {
        assert_eq!(put(&mut net, 0, 1, seq), ReplyStatus::Ok);
    }
    net.heal();
    let mut most = 0;
    for _ in 0..(3 * T / STEP) {
        while let Some(m) = net.queue.pop_front() {
            let in_flight = net
                .queue
                .iter()
                .chain(std::iter::once(&m))
                .filter(|(f, t, m)| {
                    *f == 0
                        && *t == 2
                        && matches!(m, RaftMsg::AppendEntries(a) if !a.entries.is_empty())
                })
                .count();
            most = most.max(in_flight);
            if let RaftMsg::AppendEntries(a) = &m.2 {
                assert!(a.entries.len() <= 3);
            }
            net.deliver(m);
        }
        net.tick_all(STEP);
    }
    assert!(most <= 2, "{most} AppendEntries in flight");
    assert_eq!(net.r(2).applied(), net.r(0).applied());
    assert_eq!(net.r(2).state().digest(), net.r(0).state().digest());
}
