//! Journal compaction and state transfer below the compaction point, on the
//! shared log ([`paxos::log`]) and the shared transfer ([`genericsmr::snapshot`]).
//!
//! A snapshot is the state at the executed point: the state machine image,
//! plus what executing the journal built besides (committed but unordered
//! operations, tombstones, admission counters, fences, the shard timestamp,
//! and the timestamps kept for late coordination requests). Once enough is
//! executed ([`paxos::log::Compaction`]), the journal below
//! `executed - keep_executed` is dropped; a durable replica rewrites its log
//! as that snapshot plus the records above it. A peer asking for a compacted
//! slot (catch-up, or the Prepare of a candidate that far behind) is answered
//! [`Compacted`] and fetches the snapshot. Leader state (operations in
//! flight) is never in a snapshot: a replica installs one only as a follower.

use bytes::BytesMut;
use genericsmr::command::Command;
use genericsmr::effects::Effects;
use genericsmr::snapshot::{self, Snapshot};
use genericsmr::wire::{Marshal, Unmarshal, WireError};
use genericsmr::{wire_struct, ReplicaId};

use crate::messages::{MdlMsg, OpId, Pred};
use crate::replica::Replica;
use paxos::multi::snapshot::Snapshots;

/// A committed operation not yet ordered (round 1 chosen).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unordered {
    /// The operation.
    cmd: Command,
    /// Its per (client, shard) admission counter.
    shard_seq: u64,
    /// Its chain predecessor.
    pred: Option<Pred>,
}
wire_struct!(Unordered {
    cmd,
    shard_seq,
    pred
});

/// A client's next admission counter on this shard.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NextSeq {
    /// The client.
    client: u64,
    /// Its next `shard_seq`.
    next: u64,
}
wire_struct!(NextSeq { client, next });

/// A timestamp kept for late coordination requests (see `Replica::remember`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    /// The operation safe to follow.
    op: OpId,
    /// Its timestamp.
    ts: u64,
    /// The predecessor it succeeded, if any.
    pred: Option<OpId>,
}
wire_struct!(Known { op, ts, pred });

/// What an MDLin snapshot holds besides the state machine image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    /// The executed point: every slot below is in the snapshot.
    slot: u64,
    /// Committed, unordered operations.
    unordered: Vec<Unordered>,
    /// Failed operations.
    failed: Vec<OpId>,
    /// Admission counters.
    next_seq: Vec<NextSeq>,
    /// Timestamps kept for late requests, oldest first.
    known: Vec<Known>,
    /// The shard timestamp.
    shard_ts: u64,
    /// The fence per shard.
    fences: Vec<u64>,
}
wire_struct!(Part {
    slot,
    unordered,
    failed,
    next_seq,
    known,
    shard_ts,
    fences
});

impl Snapshots for Replica {
    /// The state at the executed point. Sorted wherever a map is behind
    /// it, so equal states give equal bytes.
    fn write_part(&self, out: &mut BytesMut) {
        let mut unordered: Vec<_> = self.unordered.iter().collect();
        unordered.sort_unstable_by_key(|(op, _)| **op);
        let mut failed: Vec<OpId> = self.failed.iter().copied().collect();
        failed.sort_unstable();
        let mut next_seq: Vec<_> = self
            .next_shard_seq
            .iter()
            .map(|(c, n)| NextSeq {
                client: *c,
                next: *n,
            })
            .collect();
        next_seq.sort_unstable_by_key(|n| n.client);
        let known = self
            .known_order
            .iter()
            .filter_map(|(_, op, pred)| {
                Some(Known {
                    op: *op,
                    ts: *self.known_ts.get(op)?,
                    pred: *pred,
                })
            })
            .collect();
        let part = Part {
            slot: self.px.executed,
            unordered: unordered
                .into_iter()
                .map(|(_, (cmd, shard_seq, pred))| Unordered {
                    cmd: cmd.clone(),
                    shard_seq: *shard_seq,
                    pred: *pred,
                })
                .collect(),
            failed,
            next_seq,
            known,
            shard_ts: self.shard_ts,
            fences: self.fences.clone(),
        };
        part.marshal(out);
    }

    fn snapshot_slot(snap: &Snapshot) -> Result<u64, WireError> {
        Ok(snapshot::read_protocol(&snap.protocol, Part::unmarshal)?.slot)
    }

    /// Takes the state of `snap` (at restart from the snapshot file, or when
    /// installing a peer's): the state machine and everything execution
    /// built, and the journal from the snapshot's point on.
    fn load_snapshot(&mut self, snap: &Snapshot) -> Result<(), WireError> {
        let part = snapshot::read_protocol(&snap.protocol, Part::unmarshal)?;
        let sm = snap.state_machine(&self.px.sm)?;
        if part.slot < self.px.executed {
            return Ok(()); // older than what we executed: nothing to take
        }
        if part.fences.len() != self.cfg.shards {
            return Err(WireError::Invalid {
                what: "snapshot fences (one per shard)",
                value: part.fences.len() as u64,
            });
        }
        self.unordered = part
            .unordered
            .into_iter()
            .map(|u| (OpId::of(&u.cmd), (u.cmd, u.shard_seq, u.pred)))
            .collect();
        self.failed = part.failed.into_iter().collect();
        self.next_shard_seq = part
            .next_seq
            .into_iter()
            .map(|n| (n.client, n.next))
            .collect();
        self.known_ts.clear();
        self.succ_index.clear();
        self.known_order.clear();
        let now = self.px.now;
        for k in part.known {
            self.remember(now, k.op, k.ts, k.pred);
        }
        self.shard_ts = part.shard_ts;
        self.fences = part.fences;
        let slot = part.slot;
        self.px.rebase(slot, sm);
        self.early_accepts = self.early_accepts.split_off(&slot);
        self.px.advance_commit();
        Ok(())
    }

    /// Catches up from the shard's leader above the snapshot.
    fn after_install(&mut self, now: u64, _from: ReplicaId, fx: &mut Effects<MdlMsg>) {
        self.px.catchup_at = None;
        self.catch_up(now, fx);
    }

    fn compaction(&self) -> paxos::log::Compaction {
        self.cfg.group.compaction
    }
}

impl Replica {
    /// Compacts the journal once enough is executed, and the durable log
    /// with it (every vote kept: MDLin has no variant that forgets them).
    pub(crate) fn maybe_compact(&mut self, fx: &mut Effects<MdlMsg>) {
        if self.compact_log(fx) {
            // Accepts held for the prefix rule below the base will never be voted.
            self.early_accepts = self.early_accepts.split_off(&self.px.log.base());
        }
    }
}
