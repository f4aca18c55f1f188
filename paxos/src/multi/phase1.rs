//! Phase 1 at a candidate: the promises gathered and the best value
//! reported for every slot.

use std::collections::BTreeMap;

use genericsmr::ReplicaId;

use crate::log::{Log, SlotState};
use crate::multi::messages::SlotReport;
use crate::multi::value::Carried;

/// A candidate's phase-1 progress; `W` is what messages carry for a slot.
#[derive(Debug)]
pub struct Candidate<W> {
    /// The ballot campaigned for.
    pub ballot: u64,
    /// The first slot covered (the candidate's commit index when it started).
    pub from_slot: u64,
    /// Replicas that promised, as a bit set (the candidate's own included).
    pub promises: u64,
    /// When the Prepare was last sent (for retransmission).
    pub sent_at: u64,
    /// The best report per slot: (ballot, committed, value). A committed
    /// report wins; otherwise the highest ballot does.
    pub best: BTreeMap<u64, (u64, bool, W)>,
    /// Campaigns so far for the current request to lead (Multi-Paxos
    /// campaigns again after a refusal a few times; MDLin leaves it at 0).
    pub attempts: u32,
}

impl<W: Clone + Default> Candidate<W> {
    /// A campaign for `ballot` by replica `me` from `from_slot`, seeded with
    /// what `me` holds itself (its own promise counts).
    pub fn new<V: Carried<Wire = W>>(
        log: &Log<V>,
        ballot: u64,
        from_slot: u64,
        me: ReplicaId,
        now: u64,
    ) -> Self {
        let mut best = BTreeMap::new();
        for (slot, s) in log.from(from_slot) {
            if s.state != SlotState::Empty {
                let committed = s.state == SlotState::Committed;
                best.insert(slot, (s.ballot, committed, s.entry.to_wire()));
            }
        }
        Candidate {
            ballot,
            from_slot,
            promises: 1u64 << me,
            sent_at: now,
            best,
            attempts: 0,
        }
    }

    /// Counts `from`'s promise and merges its report, unless it reports a
    /// slot past `window_end` (then `Err` with that slot, and nothing counts).
    ///
    /// Such a report means the reporter's commit index is far ahead of the
    /// candidate's: the slots up there may be chosen, and the candidate can
    /// neither ignore them (it would propose new values into them) nor take
    /// them in (a confused peer could size its log). It must not lead; it
    /// steps down and catches up instead, and a fresher replica leads.
    pub fn merge(
        &mut self,
        from: ReplicaId,
        slots: Vec<SlotReport<W>>,
        window_end: u64,
    ) -> Result<(), u64> {
        if let Some(r) = slots.iter().find(|r| r.slot > window_end) {
            tracing::info!(
                peer = from,
                slot = r.slot,
                window_end,
                "too far behind to lead: catching up instead"
            );
            return Err(r.slot);
        }
        self.promises |= 1u64 << from;
        for r in slots {
            if r.slot < self.from_slot {
                continue;
            }
            let e = self.best.entry(r.slot).or_default();
            if !e.1 && (r.committed || r.ballot > e.0) {
                *e = (r.ballot, r.committed, r.cmds);
            }
        }
        Ok(())
    }

    /// One past the highest slot reported (at least `from_slot`): the new
    /// leader finishes every slot below it.
    pub fn end(&self) -> u64 {
        self.best
            .keys()
            .next_back()
            .map_or(self.from_slot, |s| s + 1)
            .max(self.from_slot)
    }

    /// The peers (of `peers`) to send the Prepare again, if `retransmit_ns`
    /// passed since the last send (then now counts as a send).
    pub fn retransmit(&mut self, now: u64, retransmit_ns: u64, peers: u64) -> Option<u64> {
        if now.saturating_sub(self.sent_at) < retransmit_ns {
            return None;
        }
        self.sent_at = now;
        Some(peers & !self.promises)
    }
}
