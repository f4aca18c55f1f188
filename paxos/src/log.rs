//! The Multi-Paxos log, generic over what a slot holds: slots from a base
//! (everything below is executed and compacted away), the durable records of
//! an acceptor, their replay at restart, and compaction in memory and on disk.
//!
//! Multi-Paxos puts a batch of commands in a slot ([`crate::replica::Batch`]);
//! MDLin puts one journal entry (`mdlin::messages::Entry`). What the two do
//! differently with the log (MDLin's prefix rule, what executing a slot
//! means) stays in each protocol; the slots, records, replay and compaction
//! are this one module.

use bytes::{BufMut, Bytes, BytesMut};
use genericsmr::effects::Effects;
use genericsmr::messages::{LogReply, LogRequest, SlotDigest};
use genericsmr::snapshot::Source;
use genericsmr::wire::{Encoded, Marshal, Reader, Unmarshal, WireError};

/// What a slot of the log holds: encodable (for votes, commits and records)
/// and sized (for compaction by bytes).
pub trait Value: Marshal + Default + Clone + std::fmt::Debug {
    /// Bytes it keeps in memory once executed (what compaction by bytes counts).
    fn held_bytes(&self) -> usize;

    /// Client commands it carries, for the leader's `--pipeline` bound (a
    /// batch carries many; an entry of one command, the default, one).
    fn commands(&self) -> usize {
        1
    }

    /// A 64-bit hash of its encoding (equal values, equal hashes), which
    /// operators and the simulator compare across replicas.
    fn digest(&self) -> u64 {
        let mut b = BytesMut::new();
        self.marshal(&mut b);
        xxhash_rust::xxh3::xxh3_64(&b)
    }
}

/// Most slots described by one log reply.
pub const MAX_LOG_REPLY: u32 = LogRequest::MAX_SLOTS;

/// Status of a log slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlotState {
    /// Nothing accepted here.
    #[default]
    Empty,
    /// A value accepted at `Slot::ballot`, not known to be chosen.
    Accepted,
    /// The chosen value.
    Committed,
}

/// One log slot.
#[derive(Debug, Clone, Default)]
pub struct Slot<V> {
    /// Status.
    pub state: SlotState,
    /// Ballot at which the value was accepted.
    pub ballot: u64,
    /// The value (a no-op by default).
    pub entry: V,
    /// Leader only: replicas that accepted at the leader's ballot.
    pub acks: u64,
    /// Leader only: replicas the Accept went to.
    pub sent_to: u64,
    /// Leader only: when the Accept was last sent.
    pub sent_at: u64,
}

/// Settings of compaction, shared by every protocol on this log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Executed slots kept in memory below the executed point, for peers
    /// that catch up slot by slot; a peer further behind is answered
    /// `Compacted` and fetches a snapshot (`--gc-horizon`).
    pub keep_executed: u64,
    /// Compaction runs once this many slots more than `keep_executed` are
    /// executed: slots below `executed - keep_executed` are dropped, and a
    /// durable replica rewrites its log as a snapshot plus what lies above.
    pub compact_every: u64,
    /// Compaction also runs once the executed slots held reach this many
    /// bytes ([`Value::held_bytes`]), keeping the newest quarter of that:
    /// a bound in slots alone does not bound memory when slots are large.
    pub compact_bytes: usize,
    /// A durable compaction waits until the slots executed since the last
    /// one hold this percentage of the last snapshot's bytes
    /// (`--snapshot-ratio`): a snapshot costs its whole size, so with a
    /// large state and small slots, compacting at every threshold would
    /// write far more snapshot than log and stall the replica while it does.
    pub snapshot_ratio: u32,
}

impl Default for Compaction {
    fn default() -> Self {
        Compaction {
            keep_executed: 1 << 16,
            compact_every: 1 << 16,
            compact_bytes: 64 << 20,
            snapshot_ratio: 100,
        }
    }
}

/// What [`Log::maybe_compact`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Nothing was due.
    No,
    /// Executed slots were dropped from memory; the durable log waits until
    /// enough is executed to amortise its snapshot (`snapshot_ratio`).
    Memory,
    /// Executed slots were dropped, and the durable log is due a compaction.
    Durable,
}

/// The log from slot `base` on.
#[derive(Debug, Clone, Default)]
pub struct Log<V> {
    base: u64,
    slots: Vec<Slot<V>>,
    /// Bytes held by the executed slots above the base (for compaction by bytes).
    exec_bytes: usize,
    /// Bytes of the slots executed since the last compaction.
    since_compaction: usize,
    /// Size of the last snapshot written to the durable log, for
    /// [`Compaction::snapshot_ratio`].
    snapshot_bytes: usize,
}

impl<V: Value> Log<V> {
    /// The first slot held; every slot below is executed and compacted away.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// One past the highest slot held.
    pub fn end(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    /// The slots held: `slots()[i]` is slot `base() + i`.
    pub fn slots(&self) -> &[Slot<V>] {
        &self.slots
    }

    /// The slots held from `from` on, with their numbers.
    pub fn from(&self, from: u64) -> impl Iterator<Item = (u64, &Slot<V>)> {
        let base = self.base;
        let skip = from.saturating_sub(base).min(self.slots.len() as u64) as usize;
        self.slots[skip..]
            .iter()
            .enumerate()
            .map(move |(i, s)| (base + (skip + i) as u64, s))
    }

    /// The committed slots held from `from` on, with their numbers and digests.
    pub fn committed(&self, from: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.from(from)
            .filter(|(_, s)| s.state == SlotState::Committed)
            .map(|(i, s)| (i, s.entry.digest()))
    }

    /// The answer to a log request: a digest of each non-empty slot held
    /// among the `m.count` (at most [`MAX_LOG_REPLY`]) from `m.from` on.
    /// Slots compacted away are not described (the reply starts higher).
    pub fn answer(&self, m: &LogRequest) -> LogReply {
        let end = m.end();
        m.answer(
            self.from(m.from)
                .take_while(|(i, _)| *i < end)
                .filter(|(_, s)| s.state != SlotState::Empty)
                .map(|(slot, s)| SlotDigest {
                    slot,
                    committed: s.state == SlotState::Committed,
                    hash: s.entry.digest(),
                }),
        )
    }

    /// The slots held from `from` to `to` (exclusive), mutably, with their numbers.
    pub fn range_mut(&mut self, from: u64, to: u64) -> impl Iterator<Item = (u64, &mut Slot<V>)> {
        let base = self.base;
        let len = self.slots.len() as u64;
        let a = from.saturating_sub(base).min(len) as usize;
        let b = (to.saturating_sub(base).min(len) as usize).max(a);
        self.slots[a..b]
            .iter_mut()
            .enumerate()
            .map(move |(i, s)| (base + (a + i) as u64, s))
    }

    /// Slot `slot`, if held.
    pub fn get(&self, slot: u64) -> Option<&Slot<V>> {
        let i = slot.checked_sub(self.base)?;
        self.slots.get(usize::try_from(i).ok()?)
    }

    /// Slot `slot` if held, for changes that do not create it.
    pub fn get_mut(&mut self, slot: u64) -> Option<&mut Slot<V>> {
        let i = slot.checked_sub(self.base)?;
        self.slots.get_mut(usize::try_from(i).ok()?)
    }

    /// Slot `slot`, created (with every slot before it) if past the end;
    /// `None` if compacted away. Callers bound `slot` by their window first.
    pub fn create(&mut self, slot: u64) -> Option<&mut Slot<V>> {
        let i = usize::try_from(slot.checked_sub(self.base)?).ok()?;
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, Slot::default);
        }
        self.slots.get_mut(i)
    }

    /// Whether `slot` is known chosen (compacted slots were executed).
    pub fn committed_at(&self, slot: u64) -> bool {
        slot < self.base
            || self
                .get(slot)
                .is_some_and(|s| s.state == SlotState::Committed)
    }

    /// Notes that `slot` was executed (for compaction by bytes).
    pub fn executed_slot(&mut self, slot: u64) {
        let b = self.get(slot).map_or(0, |s| s.entry.held_bytes());
        self.exec_bytes += b;
        self.since_compaction += b;
    }

    /// Bytes held by executed slots above the base.
    pub fn exec_bytes(&self) -> usize {
        self.exec_bytes
    }

    /// Compacts the log in memory if `c` says it is due with `executed`
    /// slots executed: drops the executed slots below the `keep_executed`
    /// newest (and all but a quarter of `compact_bytes` of them). The
    /// durable log is due a compaction too ([`Trim::Durable`]: the caller
    /// then calls [`Log::compact_durable`]) only once the slots executed
    /// since its last one also hold `snapshot_ratio` percent of the last
    /// snapshot's bytes.
    ///
    /// The two are apart because they cost apart: dropping slots costs
    /// nothing, while a durable compaction writes the whole state. Tied
    /// together, memory held up to `snapshot_ratio` of the state's size in
    /// slots past the thresholds, and rose and fell by that much at every
    /// compaction (MDLin at 150,000 requests/s offered: about 45 MB of
    /// 290 MB per replica).
    pub fn maybe_compact(&mut self, executed: u64, c: &Compaction) -> Trim {
        let due = c.keep_executed.saturating_add(c.compact_every.max(1));
        let by_slots = executed.saturating_sub(self.base) >= due;
        let by_bytes = self.exec_bytes >= c.compact_bytes.max(1);
        if !by_slots && !by_bytes {
            return Trim::No;
        }
        let amortized = self.since_compaction as u128 * 100
            >= self.snapshot_bytes as u128 * c.snapshot_ratio as u128;
        let trim = if amortized {
            self.since_compaction = 0;
            Trim::Durable
        } else {
            Trim::Memory
        };
        let mut to = executed.saturating_sub(c.keep_executed).max(self.base);
        let mut kept = 0;
        let mut s = executed;
        while s > to {
            let b = self.get(s - 1).map_or(0, |x| x.entry.held_bytes());
            if kept + b > c.compact_bytes / 4 {
                to = s;
                break;
            }
            kept += b;
            s -= 1;
        }
        self.drop_below(to);
        trim
    }

    /// Drops every slot below `to` (executed ones: a compaction, or a
    /// snapshot that covers them), which becomes the base.
    pub fn drop_below(&mut self, to: u64) {
        if to <= self.base {
            return;
        }
        let drop = ((to - self.base).min(self.slots.len() as u64)) as usize;
        let dropped: usize = self.slots.drain(..drop).map(|x| x.entry.held_bytes()).sum();
        self.exec_bytes = self.exec_bytes.saturating_sub(dropped);
        self.base = to;
        // Keep the capacity from growing past a few compaction intervals.
        if self.slots.capacity() > 4 * self.slots.len().max(1024) {
            self.slots.shrink_to_fit();
        }
    }

    /// Takes a snapshot's point `slot` as the base (at restart from the
    /// snapshot file, or installing a peer's): every slot below is dropped.
    pub fn rebase(&mut self, slot: u64) {
        self.drop_below(slot);
        // Nothing executed is held below the new executed point.
        self.exec_bytes = 0;
    }

    /// Asks the driver to replace the durable log by `snapshot` (taken at
    /// slot `from`, the executed point) as its base record and what a
    /// compacted log must keep above it: the promise, then every vote
    /// (unless `keep_votes` is off, a broken variant) and chosen value.
    pub fn compact_durable<M>(
        &mut self,
        snapshot: Source,
        from: u64,
        promised: u64,
        keep_votes: bool,
        fx: &mut Effects<M>,
    ) {
        self.snapshot_bytes = snapshot.len();
        snapshot.compact(SNAPSHOT_RECORD, fx);
        fx.persist(&Record::<V>::Promise { ballot: promised });
        for (slot, s) in self.from(from) {
            match s.state {
                SlotState::Empty => {}
                SlotState::Accepted if keep_votes => fx.persist(&Encoded(|b: &mut BytesMut| {
                    Record::<V>::encode_accepted(b, slot, s.ballot, &s.entry)
                })),
                SlotState::Accepted => {}
                SlotState::Committed => fx.persist(&Encoded(|b: &mut BytesMut| {
                    Record::<V>::encode_chosen(b, slot, &s.entry)
                })),
            }
        }
    }

    /// Applies one durable record at restart. Records of slots below the
    /// base are covered by the snapshot (a crash mid-compaction replays the
    /// old log after the new snapshot) and skipped. A snapshot record is
    /// returned for the protocol to load (it then calls [`Log::rebase`]).
    pub fn replay<W: Into<V>>(&mut self, rec: Record<W>, promised: &mut u64) -> Option<Bytes> {
        match rec {
            Record::Promise { ballot } => *promised = (*promised).max(ballot),
            Record::Accepted { slot, ballot, cmds } => {
                *promised = (*promised).max(ballot);
                if let Some(s) = self.create(slot) {
                    if s.state != SlotState::Committed {
                        s.state = SlotState::Accepted;
                        s.ballot = ballot;
                        s.entry = cmds.into();
                    }
                }
            }
            // Marks the vote recorded last for the slot, as when it was written.
            Record::CommitMark { slot } => {
                if let Some(s) = self.get_mut(slot) {
                    if s.state == SlotState::Accepted {
                        s.state = SlotState::Committed;
                    }
                }
            }
            Record::Chosen { slot, cmds } => {
                if let Some(s) = self.create(slot) {
                    s.state = SlotState::Committed;
                    s.entry = cmds.into();
                }
            }
            Record::Snapshot(b) => return Some(b),
        }
        None
    }
}

/// What an acceptor's durable log holds, replayed in order at start:
/// what it must not forget (its promise and its votes), what it learned was
/// chosen, and after a compaction the snapshot standing for everything below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<V> {
    /// A promise not to accept below `ballot` (also a candidate's own).
    Promise {
        /// The promised ballot.
        ballot: u64,
    },
    /// A vote: `cmds` accepted in `slot` at `ballot` (a leader's own vote too).
    Accepted {
        /// The slot.
        slot: u64,
        /// The ballot of the vote.
        ballot: u64,
        /// The accepted value (Multi-Paxos: a batch of commands; MDLin: a
        /// journal entry).
        cmds: V,
    },
    /// The value already accepted in `slot` is chosen.
    CommitMark {
        /// The slot.
        slot: u64,
    },
    /// `cmds` is chosen for `slot` (learned from a Commit, catch-up or phase 1).
    Chosen {
        /// The slot.
        slot: u64,
        /// The chosen value.
        cmds: V,
    },
    /// A snapshot ([`genericsmr::snapshot::Snapshot::to_bytes`]) standing for
    /// every slot below its point: the base record of a compacted log, kept
    /// in the snapshot file and replayed first.
    Snapshot(Bytes),
}

impl<V> Record<V> {
    /// The encoding of `Record::Accepted`, from a borrowed value.
    pub fn encode_accepted<T: Marshal + ?Sized>(buf: &mut BytesMut, slot: u64, ballot: u64, v: &T) {
        buf.put_u8(2);
        slot.marshal(buf);
        ballot.marshal(buf);
        v.marshal(buf);
    }

    /// The encoding of `Record::Chosen`, from a borrowed value.
    pub fn encode_chosen<T: Marshal + ?Sized>(buf: &mut BytesMut, slot: u64, v: &T) {
        buf.put_u8(4);
        slot.marshal(buf);
        v.marshal(buf);
    }
}

/// The kind byte of a snapshot record (its base, after a compaction).
const SNAPSHOT_RECORD: u8 = 5;

impl<V: Marshal> Marshal for Record<V> {
    fn marshal(&self, buf: &mut BytesMut) {
        match self {
            Record::Promise { ballot } => {
                buf.put_u8(1);
                ballot.marshal(buf);
            }
            Record::Accepted { slot, ballot, cmds } => {
                Self::encode_accepted(buf, *slot, *ballot, cmds)
            }
            Record::CommitMark { slot } => {
                buf.put_u8(3);
                slot.marshal(buf);
            }
            Record::Chosen { slot, cmds } => Self::encode_chosen(buf, *slot, cmds),
            Record::Snapshot(b) => {
                buf.put_u8(SNAPSHOT_RECORD);
                b.marshal(buf);
            }
        }
    }
}

impl<V: Unmarshal> Unmarshal for Record<V> {
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        Ok(match r.u8("record kind")? {
            1 => Record::Promise {
                ballot: r.u64("ballot")?,
            },
            2 => Record::Accepted {
                slot: r.u64("slot")?,
                ballot: r.u64("ballot")?,
                cmds: V::unmarshal(r)?,
            },
            3 => Record::CommitMark {
                slot: r.u64("slot")?,
            },
            4 => Record::Chosen {
                slot: r.u64("slot")?,
                cmds: V::unmarshal(r)?,
            },
            SNAPSHOT_RECORD => Record::Snapshot(Bytes::unmarshal(r)?),
            v => {
                return Err(WireError::Invalid {
                    what: "record kind",
                    value: v as u64,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot value that holds 100 bytes.
    #[derive(Debug, Clone, Default)]
    struct Hundred(u32);

    impl Marshal for Hundred {
        fn marshal(&self, b: &mut BytesMut) {
            b.put_u32_le(self.0);
        }
    }

    impl Value for Hundred {
        fn held_bytes(&self) -> usize {
            100
        }
    }

    /// Appends and executes slots up to `to`.
    fn execute(log: &mut Log<Hundred>, to: u64) {
        for s in log.end()..to {
            if let Some(slot) = log.create(s) {
                slot.state = SlotState::Committed;
                slot.entry = Hundred(s as u32);
            }
            log.executed_slot(s);
        }
    }

    /// After a durable snapshot of 1,000 bytes, the next durable compaction
    /// waits until 1,000 bytes more are executed (10 slots), however low
    /// the horizon, and comes at the first threshold after that; with the
    /// ratio at 0 it comes at the next threshold (slot 6). Slots are
    /// dropped from memory at every threshold meanwhile: before, they
    /// waited for the durable compaction (the base stayed at 2 until slot
    /// 14), so memory held the whole amortisation window.
    #[test]
    fn a_durable_compaction_waits_for_the_log_to_match_the_last_snapshot() {
        for (ratio, next_at) in [(100, 14), (50, 10), (0, 6)] {
            let c = Compaction {
                keep_executed: 2,
                compact_every: 2,
                compact_bytes: usize::MAX,
                snapshot_ratio: ratio,
            };
            let mut log = Log::<Hundred>::default();
            execute(&mut log, 4);
            assert_eq!(
                log.maybe_compact(4, &c),
                Trim::Durable,
                "the first compaction is due"
            );
            assert_eq!(log.base(), 2);
            let mut fx = Effects::<()>::default();
            log.compact_durable(
                Source::Installed(Bytes::from(vec![0u8; 1000])),
                4,
                0,
                true,
                &mut fx,
            );
            let mut at = 4;
            loop {
                let trim = log.maybe_compact(at, &c);
                if trim == Trim::Durable {
                    break;
                }
                // Every second slot crosses the threshold: memory is trimmed.
                let want = if at > 4 && at % 2 == 0 {
                    Trim::Memory
                } else {
                    Trim::No
                };
                assert_eq!(trim, want, "ratio {ratio}, slot {at}");
                assert!(
                    log.base() + 4 > at,
                    "ratio {ratio}: slot {at} with the base at {}: executed slots held past the thresholds",
                    log.base()
                );
                at += 1;
                execute(&mut log, at);
                assert!(at <= 20, "ratio {ratio}: no compaction by slot {at}");
            }
            assert_eq!(at, next_at, "ratio {ratio}");
        }
    }
}
