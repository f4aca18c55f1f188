//! The Mencius core through its handlers, on the shared manual-delivery
//! network (`sim::manual`): skips keep an idle owner from stalling the
//! others, a crashed owner's slots are revoked and execution goes on, and a
//! revocation never puts a second value in a slot. Each test runs its
//! scenario against a deliberately broken variant (or with the mechanism
//! off) too, and shows that it then fails.

use genericsmr::command::Command;
use genericsmr::messages::ReplyStatus;
use mencius::broken::Broken;
use mencius::messages::MenciusMsg;
use mencius::{Config, Replica};
use sim::{manual, Boot};

const MS: u64 = 1_000_000;

fn net(n: usize, f: impl Fn(&mut Config) + 'static) -> manual::Net<Replica> {
    manual::Net::new(
        n,
        Box::new(move |i, boot, _now, _fx| {
            let mut c = Config::new(i, n);
            f(&mut c);
            let mut r = Replica::new(c);
            if let Boot::Durable(recs) = boot {
                r.restore(&recs).expect("replay");
            }
            r
        }),
    )
}

fn ok_value(net: &manual::Net<Replica>, client: u64, seq: u64) -> Option<Option<bytes::Bytes>> {
    let r = net.reply(client, seq);
    r.iter()
        .find(|(_, _, p)| p.status == ReplyStatus::Ok)
        .map(|(_, _, p)| p.outcome.value.clone())
}

/// Replica 0 writes twice, replica 1 then reads, replica 2 has no clients. No
/// timers run (revocation is off), so only skips can decide replica 2's
/// slots. Returns whether the read was answered with the write's value.
fn idle_owner_run(broken: Option<Broken>) -> bool {
    let mut net = net(3, move |c| {
        c.revoke_timeout_ns = 0;
        if let Some(b) = broken {
            c.set_broken(b)
                .expect("a test build has the broken variants");
        }
    });
    // Slots 0 and 3: the second waits on slot 1 (replica 1's) and slot 2
    // (replica 2's), which only skips decide.
    net.submit(0, 1, Command::put(10, 1, "k", "v1"));
    net.run();
    net.submit(0, 1, Command::put(10, 2, "k", "v2"));
    net.run();
    if ok_value(&net, 10, 2).is_none() {
        return false;
    }
    net.submit(1, 2, Command::get(11, 1, "k"));
    net.run();
    let read = ok_value(&net, 11, 1);
    // Every replica executed the same slots to the same state.
    let st: Vec<_> = (0..3).map(|i| net.r(i).status(0)).collect();
    assert!(st.iter().all(|s| s.digest() == st[0].digest()));
    read == Some(Some(bytes::Bytes::from("v2")))
}

#[test]
fn an_idle_owner_skips_and_does_not_stall_the_others() {
    assert!(idle_owner_run(None), "skips decide the idle owner's slots");
    assert!(
        !idle_owner_run(Some(Broken::NoSkips)),
        "without skips the idle owner's slots hold execution back"
    );
}

/// Replica 2 is down; replicas 0 and 1 take writes. With revocation on,
/// replica 2's slots are revoked after the timeout and execution goes on,
/// and a second round of writes needs no further timeout (the revocation
/// reached ahead). Returns how many of the six writes were answered (the
/// first two lie in slots 0 and 1, below the dead owner's first slot).
fn crashed_owner_run(revoke_timeout_ns: u64) -> usize {
    let mut net = net(3, move |c| {
        c.revoke_timeout_ns = revoke_timeout_ns;
        c.retransmit_ns = 20 * MS;
    });
    net.crash(2);
    for (i, seq) in [(0u8, 1u64), (1, 2), (0, 3)] {
        net.submit(i, seq, Command::put(20, seq, "k", format!("v{seq}")));
    }
    // Several timeouts' worth of timers.
    net.settle_every(100, 10 * MS);
    let first = (1..=3).filter(|s| ok_value(&net, 20, *s).is_some()).count();
    if first == 3 {
        let revocations: u64 = (0..2).map(|i| net.r(i).revocations()).sum();
        assert!(revocations >= 1, "the dead owner's slots were revoked");
        // Further writes go through within the revoked range, without waiting.
        for (i, seq) in [(1u8, 4u64), (0, 5), (1, 6)] {
            net.submit(i, seq, Command::put(20, seq, "k", format!("v{seq}")));
        }
        net.run();
        net.tick_all(MS);
        net.run();
        // The owner comes back from its disk and catches up.
        net.restart_durable(2);
        net.settle_every(40, 10 * MS);
        let st: Vec<_> = (0..3).map(|i| net.r(i).status(0)).collect();
        assert!(
            st.iter()
                .all(|s| s.digest() == st[0].digest() && s.executed == st[0].executed),
            "the restarted owner caught up: {st:?}"
        );
    }
    (1..=6).filter(|s| ok_value(&net, 20, *s).is_some()).count()
}

#[test]
fn a_crashed_owners_slots_are_revoked_and_execution_continues() {
    assert_eq!(crashed_owner_run(100 * MS), 6);
    // Writes 1 and 2 lie below the dead owner's first slot; the third waits
    // on it for good.
    assert_eq!(
        crashed_owner_run(0),
        2,
        "without revocation a dead owner's slot holds every later one back"
    );
}

/// Replica 0's value is chosen in its slot 0 with replica 1's vote, and
/// nobody hears the commit before replica 0 crashes. Replica 2 then writes
/// in its own slot and revokes replica 0's slots. The harness checks after
/// every step that no slot is decided twice with different values.
fn revoke_after_a_hidden_choice(broken: Option<Broken>) {
    let mut net = net(3, move |c| {
        c.revoke_timeout_ns = 100 * MS;
        c.retransmit_ns = 20 * MS;
        if let Some(b) = broken {
            c.set_broken(b)
                .expect("a test build has the broken variants");
        }
    });
    net.submit(0, 1, Command::put(30, 1, "k", "chosen"));
    net.drop_where(|m| manual::Net::<Replica>::is(m, 0, 2, "Accept"));
    net.deliver_where(|m| manual::Net::<Replica>::is(m, 0, 1, "Accept"));
    net.deliver_where(|m| manual::Net::<Replica>::is(m, 1, 0, "AcceptReply"));
    assert_eq!(
        net.r(0).slot(0).map(|s| s.state),
        Some(mencius::SlotState::Committed),
        "replica 0 saw its value chosen"
    );
    assert!(ok_value(&net, 30, 1).is_some());
    net.crash(0);
    net.submit(2, 2, Command::put(31, 1, "k", "later"));
    net.settle_every(60, 10 * MS);
    // The value chosen first stays: slot 0 holds it everywhere it is decided.
    for i in [1u8, 2] {
        let s = net.r(i).slot(0).expect("slot 0 held");
        assert_eq!(s.state, mencius::SlotState::Committed);
        assert_eq!(s.cmds().len(), 1, "replica {i} holds the chosen value");
    }
    assert!(matches!(
        net.r(2).status(0).executed,
        e if e >= 3
    ));
}

#[test]
fn a_revoked_slot_never_gets_two_values() {
    revoke_after_a_hidden_choice(None);
    let broken = std::panic::catch_unwind(|| {
        revoke_after_a_hidden_choice(Some(Broken::RevokeIgnoresReports))
    });
    assert!(
        broken.is_err(),
        "a revoker that ignores the reported value puts a no-op over a chosen value"
    );
}

/// Garbage from a peer (a slot far past the window, a ballot from nowhere,
/// an owner out of range) changes nothing and panics nothing.
#[test]
fn hostile_peer_messages_are_dropped() {
    let mut net = net(3, |c| c.window = 1000);
    let msgs = vec![
        MenciusMsg::Accept(mencius::messages::Accept {
            ballot: 0,
            slot: u64::MAX - 1,
            cmds: vec![],
            skip_from: 0,
            skip_to: u64::MAX,
        }),
        MenciusMsg::Prepare(mencius::messages::Prepare {
            ballot: u64::MAX,
            owner: 200,
            from: 0,
            to: u64::MAX,
        }),
        MenciusMsg::Skip(mencius::messages::Skip {
            from: 0,
            to: u64::MAX,
            commit_index: u64::MAX,
        }),
    ];
    for m in msgs {
        net.queue.push_back((1, 0, m));
    }
    net.run();
    assert!(
        net.r(0).log_end() <= 2000,
        "the log was not sized by a peer"
    );
    assert_eq!(net.r(0).executed(), net.r(0).commit_index());
}

/// A lone client at replica 0 with every Skip to replica 0 lost: the others'
/// skips ride on their AcceptReplies, so each write still executes at its
/// owner once a majority voted. Before they did, the second write waited on
/// slots 1 and 2, which only a Skip decided at replica 0.
#[test]
fn an_owner_learns_skips_from_the_votes() {
    let mut net = net(3, |c| c.revoke_timeout_ns = 0);
    net.drops.push((1, 0, "Skip"));
    net.drops.push((2, 0, "Skip"));
    for seq in 1..=4u64 {
        net.submit(0, 1, Command::put(10, seq, "k", format!("v{seq}")));
        net.run();
        assert!(ok_value(&net, 10, seq).is_some(), "write {seq} answered");
    }
}
