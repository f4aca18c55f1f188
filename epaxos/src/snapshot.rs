//! State transfer past the garbage-collection horizon.
//!
//! A replica forgets executed instances past [`crate::Config::keep_executed`]
//! per leader even while a peer is down, so memory stays bounded. A peer that
//! comes back needing one of them learns so, never silence: heartbeats say
//! below which instance each leader's instances are forgotten at the sender
//! (`Progress::forgotten`), and a question about a forgotten instance (Prepare,
//! PreAccept, Accept, TryPreAccept) is answered [`Compacted`]. Either way the
//! replica behind asks that peer for its snapshot (the shared mechanism of
//! [`genericsmr::snapshot`]): the state machine image plus the frontier below.
//!
//! The frontier is, per leader, the prefix the sender executed, the
//! instances it executed above that prefix (with their attributes, so that
//! the receiver knows they ran and can still answer for them), what it knows
//! every replica executed, and how many instances it executed. Nothing of the
//! conflict table travels: a new instance of the receiver gathers its
//! dependencies from a quorum, and every committed instance is in the table
//! of some member of any quorum until every replica has executed it.
//!
//! Installing swaps the state machine, drops every instance the snapshot
//! covers, marks the instances it executed above the prefix, and takes back
//! the executions of instances this replica ran that the sender had not (they
//! run again, in dependency order, from their committed attributes). A
//! replica that has forgotten an instance the sender has not executed cannot
//! take that snapshot and waits for a later one.
//!
//! The same snapshot is the base of the durable log's compaction
//! ([`genericsmr::snapshot::Source::compact`]): every [`crate::Config::compact_every`] executed
//! instances, and at every install, the log is replaced by the snapshot file
//! and a log of what the snapshot does not cover (the conflict table, and
//! every instance not executed: votes, promises, commits). Replay installs
//! the base first; records about instances it covers (the old log, after a
//! crash between the two files) only note their conflicts.

use std::collections::HashSet;

use genericsmr::command::Command;
use genericsmr::effects::Effects;
use genericsmr::snapshot::{
    self, Capture, Compacted, Snapshot, SnapshotChunk, SnapshotRequest, Source,
};
use genericsmr::wire::{decode_body, WireError};
use genericsmr::{wire_struct, ReplicaId};

use crate::commit::instance_key;
use crate::messages::{Entry, EpaxosMsg};
use crate::replica::{Replica, Status};

/// The EPaxos part of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    /// Per leader, every instance below this is executed in the snapshot.
    pub executed_upto: Vec<u64>,
    /// Per leader, every instance below this is executed by every replica.
    pub everywhere: Vec<u64>,
    /// Instances executed in the snapshot (the status counter).
    pub executed: u64,
    /// Instances executed in the snapshot above their leader's prefix.
    pub above: Vec<Executed>,
}
wire_struct!(Frontier {
    executed_upto,
    everywhere,
    executed,
    above
});

/// An executed instance above its leader's executed prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// Its command leader.
    pub leader: ReplicaId,
    /// Its number.
    pub instance: u64,
    /// Its committed sequence number.
    pub seq: u64,
    /// Its committed dependencies.
    pub deps: Vec<u64>,
    /// Its commands.
    pub cmds: Vec<Command>,
}
wire_struct!(Executed {
    leader,
    instance,
    seq,
    deps,
    cmds
});

impl Replica {
    /// This replica's snapshot.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.state, &self.frontier())
    }

    /// This replica's state, taken to be encoded later (off the event loop).
    pub fn capture(&self) -> Capture {
        Capture::of(&self.state, &self.frontier())
    }

    /// What the snapshot holds besides the state machine.
    fn frontier(&self) -> Frontier {
        let mut above = Vec::new();
        for (l, sp) in self.spaces.iter().enumerate() {
            for i in sp.executed_upto..sp.end() {
                if let Some(x) = sp.get(i).filter(|x| x.status == Status::Executed) {
                    above.push(Executed {
                        leader: l as ReplicaId,
                        instance: i,
                        seq: x.seq,
                        deps: x.deps.clone(),
                        cmds: x.cmds.clone(),
                    });
                }
            }
        }
        Frontier {
            executed_upto: self.executed_upto(),
            everywhere: self.everywhere.clone(),
            executed: self.executed,
            above,
        }
    }

    /// Compacts the durable log once [`crate::Config::compact_every`]
    /// instances more were executed since the last compaction (see
    /// [`Replica::compact_durable`]).
    pub(crate) fn maybe_compact(&mut self, fx: &mut Effects<EpaxosMsg>) {
        if !fx.keeps_records() {
            return;
        }
        // Count what the outbox queued since we last looked (it starts
        // again from empty once the driver took it).
        let queued = fx.persist_len();
        self.logged_bytes += if queued < self.logged_seen {
            queued
        } else {
            queued - self.logged_seen
        };
        self.logged_seen = queued;
        let due = self.cfg.compact_every.max(1);
        let by_count = self.executed.saturating_sub(self.compacted_at) >= due;
        let by_bytes =
            self.logged_bytes >= self.cfg.compact_bytes.max(1) && self.executed > self.compacted_at;
        if by_count || by_bytes {
            let snap = self.capture();
            self.compact_durable(Source::Captured(Box::new(snap)), fx);
        }
    }

    /// Asks the driver to replace the durable log by `snap` (this replica's
    /// snapshot, or the peer's it just installed: either covers exactly the
    /// instances executed here) and the records it does not cover: the
    /// conflict table, the everywhere horizon, and every instance at or
    /// above its leader's executed prefix that is not executed, whatever it
    /// holds (votes, promises, commits). Executed instances are in the
    /// snapshot; placeholders with nothing voted are left out.
    pub(crate) fn compact_durable(&mut self, snap: Source, fx: &mut Effects<EpaxosMsg>) {
        snap.compact(Entry::SNAPSHOT, fx);
        fx.persist(&Entry::Conflicts(self.keys.export()));
        fx.persist(&Entry::Everywhere(self.everywhere.clone()));
        self.everywhere_persisted.clone_from(&self.everywhere);
        for (l, sp) in self.spaces.iter().enumerate() {
            for i in sp.executed_upto..sp.end() {
                let Some(x) = sp.get(i) else { continue };
                let placeholder = x.status == Status::None && x.ballot == 0 && x.vballot == 0;
                if x.status == Status::Executed || placeholder {
                    continue;
                }
                fx.persist(&Entry::instance(&x.record(l as ReplicaId, i)));
            }
        }
        // Everything touched is in the tail as it stands now.
        self.dirty.clear();
        self.compacted_at = self.executed;
        self.compactions += 1;
        self.logged_bytes = 0;
        self.logged_seen = fx.persist_len();
    }

    /// Durable compactions this replica asked for.
    pub fn compactions(&self) -> u64 {
        self.compactions
    }

    /// Snapshots installed from peers, and sent to peers.
    pub fn snapshots(&self) -> (u64, u64) {
        (self.fetch.completed(), self.snapshots_sent)
    }

    /// Whether a peer that forgot each leader's instances below `forgotten`
    /// held one this replica still needs: not committed here and not yet
    /// executed. A replica that merely lags in execution, with the commits in
    /// hand, catches up by itself; a snapshot would cost the sender a copy of
    /// the store. At most `progress_wait_max` instances are looked at per
    /// leader and heartbeat.
    pub(crate) fn behind(&self, forgotten: &[u64]) -> bool {
        let cap = self.cfg.progress_wait_max.max(1);
        self.spaces.iter().zip(forgotten).any(|(sp, &f)| {
            let end = f.min(sp.executed_upto.saturating_add(cap));
            (sp.executed_upto..end).any(|i| !sp.get(i).is_some_and(|x| x.status.is_committed()))
        })
    }

    /// Asks `peer` for its snapshot, unless a transfer is under way.
    pub(crate) fn fetch_snapshot(
        &mut self,
        now: u64,
        peer: ReplicaId,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        self.fetch.ask(now, peer, EpaxosMsg::SnapshotRequest, fx);
    }

    /// Tells `to` that instance `(l, i)` is forgotten here.
    pub(crate) fn compacted(
        &self,
        to: ReplicaId,
        l: ReplicaId,
        i: u64,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        fx.send(
            to,
            EpaxosMsg::Compacted(Compacted {
                what: instance_key(l, i),
            }),
        );
    }

    /// A peer forgot an instance this replica asked about.
    pub fn handle_compacted(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: Compacted,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let (l, i) = ((m.what >> 56) as usize, m.what & ((1 << 56) - 1));
        if self.spaces.get(l).is_some_and(|sp| i >= sp.executed_upto) {
            self.fetch_snapshot(now, from, fx);
        }
    }

    /// A peer asks for this replica's snapshot: it goes in chunks.
    pub fn handle_snapshot_request(
        &mut self,
        from: ReplicaId,
        m: SnapshotRequest,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        let cfg = self.cfg.transfer;
        if cfg.answer(from, &m, &self.snapshot(), EpaxosMsg::SnapshotChunk, fx) {
            self.snapshots_sent += 1;
        }
    }

    /// A piece of the snapshot this replica asked for; the last one installs it.
    pub fn handle_snapshot_chunk(
        &mut self,
        now: u64,
        from: ReplicaId,
        c: SnapshotChunk,
        fx: &mut Effects<EpaxosMsg>,
    ) {
        if let Some(snap) = self.fetch.receive(now, from, c) {
            let done = self.install(&snap, fx);
            snapshot::installed(from, done);
        }
    }

    /// Installs `snap` if it covers instances this replica has not executed
    /// and nothing this replica forgot is missing from it; when durable, it
    /// then becomes the base of a compacted log. Returns whether it was
    /// installed.
    pub(crate) fn install(
        &mut self,
        snap: &Snapshot,
        fx: &mut Effects<EpaxosMsg>,
    ) -> Result<bool, WireError> {
        self.install_with(snap, fx, false)
    }

    /// [`Replica::install`]; `base` installs it even if it is not ahead of
    /// this replica (the first snapshot of a replay, which a fresh replica
    /// takes whatever it covers).
    pub(crate) fn install_with(
        &mut self,
        snap: &Snapshot,
        fx: &mut Effects<EpaxosMsg>,
        base: bool,
    ) -> Result<bool, WireError> {
        let n = self.cfg.n;
        let f: Frontier = decode_body(snap.protocol.clone())?;
        let bad = |what| WireError::Invalid { what, value: 0 };
        if f.executed_upto.len() != n || f.everywhere.len() != n {
            return Err(bad("snapshot frontier length"));
        }
        if f.above.iter().any(|x| {
            x.leader as usize >= n
                || x.deps.len() != n
                || x.instance < f.executed_upto[x.leader as usize]
        }) {
            return Err(bad("snapshot instance above the frontier"));
        }
        let sm = snap.state_machine(&self.state)?;
        let behind = (0..n).any(|l| f.executed_upto[l] > self.spaces[l].executed_upto);
        let usable = (0..n).all(|l| self.spaces[l].base <= f.executed_upto[l]);
        if !(behind || base) || !usable {
            return Ok(false);
        }
        let above: HashSet<(ReplicaId, u64)> =
            f.above.iter().map(|x| (x.leader, x.instance)).collect();
        for (l, sp) in self.spaces.iter_mut().enumerate() {
            let fl = f.executed_upto[l];
            let drop = (fl - sp.base).min(sp.slots.len() as u64);
            sp.slots.drain(..drop as usize);
            sp.base = fl;
            sp.executed_upto = fl;
            sp.kept_bytes = 0;
            for i in fl..sp.end() {
                let Some(x) = sp.get_mut(i) else { continue };
                if x.status == Status::Executed && !above.contains(&(l as ReplicaId, i)) {
                    // Ran here, not in the snapshot: it runs again.
                    x.status = Status::Committed;
                    self.to_execute.insert((l as ReplicaId, i));
                }
            }
        }
        for e in f.above {
            let Some(x) = self.spaces[e.leader as usize].entry(e.instance, n) else {
                continue;
            };
            x.status = Status::Executed;
            x.seq = e.seq;
            x.deps = e.deps;
            x.cmds = e.cmds;
            x.lead = None;
            x.waiting_since = None;
            x.early_commit = None;
            self.to_execute.remove(&(e.leader, e.instance));
        }
        let me = self.cfg.id as usize;
        for sp in &mut self.spaces {
            sp.advance_executed();
        }
        self.next = self.next.max(self.spaces[me].end());
        let spaces = &self.spaces;
        self.to_execute.retain(|&(l, i)| {
            spaces[l as usize]
                .get(i)
                .is_some_and(|x| x.status == Status::Committed)
        });
        for (a, b) in self.everywhere.iter_mut().zip(&f.everywhere) {
            *a = (*a).max(*b);
        }
        self.state = sm;
        self.executed = f.executed;
        self.committed = f.executed + self.to_execute.len() as u64;
        if fx.keeps_records() {
            // Persisted before anything this outbox sends, as the new base.
            self.compact_durable(Source::Installed(snap.to_bytes()), fx);
        }
        // Clients waiting here on commands the snapshot ran get their answer.
        snapshot::answer_waiting(&self.state, self.cfg.id, &mut self.waiting, fx);
        // What it unblocked runs at the end of the burst (`flush`); at a
        // restart, in the order the log recorded after the snapshot.
        Ok(true)
    }
}
