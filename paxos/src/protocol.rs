//! Multi-Paxos on the protocol seam: how the runtime, the simulator and the
//! registry see [`Replica`].

use genericsmr::broken::variant;
use genericsmr::effects::Effects;
use genericsmr::knobs::Knobs;
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
        s.apply(Knobs {
            thrifty: Some(&mut cfg.thrifty),
            batch: Some(&mut cfg.batch),
            batch_max: Some(&mut cfg.batch_max),
            reply_after_exec: Some(&mut cfg.reply_after_exec),
            election_timeout_ns: Some(&mut cfg.election_timeout_ns),
            hint_quiet_ns: Some(&mut cfg.hint_quiet_ns),
            keep_executed: Some(&mut cfg.keep_executed),
            compact_every: Some(&mut cfg.compact_every),
            compact_bytes: Some(&mut cfg.compact_bytes),
            snapshot_ratio: Some(&mut cfg.snapshot_ratio),
            transfer: Some(&mut cfg.transfer),
            max_command_bytes: Some(&mut cfg.max_command_bytes),
            dedup: Some(&mut cfg.dedup),
            batch_bytes: Some(&mut cfg.max_batch_bytes),
            window: Some(&mut cfg.slot_window),
            pipeline: Some(&mut cfg.pipeline),
            record_commits: None,
        });
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
    // A replica that lost its votes recovers them from a majority.
    const CAPS: Caps = Caps {
        rejoin: Rejoin::Recovers,
        ..Caps::ELECTED_LEADER
    };
    type Msg = PaxosMsg;

    fn codes() -> &'static [(u8, &'static str)] {
        &CODES
    }

    fn register(r: &mut Registrar<'_, PaxosMsg>) {
        PaxosMsg::register_peers(r);
    }

    fn boot(
        s: &Settings,
        boot: Boot,
        now: u64,
        fx: &mut Effects<PaxosMsg>,
    ) -> Result<Self, BootError> {
        boot.start(
            Replica::new(Config::from_settings(s)?),
            |r, records| r.restore(records),
            |r| {
                r.start_recovery(now, fx);
                Ok(())
            },
        )
    }

    genericsmr::inherent!(handle, propose, be_leader, accepting, tick, flush);
    genericsmr::inherent!(status, log, committed_from, snapshot, snapshots);
}
