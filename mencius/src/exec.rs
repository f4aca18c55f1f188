//! Execution in slot order, and the replies that follow it.
//!
//! Replies wait for execution (reads and writes alike): a write answered
//! when its own slot is chosen could be missed by a read that a replica
//! with an older view then proposes into a lower slot.

use genericsmr::effects::Effects;
use genericsmr::messages::ReplyStatus;

use crate::messages::MenciusMsg;
use crate::replica::{accepted, reject, Replica, SlotState};

impl Replica {
    /// Advances the commit index over decided slots and executes them.
    pub(crate) fn advance(&mut self, fx: &mut Effects<MenciusMsg>) {
        let before = self.commit_index;
        while self
            .slot(self.commit_index)
            .is_some_and(|s| s.state == SlotState::Committed)
        {
            self.commit_index += 1;
        }
        if self.commit_index == before {
            return;
        }
        self.last_advance = self.now;
        self.stuck_timer.heard_leader(self.now);
        self.known_commit = self.known_commit.max(self.commit_index);
        self.max_seen = self.max_seen.max(self.commit_index);
        let me = self.cfg.id;
        while self.executed < self.commit_index {
            // base <= executed < commit_index <= log_end: the slot is held.
            let i = (self.executed - self.base) as usize;
            for c in &self.log[i].cmds {
                let out = self.sm.execute_checked(c);
                if let Some(conn) = self.waiting.remove(&(c.client, c.seq)) {
                    let r = match out {
                        Some(out) => accepted(c.client, c.seq, me, out),
                        None => reject(c.client, c.seq, ReplyStatus::Stale, Some(me)),
                    };
                    fx.reply(conn, r);
                }
            }
            self.exec_bytes += self.log[i].wire_len();
            self.executed += 1;
        }
        self.maybe_compact(fx);
    }
}
