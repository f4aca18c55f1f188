//! Restart from the durable log: the journal and the promise come back from
//! the records, everything else from executing the chosen journal again.
//!
//! What a restarted replica lacks is leader state only (operations in
//! flight, coordination replies and requests held, fast-mode timestamps not
//! yet ordered, fences being proposed): it restarts as a follower, and a
//! leader elected later rebuilds that state by the failover procedure, as
//! when any other replica takes over. The replicated cross-shard state
//! (fences, ordered timestamps, the shard timestamp, tombstones, admission
//! counters) comes from execution. The persisted promise keeps its next
//! ballots above every one it used, so the other shards' fences and
//! leader announcements (which keep the highest ballot) still admit it.

use bytes::Bytes;
use genericsmr::effects::Effects;
use genericsmr::wire::{decode_body, WireError};

use genericsmr::snapshot::Snapshot;

use crate::messages::{MdlMsg, Record};
use crate::replica::Replica;
use paxos::multi::snapshot::Snapshots;

/// Most slots one record may reach beyond the journal replayed so far (a
/// bound on what a damaged record can make the replica allocate).
const MAX_SLOT_AHEAD: u64 = 1 << 21;

/// Why the durable log cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A record does not decode.
    #[error("record {index}: {source}")]
    Decode {
        /// Its position in the log.
        index: usize,
        /// What is wrong with it.
        source: WireError,
    },
    /// A record names a slot far beyond the journal.
    #[error("record {index} names slot {slot}, beyond the journal's end at slot {len}")]
    SlotOutOfReach {
        /// Its position in the log.
        index: usize,
        /// The slot it names.
        slot: u64,
        /// The journal's end when it was replayed.
        len: u64,
    },
}

impl Replica {
    /// Rebuilds the journal and the promise from durable records (oldest
    /// first), then executes the chosen prefix without replying to anyone.
    /// The replica stays a follower and catches up from its shard's leader.
    pub fn restore(&mut self, now: u64, records: &[Bytes]) -> Result<(), RestoreError> {
        self.px.now = now;
        for (index, r) in records.iter().enumerate() {
            let rec = decode_body::<Record>(r.clone())
                .map_err(|source| RestoreError::Decode { index, source })?;
            let slot = match &rec {
                Record::Promise { .. } | Record::Snapshot(_) => None,
                Record::Accepted { slot, .. }
                | Record::CommitMark { slot }
                | Record::Chosen { slot, .. } => Some(*slot),
            };
            if let Some(slot) = slot {
                let len = self.px.log.end();
                if slot > len.saturating_add(MAX_SLOT_AHEAD) {
                    return Err(RestoreError::SlotOutOfReach { index, slot, len });
                }
            }
            if let Some(b) = self.px.log.replay(rec, &mut self.px.promised) {
                // The snapshot file's base record: the state at its point.
                let snap = Snapshot::from_bytes(b)
                    .map_err(|source| RestoreError::Decode { index, source })?;
                self.load_snapshot(&snap)
                    .map_err(|source| RestoreError::Decode { index, source })?;
            }
        }
        self.px.advance_commit();
        self.px.replayed = records.len() as u64;
        // A follower executes without replying or coordinating: nothing to send.
        let mut fx: Effects<MdlMsg> = Effects::without_persistence();
        self.execute(now, &mut fx);
        if !fx.sends.is_empty() || !fx.replies.is_empty() {
            tracing::warn!(
                sends = fx.sends.len(),
                replies = fx.replies.len(),
                "replaying the journal queued messages; dropped"
            );
        }
        tracing::info!(
            records = records.len(),
            promised = self.px.promised,
            commit_index = self.px.commit_index,
            journal_base = self.px.log.base(),
            journal_end = self.px.log.end(),
            "restored the journal from the durable log"
        );
        Ok(())
    }
}
