//! Compaction and snapshot transfer on the shared log, written once as
//! provided methods of [`Snapshots`]: a replica compacts its log (and its
//! durable log) once enough is executed, answers a peer asking for a slot
//! below its base with [`Compacted`], and a replica told so fetches the
//! peer's snapshot through [`genericsmr::snapshot`] and installs it as a
//! follower. What a snapshot holds besides the state machine, and what
//! follows an install, is each protocol's own.

use bytes::BytesMut;
use genericsmr::effects::Effects;
use genericsmr::snapshot::{
    self, Capture, Compacted, Snapshot, SnapshotChunk, SnapshotRequest, Source,
};
use genericsmr::wire::{Encoded, WireError};
use genericsmr::ReplicaId;

use crate::log::{Compaction, Trim};
use crate::multi::host::Host;

/// A replica on the shared log that compacts it and moves snapshots.
pub trait Snapshots: Host {
    /// Appends what its snapshot holds besides the state machine (at
    /// least the executed point the snapshot is taken at).
    fn write_part(&self, out: &mut BytesMut);
    /// Its state at its executed point, taken to be encoded later: a
    /// compaction writes it off the event loop.
    fn capture(&self) -> Capture {
        Capture::of(
            &self.px().sm,
            &Encoded(|b: &mut BytesMut| self.write_part(b)),
        )
    }
    /// Its snapshot: its state at its executed point, encoded now (for a
    /// peer that asked; no copy of the state is taken first).
    fn current_snapshot(&self) -> Snapshot {
        Snapshot::of(
            &self.px().sm,
            &Encoded(|b: &mut BytesMut| self.write_part(b)),
        )
    }
    /// The executed point `snap` was taken at.
    fn snapshot_slot(snap: &Snapshot) -> Result<u64, WireError>;
    /// Takes the state of `snap` (see [`crate::multi::state::State::rebase`]
    /// for the shared part); nothing if it is older than what is executed.
    fn load_snapshot(&mut self, snap: &Snapshot) -> Result<(), WireError>;
    /// What follows a snapshot from `from` installed: execution and
    /// catch-up above it.
    fn after_install(&mut self, now: u64, from: ReplicaId, fx: &mut Effects<Self::Msg>);
    /// When the log is compacted.
    fn compaction(&self) -> Compaction;

    /// Compacts the log once enough is executed (see [`Compaction`]), and
    /// the durable log with it. Whether it compacted.
    fn compact_log(&mut self, fx: &mut Effects<Self::Msg>) -> bool {
        let c = self.compaction();
        let p = self.px_mut();
        let trim = p.log.maybe_compact(p.executed, &c);
        if trim == Trim::No {
            return false;
        }
        p.compactions += 1;
        if trim == Trim::Durable && fx.keeps_records() {
            let snap = self.capture();
            self.compact_durable(Source::Captured(Box::new(snap)), fx);
        }
        true
    }

    /// Asks the driver to replace the durable log by `snap` (a snapshot at
    /// the executed point) and the records still needed above it.
    fn compact_durable(&mut self, snap: Source, fx: &mut Effects<Self::Msg>) {
        let keep = self.keeps_votes();
        let p = self.px_mut();
        p.log
            .compact_durable(snap, p.executed, p.promised, keep, fx);
    }

    /// A peer compacted a slot this replica asked about: fetch its snapshot.
    /// A leader or candidate that far behind steps down first (it installs
    /// only as a follower, and cannot lead without the chosen prefix).
    fn handle_compacted(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: Compacted,
        fx: &mut Effects<Self::Msg>,
    ) {
        if !self.admit(from, now) || m.what < self.px().executed {
            return; // not a peer, or an old answer: we have that slot by now
        }
        if self.own_ballot().is_some() {
            tracing::info!(
                peer = from,
                commit_index = self.px().commit_index,
                "behind a peer's compaction point: stepping down to fetch its snapshot"
            );
            self.step_down(fx);
        }
        self.px_mut()
            .fetch
            .ask(now, from, Self::snapshot_request_msg, fx);
    }

    /// A peer asks for this replica's snapshot: it goes in chunks.
    fn handle_snapshot_request(
        &mut self,
        from: ReplicaId,
        m: SnapshotRequest,
        fx: &mut Effects<Self::Msg>,
    ) {
        if !self.is_peer(from) {
            return;
        }
        let cfg = self.transfer();
        let snap = self.current_snapshot();
        if cfg.answer(from, &m, &snap, Self::snapshot_chunk_msg, fx) {
            self.px_mut().snapshots_sent += 1;
        }
    }

    /// A piece of the snapshot this replica asked for; the last one installs
    /// it, and ordinary catch-up goes on above it.
    fn handle_snapshot_chunk(
        &mut self,
        now: u64,
        from: ReplicaId,
        c: SnapshotChunk,
        fx: &mut Effects<Self::Msg>,
    ) {
        if !self.admit(from, now) {
            return;
        }
        let Some(snap) = self.px_mut().fetch.receive(now, from, c) else {
            return;
        };
        let done = self.install(&snap, fx);
        if snapshot::installed(from, done) {
            self.after_install(now, from, fx);
        }
    }

    /// Installs `snap` if it is ahead of what this replica executed, as a
    /// follower, persisting it first (a durable compaction at its point).
    /// Whether it was installed.
    fn install(&mut self, snap: &Snapshot, fx: &mut Effects<Self::Msg>) -> Result<bool, WireError> {
        let slot = Self::snapshot_slot(snap)?;
        if slot <= self.px().executed {
            return Ok(false);
        }
        if self.own_ballot().is_some() {
            // Its phase-1 reports or proposals start below the snapshot.
            self.step_down(fx);
        }
        self.load_snapshot(snap)?;
        self.px_mut().snapshots_installed += 1;
        if fx.keeps_records() {
            self.compact_durable(Source::Installed(snap.to_bytes()), fx);
        }
        Ok(true)
    }
}
