//! The Multi-Paxos core under the deterministic simulator.

use genericsmr::effects::Effects;
use genericsmr::messages::{Propose, StatusReply};
use genericsmr::{ConnId, ReplicaId};
use sim::{Boot, SimReplica, Tuning};

use crate::messages::PaxosMsg;
use crate::replica::{Config, Replica};

impl SimReplica for Replica {
    type Msg = PaxosMsg;

    fn boot(
        id: ReplicaId,
        n: usize,
        boot: Boot,
        now: u64,
        fx: &mut Effects<PaxosMsg>,
        tuning: &Tuning,
    ) -> Self {
        let mut cfg = Config::new(id, n);
        if let Some(w) = tuning.window {
            cfg.slot_window = w;
        }
        if let Some(t) = tuning.election_timeout_ns {
            cfg.election_timeout_ns = t;
        }
        // The horizon sets how much is kept and how often compaction runs,
        // so that short runs compact (and snapshot) many times.
        if let Some(h) = tuning.gc_horizon {
            cfg.keep_executed = h;
            cfg.compact_every = h;
        }
        if let Some(c) = tuning.chunk_bytes {
            cfg.transfer.chunk_bytes = c;
        }
        let mut r = Replica::new(cfg);
        match boot {
            Boot::Fresh => {}
            // Our own records: they decode (a failure here is a bug worth a loud stop).
            Boot::Durable(records) => r.restore(&records).expect("replaying the simulated disk"),
            Boot::Amnesia => r.start_recovery(now, fx),
        }
        r
    }

    fn propose(&mut self, now: u64, client: ConnId, p: Propose, fx: &mut Effects<PaxosMsg>) {
        self.handle_propose(now, client, p, fx)
    }

    fn deliver(&mut self, now: u64, from: ReplicaId, m: PaxosMsg, fx: &mut Effects<PaxosMsg>) {
        self.handle_peer(now, from, m, fx)
    }

    fn tick(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) {
        Replica::tick(self, now, fx)
    }

    fn flush(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) {
        Replica::flush(self, now, fx)
    }

    fn be_leader(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) {
        self.handle_be_leader(now, fx)
    }

    fn status(&self) -> StatusReply {
        Replica::status(self, 0)
    }

    fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
        self.committed_slots().filter(|(i, _)| *i >= from).collect()
    }
}
