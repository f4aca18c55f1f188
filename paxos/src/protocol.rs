//! Multi-Paxos on the protocol seam: how the runtime, the simulator and the
//! registry see [`Replica`].

use genericsmr::broken::variant;
use genericsmr::effects::Effects;
use genericsmr::knobs::Knobs;
use genericsmr::protocol::{BootError, Caps, Protocol, Registrar, Rejoin, Settings};

use crate::broken::Broken;
use crate::messages::*;
use crate::multi::config::GroupConfig;
use crate::replica::{Config, Replica};

impl Config {
    /// The configuration `s` asks for (the defaults of [`Config::new`] where
    /// it is silent).
    pub fn from_settings(s: &Settings) -> Result<Config, BootError> {
        s.check_params(Replica::NAME, &[])?;
        let mut cfg = Config::new(s.id, s.n);
        cfg.group = GroupConfig::from_settings(s.id, s.n, s);
        s.apply(Knobs {
            batch: Some(&mut cfg.batch),
            batch_max: Some(&mut cfg.batch_max),
            reply_after_exec: Some(&mut cfg.reply_after_exec),
            max_command_bytes: Some(&mut cfg.max_command_bytes),
            batch_bytes: Some(&mut cfg.max_batch_bytes),
            ..Knobs::default()
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

    const CODES: &'static [(u8, &'static str)] = &CODES;

    fn register(r: &mut Registrar<'_, PaxosMsg>) {
        PaxosMsg::register_peers(r);
    }

    /// It recovers what it may have promised from a majority first.
    fn rejoin(&mut self, now: u64, fx: &mut Effects<PaxosMsg>) -> Result<(), BootError> {
        self.start_recovery(now, fx);
        Ok(())
    }

    genericsmr::inherent!(fresh, replay, handle, propose, be_leader, accepting, tick, flush);
    genericsmr::inherent!(status, log, committed_from, snapshot, snapshots);
}
