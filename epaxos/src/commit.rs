//! Commits: the leader's decision, its announcement, learning it at peers,
//! and the replies that may go out at commit.

use genericsmr::command::{Command, Op};
use genericsmr::effects::{accepted, Effects};
use genericsmr::ReplicaId;

use crate::messages::*;
use crate::replica::{Replica, Status};

impl Replica {
    /// The instance this replica leads is chosen with its current attributes:
    /// record it, tell everyone, answer what may be answered at commit.
    pub(crate) fn commit_locally(&mut self, l: ReplicaId, i: u64, fx: &mut Effects<EpaxosMsg>) {
        let others = self.others();
        let Some(x) = self.spaces[l as usize].get_mut(i) else {
            return;
        };
        let lead = x.lead.take();
        let (voters, ballot) = lead.as_ref().map_or((0, 0), |ld| (ld.votes, ld.ballot));
        let short = voters & others;
        let full = others & !short;
        let (seq, deps) = (x.seq, x.deps.clone());
        if short != 0 {
            fx.send_set(
                short,
                EpaxosMsg::CommitShort(CommitShort {
                    leader: l,
                    instance: i,
                    ballot,
                    seq,
                    deps: deps.clone(),
                }),
            );
        }
        if full != 0 {
            fx.send_set(
                full,
                EpaxosMsg::Commit(Commit {
                    leader: l,
                    instance: i,
                    cmds: x.cmds.clone(),
                    seq,
                    deps: deps.clone(),
                }),
            );
        }
        let cmds = x.cmds.clone();
        self.mark_committed(l, i, cmds, seq, deps, fx);
    }

    /// A full commit from a peer.
    pub fn handle_commit(
        &mut self,
        _now: u64,
        _from: ReplicaId,
        m: Commit,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        if !self.in_window(m.leader, m.instance) || m.deps.len() != self.cfg.n {
            return;
        }
        self.mark_committed(m.leader, m.instance, m.cmds, m.seq, m.deps, fx);
    }

    /// An attribute-only commit: usable if this replica voted at its ballot
    /// (and so holds the commands); otherwise recovery will fetch the value.
    pub fn handle_commit_short(
        &mut self,
        _now: u64,
        _from: ReplicaId,
        m: CommitShort,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        if !self.in_window(m.leader, m.instance) || m.deps.len() != self.cfg.n {
            return;
        }
        let Some(x) = self.spaces[m.leader as usize].get(m.instance) else {
            return;
        };
        if x.status.is_committed() || x.status == Status::None || x.vballot != m.ballot {
            return;
        }
        let cmds = x.cmds.clone();
        self.mark_committed(m.leader, m.instance, cmds, m.seq, m.deps, fx);
    }

    /// Records a chosen value (once), and queues it for execution.
    pub(crate) fn mark_committed(
        &mut self,
        l: ReplicaId,
        i: u64,
        cmds: Vec<Command>,
        seq: u64,
        deps: Vec<u64>,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let n = self.cfg.n;
        let Some(x) = self.spaces[l as usize].entry(i, n) else {
            return; // executed and forgotten
        };
        if x.status.is_committed() {
            return;
        }
        x.status = Status::Committed;
        x.cmds = cmds;
        x.seq = seq;
        x.deps = deps;
        x.lead = None;
        x.waiting_since = None;
        let (seq, cmds) = (x.seq, x.cmds.clone());
        let hash = x.hash();
        self.record_keys(l, i, seq, &cmds);
        self.touch(l, i);
        self.committed += 1;
        if self.cfg.record_commits {
            self.commit_log.push((instance_key(l, i), hash));
        }
        self.to_execute.insert((l, i));
        self.reply_on_commit(&cmds, fx);
    }

    /// Unless replies wait for execution, a write is answered once chosen: its
    /// place among conflicting commands is fixed, and a later conflicting
    /// command will find it in its dependencies.
    fn reply_on_commit(&mut self, cmds: &[Command], fx: &mut Effects<EpaxosMsg>) {
        if self.cfg.reply_after_exec || self.waiting.is_empty() {
            return;
        }
        for c in cmds {
            if !matches!(c.op, Op::Put | Op::Delete) || self.state.is_stale(c.client, c.seq) {
                continue;
            }
            if let Some(conn) = self.waiting.remove(&(c.client, c.seq)) {
                fx.reply(
                    conn,
                    accepted(c.client, c.seq, self.cfg.id, Default::default()),
                );
            }
        }
    }
}

/// One number per instance, for agreement checks: leader in the top byte.
pub fn instance_key(l: ReplicaId, i: u64) -> u64 {
    ((l as u64) << 56) | i
}
