//! Execution in slot order and the replies that follow commits and executions.

use genericsmr::command::Op;
use genericsmr::effects::Effects;
use genericsmr::messages::ReplyStatus;

use crate::messages::PaxosMsg;
use crate::multi::snapshot::Snapshots;
use crate::replica::{accepted, reject, Batch, Replica};

impl Replica {
    /// Advances the commit index over consecutive committed slots and executes them.
    pub(crate) fn advance(&mut self, fx: &mut Effects<PaxosMsg>) {
        self.px.advance_commit();
        while let Some((slot, batch)) = self.px.next_to_execute() {
            let cmds = batch.into_cmds();
            for c in &cmds {
                let out = self.px.sm.execute_checked(c);
                if let Some(conn) = self.waiting.remove(&(c.client, c.seq)) {
                    let r = match out {
                        Some(out) => accepted(c.client, c.seq, self.cfg.group.id, out),
                        None => {
                            reject(c.client, c.seq, ReplyStatus::Stale, Some(self.cfg.group.id))
                        }
                    };
                    fx.reply(conn, r);
                }
            }
            self.px.executed_one(slot, Batch::packed(cmds));
        }
        self.compact_log(fx);
        self.check_recovered();
    }

    /// Unless replies wait for execution, a write is answered as soon as its slot
    /// is chosen: its effect is fixed by then, and any later read is ordered after it.
    pub(crate) fn reply_on_commit(&mut self, slot: u64, fx: &mut Effects<PaxosMsg>) {
        if self.cfg.reply_after_exec || self.waiting.is_empty() {
            return;
        }
        // An executed slot is packed; its waiting commands were answered then.
        let Some(s) = self.px.log.get(slot) else {
            return;
        };
        for c in s.live_cmds() {
            if !matches!(c.op, Op::Put | Op::Delete) || self.px.sm.is_stale(c.client, c.seq) {
                continue;
            }
            if let Some(conn) = self.waiting.remove(&(c.client, c.seq)) {
                fx.reply(
                    conn,
                    accepted(c.client, c.seq, self.cfg.group.id, Default::default()),
                );
            }
        }
    }
}
