//! EPaxos on the protocol seam: how the runtime, the simulator and the
//! registry see [`Replica`].

use genericsmr::broken::variant;
use genericsmr::effects::Effects;
use genericsmr::knobs::Knobs;
use genericsmr::protocol::{BootError, Caps, Protocol, Registrar, Settings};

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
            record_commits: Some(&mut cfg.record_commits),
            max_command_bytes: Some(&mut cfg.max_command_bytes),
            dedup: Some(&mut cfg.dedup),
            window: Some(&mut cfg.max_ahead),
            keep_executed: Some(&mut cfg.keep_executed),
            compact_every: Some(&mut cfg.compact_every),
            compact_bytes: Some(&mut cfg.compact_bytes),
            transfer: Some(&mut cfg.transfer),
            pipeline: Some(&mut cfg.max_queued),
            ..Knobs::default()
        });
        // Instances in flight stay within the window too.
        if let Some(w) = s.window {
            cfg.max_inflight = cfg.max_inflight.min(w as usize);
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
    const CAPS: Caps = Caps::LEADERLESS;
    type Msg = EpaxosMsg;

    const CODES: &'static [(u8, &'static str)] = &CODES;

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

    /// Its votes are gone; the caller refuses this unless the group is new
    /// to it (see `Rejoin::NeedsVotes`).
    fn rejoin(&mut self, _now: u64, _fx: &mut Effects<EpaxosMsg>) -> Result<(), BootError> {
        Ok(())
    }

    genericsmr::inherent!(
        fresh, replay, handle, propose, status, log, tick, flush, snapshot, accepting
    );

    /// Every replica leads its own commands: nothing to do.
    fn be_leader(&mut self, _now: u64, _hint: bool, _fx: &mut Effects<EpaxosMsg>) {}

    fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
        self.commits_from(from).to_vec()
    }

    fn snapshots(&self) -> (u64, u64) {
        Replica::snapshots(self)
    }
}
