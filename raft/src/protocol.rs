//! Raft on the protocol seam: how the runtime, the simulator and the
//! registry see [`Replica`].

use genericsmr::broken::variant;
use genericsmr::effects::Effects;
use genericsmr::messages::{LogReply, LogRequest};
use genericsmr::protocol::{Boot, BootError, Caps, Protocol, Registrar, Rejoin, Settings};

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
        cfg.batch = s.batch;
        cfg.reply_after_exec = s.reply_after_exec;
        if let Some(v) = s.batch_max {
            cfg.batch_max = v;
        }
        if let Some(v) = s.max_command {
            cfg.max_command_bytes = v;
        }
        if let Some(v) = s.max_frame {
            cfg.max_msg_bytes = v / 4;
        }
        if let Some(v) = s.max_gaps {
            cfg.dedup.max_gaps = v;
        }
        if let Some(v) = s.election_timeout_ns {
            cfg.election_timeout_ns = v;
            // Heartbeats well within an election timeout.
            cfg.heartbeat_ns = cfg.heartbeat_ns.min((v / 5).max(1));
        }
        if let Some(v) = s.hint_quiet_ns {
            cfg.hint_quiet_ns = v;
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
        if let Some(v) = s.snapshot_chunk {
            cfg.transfer.chunk_bytes = v;
        }
        if let Some(v) = s.snapshot_timeout_ns {
            cfg.transfer.timeout_ns = v;
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
        let seed = (cfg.id as u64) ^ now.rotate_left(8);
        let mut r = Replica::new(cfg);
        r.election = genericsmr::election::ElectionTimer::new(seed, r.cfg.election_timeout_ns);
        match boot {
            Boot::Fresh => {}
            Boot::Durable(records) => r
                .restore(&records)
                .map_err(|e| BootError::Replay(e.to_string()))?,
            Boot::Amnesia => {
                return Err(BootError::Settings(
                    "a Raft replica cannot rejoin without its term, vote and log: restart it with --durable and its data folder".into(),
                ))
            }
        }
        Ok(r)
    }
}

impl Protocol for Replica {
    const NAME: &'static str = "raft";
    const ABOUT: &'static str =
        "Raft: an elected leader replicates its log (PreVote, CheckQuorum, leadership transfer)";
    const CAPS: Caps = Caps {
        leaderless: false,
        elects: true,
        durable: true,
        rejoin: Rejoin::NeedsVotes,
        sharded_mesh: false,
        multi_dispatch: false,
    };
    type Msg = RaftMsg;

    fn codes() -> &'static [(u8, &'static str)] {
        &CODES
    }

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

    fn boot(
        s: &Settings,
        boot: Boot,
        now: u64,
        _fx: &mut Effects<RaftMsg>,
    ) -> Result<Self, BootError> {
        Replica::boot_with(Config::from_settings(s)?, boot, now)
    }

    genericsmr::inherent!(handle, propose, status, tick, flush, snapshot);

    fn be_leader(&mut self, now: u64, hint: bool, fx: &mut Effects<RaftMsg>) {
        self.handle_be_leader(now, hint, fx)
    }

    fn log(&self, m: &LogRequest) -> LogReply {
        self.log_reply(m)
    }

    fn snapshots(&self) -> (u64, u64) {
        (self.snapshots_installed, self.snapshots_sent)
    }

    fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
        self.committed_entries(from)
    }
}
