//! Log compaction and state transfer below the compaction point, through the
//! shared mechanism of [`genericsmr::snapshot`].
//!
//! Once `keep_executed + compact_every` slots (or `compact_bytes` bytes of
//! commands) are executed above the base, the slots below
//! `executed - keep_executed` are dropped; a durable replica also rewrites
//! its durable log as a snapshot at its executed point followed by the
//! records of every slot above it. A peer asking about a dropped slot is
//! answered `Compacted` and fetches the snapshot.

use bytes::BytesMut;
use genericsmr::effects::Effects;
use genericsmr::snapshot::{
    self, Capture, Compacted, Snapshot, SnapshotChunk, SnapshotRequest, Source,
};
use genericsmr::wire::{Encoded, WireError};
use genericsmr::ReplicaId;

use crate::messages::{MenciusMsg, Record};
use crate::replica::{Replica, SlotState};

impl Replica {
    /// This replica's snapshot: its state machine at its executed point.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.sm, &self.executed)
    }

    /// The same, taken to be encoded later (off the event loop).
    pub fn capture(&self) -> Capture {
        Capture::of(&self.sm, &self.executed)
    }

    /// Compacts once enough is executed.
    pub(crate) fn maybe_compact(&mut self, fx: &mut Effects<MenciusMsg>) {
        let keep = self.cfg.keep_executed;
        let due = keep.saturating_add(self.cfg.compact_every.max(1));
        let by_slots = self.executed.saturating_sub(self.base) >= due;
        let by_bytes = self.exec_bytes >= self.cfg.compact_bytes.max(1);
        if !by_slots && !by_bytes {
            return;
        }
        // Keep `keep` executed slots, and at most a quarter of the byte bound.
        let mut to = self.executed.saturating_sub(keep).max(self.base);
        let mut kept = 0;
        let mut s = self.executed;
        while s > to {
            let b = self.slot(s - 1).map_or(0, |x| x.wire_len());
            if kept + b > self.cfg.compact_bytes / 4 {
                to = s;
                break;
            }
            kept += b;
            s -= 1;
        }
        let drop = ((to - self.base) as usize).min(self.log.len());
        let dropped: usize = self.log.drain(..drop).map(|x| x.wire_len()).sum();
        self.exec_bytes = self.exec_bytes.saturating_sub(dropped);
        self.base = to;
        if self.log.capacity() > 4 * self.log.len().max(1024) {
            self.log.shrink_to_fit();
        }
        self.compactions += 1;
        if fx.keeps_records() {
            let snap = self.capture();
            self.compact_durable(Source::Captured(Box::new(snap)), fx);
        }
    }

    /// Replaces the durable log by `snap` and the records of every slot above it.
    fn compact_durable(&mut self, snap: Source, fx: &mut Effects<MenciusMsg>) {
        snap.compact(Record::SNAPSHOT, fx);
        let n = self.cfg.n as u64;
        for slot in self.executed..self.log_end() {
            let Some(s) = self.slot(slot) else { break };
            if s.promised > s.ballot || (s.promised > 0 && s.state == SlotState::Empty) {
                fx.persist(&Record::Promise {
                    owner: (slot % n) as u8,
                    from: slot,
                    to: slot + 1,
                    ballot: s.promised,
                });
            }
            match s.state {
                SlotState::Empty => {}
                SlotState::Accepted => fx.persist(&Encoded(|b: &mut BytesMut| {
                    Record::encode_accepted(b, slot, s.ballot, &s.cmds)
                })),
                SlotState::Committed => fx.persist(&Encoded(|b: &mut BytesMut| {
                    Record::encode_chosen(b, slot, &s.cmds)
                })),
            }
        }
        // Own slots below the next one are used, skipped or revoked.
        let me = self.cfg.id;
        let from = self.first_of(me, self.executed);
        if self.next_own > from {
            fx.persist(&Record::Skip {
                owner: me,
                from: self.next_own,
                to: self.next_own,
            });
        }
    }

    /// A peer compacted a slot we asked about: fetch its snapshot.
    pub fn handle_compacted(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: Compacted,
        fx: &mut Effects<MenciusMsg>,
    ) {
        self.heard(from, now);
        if m.what < self.executed {
            return; // an old answer
        }
        self.fetch.ask(now, from, MenciusMsg::SnapshotRequest, fx);
    }

    /// A peer asks for our snapshot: it goes in chunks.
    pub fn handle_snapshot_request(
        &mut self,
        from: ReplicaId,
        m: SnapshotRequest,
        fx: &mut Effects<MenciusMsg>,
    ) {
        let cfg = self.cfg.transfer;
        if cfg.answer(from, &m, &self.snapshot(), MenciusMsg::SnapshotChunk, fx) {
            self.snapshots_sent += 1;
        }
    }

    /// A piece of the snapshot we asked for; the last one installs it.
    pub fn handle_snapshot_chunk(
        &mut self,
        now: u64,
        from: ReplicaId,
        c: SnapshotChunk,
        fx: &mut Effects<MenciusMsg>,
    ) {
        self.heard(from, now);
        let Some(snap) = self.fetch.receive(now, from, c) else {
            return;
        };
        let done = self.install(&snap, fx);
        if snapshot::installed(from, done) {
            self.catchup_sent_at = None;
            self.request_catchup(now, Some(from), fx);
        }
    }

    /// Installs `snap` if it is ahead of what we executed (persisting it
    /// first, as a durable compaction at its point).
    pub(crate) fn install(
        &mut self,
        snap: &Snapshot,
        fx: &mut Effects<MenciusMsg>,
    ) -> Result<bool, WireError> {
        let slot = snap.slot()?;
        if slot <= self.executed {
            return Ok(false);
        }
        self.load_snapshot(snap)?;
        self.snapshots_installed += 1;
        if fx.keeps_records() {
            self.compact_durable(Source::Installed(snap.to_bytes()), fx);
        }
        // Our proposals the snapshot covers: ran there, or proposed again.
        let below: Vec<u64> = self.own_inflight.range(..slot).map(|(s, _)| *s).collect();
        for s in below {
            if let Some(cmds) = self.own_inflight.remove(&s) {
                self.pending.extend(cmds);
            }
        }
        snapshot::answer_waiting(&self.sm, self.cfg.id, &mut self.waiting, fx);
        let waiting = &self.waiting;
        self.pending
            .retain(|c| waiting.contains_key(&(c.client, c.seq)));
        self.advance(fx);
        Ok(true)
    }

    /// Takes the state of `snap`: swaps the state machine and drops every
    /// slot below its point, which becomes the executed point.
    pub(crate) fn load_snapshot(&mut self, snap: &Snapshot) -> Result<(), WireError> {
        let slot = snap.slot()?;
        let sm = snap.state_machine(&self.sm)?;
        if slot < self.executed {
            return Ok(());
        }
        let drop = ((slot - self.base).min(self.log.len() as u64)) as usize;
        self.log.drain(..drop);
        self.base = slot;
        self.exec_bytes = 0;
        self.sm = sm;
        self.executed = slot;
        self.commit_index = self.commit_index.max(slot);
        self.known_commit = self.known_commit.max(slot);
        self.max_seen = self.max_seen.max(slot);
        self.next_own = self.next_own.max(self.first_of(self.cfg.id, slot));
        Ok(())
    }
}
