//! The EPaxos core under the deterministic simulator.

use genericsmr::effects::Effects;
use genericsmr::messages::{Propose, StatusReply};
use genericsmr::{ConnId, ReplicaId};
use sim::{Boot, SimReplica, Tuning};

use crate::messages::EpaxosMsg;
use crate::replica::{Config, Replica};

impl SimReplica for Replica {
    type Msg = EpaxosMsg;
    // Every replica leads its own instances (and reports role LEADER).
    const LEADERLESS: bool = true;

    fn boot(
        id: ReplicaId,
        n: usize,
        boot: Boot,
        _now: u64,
        _fx: &mut Effects<EpaxosMsg>,
        tuning: &Tuning,
    ) -> Self {
        let mut cfg = Config::new(id, n);
        cfg.record_commits = true;
        if let Some(h) = tuning.gc_horizon {
            cfg.keep_executed = h;
        }
        if let Some(w) = tuning.window {
            cfg.max_ahead = w;
            cfg.max_inflight = cfg.max_inflight.min(w as usize);
        }
        if let Some(c) = tuning.chunk_bytes {
            cfg.transfer.chunk_bytes = c;
        }
        if let Some(g) = tuning.max_gaps {
            cfg.dedup.max_gaps = g;
        }
        // A lost chunk is asked for again as soon as a lost vote would be.
        cfg.transfer.timeout_ns = 2 * cfg.retransmit_ns;
        let mut r = Replica::new(cfg);
        match boot {
            Boot::Fresh => {}
            // Our own records: they decode (a failure here is a bug worth a loud stop).
            Boot::Durable(records) => r.restore(&records).expect("replaying the simulated disk"),
            // EPaxos votes must survive a crash; the simulator runs it durable.
            Boot::Amnesia => {}
        }
        r
    }

    fn propose(&mut self, now: u64, client: ConnId, p: Propose, fx: &mut Effects<EpaxosMsg>) {
        self.handle_propose(now, client, p, fx)
    }

    fn deliver(&mut self, now: u64, from: ReplicaId, m: EpaxosMsg, fx: &mut Effects<EpaxosMsg>) {
        self.handle_peer(now, from, m, fx)
    }

    fn tick(&mut self, now: u64, fx: &mut Effects<EpaxosMsg>) {
        Replica::tick(self, now, fx)
    }

    fn flush(&mut self, now: u64, fx: &mut Effects<EpaxosMsg>) {
        Replica::flush(self, now, fx)
    }

    fn be_leader(&mut self, _now: u64, _fx: &mut Effects<EpaxosMsg>) {}

    fn status(&self) -> StatusReply {
        Replica::status(self, 0)
    }

    fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
        self.commits_from(from).to_vec()
    }
}
