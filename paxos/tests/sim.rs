//! Multi-Paxos under the deterministic simulator: many seeds with crashes,
//! restarts, partitions, loss, duplication and reordering.

use genericsmr::messages::{LogReply, LogRequest, Propose, StatusReply};
use genericsmr::protocol::{BootError, Caps, Protocol, Registrar, Settings};
use genericsmr::rpc_table::Source;
use paxos::messages::PaxosMsg;
use paxos::Replica;
use sim::{run, seeds, Config};

sim::conformance_tests!(paxos::Replica);

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

impl Protocol for Broken {
    const NAME: &'static str = "broken-paxos";
    const ABOUT: &'static str = "Multi-Paxos whose acceptors accept below their promise";
    const CAPS: Caps = Replica::CAPS;
    type Msg = PaxosMsg;
    const CODES: &'static [(u8, &'static str)] = Replica::CODES;
    fn register(r: &mut Registrar<'_, PaxosMsg>) {
        Replica::register(r)
    }
    fn fresh(s: &Settings, _now: u64) -> Result<Self, BootError> {
        let mut cfg = paxos::Config::from_settings(s)?;
        cfg.broken_accept_below_promise = true;
        Ok(Broken(Replica::new(cfg)))
    }
    fn replay(&mut self, now: u64, records: &[bytes::Bytes]) -> Result<(), BootError> {
        self.0.replay(now, records)
    }
    fn rejoin(&mut self, now: u64, fx: &mut Fx) -> Result<(), BootError> {
        self.0.rejoin(now, fx)
    }
    fn handle(&mut self, now: u64, src: Source, m: PaxosMsg, fx: &mut Fx) {
        self.0.handle(now, src, m, fx)
    }
    fn propose(&mut self, now: u64, c: u64, p: Propose, fx: &mut Fx) {
        Protocol::propose(&mut self.0, now, c, p, fx)
    }
    fn be_leader(&mut self, now: u64, hint: bool, fx: &mut Fx) {
        Protocol::be_leader(&mut self.0, now, hint, fx)
    }
    fn status(&self, nonce: u64) -> StatusReply {
        Protocol::status(&self.0, nonce)
    }
    fn log(&self, m: &LogRequest) -> LogReply {
        Protocol::log(&self.0, m)
    }
    fn tick(&mut self, now: u64, fx: &mut Fx) {
        Protocol::tick(&mut self.0, now, fx)
    }
    fn flush(&mut self, now: u64, fx: &mut Fx) {
        Protocol::flush(&mut self.0, now, fx)
    }
    fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
        Protocol::committed_from(&self.0, from)
    }
}

type Fx = genericsmr::effects::Effects<PaxosMsg>;

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

/// A low horizon (32 slots kept, compaction every 32) with a long outage and
/// crashes: replicas that fall behind what the others compacted install
/// snapshots, durable ones restart from their snapshot file, and every run
/// stays correct.
#[test]
fn replicas_behind_the_compaction_point_install_snapshots() {
    let mk = |seed: u64, durable: bool| {
        let mut c = Config::new(seed);
        c.durable = durable;
        c.outage = true;
        c.tuning.gc_horizon = Some(32);
        c.tuning.chunk_bytes = Some(97);
        c
    };
    let (mut installed, mut restarted) = (0, 0);
    for durable in [true, false] {
        for seed in 1..=seeds().min(60) {
            let r = run::<Replica>(&mk(seed, durable), false);
            assert!(
                r.ok(),
                "seed {seed} (durable {durable}): {:?} {:?}",
                r.violation,
                r.checker.verdict
            );
            installed += r.snapshots_installed;
            restarted += r.snapshot_boots;
        }
    }
    assert!(installed > 0, "no replica installed a snapshot");
    assert!(
        restarted > 0,
        "no replica restarted from a durable snapshot"
    );
}
