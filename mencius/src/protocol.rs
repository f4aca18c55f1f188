//! Mencius on the protocol seam: how the runtime, the simulator and the
//! registry see [`Replica`].

use genericsmr::broken::variant;
use genericsmr::effects::Effects;
use genericsmr::knobs::Knobs;
use genericsmr::protocol::{BootError, Caps, Protocol, Registrar, Settings};

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
        s.apply(Knobs {
            batch: Some(&mut cfg.batch),
            batch_max: Some(&mut cfg.batch_max),
            max_command_bytes: Some(&mut cfg.max_command_bytes),
            batch_bytes: Some(&mut cfg.max_batch_bytes),
            dedup: Some(&mut cfg.dedup),
            // A silent owner's slots are revoked after this long.
            election_timeout_ns: Some(&mut cfg.revoke_timeout_ns),
            window: Some(&mut cfg.window),
            keep_executed: Some(&mut cfg.keep_executed),
            compact_every: Some(&mut cfg.compact_every),
            compact_bytes: Some(&mut cfg.compact_bytes),
            transfer: Some(&mut cfg.transfer),
            ..Knobs::default()
        });
        // A batch holds at least one command, the window at least one slot.
        cfg.batch_max = cfg.batch_max.max(1);
        cfg.window = cfg.window.max(1);
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
    const CAPS: Caps = Caps::LEADERLESS;
    type Msg = MenciusMsg;

    const CODES: &'static [(u8, &'static str)] = &CODES;

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

    /// Its votes and skips are gone; the caller refuses this unless the
    /// group is new to it (see `Rejoin::NeedsVotes`).
    fn rejoin(&mut self, _now: u64, _fx: &mut Effects<MenciusMsg>) -> Result<(), BootError> {
        Ok(())
    }

    genericsmr::inherent!(
        fresh, replay, handle, propose, status, log, tick, flush, snapshot, snapshots
    );

    /// Every replica coordinates its own slots: nothing to do.
    fn be_leader(&mut self, _now: u64, _hint: bool, _fx: &mut Effects<MenciusMsg>) {}

    fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
        self.committed_slots(from)
    }
}
