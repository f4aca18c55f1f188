//! EPaxos on the protocol seam: how the runtime, the simulator and the
//! registry see [`Replica`].

use genericsmr::broken::variant;
use genericsmr::effects::Effects;
use genericsmr::messages::{LogReply, LogRequest};
use genericsmr::protocol::{Boot, BootError, Caps, Protocol, Registrar, Rejoin, Settings};

use crate::broken::Broken;
use crate::messages::*;
use crate::replica::{Config, Replica};

impl Config {
    /// The configuration `s` asks for (the defaults of [`Config::new`] where
    /// it is silent).
    pub fn from_settings(s: &Settings) -> Result<Config, BootError> {
        s.check_params(Replica::NAME, &[])?;
        let mut cfg = Config::new(s.id, s.n);
        cfg.thrifty = s.thrifty;
        cfg.batch = s.batch;
        cfg.reply_after_exec = s.reply_after_exec;
        cfg.record_commits = s.record_commits;
        if let Some(v) = s.batch_max {
            cfg.batch_max = v;
        }
        if let Some(v) = s.max_command {
            cfg.max_command_bytes = v;
        }
        // The horizon sets both how much is kept and how often the durable
        // log is compacted, so that short simulated runs compact many times.
        if let Some(v) = s.gc_horizon {
            cfg.keep_executed = v;
            cfg.compact_every = v;
        }
        if let Some(w) = s.window {
            cfg.max_ahead = w;
            cfg.max_inflight = cfg.max_inflight.min(w as usize);
        }
        if let Some(v) = s.compact_bytes {
            cfg.compact_bytes = v;
        }
        cfg.transfer = cfg.transfer.with_settings(s);
        if let Some(v) = s.max_gaps {
            cfg.dedup.max_gaps = v;
        }
        if let Some(b) = variant(s, Replica::NAME, crate::broken::BUILT, Broken::named)? {
            cfg.set_broken(b)
                .map_err(|e| BootError::Settings(e.to_string()))?;
        }
        Ok(cfg)
    }
}

impl Protocol for Replica {
    const NAME: &'static str = "epaxos";
    const ABOUT: &'static str =
        "EPaxos: leaderless; every replica commits its clients' commands, ordered by their conflicts";
    const CAPS: Caps = Caps {
        leaderless: true,
        elects: false,
        durable: true,
        rejoin: Rejoin::NeedsVotes,
        sharded_mesh: false,
        multi_dispatch: false,
    };
    type Msg = EpaxosMsg;

    fn codes() -> &'static [(u8, &'static str)] {
        &CODES
    }

    fn register(r: &mut Registrar<'_, EpaxosMsg>) {
        r.peer(EpaxosMsg::PreAccept);
        r.peer(EpaxosMsg::PreAcceptReply);
        r.peer(EpaxosMsg::PreAcceptOk);
        r.peer(EpaxosMsg::Accept);
        r.peer(EpaxosMsg::AcceptReply);
        r.peer(EpaxosMsg::Commit);
        r.peer(EpaxosMsg::CommitShort);
        r.peer(EpaxosMsg::Prepare);
        r.peer(EpaxosMsg::PrepareReply);
        r.peer(EpaxosMsg::Progress);
        r.peer(EpaxosMsg::TryPreAccept);
        r.peer(EpaxosMsg::TryPreAcceptReply);
        r.snapshots(
            EpaxosMsg::Compacted,
            EpaxosMsg::SnapshotRequest,
            EpaxosMsg::SnapshotChunk,
        );
    }

    fn boot(
        s: &Settings,
        boot: Boot,
        _now: u64,
        _fx: &mut Effects<EpaxosMsg>,
    ) -> Result<Self, BootError> {
        let mut r = Replica::new(Config::from_settings(s)?);
        match boot {
            Boot::Fresh => {}
            Boot::Durable(records) => r
                .restore(&records)
                .map_err(|e| BootError::Replay(e.to_string()))?,
            // Its votes are gone; the caller refuses this unless the group
            // is new to it (see `Rejoin::NeedsVotes`).
            Boot::Amnesia => {}
        }
        Ok(r)
    }

    genericsmr::inherent!(handle, propose, status, tick, flush, snapshot);

    /// Every replica leads its own commands: nothing to do.
    fn be_leader(&mut self, _now: u64, _hint: bool, _fx: &mut Effects<EpaxosMsg>) {}

    fn log(&self, m: &LogRequest) -> LogReply {
        self.log_reply(m)
    }

    fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
        self.commits_from(from).to_vec()
    }

    fn snapshots(&self) -> (u64, u64) {
        Replica::snapshots(self)
    }
}
