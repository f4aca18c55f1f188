//! Raft on the protocol seam: how the runtime, the simulator and the
//! registry see [`Replica`].

use genericsmr::broken::variant;
use genericsmr::effects::Effects;
use genericsmr::knobs::Knobs;
use genericsmr::protocol::{Boot, BootError, Caps, Protocol, Registrar, Settings};

use crate::broken::Broken;
use crate::messages::*;
use crate::replica::{Config, Replica};

impl Config {
    /// The configuration `s` asks for (the defaults of [`Config::new`]
    /// where it is silent).
    pub fn from_settings(s: &Settings) -> Result<Config, BootError> {
        s.check_params(Replica::NAME, &[])?;
        if s.n == 0 || s.n > genericsmr::MAX_REPLICAS || s.id as usize >= s.n {
            return Err(BootError::Settings(format!(
                "replica {} of a group of {}",
                s.id, s.n
            )));
        }
        let mut cfg = Config::new(s.id, s.n);
        s.apply(Knobs {
            batch: Some(&mut cfg.batch),
            batch_max: Some(&mut cfg.batch_max),
            reply_after_exec: Some(&mut cfg.reply_after_exec),
            max_command_bytes: Some(&mut cfg.max_command_bytes),
            batch_bytes: Some(&mut cfg.max_msg_bytes),
            dedup: Some(&mut cfg.dedup),
            election_timeout_ns: Some(&mut cfg.election_timeout_ns),
            hint_quiet_ns: Some(&mut cfg.hint_quiet_ns),
            keep_executed: Some(&mut cfg.keep_executed),
            compact_every: Some(&mut cfg.compact_every),
            compact_bytes: Some(&mut cfg.compact_bytes),
            transfer: Some(&mut cfg.transfer),
            ..Knobs::default()
        });
        // Heartbeats well within an election timeout.
        if let Some(v) = s.election_timeout_ns {
            cfg.heartbeat_ns = cfg.heartbeat_ns.min((v / 5).max(1));
        }
        match variant(s, Replica::NAME, crate::broken::BUILT, Broken::named)? {
            Some(Broken::NoPreVote) => cfg.pre_vote = false,
            Some(Broken::NoCheckQuorum) => cfg.check_quorum = false,
            None => {}
        }
        Ok(cfg)
    }
}

impl Replica {
    /// Starts a replica with `cfg` at `now` as [`Protocol::boot`] does (for
    /// tests that set the configuration directly). The election timer's
    /// draws are seeded from the replica's id and the boot time: every life
    /// of a replica draws differently, and a simulated run (virtual time)
    /// still replays exactly.
    pub fn boot_with(cfg: Config, boot: Boot, now: u64) -> Result<Replica, BootError> {
        boot.start(Replica::seeded(cfg, now), now, &mut Effects::default())
    }

    /// A fresh replica with `cfg` whose election timer is seeded from its id
    /// and `now`.
    fn seeded(cfg: Config, now: u64) -> Replica {
        let seed = (cfg.id as u64) ^ now.rotate_left(8);
        let mut r = Replica::new(cfg);
        r.election = genericsmr::election::ElectionTimer::new(seed, r.cfg.election_timeout_ns);
        r
    }
}

impl Protocol for Replica {
    const NAME: &'static str = "raft";
    const ABOUT: &'static str =
        "Raft: an elected leader replicates its log (PreVote, CheckQuorum, leadership transfer)";
    const CAPS: Caps = Caps::ELECTED_LEADER;
    type Msg = RaftMsg;

    const CODES: &'static [(u8, &'static str)] = &CODES;

    fn register(r: &mut Registrar<'_, RaftMsg>) {
        r.peer(RaftMsg::RequestVote);
        r.peer(RaftMsg::RequestVoteReply);
        r.peer(RaftMsg::AppendEntries);
        r.peer(RaftMsg::AppendEntriesReply);
        r.peer(RaftMsg::TimeoutNow);
        r.peer(RaftMsg::HandOver);
        r.snapshots(
            RaftMsg::Compacted,
            RaftMsg::SnapshotRequest,
            RaftMsg::SnapshotChunk,
        );
    }

    fn fresh(s: &Settings, now: u64) -> Result<Self, BootError> {
        Ok(Replica::seeded(Config::from_settings(s)?, now))
    }

    // Without its term, vote and log it refuses to rejoin (the default).
    genericsmr::inherent!(replay, handle, propose, status, log, tick, flush, snapshot);

    fn be_leader(&mut self, now: u64, hint: bool, fx: &mut Effects<RaftMsg>) {
        self.handle_be_leader(now, hint, fx)
    }

    fn snapshots(&self) -> (u64, u64) {
        (self.snapshots_installed, self.snapshots_sent)
    }

    fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
        self.committed_entries(from)
    }
}
