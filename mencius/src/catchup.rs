//! Catch-up: a replica whose execution waits on a slot decided elsewhere
//! (a lost Commit or Skip, a restart) fetches what its peers know is chosen.

use genericsmr::effects::Effects;

use crate::messages::{CatchupReply, CatchupRequest, ChosenSlot, Compacted, MenciusMsg};
use crate::replica::{Replica, SlotState};

/// Bytes of commands, roughly, in one catch-up reply.
const CATCHUP_REPLY_BYTES: usize = 4 << 20;

impl Replica {
    /// Asks a peer (`hint`, else the owner of the slot we wait on, else the
    /// next peer in turn) for chosen slots from our commit index, unless a
    /// request went out within the retransmission time.
    pub(crate) fn request_catchup(
        &mut self,
        now: u64,
        hint: Option<u8>,
        fx: &mut Effects<MenciusMsg>,
    ) {
        if let Some(t) = self.catchup_sent_at {
            if now.saturating_sub(t) < self.cfg.retransmit_ns {
                return;
            }
        }
        let me = self.cfg.id;
        let n = self.cfg.n as u64;
        if n < 2 {
            return;
        }
        let to = hint.filter(|h| *h != me).unwrap_or_else(|| {
            // Rotate, so that one dead peer does not stop catch-up.
            self.catchup_turn += 1;
            let t = ((self.commit_index + self.catchup_turn) % n) as u8;
            if t == me {
                ((t as u64 + 1) % n) as u8
            } else {
                t
            }
        });
        self.catchup_sent_at = Some(now);
        let m = CatchupRequest {
            from_slot: self.commit_index,
            max: self.cfg.catchup_chunk,
        };
        fx.send(to, MenciusMsg::CatchupRequest(m));
    }

    /// Serves the chosen slots we hold from the request's slot on.
    pub fn handle_catchup_request(
        &mut self,
        now: u64,
        from: u8,
        m: CatchupRequest,
        fx: &mut Effects<MenciusMsg>,
    ) {
        self.heard(from, now);
        if m.from_slot < self.base {
            return self.compacted(from, m.from_slot, fx);
        }
        let end = self.log_end().min(
            m.from_slot
                .saturating_add(m.max.min(self.cfg.catchup_chunk) as u64),
        );
        let mut slots = Vec::new();
        let mut bytes = 0;
        for slot in m.from_slot..end {
            let Some(s) = self.slot(slot) else { break };
            if s.state != SlotState::Committed {
                continue;
            }
            bytes += s.wire_len() + 16;
            slots.push(ChosenSlot {
                slot,
                cmds: s.cmds.clone(),
            });
            if bytes > CATCHUP_REPLY_BYTES {
                break;
            }
        }
        let r = CatchupReply {
            commit_index: self.commit_index,
            slots,
        };
        fx.send(from, MenciusMsg::CatchupReply(r));
    }

    /// Stores fetched chosen slots; keeps fetching while the peer is ahead.
    pub fn handle_catchup_reply(
        &mut self,
        now: u64,
        from: u8,
        m: CatchupReply,
        fx: &mut Effects<MenciusMsg>,
    ) {
        self.heard(from, now);
        self.catchup_sent_at = None;
        self.known_commit = self.known_commit.max(m.commit_index.min(self.window_end()));
        let before = self.commit_index;
        for c in m.slots {
            if !self.decided(c.slot) && self.in_window(c.slot) {
                self.catchup_fetched += 1;
                self.learn_chosen(c.slot, c.cmds, fx);
            }
        }
        self.advance(fx);
        if self.commit_index > before && self.commit_index < m.commit_index {
            self.request_catchup(now, Some(from), fx);
        }
    }

    /// Tells `to` that `slot` is compacted here.
    pub(crate) fn compacted(&self, to: u8, slot: u64, fx: &mut Effects<MenciusMsg>) {
        fx.send(to, MenciusMsg::Compacted(Compacted { what: slot }));
    }

    /// Catch-up timer: execution waited a retransmission time on a slot.
    pub(crate) fn tick_catchup(&mut self, now: u64, fx: &mut Effects<MenciusMsg>) {
        let waiting = self.commit_index < self.max_seen || self.commit_index < self.known_commit;
        if waiting && now.saturating_sub(self.last_advance) >= self.cfg.retransmit_ns {
            self.request_catchup(now, None, fx);
        }
    }
}
