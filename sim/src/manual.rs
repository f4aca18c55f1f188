//! The manual-delivery harness for handler tests: a network of protocol
//! cores where the test decides what is delivered, when, and in which order.
//!
//! Unlike [`crate::run`], nothing happens by itself: messages wait in
//! [`Net::queue`] until a test delivers, drops or reorders them, the clock
//! moves only with [`Net::tick_all`], and crashes, restarts and partitions
//! happen when the test says so. After every step the harness checks what
//! holds for every protocol (no two replicas ever commit different values at
//! one position, and, with a leader's log, two replicas that executed as
//! much hold the same state), plus any protocol-specific check a test
//! installs.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use genericsmr::command::Command;
use genericsmr::disk::{Base, Disk};
use genericsmr::effects::{Effects, Reply};
use genericsmr::messages::{Propose, ProposeReply};
use genericsmr::protocol::{Boot, Protocol};
use genericsmr::rpc_table::Source;
use genericsmr::wire::Frame;
use genericsmr::{ConnId, ReplicaId};

/// A peer message in flight: (from, to, message).
pub type Msg<M> = (ReplicaId, ReplicaId, M);

/// Starts replica `i` as `boot` says (its fresh outbox takes what it sends at once).
pub type BootFn<P> = Box<dyn Fn(ReplicaId, Boot, u64, &mut Effects<<P as Protocol>::Msg>) -> P>;

/// A protocol-specific check run on replica `i` after every step.
pub type CheckFn<P> = Box<dyn Fn(ReplicaId, &P)>;

/// The virtual clock's start, nanoseconds.
pub const T0: u64 = 1_000_000_000;

/// The name of message `m` (its type's name in the protocol's code table).
pub fn kind<P: Protocol>(m: &P::Msg) -> &'static str {
    let mut b = BytesMut::new();
    m.encode_frame(&mut b);
    let code = b.first().copied().unwrap_or(0);
    P::CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
        .unwrap_or("?")
}

/// A network of `n` cores of protocol `P` under a test's control.
pub struct Net<P: Protocol> {
    /// Replicas.
    pub n: usize,
    reps: Vec<P>,
    boot: BootFn<P>,
    /// Messages in flight, oldest first.
    pub queue: VecDeque<Msg<P::Msg>>,
    /// Answers to proposals: (replica, connection, reply).
    pub replies: Vec<(ReplicaId, ConnId, ProposeReply)>,
    /// Every other reply (status, log, pong).
    pub other_replies: Vec<(ReplicaId, ConnId, Reply)>,
    /// Crashed replicas (their messages are lost both ways).
    pub down: Vec<bool>,
    /// `cut[i][j]`: messages from i to j are lost.
    pub cut: Vec<Vec<bool>>,
    /// The virtual clock, nanoseconds.
    pub now: u64,
    /// What each replica persisted since it last started empty, as replay
    /// reads it (after a compaction: the base record, then what followed).
    pub disk: Vec<BytesMut>,
    /// Optional real durable logs, fed through the runtime driver's own
    /// [`Disk`]; each compaction is finished before the next step, so the
    /// files are settled whenever a test looks.
    pub logs: Vec<Option<Disk>>,
    /// Messages lost on purpose: (from, to, kind).
    pub drops: Vec<(ReplicaId, ReplicaId, &'static str)>,
    delivered: HashMap<(&'static str, ReplicaId), usize>,
    /// The first value hash committed at each position, on any replica ever.
    chosen: BTreeMap<u64, (u64, ReplicaId)>,
    /// The state digest first seen for each count of executed entries.
    digests: HashMap<u64, u128>,
    /// Per replica, where the next agreement check starts (its commit
    /// index at the last one).
    checked_upto: Vec<u64>,
    /// A protocol-specific check after every step.
    pub check: Option<CheckFn<P>>,
    /// Print every delivery (`SIM_TRACE=1` when debugging a schedule).
    pub trace: bool,
}

impl<P: Protocol> Net<P> {
    /// `n` replicas, each started by `boot` (with [`Boot::Fresh`] now).
    pub fn new(n: usize, boot: BootFn<P>) -> Self {
        let mut fx = Effects::default();
        let reps = (0..n as ReplicaId)
            .map(|i| boot(i, Boot::Fresh, T0, &mut fx))
            .collect();
        Net {
            n,
            reps,
            boot,
            queue: VecDeque::new(),
            replies: Vec::new(),
            other_replies: Vec::new(),
            down: vec![false; n],
            cut: vec![vec![false; n]; n],
            now: T0,
            disk: vec![BytesMut::new(); n],
            logs: (0..n).map(|_| None).collect(),
            drops: Vec::new(),
            delivered: HashMap::new(),
            chosen: BTreeMap::new(),
            digests: HashMap::new(),
            checked_upto: vec![0; n],
            check: None,
            trace: std::env::var_os("SIM_TRACE").is_some(),
        }
    }

    /// Replica `i`.
    pub fn r(&self, i: ReplicaId) -> &P {
        &self.reps[i as usize]
    }

    /// Replica `i`, to change it directly.
    pub fn r_mut(&mut self, i: ReplicaId) -> &mut P {
        &mut self.reps[i as usize]
    }

    /// Runs `f` on replica `i` with a fresh outbox, then carries the
    /// effects out: persists, queues the sends, records the replies, checks.
    pub fn on(&mut self, i: ReplicaId, f: impl FnOnce(&mut P, u64, &mut Effects<P::Msg>)) {
        let mut fx = Effects::default();
        let now = self.now;
        f(&mut self.reps[i as usize], now, &mut fx);
        self.collect(i, fx);
    }

    fn collect(&mut self, i: ReplicaId, mut fx: Effects<P::Msg>) {
        let d = fx.take_disk();
        let rec = &d.records;
        let log = &mut self.logs[i as usize];
        match d.compaction {
            Some((at, base)) => {
                let base = base.framed();
                let at = at.min(rec.len());
                if let Some(disk) = log {
                    disk.write(rec, Some((at, Base::Framed(base.clone()))))
                        .and_then(|()| disk.settle())
                        .expect("compacting the test log");
                }
                self.disk[i as usize] = base;
                self.disk[i as usize].extend_from_slice(&rec[at..]);
            }
            None => {
                if let Some(disk) = log {
                    disk.write(rec, None).expect("writing the test log");
                }
                self.disk[i as usize].extend_from_slice(rec);
            }
        }
        for (dest, m) in fx.sends.drain(..) {
            for j in dest.targets(i, self.n) {
                self.queue.push_back((i, j, m.clone()));
            }
        }
        for (conn, r) in fx.replies.drain(..) {
            match r {
                Reply::Propose(p) => self.replies.push((i, conn, p)),
                other => self.other_replies.push((i, conn, other)),
            }
        }
        self.check(i);
    }

    /// What every protocol must keep after every step, plus the test's check.
    fn check(&mut self, i: ReplicaId) {
        let r = &self.reps[i as usize];
        let from = self.checked_upto[i as usize];
        for (pos, hash) in r.committed_from(from) {
            let (first, by) = *self.chosen.entry(pos).or_insert((hash, i));
            assert_eq!(
                first, hash,
                "SAFETY: replica {i} committed another value at {pos} than replica {by}"
            );
        }
        // With one order of execution (a leader's log), as many executed
        // entries means the same state; a leaderless protocol runs
        // commutative commands in different orders, so it is checked at the end.
        if !P::CAPS.leaderless {
            let st = r.status(0);
            assert!(st.executed <= st.commit_index);
            let first = *self.digests.entry(st.executed).or_insert(st.digest());
            assert_eq!(
                first,
                st.digest(),
                "replica {i}: state after {} executed differs from another replica's",
                st.executed
            );
        }
        self.checked_upto[i as usize] = r.status(0).commit_index;
        if let Some(c) = &self.check {
            c(i, r);
        }
    }

    fn link_ok(&self, from: ReplicaId, to: ReplicaId) -> bool {
        !self.down[from as usize]
            && !self.down[to as usize]
            && !self.cut[from as usize][to as usize]
    }

    /// Delivers one message (if its link is up and no drop rule takes it),
    /// then flushes the receiver as the runtime does after a burst.
    pub fn deliver(&mut self, (from, to, m): Msg<P::Msg>) -> bool {
        let k = kind::<P>(&m);
        if !self.link_ok(from, to) || self.drops.contains(&(from, to, k)) {
            return false;
        }
        *self.delivered.entry((k, to)).or_default() += 1;
        if self.trace {
            eprintln!("{from} -> {to}: {m:?}");
        }
        self.on(to, |r, now, fx| {
            r.handle(now, Source::Peer(from), m, fx);
            r.flush(now, fx);
        });
        true
    }

    /// Delivers everything in order until nothing is in flight.
    pub fn run(&mut self) {
        let mut budget = 1_000_000;
        while let Some(m) = self.queue.pop_front() {
            self.deliver(m);
            budget -= 1;
            assert!(budget > 0, "messages never stop");
        }
    }

    /// Delivers (in order) the messages in flight matching `p`; the others stay queued.
    pub fn deliver_where(&mut self, p: impl Fn(&Msg<P::Msg>) -> bool) -> usize {
        let take = self.take_where(p);
        take.into_iter().map(|m| self.deliver(m) as usize).sum()
    }

    /// Removes the messages in flight matching `p` and returns them.
    pub fn take_where(&mut self, p: impl Fn(&Msg<P::Msg>) -> bool) -> Vec<Msg<P::Msg>> {
        let (take, keep): (Vec<_>, Vec<_>) = self.queue.drain(..).partition(|m| p(m));
        self.queue = keep.into();
        take
    }

    /// Loses the messages in flight matching `p`; returns how many.
    pub fn drop_where(&mut self, p: impl Fn(&Msg<P::Msg>) -> bool) -> usize {
        self.take_where(p).len()
    }

    /// Messages in flight matching `p`.
    pub fn in_flight(&self, p: impl Fn(&Msg<P::Msg>) -> bool) -> usize {
        self.queue.iter().filter(|m| p(m)).count()
    }

    /// Whether `m` goes from `from` to `to` and is of kind `k`.
    pub fn is(m: &Msg<P::Msg>, from: ReplicaId, to: ReplicaId, k: &str) -> bool {
        m.0 == from && m.1 == to && kind::<P>(&m.2) == k
    }

    /// Messages of kind `k` delivered to `to` so far.
    pub fn count(&self, k: &'static str, to: ReplicaId) -> usize {
        self.delivered.get(&(k, to)).copied().unwrap_or(0)
    }

    /// Advances the clock by `dt` and runs every live replica's timers.
    pub fn tick_all(&mut self, dt: u64) {
        self.now += dt;
        for i in 0..self.n as ReplicaId {
            if !self.down[i as usize] {
                self.on(i, |r, now, fx| {
                    r.tick(now, fx);
                    r.flush(now, fx);
                });
            }
        }
    }

    /// Alternates rounds of timers `dt` apart with full delivery.
    pub fn settle_every(&mut self, rounds: usize, dt: u64) {
        for _ in 0..rounds {
            self.run();
            self.tick_all(dt);
        }
        self.run();
    }

    /// The master (or an operator) asks replica `i` to lead.
    pub fn be_leader(&mut self, i: ReplicaId) {
        self.on(i, |r, now, fx| {
            r.be_leader(now, false, fx);
            r.flush(now, fx);
        });
    }

    /// A client proposal, without the flush that ends a burst.
    pub fn propose(&mut self, i: ReplicaId, conn: ConnId, cmd: Command) {
        self.on(i, |r, now, fx| r.propose(now, conn, Propose { cmd }, fx));
    }

    /// The end of a burst at replica `i`.
    pub fn flush(&mut self, i: ReplicaId) {
        self.on(i, |r, now, fx| r.flush(now, fx));
    }

    /// A proposal followed by a flush.
    pub fn submit(&mut self, i: ReplicaId, conn: ConnId, cmd: Command) {
        self.propose(i, conn, cmd);
        self.flush(i);
    }

    /// Crashes replica `i` (it keeps its disk).
    pub fn crash(&mut self, i: ReplicaId) {
        self.down[i as usize] = true;
    }

    /// Restarts replica `i` from what it persisted.
    pub fn restart_durable(&mut self, i: ReplicaId) {
        let recs: Vec<Bytes> = genericsmr::durable::parse_records(&self.disk[i as usize])
            .expect("the test disk holds whole records");
        self.restart_with(i, Boot::Durable(recs));
    }

    /// Restarts replica `i` with nothing (its disk is lost). What it sent
    /// before and is still in flight is lost with it.
    pub fn restart_amnesiac(&mut self, i: ReplicaId) {
        self.queue.retain(|m| m.0 != i);
        self.disk[i as usize].clear();
        self.restart_with(i, Boot::Amnesia);
    }

    fn restart_with(&mut self, i: ReplicaId, how: Boot) {
        let mut fx = Effects::default();
        self.reps[i as usize] = (self.boot)(i, how, self.now, &mut fx);
        self.down[i as usize] = false;
        self.checked_upto[i as usize] = 0;
        self.collect(i, fx);
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&mut self, a: &[ReplicaId], b: &[ReplicaId]) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Cuts the links from every replica of `from` to every one of `to`.
    pub fn cut_one_way(&mut self, from: &[ReplicaId], to: &[ReplicaId]) {
        for &x in from {
            for &y in to {
                self.cut[x as usize][y as usize] = true;
            }
        }
    }

    /// Mends every cut link.
    pub fn heal(&mut self) {
        self.cut = vec![vec![false; self.n]; self.n];
    }

    /// The answers to (client, seq).
    pub fn reply(&self, client: u64, seq: u64) -> Vec<(ReplicaId, ConnId, ProposeReply)> {
        self.replies
            .iter()
            .filter(|(_, _, p)| p.client == client && p.seq == seq)
            .cloned()
            .collect()
    }

    /// The one answer to (client, seq); panics unless there is exactly one.
    pub fn only_reply(&self, client: u64, seq: u64) -> (ReplicaId, ConnId, ProposeReply) {
        let mut r = self.reply(client, seq);
        assert_eq!(r.len(), 1, "replies for ({client}, {seq}): {r:?}");
        r.remove(0)
    }
}
