//! Mencius on the protocol seam: how the runtime, the simulator and the
//! registry see [`Replica`].

use genericsmr::broken::variant;
use genericsmr::effects::Effects;
use genericsmr::messages::{LogReply, LogRequest};
use genericsmr::protocol::{Boot, BootError, Caps, Protocol, Registrar, Rejoin, Settings};

use crate::broken::Broken;
use crate::messages::*;
use crate::replica::{Config, Replica};

/// The protocol's own parameters (`--param NAME=VALUE`).
pub const PARAMS: &[&str] = &["revoke-ahead"];

impl Config {
    /// The configuration `s` asks for (the defaults of [`Config::new`] where
    /// it is silent).
    pub fn from_settings(s: &Settings) -> Result<Config, BootError> {
        s.check_params(Replica::NAME, PARAMS)?;
        let mut cfg = Config::new(s.id, s.n);
        cfg.batch = s.batch;
        if let Some(v) = s.batch_max {
            cfg.batch_max = v.max(1);
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
            cfg.revoke_timeout_ns = v;
        }
        if let Some(v) = s.window {
            cfg.window = v.max(1);
        }
        if let Some(h) = s.gc_horizon {
            cfg.keep_executed = h;
            cfg.compact_every = h;
        }
        if let Some(v) = s.compact_bytes {
            cfg.compact_bytes = v;
        }
        if let Some(v) = s.snapshot_chunk {
            cfg.transfer.chunk_bytes = v;
        }
        if let Some(v) = s.snapshot_timeout_ns {
            cfg.transfer.timeout_ns = v;
        }
        if let Some(v) = s.param("revoke-ahead") {
            cfg.revoke_ahead = v.parse().map_err(|_| {
                BootError::Settings(format!("revoke-ahead must be a number of slots, not {v:?}"))
            })?;
        }
        if let Some(b) = variant(s, Replica::NAME, crate::broken::BUILT, Broken::named)? {
            cfg.set_broken(b)
                .map_err(|e| BootError::Settings(e.to_string()))?;
        }
        Ok(cfg)
    }
}

impl Protocol for Replica {
    const NAME: &'static str = "mencius";
    const ABOUT: &'static str =
        "Mencius: slots owned round-robin, idle owners skip, silent owners are revoked";
    const CAPS: Caps = Caps {
        leaderless: true,
        elects: false,
        durable: true,
        rejoin: Rejoin::NeedsVotes,
        sharded_mesh: false,
        multi_dispatch: false,
    };
    type Msg = MenciusMsg;

    fn codes() -> &'static [(u8, &'static str)] {
        &CODES
    }

    fn register(r: &mut Registrar<'_, MenciusMsg>) {
        r.peer(MenciusMsg::Accept);
        r.peer(MenciusMsg::AcceptReply);
        r.peer(MenciusMsg::Commit);
        r.peer(MenciusMsg::Skip);
        r.peer(MenciusMsg::Prepare);
        r.peer(MenciusMsg::PrepareReply);
        r.peer(MenciusMsg::Revoke);
        r.peer(MenciusMsg::RevokeReply);
        r.peer(MenciusMsg::CatchupRequest);
        r.peer(MenciusMsg::CatchupReply);
        r.snapshots(
            MenciusMsg::Compacted,
            MenciusMsg::SnapshotRequest,
            MenciusMsg::SnapshotChunk,
        );
    }

    fn boot(
        s: &Settings,
        boot: Boot,
        _now: u64,
        _fx: &mut Effects<MenciusMsg>,
    ) -> Result<Self, BootError> {
        let mut r = Replica::new(Config::from_settings(s)?);
        match boot {
            Boot::Fresh => {}
            Boot::Durable(records) => r
                .restore(&records)
                .map_err(|e| BootError::Replay(e.to_string()))?,
            // Its votes and skips are gone; the caller refuses this unless
            // the group is new to it (see `Rejoin::NeedsVotes`).
            Boot::Amnesia => {}
        }
        Ok(r)
    }

    genericsmr::inherent!(handle, propose, status, tick, flush, snapshot, snapshots);

    /// Every replica coordinates its own slots: nothing to do.
    fn be_leader(&mut self, _now: u64, _hint: bool, _fx: &mut Effects<MenciusMsg>) {}

    fn log(&self, m: &LogRequest) -> LogReply {
        self.log_reply(m)
    }

    fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
        self.committed_slots(from)
    }
}
