//! Durable log compaction of the EPaxos core: a restart from the snapshot
//! file and the compacted log is a restart from the full log (same state,
//! same instances short of the executed ones the snapshot covers), also
//! after a crash between writing the snapshot file and replacing the log,
//! and the files stay bounded over thousands of instances.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use epaxos::messages::*;
use epaxos::{Config, Replica, Status};
use genericsmr::command::Command;
use genericsmr::durable::parse_records;
use genericsmr::effects::{Dest, Effects};
use genericsmr::messages::Propose;

type Msg = (u8, u8, EpaxosMsg);

/// The files of one replica at the moment of its last compaction.
#[derive(Clone, Default)]
struct Window {
    /// The new snapshot file's record.
    base: BytesMut,
    /// The log as it stood when the snapshot file was written (the crash
    /// window: new snapshot, old log).
    old_log: BytesMut,
    /// The new log.
    tail: BytesMut,
    /// Every record ever persisted, up to the compaction.
    full: BytesMut,
}

struct Net {
    reps: Vec<Replica>,
    cfgs: Vec<Config>,
    /// The log file of each replica, framed as on its disk.
    disks: Vec<BytesMut>,
    /// The snapshot file of each replica (its base record, framed).
    snaps: Vec<Option<BytesMut>>,
    /// Every record each replica persisted, as if it never compacted.
    full: Vec<BytesMut>,
    /// Each replica's files at its last compaction.
    windows: Vec<Option<Window>>,
    /// Largest snapshot file plus log seen per replica, in bytes.
    peak: Vec<usize>,
    queue: VecDeque<Msg>,
    down: Vec<bool>,
    now: u64,
}

impl Net {
    fn with(n: usize, f: impl Fn(&mut Config)) -> Net {
        let cfgs: Vec<Config> = (0..n)
            .map(|i| {
                let mut c = Config::new(i as u8, n);
                f(&mut c);
                c
            })
            .collect();
        Net {
            reps: cfgs.iter().map(|c| Replica::new(c.clone())).collect(),
            cfgs,
            disks: vec![BytesMut::new(); n],
            snaps: vec![None; n],
            full: vec![BytesMut::new(); n],
            windows: vec![None; n],
            peak: vec![0; n],
            queue: VecDeque::new(),
            down: vec![false; n],
            now: 1,
        }
    }

    fn on(&mut self, i: u8, f: impl FnOnce(&mut Replica, u64, &mut Effects<EpaxosMsg>)) {
        let k = i as usize;
        if self.down[k] {
            return;
        }
        let mut fx = Effects::default();
        let now = self.now;
        f(&mut self.reps[k], now, &mut fx);
        self.reps[k].flush(now, &mut fx);
        let disk = fx.take_disk();
        match disk.compaction {
            Some((at, base)) => {
                let base = base.framed();
                self.disks[k].extend_from_slice(&disk.records[..at]);
                self.full[k].extend_from_slice(&disk.records[..at]);
                self.windows[k] = Some(Window {
                    base: base.clone(),
                    old_log: self.disks[k].clone(),
                    tail: BytesMut::from(&disk.records[at..]),
                    full: self.full[k].clone(),
                });
                self.snaps[k] = Some(base);
                self.disks[k] = BytesMut::from(&disk.records[at..]);
                // The tail restates what the full log already holds.
            }
            None => {
                self.disks[k].extend_from_slice(&disk.records);
                self.full[k].extend_from_slice(&disk.records);
            }
        }
        let size = self.disks[k].len() + self.snaps[k].as_ref().map_or(0, |s| s.len());
        self.peak[k] = self.peak[k].max(size);
        let n = self.reps.len() as u8;
        for (d, m) in fx.sends.drain(..) {
            let to: Vec<u8> = match d {
                Dest::Peer(p) => vec![p],
                Dest::Set(s) => (0..n).filter(|j| s & (1 << j) != 0 && *j != i).collect(),
                Dest::All => (0..n).filter(|j| *j != i).collect(),
            };
            for t in to {
                self.queue.push_back((i, t, m.clone()));
            }
        }
    }

    fn propose(&mut self, at: u8, cmd: Command) {
        self.on(at, |r, now, fx| {
            r.handle_propose(now, 7, Propose { cmd }, fx)
        });
    }

    fn run(&mut self) {
        for _ in 0..1_000_000 {
            let Some((from, to, m)) = self.queue.pop_front() else {
                return;
            };
            if !self.down[to as usize] {
                self.on(to, |r, now, fx| r.handle_peer(now, from, m, fx));
            }
        }
        panic!("the network does not settle");
    }

    fn tick_all(&mut self, dt: u64) {
        self.now += dt;
        for i in 0..self.reps.len() as u8 {
            self.on(i, |r, now, fx| r.tick(now, fx));
        }
        self.run();
    }

    /// A replica of `i`'s configuration restored from `base` and `log`.
    fn boot(&self, i: u8, base: Option<&[u8]>, log: &[u8]) -> Replica {
        let mut recs = parse_records(base.unwrap_or_default()).expect("snapshot parses");
        recs.extend(parse_records(log).expect("log parses"));
        let mut r = Replica::new(self.cfgs[i as usize].clone());
        r.restore(&recs).expect("replay");
        r
    }

    /// `i` restarted from its files (snapshot file and compacted log).
    fn boot_from_files(&self, i: u8) -> Replica {
        let k = i as usize;
        self.boot(i, self.snaps[k].as_deref(), &self.disks[k])
    }

    /// `i` restarted from everything it ever persisted.
    fn boot_from_full(&self, i: u8) -> Replica {
        self.boot(i, None, &self.full[i as usize])
    }
}

/// A put whose client has had every earlier answer (so the state machine
/// keeps no old outcomes for it).
fn put(client: u64, seq: u64, key: &str) -> Command {
    let mut c = Command::put(
        client,
        seq,
        Bytes::from(key.to_string()),
        Bytes::from(format!("v{client}.{seq}")),
    );
    c.acked_below = seq;
    c
}

type Seen = (Status, u64, u64, u64, Vec<Command>, Vec<u64>);

fn seen(r: &Replica, l: u8, i: u64) -> Option<Seen> {
    r.instance(l, i).map(|x| {
        (
            x.status,
            x.ballot,
            x.vballot,
            x.seq,
            x.cmds.clone(),
            x.deps.clone(),
        )
    })
}

/// `a` (from a compacted log) is `b` (from the full log): same state, same
/// counts, and the same instances wherever `a` holds one or `b` holds one
/// that is not executed; executed instances may be forgotten by `a`.
fn assert_equivalent(a: &Replica, b: &Replica, n: u8, upto: u64, what: &str) -> usize {
    assert_eq!(a.state().digest(), b.state().digest(), "{what}: digest");
    assert_eq!(a.executed_count(), b.executed_count(), "{what}: executed");
    assert_eq!(a.everywhere_executed(), b.everywhere_executed(), "{what}");
    // Conflicts of instances not every replica executed outlive compaction.
    assert_eq!(
        a.conflict_keys(),
        b.conflict_keys(),
        "{what}: conflict keys"
    );
    let mut compared = 0;
    for l in 0..n {
        for i in 0..upto {
            let (x, y) = (seen(a, l, i), seen(b, l, i));
            let needed = y
                .as_ref()
                .is_some_and(|y| y.0 != Status::Executed && (y.0 != Status::None || y.1 > 0));
            if x.as_ref().is_some_and(|x| x.0 != Status::None) || needed {
                assert_eq!(x, y, "{what}: instance ({l}, {i})");
                compared += 1;
            }
        }
    }
    compared
}

/// Two replicas commit a stream of puts on a few keys, with heartbeats so
/// that they learn what everyone executed.
fn load(net: &mut Net, from: u64, to: u64) {
    for i in from..to {
        let at = (i % 3) as u8;
        net.propose(at, put(40 + at as u64, i / 3 + 1, &format!("k{}", i % 5)));
        net.run();
        if i % 4 == 3 {
            net.tick_all(20_000_000);
        }
    }
}

/// Votes and promises on open instances survive a compaction: replica 0
/// holds a pre-accepted vote on replica 2's instance and a promise on the
/// next one, compacts past them, and restarts from its files to what a
/// restart from the full log gives.
#[test]
fn a_restart_from_the_compacted_log_equals_one_from_the_full_log() {
    let mut net = Net::with(3, |c| {
        c.keep_executed = 6;
        c.compact_every = 9;
        c.record_commits = true;
    });
    load(&mut net, 0, 60);
    assert!(net.reps[0].compactions() >= 3, "replica 0 compacted");
    // Replica 2's next instance reaches replica 0 only; nobody answers it.
    net.down[1] = true;
    net.propose(2, put(77, 1, "lonely"));
    net.queue
        .retain(|m| m.1 == 0 && matches!(m.2, EpaxosMsg::PreAccept(_)));
    let open = match &net.queue[0].2 {
        EpaxosMsg::PreAccept(p) => p.instance,
        _ => unreachable!(),
    };
    // Replica 0 votes; its answer is lost.
    let (from, _, m) = net.queue.pop_front().expect("the PreAccept");
    net.on(0, |r, now, fx| r.handle_peer(now, from, m, fx));
    net.queue.clear();
    // A recoverer's promise on the instance after it.
    net.on(0, |r, now, fx| {
        r.handle_prepare(
            now,
            1,
            Prepare {
                leader: 2,
                instance: open + 1,
                ballot: make_ballot(3, 1),
            },
            fx,
        )
    });
    net.queue.clear();
    net.down[1] = false;
    let before = net.reps[0].compactions();
    // Replica 0 and 1 go on (other keys): replica 0 compacts past the vote.
    for i in 0..30u64 {
        let at = (i % 2) as u8;
        net.propose(at, put(50 + at as u64, i + 1, &format!("q{}", i % 3)));
        net.run();
        net.queue.retain(|m| m.1 != 2);
    }
    assert!(
        net.reps[0].compactions() > before,
        "compacted after the vote"
    );
    let vote = seen(&net.reps[0], 2, open).expect("the vote");
    assert_eq!(vote.0, Status::PreAccepted);
    let files = net.boot_from_files(0);
    let full = net.boot_from_full(0);
    assert_eq!(seen(&files, 2, open), Some(vote), "the vote survives");
    let promise = seen(&files, 2, open + 1).expect("the promise survives");
    assert_eq!(promise.1, make_ballot(3, 1));
    // Replica 2 missed the q-keys' instances: their conflicts are kept.
    assert!(files.conflict_keys() >= 4, "{} keys", files.conflict_keys());
    assert!(assert_equivalent(&files, &full, 3, 200, "restart") >= 2);
    assert_eq!(files.state().digest(), net.reps[0].state().digest());
    assert!(
        net.reps[0].instance(0, 0).is_some() || files.instance(0, 0).is_none(),
        "forgotten executed instances stay forgotten"
    );
}

/// A crash after the snapshot file is written and before the log is
/// replaced: the new base with the old log restores the same replica as the
/// full log and as the compacted log, at every compaction of a run.
#[test]
fn the_crash_window_replays_the_old_log_after_the_new_base() {
    let mut net = Net::with(3, |c| {
        c.keep_executed = 4;
        c.compact_every = 5;
        c.record_commits = true;
    });
    let (mut checked, mut compared) = (0, 0);
    let mut last = 0;
    for round in 0..12u64 {
        load(&mut net, round * 7, round * 7 + 7);
        // Leave an unexecuted instance open at replica 1 now and then.
        if round % 3 == 1 {
            net.propose(1, put(90, round + 1, "k1"));
            net.queue.clear();
        }
        let c = net.reps[1].compactions();
        if c == last {
            continue;
        }
        last = c;
        let w = net.windows[1].clone().expect("a compaction");
        let crashed = net.boot(1, Some(&w.base), &w.old_log);
        let full = net.boot(1, None, &w.full);
        let compacted = net.boot(1, Some(&w.base), &w.tail);
        compared += assert_equivalent(&crashed, &full, 3, 300, "crash window vs full");
        compared += assert_equivalent(&compacted, &full, 3, 300, "compacted vs full");
        // The new base covers records in the old log: they are ignored.
        assert!(parse_records(&w.old_log).unwrap().len() > parse_records(&w.tail).unwrap().len());
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} compactions checked");
    assert!(compared > 0, "no open instance compared");
}

/// Thousands of instances at a low horizon: the snapshot file plus the log
/// stay within 8 KB while the full log grows past 800 KB, and
/// the replicas restart from their files to the state they had.
#[test]
fn the_files_stay_bounded_over_thousands_of_instances() {
    let mut net = Net::with(3, |c| {
        c.keep_executed = 16;
        c.compact_every = 16;
    });
    load(&mut net, 0, 3000);
    for _ in 0..4 {
        net.tick_all(20_000_000);
    }
    for r in 0..3u8 {
        let k = r as usize;
        let full = net.full[k].len();
        let now = net.disks[k].len() + net.snaps[k].as_ref().map_or(0, |s| s.len());
        eprintln!(
            "replica {r}: full log {full} B, peak files {} B, now {now} B, compactions {}",
            net.peak[k],
            net.reps[k].compactions()
        );
        assert!(full > 800_000, "full log {full} B");
        assert!(net.peak[k] < 8_000, "peak {} B", net.peak[k]);
        assert!(net.reps[k].compactions() >= 3000 / 16 - 2);
        let back = net.boot_from_files(r);
        assert_eq!(back.state().digest(), net.reps[k].state().digest());
        assert_eq!(back.executed_count(), net.reps[k].executed_count());
        assert_eq!(back.executed_count(), 3000);
    }
}

/// With batching an instance holds many commands: with the instance bounds
/// far away and 16 kB of records allowed between compactions, the files
/// still stay bounded.
#[test]
fn the_files_stay_bounded_by_bytes_too() {
    let mut net = Net::with(3, |c| {
        c.keep_executed = 1 << 20;
        c.compact_every = 1 << 20;
        c.compact_bytes = 16 << 10;
    });
    load(&mut net, 0, 3000);
    for _ in 0..4 {
        net.tick_all(20_000_000);
    }
    for r in 0..3u8 {
        let k = r as usize;
        assert!(
            net.full[k].len() > 800_000,
            "full log {} B",
            net.full[k].len()
        );
        assert!(
            net.reps[k].compactions() > 10,
            "{} compactions",
            net.reps[k].compactions()
        );
        assert!(net.peak[k] < 64_000, "peak {} B", net.peak[k]);
        let back = net.boot_from_files(r);
        assert_eq!(back.state().digest(), net.reps[k].state().digest());
        assert_eq!(back.executed_count(), 3000);
    }
}
