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
