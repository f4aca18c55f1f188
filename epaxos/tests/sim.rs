//! EPaxos under the deterministic simulator: many seeds with crashes and
//! restarts (in the middle of PreAccept, Accept and Commit, wherever a seed
//! puts them), partitions, loss, duplication and reordering. Every run checks
//! agreement per instance after every event, convergence of the replicas'
//! states, and linearizability of the clients' history.

use epaxos::Replica;
use sim::Config;

sim::conformance_tests!(epaxos::Replica);

/// The lost write: a put answered at commit, the client's next command (on
/// another key, acknowledging the put) executed first on some replica, and
/// the put then skipped there as already acknowledged. Each of these seeds
/// breaks linearizability when the dedup table decides by the client's
/// acknowledgement (the old rule) instead of by what ran here.
#[test]
fn an_acknowledgement_that_outruns_its_command_loses_no_write() {
    for seed in [1, 3, 4, 10, 13, 17, 19, 21] {
        let r = sim::run::<Replica>(&Config::new(seed), false);
        assert!(
            r.ok(),
            "seed {seed}: {:?} {:?}",
            r.violation,
            r.checker.violation.map(|v| v.explanation)
        );
        assert!(r.acked > 20, "seed {seed} did too little: {}", r.acked);
    }
}

/// With a low horizon and one replica down for most of the faults, replicas
/// compact their durable logs many times, restart from a snapshot file and a
/// compacted log, and install peers' snapshots (which compact too): every
/// run stays correct, and both kinds of restart happen.
#[test]
fn replicas_restart_from_compacted_logs_and_install_snapshots() {
    let mk = |seed: u64| {
        let mut c = Config::new(seed);
        c.outage = true;
        c.tuning.gc_horizon = Some(3);
        c.tuning.chunk_bytes = Some(89);
        c
    };
    let (mut installed, mut restarted) = (0, 0);
    for seed in 1..=sim::seeds().min(60) {
        let r = sim::run::<Replica>(&mk(seed), false);
        assert!(
            r.ok(),
            "seed {seed}: {:?} {:?}",
            r.violation,
            r.checker.violation.map(|v| v.explanation)
        );
        installed += r.snapshots_installed;
        restarted += r.snapshot_boots;
    }
    eprintln!("{installed} snapshots installed, {restarted} restarts from a snapshot file");
    assert!(installed > 0, "no replica installed a snapshot");
    assert!(
        restarted > 0,
        "no replica restarted from a durable snapshot"
    );
}
