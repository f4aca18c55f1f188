//! Log compaction and state transfer below the compaction point.
//!
//! Once `keep_executed + compact_every` slots are executed above the base,
//! the replica drops every slot below `executed - keep_executed` (they are
//! executed, and their effect lives in the state machine). A durable replica
//! also compacts its durable log at the same time: the snapshot at its
//! executed point (state machine image plus that slot number) becomes the
//! base record ([`genericsmr::snapshot::Source::compact`], written off the
//! event loop), followed by the records still needed
//! above it: the promise and every vote or chosen value at or above the
//! executed point.
//!
//! A peer asking for a slot below the base (a catch-up request, or a phase-1
//! Prepare from a candidate whose commit index is that low) is answered
//! [`Compacted`], never silence. It fetches this replica's snapshot through
//! the shared mechanism of [`genericsmr::snapshot`] and installs it in one
//! handler: state machine swapped, executed and commit index set to the
//! snapshot's slot, slots below dropped; ordinary catch-up continues above.

use bytes::BytesMut;
use genericsmr::effects::Effects;
use genericsmr::snapshot::Snapshot;
use genericsmr::wire::{Marshal, WireError};
use genericsmr::ReplicaId;

use crate::messages::PaxosMsg;
use crate::multi::snapshot::Snapshots;
use crate::replica::Replica;

impl Snapshots for Replica {
    /// The executed point (the state machine image comes first).
    fn write_part(&self, out: &mut BytesMut) {
        self.px.executed.marshal(out);
    }

    fn snapshot_slot(snap: &Snapshot) -> Result<u64, WireError> {
        snap.slot()
    }

    /// Swaps the state machine and drops every slot below the snapshot's
    /// point, which becomes the executed point.
    fn load_snapshot(&mut self, snap: &Snapshot) -> Result<(), WireError> {
        let slot = snap.slot()?;
        let sm = snap.state_machine(&self.px.sm)?;
        if slot < self.px.executed {
            return Ok(()); // older than what we executed: nothing to take
        }
        self.px.rebase(slot, sm);
        Ok(())
    }

    /// Executes what is chosen above the snapshot, and keeps fetching from
    /// `from` while behind.
    fn after_install(&mut self, now: u64, from: ReplicaId, fx: &mut Effects<PaxosMsg>) {
        self.advance(fx);
        if self.px.commit_index < self.px.known_commit {
            self.fetch_from(now, from, fx);
        }
    }

    fn compaction(&self) -> crate::log::Compaction {
        self.cfg.group.compaction
    }
}
