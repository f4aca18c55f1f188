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
        let thrifty = self.cfg.thrifty;
        let Some(x) = self.spaces[l as usize].get_mut(i) else {
            return;
        };
        let lead = x.lead.take();
        let (voters, ballot) = lead.as_ref().map_or((0, 0), |ld| (ld.votes, ld.ballot));
        // Peers sent this ballot's commands hold them by now (one connection
        // keeps its order): they need the attributes only. A peer that dropped
        // them ignores the short commit and recovers the instance later.
        let short = if thrifty { voters & others } else { others };
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
        self.mark_committed(l, i, None, seq, deps, fx);
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
        self.mark_committed(m.leader, m.instance, Some(m.cmds), m.seq, m.deps, fx);
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
        let n = self.cfg.n;
        let Some(x) = self.spaces[m.leader as usize].entry(m.instance, n) else {
            return;
        };
        if x.status.is_committed() {
            return;
        }
        if x.status == Status::None || x.vballot != m.ballot {
            // Overtook the commands it refers to (a reordering link): keep it
            // until they arrive at that ballot.
            x.early_commit = Some(Box::new((m.ballot, m.seq, m.deps)));
            return;
        }
        self.mark_committed(m.leader, m.instance, None, m.seq, m.deps, fx);
    }

    /// The commands of ballot `ballot` just arrived: a short commit that
    /// overtook them can take effect now.
    pub(crate) fn apply_early_commit(&mut self, l: ReplicaId, i: u64, fx: &mut Effects<EpaxosMsg>) {
        let Some(x) = self.spaces[l as usize].get_mut(i) else {
            return;
        };
        let Some(early) = x.early_commit.take() else {
            return;
        };
        let (ballot, seq, deps) = *early;
        if x.vballot == ballot && x.status != Status::None {
            self.mark_committed(l, i, None, seq, deps, fx);
        } else if x.vballot < ballot {
            x.early_commit = Some(Box::new((ballot, seq, deps)));
        }
    }

    /// Records a chosen value (once), and queues it for execution. `cmds`
    /// `None`: the commands the instance already holds.
    pub(crate) fn mark_committed(
        &mut self,
        l: ReplicaId,
        i: u64,
        cmds: Option<Vec<Command>>,
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
        // A replica that voted for the instance has its keys in the conflict
        // table already; only a changed sequence number needs noting again.
        let noted = x.status != Status::None && x.seq == seq && cmds.is_none();
        x.status = Status::Committed;
        if let Some(c) = cmds {
            x.cmds = c;
        }
        x.seq = seq;
        x.deps = deps;
        x.lead = None;
        x.waiting_since = None;
        if self.cfg.record_commits {
            let hash = x.hash();
            self.commit_log.push((instance_key(l, i), hash));
        }
        if !noted {
            self.record_own_keys(l, i);
        }
        self.touch(l, i);
        self.committed += 1;
        self.to_execute.insert((l, i));
        self.reply_on_commit(l, i, fx);
    }

    /// Unless replies wait for execution, a write is answered once chosen: its
    /// place among conflicting commands is fixed, and a later conflicting
    /// command will find it in its dependencies.
    fn reply_on_commit(&mut self, l: ReplicaId, i: u64, fx: &mut Effects<EpaxosMsg>) {
        if self.cfg.reply_after_exec || self.waiting.is_empty() {
            return;
        }
        let Some(x) = self.spaces[l as usize].get(i) else {
            return;
        };
        for c in &x.cmds {
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
