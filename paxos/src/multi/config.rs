//! The settings every protocol on the shared Multi-Paxos log has, with
//! their defaults and how the server's shared settings set them, written
//! once. Each protocol's `Config` holds one [`GroupConfig`] beside what is
//! its own.

use genericsmr::knobs::Knobs;
use genericsmr::protocol::Settings;
use genericsmr::snapshot::TransferConfig;
use genericsmr::state::Limits;
use genericsmr::ReplicaId;

use crate::log::Compaction;

/// The Multi-Paxos settings of one replica of a group.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// This replica's id (global across shards when the protocol is sharded).
    pub id: ReplicaId,
    /// Replicas in the group (2F+1; per shard when sharded).
    pub n: usize,
    /// Send phase-2 messages to a bare majority only, falling back to all
    /// on retransmission.
    pub thrifty: bool,
    /// Resend unanswered Accept and Prepare messages after this many
    /// nanoseconds.
    pub retransmit_ns: u64,
    /// A leader sends a heartbeat (a `CommitShort`) at least this often.
    pub heartbeat_ns: u64,
    /// Election timeout `T`, nanoseconds: a follower that hears nothing from
    /// the leader (no Accept, Commit or heartbeat) for a random time in
    /// `[T, 2T)` runs phase 1 itself (see [`genericsmr::election`]). 0 turns
    /// elections off (leaders then change only when asked to, by the master
    /// or an operator). It must stay well above `heartbeat_ns` plus the
    /// worst scheduling delay, or a loaded machine sees needless elections.
    pub election_timeout_ns: u64,
    /// On the master's hint that it lost the leader
    /// ([`genericsmr::messages::BeLeader::is_hint`]), a follower campaigns
    /// once it has not heard the leader itself for this long (a few
    /// heartbeats) rather than a whole election timeout: a killed leader is
    /// replaced about as fast as when the master drove failover, while a
    /// leader still heard is never deposed.
    pub hint_quiet_ns: u64,
    /// When the log is compacted (in memory, and on disk when durable):
    /// executed slots kept for peers catching up slot by slot, how often,
    /// and the byte bound (`--gc-horizon`, `--compact-mb`,
    /// `--snapshot-ratio`). A peer behind the compaction point is answered
    /// `Compacted` and fetches a snapshot.
    pub compaction: Compaction,
    /// Snapshot transfer: chunk size, largest snapshot, retry timeout.
    pub transfer: TransferConfig,
    /// How far past its commit index a replica takes slot numbers from peers
    /// (Accepts, Commits, catch-up, phase-1 reports), so that a confused or
    /// hostile peer cannot size its log. A leader opens no slot past it, and
    /// a candidate that hears of one steps down and catches up instead of
    /// leading. A setting so that tests cross it in a few hundred slots;
    /// every replica of a group should use the same value.
    pub slot_window: u64,
    /// Most commands (and slots) a leader has proposed and not yet seen
    /// chosen; at the bound it takes no more client requests until some
    /// are, so a load
    /// above what the followers keep up with waits in TCP instead of
    /// growing the log (`--pipeline`, see `Protocol::accepting`).
    pub pipeline: u64,
    /// Bounds of the state machine's dedup table (`--max-gaps`,
    /// `--max-far`).
    pub dedup: Limits,
}

impl GroupConfig {
    /// Defaults for replica `id` of a group of `n`.
    pub fn new(id: ReplicaId, n: usize) -> Self {
        GroupConfig {
            id,
            n,
            thrifty: false,
            retransmit_ns: 200_000_000,
            heartbeat_ns: 50_000_000,
            election_timeout_ns: 1_000_000_000,
            hint_quiet_ns: 200_000_000,
            compaction: Compaction::default(),
            transfer: TransferConfig::default(),
            slot_window: 1 << 22,
            pipeline: 8192,
            dedup: Limits::default(),
        }
    }

    /// The defaults for replica `id` of `n` with what `s` sets of these
    /// (`--gc-horizon` sets both how much is kept and how often compaction
    /// runs, so short simulated runs compact many times).
    pub fn from_settings(id: ReplicaId, n: usize, s: &Settings) -> Self {
        let mut c = GroupConfig::new(id, n);
        let k = &mut c.compaction;
        s.apply(Knobs {
            thrifty: Some(&mut c.thrifty),
            election_timeout_ns: Some(&mut c.election_timeout_ns),
            hint_quiet_ns: Some(&mut c.hint_quiet_ns),
            keep_executed: Some(&mut k.keep_executed),
            compact_every: Some(&mut k.compact_every),
            compact_bytes: Some(&mut k.compact_bytes),
            snapshot_ratio: Some(&mut k.snapshot_ratio),
            transfer: Some(&mut c.transfer),
            window: Some(&mut c.slot_window),
            pipeline: Some(&mut c.pipeline),
            dedup: Some(&mut c.dedup),
            ..Knobs::default()
        });
        c
    }

    /// Votes needed for a quorum (a majority of the group, counting this
    /// replica).
    pub fn quorum(&self) -> usize {
        self.n / 2 + 1
    }
}
