//! Timers, the master's probes, status and log requests, durable replay, and
//! the one entry point for any peer message.

use std::cmp::Reverse;

use genericsmr::effects::Effects;
use genericsmr::messages::{role, LogReply, LogRequest, SlotDigest, StatusReply};
use genericsmr::wire::decode_body;
use genericsmr::ReplicaId;

use crate::commit::instance_key;
use crate::messages::*;
use crate::replica::{Replica, Status};

/// A durable record that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("record {index} of the durable log does not decode: {source}")]
pub struct ReplayError {
    /// Position of the record.
    pub index: usize,
    /// Why.
    pub source: genericsmr::wire::WireError,
}

impl Replica {
    /// Timers: retransmissions of what this replica drives, and recovery of
    /// instances it has waited on too long.
    pub fn tick(&mut self, now: u64, fx: &mut Effects<EpaxosMsg>) {
        if now.saturating_sub(self.last_progress) >= self.cfg.heartbeat_ns {
            self.last_progress = now;
            fx.broadcast(EpaxosMsg::Progress(Progress {
                next: self.next,
                executed: self.executed_upto(),
                everywhere: self.everywhere.clone(),
                forgotten: self.spaces.iter().map(|s| s.base).collect(),
            }));
            self.collect_garbage(fx);
        }
        self.fetch.expire(now);
        let rt = self.cfg.retransmit_ns;
        let others = self.others();
        // Only what is due: the set holds every instance in flight.
        let mut due = Vec::new();
        let mut dropped = Vec::new();
        self.leading.retain(|&(l, i)| {
            let x = self.spaces[l as usize].get(i);
            let lead = x.and_then(|x| x.lead.as_deref());
            match lead {
                None => {
                    // Superseded by another ballot: whoever took over may die
                    // or commit without telling us, so wait on it like on any
                    // instance we did not start.
                    if x.is_some_and(|x| !x.status.is_committed()) {
                        dropped.push((l, i));
                    }
                    false
                }
                Some(ld) => {
                    if now.saturating_sub(ld.sent_at) >= rt {
                        due.push((l, i));
                    }
                    true
                }
            }
        });
        for node in dropped {
            self.wait_on(node, now);
        }
        for (l, i) in due {
            let Some(x) = self.spaces[l as usize].get_mut(i) else {
                continue;
            };
            let Some(lead) = x.lead.as_deref_mut() else {
                continue;
            };
            lead.sent_at = now;
            let ballot = lead.ballot;
            let msg = match lead.phase {
                1 => EpaxosMsg::PreAccept(PreAccept {
                    leader: l,
                    instance: i,
                    ballot,
                    cmds: x.cmds.clone(),
                    seq: x.seq,
                    deps: x.deps.clone(),
                }),
                2 => EpaxosMsg::Accept(Accept {
                    leader: l,
                    instance: i,
                    ballot,
                    cmds: x.cmds.clone(),
                    seq: x.seq,
                    deps: x.deps.clone(),
                }),
                4 => EpaxosMsg::TryPreAccept(TryPreAccept {
                    leader: l,
                    instance: i,
                    ballot,
                    cmds: x.cmds.clone(),
                    seq: lead.seq,
                    deps: lead.deps.clone(),
                }),
                _ => EpaxosMsg::Prepare(Prepare {
                    leader: l,
                    instance: i,
                    ballot,
                }),
            };
            fx.send_set(others & !lead.answered, msg);
        }
        let grace = self.cfg.recovery_grace_ns;
        while let Some(&Reverse((since, l, i))) = self.waited.peek() {
            if now.saturating_sub(since) < grace {
                break;
            }
            self.waited.pop();
            let Some(x) = self.spaces[l as usize].get_mut(i) else {
                continue;
            };
            if x.status.is_committed() || x.waiting_since != Some(since) {
                continue; // done, or waiting again since later
            }
            // Spread competing recoverers out: wait again before the next try.
            let again = now + (self.cfg.id as u64) * grace / 4;
            x.waiting_since = Some(again);
            self.waited.push(Reverse((again, l, i)));
            if x.lead.is_none() {
                self.start_recovery(now, l, i, fx);
            }
        }
    }

    /// A peer's heartbeat: wait on the instances of it not yet committed here
    /// (at most [`crate::Config::progress_wait_max`] at a time, so that one
    /// message cannot make this replica allocate millions of them), and ask
    /// for a snapshot if the peer forgot instances not executed here.
    pub fn handle_progress(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: Progress,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let n = self.cfg.n;
        if !self.in_window(from, m.next.saturating_sub(1))
            || m.executed.len() != n
            || m.everywhere.len() != n
            || m.forgotten.len() != n
        {
            return;
        }
        self.peer_executed[from as usize] = m.executed;
        self.peer_everywhere[from as usize] = m.everywhere;
        if self.behind(&m.forgotten) {
            self.fetch_snapshot(now, from, fx);
        }
        let sp = &self.spaces[from as usize];
        let upto = m
            .next
            .min(sp.executed_upto.saturating_add(self.cfg.progress_wait_max));
        let missing: Vec<u64> = (sp.executed_upto..upto)
            .filter(|i| !sp.get(*i).is_some_and(|x| x.status.is_committed()))
            .collect();
        for i in missing {
            self.wait_on((from, i), now);
        }
    }

    /// End of a burst: start what batching held back, execute, persist.
    pub fn flush(&mut self, now: u64, fx: &mut Effects<EpaxosMsg>) {
        self.start_instances(now, fx);
        self.execute(now, fx);
        // Executions free in-flight room: start what waited on it.
        self.start_instances(now, fx);
        self.persist_dirty(fx);
        // Only now: an instance committed and executed in this burst must
        // reach the log before it is forgotten.
        self.forget_executed();
        self.maybe_compact(fx);
    }

    /// A snapshot of the replica's state. `commit_index` and `executed` count
    /// instances; `ballot` is 0 (ballots are per instance).
    pub fn status(&self, nonce: u64) -> StatusReply {
        StatusReply {
            nonce,
            replica: self.cfg.id,
            role: role::LEADER,
            ballot: 0,
            leader: Some(self.cfg.id),
            commit_index: self.committed,
            executed: self.executed,
            log_len: self.spaces.iter().map(|s| s.end()).sum(),
            catchup_fetched: self.recoveries,
            replayed: self.replayed,
            ..self.state.status()
        }
    }

    /// The answer to a log request: held instances in (leader, instance)
    /// order, numbered `leader << 56 | instance`, from that number on, at
    /// most `m.count` (and [`LogRequest::MAX_SLOTS`]) of them.
    pub fn log_reply(&self, m: &LogRequest) -> LogReply {
        let mut slots = Vec::new();
        'all: for (l, sp) in self.spaces.iter().enumerate() {
            for i in sp.base..sp.end() {
                let key = instance_key(l as ReplicaId, i);
                if key < m.from {
                    continue;
                }
                if slots.len() >= m.count.min(LogRequest::MAX_SLOTS) as usize {
                    break 'all;
                }
                if let Some(x) = sp.get(i).filter(|x| x.status != Status::None) {
                    slots.push(SlotDigest {
                        slot: key,
                        committed: x.status.is_committed(),
                        hash: x.hash(),
                    });
                }
            }
        }
        LogReply {
            nonce: m.nonce,
            slots,
        }
    }

    /// Delivers any peer message (the simulator's entry point).
    pub fn handle_peer(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: EpaxosMsg,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        if let Some(t) = self.last_heard.get_mut(from as usize) {
            *t = now;
        }
        match m {
            EpaxosMsg::PreAccept(m) => self.handle_preaccept(now, from, m, fx),
            EpaxosMsg::PreAcceptReply(m) => self.handle_preaccept_reply(now, from, m, fx),
            EpaxosMsg::PreAcceptOk(m) => self.handle_preaccept_ok(now, from, m, fx),
            EpaxosMsg::Accept(m) => self.handle_accept(now, from, m, fx),
            EpaxosMsg::AcceptReply(m) => self.handle_accept_reply(now, from, m, fx),
            EpaxosMsg::Commit(m) => self.handle_commit(now, from, m, fx),
            EpaxosMsg::CommitShort(m) => self.handle_commit_short(now, from, m, fx),
            EpaxosMsg::Prepare(m) => self.handle_prepare(now, from, m, fx),
            EpaxosMsg::PrepareReply(m) => self.handle_prepare_reply(now, from, m, fx),
            EpaxosMsg::Progress(m) => self.handle_progress(now, from, m, fx),
            EpaxosMsg::TryPreAccept(m) => self.handle_try_preaccept(now, from, m, fx),
            EpaxosMsg::TryPreAcceptReply(m) => self.handle_try_preaccept_reply(now, from, m, fx),
            EpaxosMsg::Compacted(m) => self.handle_compacted(now, from, m, fx),
            EpaxosMsg::SnapshotRequest(m) => self.handle_snapshot_request(from, m, fx),
            EpaxosMsg::SnapshotChunk(m) => self.handle_snapshot_chunk(now, from, m, fx),
        }
    }

    /// Per leader, the instances every replica is known to have executed.
    pub fn everywhere_executed(&self) -> &[u64] {
        &self.everywhere
    }

    /// (instance number, hash) of each commit since the `from`-th, in commit
    /// order (with [`crate::Config::record_commits`]).
    pub fn commits_from(&self, from: u64) -> &[(u64, u64)] {
        self.commit_log.get(from as usize..).unwrap_or(&[])
    }

    /// Replays durable records (the last record of an instance wins), then
    /// executes what was committed.
    ///
    /// A compacted log starts with its base snapshot (from the snapshot
    /// file), which is installed whatever it covers; a later snapshot (one
    /// installed from a peer, in a log written before compaction existed) is
    /// installed only if it is ahead. Executions recorded before an installed
    /// snapshot are covered by it. Records about instances a snapshot covers
    /// change nothing but the conflict table: after a crash between writing
    /// the snapshot file and replacing the log, the old log follows the new
    /// base.
    pub fn restore(&mut self, records: &[bytes::Bytes]) -> Result<(), ReplayError> {
        let n = self.cfg.n;
        let mut fx = Effects::without_persistence();
        let entries = records
            .iter()
            .enumerate()
            .map(|(index, b)| {
                decode_body::<Entry>(b.clone()).map_err(|source| ReplayError { index, source })
            })
            .collect::<Result<Vec<Entry>, ReplayError>>()?;
        let mut installed = false;
        let mut executed = Vec::new();
        for (index, e) in entries.into_iter().enumerate() {
            let err = |source| ReplayError { index, source };
            let r = match e {
                Entry::Instance(r) => r,
                Entry::Everywhere(v) => {
                    if v.len() == n {
                        for (a, b) in self.everywhere.iter_mut().zip(&v) {
                            *a = (*a).max(*b);
                        }
                        self.everywhere_persisted.clone_from(&self.everywhere);
                    }
                    continue;
                }
                Entry::Snapshot(b) => {
                    let snap = genericsmr::snapshot::Snapshot::from_bytes(b).map_err(err)?;
                    if self.install_with(&snap, &mut fx, !installed).map_err(err)? {
                        installed = true;
                        executed.clear();
                        self.compacted_at = self.executed;
                    }
                    continue;
                }
                Entry::Conflicts(c) => {
                    self.keys.restore(&c).map_err(|e| {
                        err(genericsmr::wire::WireError::Invalid {
                            what: match e {
                                crate::keys::ImportError::Shape => "conflict table shape",
                                crate::keys::ImportError::Seed => "conflict table seed",
                            },
                            value: c.seed,
                        })
                    })?;
                    continue;
                }
            };
            if (r.leader as usize) >= n {
                continue;
            }
            if Status::from_u8(r.status) == Status::Executed {
                executed.push((r.leader, r.instance));
                continue;
            }
            if r.deps.len() != n {
                continue;
            }
            if r.leader == self.cfg.id {
                self.next = self.next.max(r.instance + 1);
            }
            let status = Status::from_u8(r.status);
            // Noted even where a snapshot covers the instance: its conflicts
            // stay until every replica has executed it, as in a full replay.
            self.record_keys(r.leader, r.instance, r.seq, &r.cmds);
            if status.is_committed() {
                self.mark_committed(r.leader, r.instance, Some(r.cmds), r.seq, r.deps, &mut fx);
                continue;
            }
            let Some(x) = self.spaces[r.leader as usize].entry(r.instance, n) else {
                continue;
            };
            if x.status.is_committed() {
                continue;
            }
            x.ballot = r.ballot;
            x.vballot = r.vballot;
            x.status = status;
            x.unchanged = r.unchanged;
            x.cmds = r.cmds;
            x.seq = r.seq;
            x.deps = r.deps;
            // Own instances left unfinished by the crash are recovered like anyone's.
            if status != Status::None {
                x.waiting_since = Some(0);
                self.waited.push(Reverse((0, r.leader, r.instance)));
            }
        }
        self.replayed = records.len() as u64;
        self.dirty.clear();
        // Conflicts every replica has executed order nothing, and peers may
        // have dropped them on this replica's word: holding them again would
        // let it refute a TryPreAccept that its peers' fast path satisfied.
        let everywhere = self.everywhere.clone();
        self.keys.forget(&everywhere);
        // First what was executed, in the order it was (dependencies on
        // instances every replica had executed may have been dropped, so
        // this order is the one to keep), then whatever else can run.
        self.replay_executions(&executed, &mut fx);
        self.execute(0, &mut fx);
        self.forget_executed();
        self.recount_open();
        Ok(())
    }
}
