//! Client proposals, batching, execution and replies.
//!
//! A leader queues proposals and turns them into entries at the end of a
//! burst ([`Replica::flush`]): with batching, everything queued at once
//! shares one entry (a lone request is never held back); without it, one
//! entry per command, but the burst still goes out in one AppendEntries.
//! Followers and candidates answer `NotLeader` with the leader they know.
//! Commands are answered when their entry executes on the leader.

use genericsmr::command::Command;
use genericsmr::effects::{accepted, reject, Effects};
use genericsmr::messages::{Propose, ReplyStatus};
use genericsmr::state::Check;
use genericsmr::ConnId;

use crate::messages::{Entry, RaftMsg};
use crate::replica::{Replica, Role};

impl Replica {
    /// A client proposal.
    pub fn handle_propose(
        &mut self,
        _now: u64,
        conn: ConnId,
        m: Propose,
        fx: &mut Effects<RaftMsg>,
    ) {
        let cmd = m.cmd;
        let (client, seq, me) = (cmd.client, cmd.seq, self.cfg.id);
        let transferring = matches!(&self.role, Role::Leader(l) if l.transfer.is_some());
        if !self.is_leader() || transferring {
            let hint = match &self.role {
                Role::Leader(l) => l.transfer.map(|(to, _, _)| to),
                _ => self.leader,
            };
            return fx.reply(conn, reject(client, seq, ReplyStatus::NotLeader, hint));
        }
        match self.sm.check(client, seq) {
            Check::Done(out) => return fx.reply(conn, accepted(client, seq, me, out.clone())),
            Check::Stale => {
                return fx.reply(conn, reject(client, seq, ReplyStatus::Stale, Some(me)))
            }
            Check::Fresh => {}
        }
        if let Some(c) = self.waiting.get_mut(&(client, seq)) {
            // A retry of a command in flight here: answer on the newest connection.
            *c = conn;
            return;
        }
        if cmd.wire_len() > self.cfg.max_command_bytes {
            return fx.reply(conn, reject(client, seq, ReplyStatus::TooLarge, Some(me)));
        }
        if self.pending.len() >= self.cfg.max_pending {
            return fx.reply(
                conn,
                reject(client, seq, ReplyStatus::Unavailable, Some(me)),
            );
        }
        self.waiting.insert((client, seq), conn);
        self.pending.push_back(cmd);
    }

    /// End of a burst: queued proposals become entries and go out.
    pub fn flush(&mut self, now: u64, fx: &mut Effects<RaftMsg>) {
        if !self.is_leader() {
            return;
        }
        if !self.pending.is_empty() {
            while !self.pending.is_empty() {
                let take = if self.cfg.batch {
                    let mut bytes = 0;
                    let max = self.cfg.max_msg_bytes;
                    let fits = self
                        .pending
                        .iter()
                        .take(self.cfg.batch_max.max(1))
                        .take_while(|c| {
                            bytes += c.wire_len();
                            bytes <= max
                        });
                    fits.count().max(1)
                } else {
                    1
                };
                let cmds: Vec<Command> = self.pending.drain(..take).collect();
                let term = self.term;
                self.append(Entry { term, cmds }, fx);
            }
            self.maybe_commit(fx);
            self.replicate(now, false, fx);
        }
    }

    /// Executes every committed entry not yet executed and answers the
    /// clients waiting here.
    pub(crate) fn apply(&mut self, fx: &mut Effects<RaftMsg>) {
        let me = self.cfg.id;
        while self.applied < self.commit {
            let i = self.applied + 1;
            let Some(e) = self.log.get(i) else {
                break; // not held: a snapshot brings it
            };
            let mut bytes = 0;
            for c in &e.cmds {
                bytes += c.wire_len();
                let out = self.sm.execute_checked(c);
                if self.waiting.is_empty() {
                    continue;
                }
                if let Some(conn) = self.waiting.remove(&(c.client, c.seq)) {
                    let r = match out {
                        Some(out) => accepted(c.client, c.seq, me, out),
                        None => reject(c.client, c.seq, ReplyStatus::Stale, Some(me)),
                    };
                    fx.reply(conn, r);
                }
            }
            self.exec_bytes += bytes;
            self.applied = i;
        }
        self.maybe_compact(fx);
    }
}
