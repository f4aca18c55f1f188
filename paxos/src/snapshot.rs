//! Log compaction and state transfer below the compaction point.
//!
//! Once `keep_executed + compact_every` slots are executed above the base,
//! the replica drops every slot below `executed - keep_executed` (they are
//! executed, and their effect lives in the state machine). A durable replica
//! also compacts its durable log at the same time: the snapshot at its
//! executed point (state machine image plus that slot number) becomes the
//! base record ([`Effects::compact`]), followed by the records still needed
//! above it: the promise and every vote or chosen value at or above the
//! executed point.
//!
//! A peer asking for a slot below the base (a catch-up request, or a phase-1
//! Prepare from a candidate whose commit index is that low) is answered
//! [`Compacted`], never silence. It fetches this replica's snapshot through
//! the shared mechanism of [`genericsmr::snapshot`] and installs it in one
//! handler: state machine swapped, executed and commit index set to the
//! snapshot's slot, slots below dropped; ordinary catch-up continues above.

use bytes::Bytes;
use genericsmr::effects::Effects;
use genericsmr::snapshot::{self, Compacted, Snapshot, SnapshotChunk, SnapshotRequest};
use genericsmr::wire::WireError;
use genericsmr::ReplicaId;

use crate::messages::PaxosMsg;
use crate::replica::{Replica, Role};

impl Replica {
    /// This replica's snapshot: its state machine at its executed point.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.px.sm, &self.px.executed)
    }

    /// Compacts once enough is executed (see [`crate::Config::compact_every`]).
    pub(crate) fn maybe_compact(&mut self, fx: &mut Effects<PaxosMsg>) {
        if !self
            .px
            .log
            .maybe_compact(self.px.executed, &self.cfg.compaction())
        {
            return;
        }
        self.px.compactions += 1;
        if fx.keeps_records() {
            let snap = self.snapshot().to_bytes();
            self.compact_durable(snap, fx);
        }
    }

    /// Asks the driver to replace the durable log by `snap` (a snapshot at
    /// the executed point) and the records still needed above it.
    fn compact_durable(&mut self, snap: Bytes, fx: &mut Effects<PaxosMsg>) {
        let (keep, executed, promised) = (self.keeps_votes(), self.px.executed, self.px.promised);
        self.px
            .log
            .compact_durable(snap, executed, promised, keep, fx);
    }

    /// Tells `to` that `slot` is compacted here.
    pub(crate) fn compacted(&self, to: ReplicaId, slot: u64, fx: &mut Effects<PaxosMsg>) {
        fx.send(to, PaxosMsg::Compacted(Compacted { what: slot }));
    }

    /// A peer compacted a slot this replica asked about: fetch its snapshot
    /// (a candidate that far behind stops campaigning first).
    pub fn handle_compacted(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: Compacted,
        fx: &mut Effects<PaxosMsg>,
    ) {
        self.heard(from, now);
        if m.what < self.px.executed {
            return; // an old answer: we have that slot by now
        }
        if matches!(self.role, Role::Candidate(_)) {
            tracing::info!(
                peer = from,
                commit_index = self.px.commit_index,
                "too far behind to lead: fetching a snapshot instead"
            );
            self.step_down(fx);
        }
        self.px.fetch.ask(now, from, PaxosMsg::SnapshotRequest, fx);
    }

    /// A peer asks for this replica's snapshot: it goes in chunks.
    pub fn handle_snapshot_request(
        &mut self,
        from: ReplicaId,
        m: SnapshotRequest,
        fx: &mut Effects<PaxosMsg>,
    ) {
        let cfg = self.cfg.transfer;
        if cfg.answer(from, &m, &self.snapshot(), PaxosMsg::SnapshotChunk, fx) {
            self.px.snapshots_sent += 1;
        }
    }

    /// A piece of the snapshot this replica asked for; the last one installs
    /// it, and ordinary catch-up goes on above it.
    pub fn handle_snapshot_chunk(
        &mut self,
        now: u64,
        from: ReplicaId,
        c: SnapshotChunk,
        fx: &mut Effects<PaxosMsg>,
    ) {
        self.heard(from, now);
        let Some(snap) = self.px.fetch.receive(now, from, c) else {
            return;
        };
        let done = self.install(&snap, fx);
        if snapshot::installed(from, done) && self.px.commit_index < self.px.known_commit {
            self.fetch_from(now, from, fx);
        }
    }

    /// Installs `snap` if it is ahead of what this replica executed; persists
    /// it first (a durable compaction at its point). Returns whether it was
    /// installed.
    pub(crate) fn install(
        &mut self,
        snap: &Snapshot,
        fx: &mut Effects<PaxosMsg>,
    ) -> Result<bool, WireError> {
        let slot = snap.slot()?;
        if slot <= self.px.executed {
            return Ok(false);
        }
        self.load_snapshot(snap)?;
        self.px.snapshots_installed += 1;
        if let Role::Leader { next_slot, .. } = &mut self.role {
            *next_slot = (*next_slot).max(slot);
        }
        if matches!(self.role, Role::Candidate(_)) {
            // Its phase-1 reports start below the snapshot: campaign afresh later.
            self.step_down(fx);
        }
        if fx.keeps_records() {
            self.compact_durable(snap.to_bytes(), fx);
        }
        snapshot::answer_waiting(&self.px.sm, self.cfg.id, &mut self.waiting, fx);
        self.advance(fx);
        Ok(true)
    }

    /// Takes the state of `snap` (at restart from the snapshot file, or when
    /// installing a peer's): swaps the state machine and drops every slot
    /// below the snapshot's point, which becomes the executed point.
    pub(crate) fn load_snapshot(&mut self, snap: &Snapshot) -> Result<(), WireError> {
        let slot = snap.slot()?;
        let sm = snap.state_machine(&self.px.sm)?;
        if slot < self.px.executed {
            return Ok(()); // older than what we executed: nothing to take
        }
        self.px.log.rebase(slot);
        self.px.sm = sm;
        self.px.executed = slot;
        self.px.commit_index = self.px.commit_index.max(slot);
        self.px.known_commit = self.px.known_commit.max(slot);
        self.px.announced = self.px.announced.max(slot);
        Ok(())
    }
}
