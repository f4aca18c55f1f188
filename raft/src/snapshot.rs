//! Log compaction and InstallSnapshot through the shared mechanism of
//! [`genericsmr::snapshot`].
//!
//! Once `keep_executed + compact_every` entries (or `compact_bytes` bytes
//! of commands) are executed above the base, the replica drops executed
//! entries from memory, keeping the newest `keep_executed` (and at most a
//! quarter of the byte bound) for followers that lag a little. A durable
//! replica compacts its durable log at the same time: the snapshot at its
//! executed point becomes the base record, followed by the term and vote
//! and every entry after that point.
//!
//! A leader that no longer holds what a follower needs tells it
//! [`Compacted`]; the follower fetches the leader's snapshot (state machine
//! image plus the index and term it stands for) in chunks and installs it
//! in one handler. Entries of its own log after the snapshot's index are
//! kept if its entry there has the snapshot's term, else dropped.

use bytes::BytesMut;
use genericsmr::effects::Effects;
use genericsmr::snapshot::{
    self, Capture, Compacted, Snapshot, SnapshotChunk, SnapshotRequest, Source,
};
use genericsmr::wire::{Encoded, Marshal, WireError};
use genericsmr::ReplicaId;

use crate::durable::Record;
use crate::messages::RaftMsg;
use crate::replica::Replica;

/// The protocol part of a snapshot: the index and term it stands for.
fn read_point(s: &Snapshot) -> Result<(u64, u64), WireError> {
    snapshot::read_protocol(&s.protocol, |r| Ok((r.u64("index")?, r.u64("term")?)))
}

impl Replica {
    /// This replica's snapshot: its state machine at its executed point.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.sm, &self.snapshot_point())
    }

    /// The same, taken to be encoded later (off the event loop).
    pub fn capture(&self) -> Capture {
        Capture::of(&self.sm, &self.snapshot_point())
    }

    /// What a snapshot holds besides the state machine: its index and term.
    fn snapshot_point(&self) -> impl Marshal + '_ {
        let term = self.log.term(self.applied).unwrap_or(0);
        Encoded(move |b: &mut BytesMut| {
            self.applied.marshal(b);
            term.marshal(b);
        })
    }

    /// Compacts once enough is executed.
    pub(crate) fn maybe_compact(&mut self, fx: &mut Effects<RaftMsg>) {
        let keep = self.cfg.keep_executed;
        let base = self.log.base();
        let by_entries =
            self.applied.saturating_sub(base) >= keep.saturating_add(self.cfg.compact_every.max(1));
        let by_bytes = self.exec_bytes >= self.cfg.compact_bytes.max(1);
        if !by_entries && !by_bytes {
            return;
        }
        // Keep `keep` executed entries, and no more than a quarter of the
        // byte bound of them.
        let mut to = self.applied.saturating_sub(keep).max(base);
        let mut kept = 0;
        let mut i = self.applied;
        while i > to {
            let b = self.log.get(i).map_or(0, |e| e.wire_len());
            if kept + b > self.cfg.compact_bytes / 4 {
                to = i;
                break;
            }
            kept += b;
            i -= 1;
        }
        let dropped = self.log.compact_to(to);
        self.exec_bytes = self.exec_bytes.saturating_sub(dropped);
        self.log.shrink();
        self.compactions += 1;
        if fx.keeps_records() {
            let snap = self.capture();
            self.compact_durable(Source::Captured(Box::new(snap)), fx);
        }
    }

    /// Asks the driver to replace the durable log by `snap` (a snapshot at
    /// the executed point) and what is still needed after it.
    fn compact_durable(&mut self, snap: Source, fx: &mut Effects<RaftMsg>) {
        snap.compact(Record::SNAPSHOT, fx);
        self.persist_hard_state(fx);
        for i in self.applied + 1..=self.log.last() {
            self.persist_entry(i, fx);
        }
    }

    /// A peer (the leader) no longer holds what we need: fetch its snapshot.
    pub fn handle_compacted(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: Compacted,
        fx: &mut Effects<RaftMsg>,
    ) {
        if m.what.saturating_sub(1) <= self.applied {
            return; // we have executed that far: the snapshot brings nothing
        }
        self.fetch.ask(now, from, RaftMsg::SnapshotRequest, fx);
    }

    /// A peer asks for our snapshot: it goes in chunks.
    pub fn handle_snapshot_request(
        &mut self,
        from: ReplicaId,
        m: SnapshotRequest,
        fx: &mut Effects<RaftMsg>,
    ) {
        let cfg = self.cfg.transfer;
        if cfg.answer(from, &m, &self.snapshot(), RaftMsg::SnapshotChunk, fx) {
            self.snapshots_sent += 1;
        }
    }

    /// A piece of the snapshot we asked for; the last one installs it.
    pub fn handle_snapshot_chunk(
        &mut self,
        now: u64,
        from: ReplicaId,
        c: SnapshotChunk,
        fx: &mut Effects<RaftMsg>,
    ) {
        if let Some(snap) = self.fetch.receive(now, from, c) {
            let done = self.install(&snap, fx);
            snapshot::installed(from, done);
        }
    }

    /// Installs `snap` if it is ahead of what we executed; persists it first
    /// (a durable compaction at its point). Returns whether it was installed.
    pub(crate) fn install(
        &mut self,
        snap: &Snapshot,
        fx: &mut Effects<RaftMsg>,
    ) -> Result<bool, WireError> {
        let (index, term) = read_point(snap)?;
        if index <= self.applied {
            return Ok(false);
        }
        if self.is_leader() && self.log.term(index) != Some(term) {
            // A leader holds every committed entry: a snapshot that does
            // not match its log is not from this group's history.
            return Ok(false);
        }
        let reset = self.load_snapshot(snap)?;
        self.snapshots_installed += 1;
        if fx.keeps_records() {
            if reset {
                // Into the old log, before the compaction replaces it.
                fx.persist(&Record::Truncate { after: index });
            }
            self.compact_durable(Source::Installed(snap.to_bytes()), fx);
        }
        snapshot::answer_waiting(&self.sm, self.cfg.id, &mut self.waiting, fx);
        self.apply(fx);
        Ok(true)
    }

    /// Takes the state of `snap` (at restart from the snapshot file, or when
    /// installing a peer's): swaps the state machine and makes the
    /// snapshot's point the base of the log and the executed point.
    /// Returns whether the log was dropped (it did not hold the snapshot's
    /// last entry).
    pub(crate) fn load_snapshot(&mut self, snap: &Snapshot) -> Result<bool, WireError> {
        let (index, term) = read_point(snap)?;
        let sm = snap.state_machine(&self.sm)?;
        if index < self.applied {
            return Ok(false); // older than what we executed: nothing to take
        }
        let reset = !(self.log.term(index) == Some(term) && index <= self.log.last());
        if reset {
            self.log.reset(index, term);
        } else {
            self.log.compact_to(index);
        }
        self.exec_bytes = 0;
        self.sm = sm;
        self.applied = index;
        self.commit = self.commit.max(index);
        Ok(reset)
    }
}
