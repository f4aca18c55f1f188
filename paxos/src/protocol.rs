//! Multi-Paxos on the protocol seam: how the runtime, the simulator and the
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
        if let Some(v) = s.batch_max {
            cfg.batch_max = v;
        }
        if let Some(v) = s.max_command {
            cfg.max_command_bytes = v;
        }
        if let Some(v) = s.max_frame {
            cfg.max_batch_bytes = v / 4;
        }
        if let Some(v) = s.max_gaps {
            cfg.dedup.max_gaps = v;
        }
        if let Some(v) = s.election_timeout_ns {
            cfg.election_timeout_ns = v;
        }
        if let Some(v) = s.hint_quiet_ns {
            cfg.hint_quiet_ns = v;
        }
        if let Some(v) = s.pipeline {
            cfg.pipeline = v.max(1);
        }
        if let Some(v) = s.window {
            cfg.slot_window = v;
        }
        // The horizon sets how much is kept and how often compaction runs,
        // so that short simulated runs compact (and snapshot) many times.
        if let Some(h) = s.gc_horizon {
            cfg.keep_executed = h;
            cfg.compact_every = h;
        }
        if let Some(v) = s.compact_bytes {
            cfg.compact_bytes = v;
        }
        cfg.snapshot_ratio = s.snapshot_ratio.unwrap_or(cfg.snapshot_ratio);
        cfg.transfer = cfg.transfer.with_settings(s);
        if let Some(b) = variant(s, Replica::NAME, crate::broken::BUILT, Broken::named)? {
            if b == Broken::ForgetAccepts && !s.durable {
                return Err(BootError::Settings(
                    "--broken forget-accepts needs --durable: it forgets what the durable log should keep".into(),
                ));
            }
            cfg.set_broken(b)
                .map_err(|e| BootError::Settings(e.to_string()))?;
        }
        Ok(cfg)
    }
}

impl Protocol for Replica {
    const NAME: &'static str = "paxos";
    const ABOUT: &'static str = "Multi-Paxos: one elected leader orders every command";
    const CAPS: Caps = Caps {
        leaderless: false,
        elects: true,
        durable: true,
        rejoin: Rejoin::Recovers,
        sharded_mesh: false,
        multi_dispatch: false,
    };
    type Msg = PaxosMsg;

    fn codes() -> &'static [(u8, &'static str)] {
        &CODES
    }

    fn register(r: &mut Registrar<'_, PaxosMsg>) {
        r.peer(PaxosMsg::Prepare);
        r.peer(PaxosMsg::PrepareReply);
        r.peer(PaxosMsg::Accept);
        r.peer(PaxosMsg::AcceptReply);
        r.peer(PaxosMsg::Commit);
        r.peer(PaxosMsg::CommitShort);
        r.peer(PaxosMsg::CatchupRequest);
        r.peer(PaxosMsg::CatchupReply);
        r.peer(PaxosMsg::RecoveryQuery);
        r.peer(PaxosMsg::RecoveryInfo);
        r.snapshots(
            PaxosMsg::Compacted,
            PaxosMsg::SnapshotRequest,
            PaxosMsg::SnapshotChunk,
        );
    }

    fn boot(
        s: &Settings,
        boot: Boot,
        now: u64,
        fx: &mut Effects<PaxosMsg>,
    ) -> Result<Self, BootError> {
        let mut r = Replica::new(Config::from_settings(s)?);
        match boot {
            Boot::Fresh => {}
            Boot::Durable(records) => r
                .restore(&records)
                .map_err(|e| BootError::Replay(e.to_string()))?,
            Boot::Amnesia => r.start_recovery(now, fx),
        }
        Ok(r)
    }

    genericsmr::inherent!(handle, propose, be_leader, status, tick, flush, snapshot, snapshots);

    fn accepting(&self) -> bool {
        crate::multi::host::Host::takes_proposals(self)
    }

    fn log(&self, m: &LogRequest) -> LogReply {
        self.px.log.answer(m)
    }

    fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
        self.px.log.committed(from).collect()
    }
}
