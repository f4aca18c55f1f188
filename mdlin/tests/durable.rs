//! The durable journal: what a replica persists through its handlers, and
//! what a restart from those records gives back.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use genericsmr::command::Command;
use genericsmr::durable::parse_records;
use genericsmr::effects::{Dest, Effects};
use genericsmr::protocol::{Boot, BootError, Protocol, Settings};
use genericsmr::ReplicaId;
use mdlin::messages::*;
use mdlin::{Replica, SlotState};

const MS: u64 = 1_000_000;

fn settings(id: ReplicaId, horizon: Option<u64>) -> Settings {
    Settings {
        record_commits: true,
        // Leaders change only when a test says so.
        election_timeout_ns: Some(0),
        gc_horizon: horizon,
        // Compaction exactly at the horizon, whatever the snapshot's size.
        snapshot_ratio: Some(0),
        ..Settings::new(id, 3)
    }
}

fn boot(id: ReplicaId, b: Boot) -> Result<Replica, BootError> {
    boot_with(id, b, None)
}

fn boot_with(id: ReplicaId, b: Boot, horizon: Option<u64>) -> Result<Replica, BootError> {
    Replica::boot(&settings(id, horizon), b, 0, &mut Effects::default())
}

/// One shard of three with manual delivery. Each replica's outbox is made
/// durable (appended to its disk) before its messages are queued, as the
/// runtime's driver does.
struct Net {
    rs: Vec<Replica>,
    disk: Vec<BytesMut>,
    /// (from, to, message)
    queue: VecDeque<(ReplicaId, ReplicaId, MdlMsg)>,
    now: u64,
}

impl Net {
    fn new() -> Net {
        Net::with_horizon(None)
    }

    /// With `--gc-horizon` `horizon` on every replica (`None`: the default).
    fn with_horizon(horizon: Option<u64>) -> Net {
        Net {
            rs: (0..3)
                .map(|i| boot_with(i, Boot::Fresh, horizon).expect("fresh boot"))
                .collect(),
            disk: vec![BytesMut::new(); 3],
            queue: VecDeque::new(),
            now: MS,
        }
    }

    /// Runs `f` on replica `i`, flushes, persists and queues its sends.
    fn on(&mut self, i: ReplicaId, f: impl FnOnce(&mut Replica, u64, &mut Effects<MdlMsg>)) {
        self.now += MS;
        let now = self.now;
        let mut fx = Effects::default();
        f(&mut self.rs[i as usize], now, &mut fx);
        self.rs[i as usize].flush(now, &mut fx);
        // As the driver does: a compaction replaces the log by its base
        // record and what was persisted after it.
        let d = fx.take_disk();
        let disk = &mut self.disk[i as usize];
        match d.compaction {
            Some((at, base)) => {
                *disk = base.framed();
                disk.extend_from_slice(&d.records[at..]);
            }
            None => disk.extend_from_slice(&d.records),
        }
        for (dest, m) in fx.sends {
            let to: Vec<ReplicaId> = match dest {
                Dest::Peer(p) => vec![p],
                Dest::Set(s) => (0..3).filter(|j| s & (1 << j) != 0).collect(),
                Dest::All => (0..3).filter(|j| *j != i).collect(),
            };
            for t in to {
                self.queue.push_back((i, t, m.clone()));
            }
        }
    }

    /// Delivers queued messages (those `keep` accepts) until none is left.
    fn deliver(&mut self, keep: impl Fn(ReplicaId, ReplicaId, &MdlMsg) -> bool) {
        while let Some((from, to, m)) = self.queue.pop_front() {
            if keep(from, to, &m) {
                self.on(to, |r, now, fx| r.handle_peer(now, from, m, fx));
            }
        }
    }

    fn records(&self, i: ReplicaId) -> Vec<Bytes> {
        parse_records(&self.disk[i as usize]).expect("framed records")
    }
}

fn put(client: u64, seq: u64, key: &str) -> Command {
    Command::put(
        client,
        seq,
        Bytes::from(key.to_string()),
        Bytes::from(format!("v{client}.{seq}")),
    )
}

/// A journal as comparable values: (state, ballot, entry) per slot.
fn journal(r: &Replica) -> Vec<(SlotState, u64, Entry)> {
    r.log()
        .iter()
        .map(|s| (s.state, s.ballot, s.entry.clone()))
        .collect()
}

/// A shard that ran heads, a same-shard chain (pending and order entries) and
/// reads, restarted replica by replica from its records: each gets back its
/// journal, promise, commit and execution points and state digest.
#[test]
fn a_restart_from_the_records_gives_back_journal_promise_and_state() {
    let mut net = Net::new();
    net.on(0, |r, now, fx| r.handle_be_leader(now, fx));
    net.deliver(|_, _, _| true);
    assert!(net.rs[0].is_serving());
    // Client 7: two heads, a chain of three on this shard, a read in it.
    let ops = [
        (1, 0, None, put(7, 1, "a")),
        (2, 1, Some(1), put(7, 2, "b")),
        (3, 2, Some(2), Command::get(7, 3, Bytes::from("a"))),
        (4, 3, Some(3), put(7, 4, "a")),
    ];
    for (seq, shard_seq, pred, cmd) in ops {
        let pred = pred.map(|s: u64| Pred { seq: s, shard: 0 });
        if let Some(p) = pred {
            let req = CoordReq {
                pred: OpId {
                    client: 7,
                    seq: p.seq,
                },
                succ: OpId { client: 7, seq },
                succ_shard: 0,
            };
            net.on(0, |r, now, fx| r.handle_coord_req(now, None, req, fx));
        }
        let p = MdlPropose {
            cmd,
            shard_seq,
            pred,
        };
        net.on(0, |r, now, fx| r.handle_propose(now, 9, p, fx));
    }
    net.deliver(|_, _, _| true);
    // Heartbeats tell the followers what is chosen.
    net.now += 1_000 * MS;
    net.on(0, |r, now, fx| r.tick(now, fx));
    net.deliver(|_, _, _| true);

    let end = net.rs[0].commit_index();
    assert!(end >= 6, "heads, pending and order entries: {end}");
    let order: Vec<u64> = net.rs[0].exec_order().iter().map(|o| o.seq).collect();
    assert_eq!(order, vec![1, 2, 3, 4]);
    for i in 0..3u8 {
        let old = &net.rs[i as usize];
        assert_eq!(old.commit_index(), end, "replica {i}");
        let recs = net.records(i);
        let back = boot(i, Boot::Durable(recs.clone())).expect("replay");
        assert!(!back.is_leader(), "a restarted replica follows");
        assert_eq!(back.promised(), old.promised(), "replica {i}");
        assert_eq!(journal(&back), journal(old), "replica {i}");
        assert_eq!(back.commit_index(), end, "replica {i}");
        assert_eq!(back.executed(), end, "replica {i}");
        assert_eq!(back.exec_order(), old.exec_order(), "replica {i}");
        assert_eq!(back.exec_timestamps(), old.exec_timestamps());
        let (a, b) = (back.status(1), old.status(1));
        assert_eq!((a.digest_hi, a.digest_lo), (b.digest_hi, b.digest_lo));
        assert_eq!(a.applied, b.applied);
        assert_eq!(a.replayed, recs.len() as u64);
        assert_eq!(back.state().kv().get(b"a"), Some(&b"v7.4"[..]));
        // Without its records it would know nothing of this.
        let fresh = boot(i, Boot::Fresh).unwrap();
        assert_ne!(journal(&fresh), journal(old));
    }
}

/// Follower 1 votes for slot 0 (its reply is lost, so nothing is chosen),
/// restarts, and must report that vote to the next candidate: phase 1 then
/// re-proposes the entry instead of a no-op. Its promise also survives:
/// after promising candidate 2 and restarting, it refuses the old leader.
#[test]
fn a_vote_and_a_promise_survive_a_restart() {
    let mut net = Net::new();
    net.on(0, |r, now, fx| r.handle_be_leader(now, fx));
    net.deliver(|_, _, _| true);
    let old_ballot = net.rs[0].promised();
    let p = MdlPropose {
        cmd: put(5, 1, "k"),
        shard_seq: 0,
        pred: None,
    };
    net.on(0, |r, now, fx| r.handle_propose(now, 9, p, fx));
    // Only follower 1 gets the accept; its vote never reaches the leader.
    net.deliver(|from, to, m| match m {
        MdlMsg::Accept(_) => to == 1,
        MdlMsg::AcceptReply(_) => false,
        _ => from != to,
    });
    let voted = journal(&net.rs[1]);
    assert_eq!(voted.len(), 1);
    assert_eq!(voted[0].0, SlotState::Accepted);
    assert_eq!(net.rs[0].commit_index(), 0, "nothing chosen");

    // Follower 1 restarts from its records; replica 2 campaigns.
    net.rs[1] = boot(1, Boot::Durable(net.records(1))).expect("replay");
    assert_eq!(journal(&net.rs[1]), voted);
    net.on(2, |r, now, fx| r.handle_be_leader(now, fx));
    let prepare = net
        .queue
        .iter()
        .find(|(_, to, m)| *to == 1 && matches!(m, MdlMsg::Prepare(_)))
        .map(|(_, _, m)| m.clone())
        .expect("a prepare to replica 1");
    net.queue.clear();
    net.on(1, |r, now, fx| r.handle_peer(now, 2, prepare, fx));
    let reply = net
        .queue
        .iter()
        .find_map(|(_, to, m)| match m {
            MdlMsg::PrepareReply(r) if *to == 2 => Some(r.clone()),
            _ => None,
        })
        .expect("a prepare reply");
    assert!(reply.ok);
    assert_eq!(reply.slots.len(), 1, "the vote is reported: {reply:?}");
    assert_eq!(reply.slots[0].slot, 0);
    assert_eq!(reply.slots[0].ballot, old_ballot);
    assert_eq!(reply.slots[0].cmds, voted[0].2);
    assert!(!reply.slots[0].committed);
    let new_ballot = reply.ballot;
    net.queue.retain(|(_, to, _)| *to == 2);
    let to_candidate: Vec<_> = net.queue.drain(..).collect();

    // Replica 1 promised `new_ballot` (and has voted nothing at it yet):
    // after another restart it still refuses the old leader's accepts.
    net.rs[1] = boot(1, Boot::Durable(net.records(1))).expect("replay");
    assert_eq!(net.rs[1].promised(), new_ballot);
    let stale = Accept {
        ballot: old_ballot,
        slot: 1,
        cmds: Entry::Noop,
    };
    net.on(1, |r, now, fx| {
        r.handle_peer(now, 0, MdlMsg::Accept(stale), fx)
    });
    let refused = net.queue.iter().any(|(_, to, m)| {
        *to == 0 && matches!(m, MdlMsg::AcceptReply(r) if !r.ok && r.promised == new_ballot)
    });
    assert!(refused, "{:?}", net.queue);
    net.queue.clear();

    // Replica 2 leads with that promise and re-proposes the entry.
    net.queue.extend(to_candidate);
    net.deliver(|_, _, _| true);
    assert!(net.rs[2].is_leader());
    assert!(
        matches!(&net.rs[2].log()[0].entry, Entry::Head { cmd, .. } if cmd.seq == 1 && cmd.client == 5),
        "{:?}",
        net.rs[2].log()
    );
}

/// A candidate's own promise is durable: restarted, it campaigns above it,
/// never at the same ballot again.
#[test]
fn a_restarted_candidate_never_reuses_its_ballot() {
    let mut net = Net::new();
    net.on(0, |r, now, fx| r.handle_be_leader(now, fx));
    let first = net.rs[0].promised();
    net.queue.clear();
    net.rs[0] = boot(0, Boot::Durable(net.records(0))).expect("replay");
    assert_eq!(net.rs[0].promised(), first);
    net.on(0, |r, now, fx| r.handle_be_leader(now, fx));
    assert!(net.rs[0].promised() > first);
}

/// Damaged records refuse the boot instead of panicking, and a replica
/// without its votes cannot rejoin.
#[test]
fn bad_records_and_amnesia_refuse_the_boot() {
    let bad = vec![Bytes::from_static(&[9, 1, 2])];
    assert!(matches!(
        boot(0, Boot::Durable(bad)),
        Err(BootError::Replay(_))
    ));
    let mut far = BytesMut::new();
    genericsmr::wire::Marshal::marshal(&Record::CommitMark { slot: u64::MAX }, &mut far);
    assert!(matches!(
        boot(0, Boot::Durable(vec![far.freeze()])),
        Err(BootError::Replay(_))
    ));
    assert!(boot(0, Boot::Amnesia).is_err());
}

/// Proposes puts `seqs` of client 7 at leader 0 (every fifth one a read),
/// one at a time, delivering what `keep` lets through after each, with a
/// heartbeat every ten.
fn run_ops(
    net: &mut Net,
    seqs: std::ops::RangeInclusive<u64>,
    keep: impl Fn(ReplicaId, ReplicaId, &MdlMsg) -> bool + Copy,
) {
    for seq in seqs {
        let key = format!("k{}", seq % 7);
        let cmd = if seq % 5 == 0 {
            Command::get(7, seq, Bytes::from(key))
        } else {
            put(7, seq, &key)
        };
        let p = MdlPropose {
            cmd,
            shard_seq: UNSEQUENCED,
            pred: None,
        };
        net.on(0, |r, now, fx| r.handle_propose(now, 9, p, fx));
        net.deliver(keep);
        if seq % 10 == 0 {
            // A heartbeat tells the followers what is chosen.
            net.now += 100 * MS;
            net.on(0, |r, now, fx| r.tick(now, fx));
            net.deliver(keep);
        }
    }
    // Heartbeats tell the followers what is chosen (the second one what
    // the leader appended on the first tick).
    for _ in 0..2 {
        net.now += 1_000 * MS;
        net.on(0, |r, now, fx| r.tick(now, fx));
        net.deliver(keep);
    }
}

fn digest(r: &Replica) -> (u64, u64, u64) {
    let s = r.status(1);
    (s.digest_hi, s.digest_lo, s.applied)
}

/// With `--gc-horizon 8` every replica's journal and durable log stay a few
/// horizons long over 300 operations, and a restart from the compacted
/// records (the snapshot first) gives back the same state and journal end.
#[test]
fn the_journal_compacts_at_the_horizon_and_restarts_from_the_snapshot() {
    let mut net = Net::with_horizon(Some(8));
    net.on(0, |r, now, fx| r.handle_be_leader(now, fx));
    net.deliver(|_, _, _| true);
    // Client 8's chain ops wait for predecessors that never come: the
    // first fails by timeout (a tombstone), the second stays committed
    // but unordered; both must be in every snapshot.
    let chained = |seq: u64, shard_seq: u64| MdlPropose {
        cmd: put(8, seq, "c"),
        shard_seq,
        pred: Some(Pred {
            seq: seq - 1,
            shard: 0,
        }),
    };
    let p = chained(50, 0);
    net.on(0, |r, now, fx| r.handle_propose(now, 8, p, fx));
    run_ops(&mut net, 1..=150, |_, _, _| true);
    net.now += 4_000 * MS;
    net.on(0, |r, now, fx| r.tick(now, fx));
    net.deliver(|_, _, _| true);
    let p = chained(60, 1);
    net.on(0, |r, now, fx| r.handle_propose(now, 8, p, fx));
    run_ops(&mut net, 151..=300, |_, _, _| true);
    let end = net.rs[0].executed();
    assert!(end >= 300, "every operation executed: {end}");
    for i in 0..3u8 {
        let r = &net.rs[i as usize];
        assert_eq!(r.executed(), end, "replica {i}");
        assert!(
            r.log_base() >= end - 16,
            "replica {i}: base {}",
            r.log_base()
        );
        assert!(
            r.log().len() <= 17,
            "replica {i}: {} slots held",
            r.log().len()
        );
        assert!(r.snapshots().2 >= 10, "replica {i}: {:?}", r.snapshots());
        let recs = net.records(i);
        assert!(recs.len() <= 60, "replica {i}: {} records", recs.len());
        let back = boot_with(i, Boot::Durable(recs), Some(8)).expect("replay");
        assert_eq!(back.executed(), end, "replica {i}");
        assert_eq!(back.commit_index(), r.commit_index(), "replica {i}");
        assert_eq!(digest(&back), digest(r), "replica {i}");
        assert_eq!(back.promised(), r.promised(), "replica {i}");
        // Everything execution built besides the store, too.
        assert!(
            back.snapshot() == r.snapshot(),
            "replica {i}: snapshots differ"
        );
        assert_eq!(
            back.state().kv().get(b"k1"),
            r.state().kv().get(b"k1"),
            "replica {i}"
        );
    }
    assert_eq!(net.rs[0].state().kv().get(b"k1"), Some(&b"v7.288"[..]));
}

/// Replica 2 is cut off while the others run 100 operations past several
/// compactions; reconnected, its catch-up is answered `Compacted`, it
/// installs the leader's snapshot (persisting it as its base record), and
/// then votes again: with replica 1 cut off instead, operations still commit.
#[test]
fn a_replica_behind_the_compaction_point_installs_a_snapshot_and_votes_again() {
    let mut net = Net::with_horizon(Some(8));
    net.on(0, |r, now, fx| r.handle_be_leader(now, fx));
    net.deliver(|_, _, _| true);
    run_ops(&mut net, 1..=100, |from, to, _| from != 2 && to != 2);
    assert!(net.rs[0].log_base() > 50, "{}", net.rs[0].log_base());
    assert_eq!(net.rs[2].executed(), 0);
    for _ in 0..3 {
        net.now += 1_000 * MS;
        net.on(0, |r, now, fx| r.tick(now, fx));
        net.on(2, |r, now, fx| r.tick(now, fx));
        net.deliver(|_, _, _| true);
    }
    let (installed, _, _) = net.rs[2].snapshots();
    assert_eq!(installed, 1);
    assert_eq!(net.rs[0].snapshots().1, 1, "the leader sent one");
    assert_eq!(net.rs[2].executed(), net.rs[0].executed());
    assert_eq!(digest(&net.rs[2]), digest(&net.rs[0]));

    let before = net.rs[0].executed();
    run_ops(&mut net, 101..=130, |from, to, _| from != 1 && to != 1);
    assert!(net.rs[0].executed() >= before + 30, "replica 2 votes again");
    assert_eq!(digest(&net.rs[2]), digest(&net.rs[0]));
    let back = boot_with(2, Boot::Durable(net.records(2)), Some(8)).expect("replay");
    assert_eq!(digest(&back), digest(&net.rs[2]));
    assert_eq!(back.state().kv().get(b"k4"), Some(&b"v7.123"[..]));
}
