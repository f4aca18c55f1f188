//! Multi-Paxos under the deterministic simulator: many seeds with crashes,
//! restarts, partitions, loss, duplication and reordering.

use paxos::Replica;
use sim::{run, seeds, Config};

fn check_all(mk: impl Fn(u64) -> Config) {
    sim::check_seeds::<Replica>("paxos", mk)
}

#[test]
fn durable_replicas_under_every_fault() {
    check_all(Config::new);
}

#[test]
fn replicas_without_a_log_under_crashes_and_partitions() {
    check_all(|seed| Config {
        durable: false,
        ..Config::new(seed)
    });
}

#[test]
fn five_replicas() {
    check_all(|seed| Config {
        n: 5,
        ..Config::new(seed)
    });
}

/// No master at all: the replicas elect every leader themselves (the first
/// one included), through crashes, partitions and amnesia.
#[test]
fn replicas_elect_their_leaders_without_the_master() {
    check_all(|seed| Config {
        master: false,
        durable: seed % 4 != 1,
        n: if seed % 5 == 4 { 5 } else { 3 },
        ..Config::new(seed)
    });
}

/// Without faults and with heartbeats flowing, nobody campaigns after the
/// first election: the ballot set by the first leader is the last.
#[test]
fn a_healthy_group_holds_one_election_only() {
    for seed in 0..20 {
        let r = run::<Replica>(
            &Config {
                master: false,
                crashes: false,
                partitions: false,
                outage: false,
                drop: 0.0,
                dup: 0.0,
                ..Config::new(seed)
            },
            true,
        );
        assert!(r.ok(), "seed {seed}: {:?}", r.violation);
        assert!(r.acked > 0, "seed {seed}: no progress");
        // Every Prepare delivered names its ballot; one ballot means one election.
        let mut ballots: Vec<&str> = r
            .trace
            .iter()
            .filter_map(|l| l.split("Prepare(Prepare { ballot: ").nth(1))
            .filter_map(|t| t.split(',').next())
            .collect();
        ballots.sort_unstable();
        ballots.dedup();
        assert_eq!(
            ballots.len(),
            1,
            "seed {seed}: campaigns at ballots {ballots:?}"
        );
    }
}

/// A Paxos whose acceptors accept below their promise, under the simulator.
struct Broken(Replica);

impl sim::SimReplica for Broken {
    type Msg = paxos::messages::PaxosMsg;
    fn boot(
        id: u8,
        n: usize,
        boot: sim::Boot,
        now: u64,
        fx: &mut genericsmr::effects::Effects<Self::Msg>,
        _tuning: &sim::Tuning,
    ) -> Self {
        let mut cfg = paxos::Config::new(id, n);
        cfg.broken_accept_below_promise = true;
        let mut r = Replica::new(cfg);
        match boot {
            sim::Boot::Fresh => {}
            sim::Boot::Durable(recs) => r.restore(&recs).unwrap(),
            sim::Boot::Amnesia => r.start_recovery(now, fx),
        }
        Broken(r)
    }
    fn propose(
        &mut self,
        now: u64,
        c: u64,
        p: genericsmr::messages::Propose,
        fx: &mut genericsmr::effects::Effects<Self::Msg>,
    ) {
        sim::SimReplica::propose(&mut self.0, now, c, p, fx)
    }
    fn deliver(
        &mut self,
        now: u64,
        from: u8,
        m: Self::Msg,
        fx: &mut genericsmr::effects::Effects<Self::Msg>,
    ) {
        sim::SimReplica::deliver(&mut self.0, now, from, m, fx)
    }
    fn tick(&mut self, now: u64, fx: &mut genericsmr::effects::Effects<Self::Msg>) {
        sim::SimReplica::tick(&mut self.0, now, fx)
    }
    fn flush(&mut self, now: u64, fx: &mut genericsmr::effects::Effects<Self::Msg>) {
        sim::SimReplica::flush(&mut self.0, now, fx)
    }
    fn be_leader(&mut self, now: u64, fx: &mut genericsmr::effects::Effects<Self::Msg>) {
        sim::SimReplica::be_leader(&mut self.0, now, fx)
    }
    fn status(&self) -> genericsmr::messages::StatusReply {
        sim::SimReplica::status(&self.0)
    }
    fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
        sim::SimReplica::committed_from(&self.0, from)
    }
}

/// The checks must never silently stop working: a Paxos that breaks its
/// promises is caught within the seeds CI runs, by the agreement invariant,
/// and (with the invariant off) by the linearizability checker on the
/// clients' history alone.
#[test]
fn a_broken_paxos_is_caught_by_the_simulator_and_by_the_checker() {
    // Many false suspicions (competing leaders), some loss, several clients on a
    // modest key space, so divergence shows in what clients read.
    let hostile = |seed| Config {
        suspicion: 0.3,
        keys: 5,
        clients: 16,
        drop: 0.1,
        ..Config::new(seed)
    };
    // Divergence that clients can see is rare (about 1 seed in 100 here), so
    // this test runs its 500 seeds even when SIM_SEEDS asks for fewer.
    let n = seeds().max(500);
    let by_invariant = (0..n)
        .filter(|s| run::<Broken>(&hostile(*s), false).violation.is_some())
        .count();
    let by_checker = (0..n)
        .filter(|s| {
            let r = run::<Broken>(
                &Config {
                    check_agreement: false,
                    ..hostile(*s)
                },
                false,
            );
            r.checker.verdict == checker::Verdict::Violation
        })
        .count();
    println!("broken Paxos caught by the invariant on {by_invariant} and by the checker on {by_checker} of {n} seeds");
    assert!(
        by_invariant > 0,
        "the agreement invariant never caught acceptors that ignore their promises"
    );
    assert!(
        by_checker > 0,
        "the checker never caught acceptors that ignore their promises"
    );
}

/// A seed replays exactly: same events, same history (nothing in the cores or
/// the engine may depend on hash seeds or the clock).
#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 17, 42] {
        let a = run::<Replica>(&Config::new(seed), true);
        let b = run::<Replica>(&Config::new(seed), true);
        assert_eq!(a.events, b.events, "seed {seed}");
        assert_eq!(a.trace, b.trace, "seed {seed}");
        assert!(a.trace.len() > 1000);
    }
}

thread_local! {
    /// Snapshots installed and durable restarts from a snapshot, over the
    /// runs of this thread (the simulator runs on the test's thread).
    static SNAPSHOTS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// Multi-Paxos that counts the snapshots it installs and the restarts that
/// began from a durable snapshot.
struct Counting(Replica);

impl Counting {
    fn count(&self, installed_before: u64) {
        let now = self.0.snapshots().0;
        SNAPSHOTS.with(|c| {
            let (i, r) = c.get();
            c.set((i + now.saturating_sub(installed_before), r));
        });
    }
}

impl sim::SimReplica for Counting {
    type Msg = paxos::messages::PaxosMsg;
    fn boot(
        id: u8,
        n: usize,
        boot: sim::Boot,
        now: u64,
        fx: &mut genericsmr::effects::Effects<Self::Msg>,
        tuning: &sim::Tuning,
    ) -> Self {
        let r = <Replica as sim::SimReplica>::boot(id, n, boot, now, fx, tuning);
        if r.log_base() > 0 {
            SNAPSHOTS.with(|c| {
                let (i, d) = c.get();
                c.set((i, d + 1));
            });
        }
        Counting(r)
    }
    fn propose(
        &mut self,
        now: u64,
        c: u64,
        p: genericsmr::messages::Propose,
        fx: &mut genericsmr::effects::Effects<Self::Msg>,
    ) {
        sim::SimReplica::propose(&mut self.0, now, c, p, fx)
    }
    fn deliver(
        &mut self,
        now: u64,
        from: u8,
        m: Self::Msg,
        fx: &mut genericsmr::effects::Effects<Self::Msg>,
    ) {
        let before = self.0.snapshots().0;
        sim::SimReplica::deliver(&mut self.0, now, from, m, fx);
        self.count(before);
    }
    fn tick(&mut self, now: u64, fx: &mut genericsmr::effects::Effects<Self::Msg>) {
        sim::SimReplica::tick(&mut self.0, now, fx)
    }
    fn flush(&mut self, now: u64, fx: &mut genericsmr::effects::Effects<Self::Msg>) {
        sim::SimReplica::flush(&mut self.0, now, fx)
    }
    fn be_leader(&mut self, now: u64, fx: &mut genericsmr::effects::Effects<Self::Msg>) {
        sim::SimReplica::be_leader(&mut self.0, now, fx)
    }
    fn status(&self) -> genericsmr::messages::StatusReply {
        sim::SimReplica::status(&self.0)
    }
    fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
        sim::SimReplica::committed_from(&self.0, from)
    }
}

/// A low horizon (32 slots kept, compaction every 32) with a long outage and
/// crashes: replicas that fall behind what the others compacted install
/// snapshots, durable ones restart from their snapshot file, and every run
/// stays correct.
#[test]
fn replicas_behind_the_compaction_point_install_snapshots() {
    SNAPSHOTS.with(|c| c.set((0, 0)));
    let mk = |seed: u64, durable: bool| {
        let mut c = Config::new(seed);
        c.durable = durable;
        c.outage = true;
        c.tuning.gc_horizon = Some(32);
        c.tuning.chunk_bytes = Some(97);
        c
    };
    for durable in [true, false] {
        sim::check_seed_count::<Counting>("paxos", seeds().min(60), |s| mk(s, durable));
    }
    let (installed, restarted) = SNAPSHOTS.with(|c| c.get());
    assert!(installed > 0, "no replica installed a snapshot");
    assert!(
        restarted > 0,
        "no replica restarted from a durable snapshot"
    );
}
