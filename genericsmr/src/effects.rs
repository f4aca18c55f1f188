//! The outbox a protocol core fills, and the driver that carries it out.
//!
//! Cores never touch sockets or files: a handler pushes sends, replies and
//! records to persist into [`Effects`]. The runtime ([`crate::runtime`]) hands the outbox to a
//! [`Driver`], which first makes the records durable (according to the sync
//! policy) and only then sends, so no message ever depends on a vote that a crash
//! could take back.

use bytes::BytesMut;

use crate::command::{ClientId, Outcome};
use crate::disk::{Base, Disk};
use crate::durable::{frame_record, DurableError, DurableLog};
use crate::messages::{LogReply, Pong, ProposeReply, ReplyStatus, StatusReply};
use crate::transport::Transport;
use crate::wire::{Frame, Marshal};
use crate::{ConnId, ReplicaId};

/// Where a peer message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// One peer.
    Peer(ReplicaId),
    /// Every peer whose bit is set (bit `i` = replica `i`).
    Set(u64),
    /// Every other replica.
    All,
}

impl Dest {
    /// The replicas (bit `j` = replica `j`) a message from replica `me` in a
    /// group of `n` reaches: never `me` itself, nobody outside the group.
    pub fn mask(self, me: ReplicaId, n: usize) -> u64 {
        let group = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        let m = match self {
            Dest::Peer(p) if (p as usize) < 64 => 1u64 << p,
            Dest::Peer(_) => 0,
            Dest::Set(s) => s,
            Dest::All => u64::MAX,
        };
        m & group & !(1u64.checked_shl(me as u32).unwrap_or(0))
    }

    /// The replicas a message from `me` in a group of `n` reaches, in order.
    pub fn targets(self, me: ReplicaId, n: usize) -> impl Iterator<Item = ReplicaId> {
        let m = self.mask(me, n);
        (0..n.min(64) as ReplicaId).filter(move |j| m & (1u64 << j) != 0)
    }
}

/// A message for a client or master connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer to a proposal.
    Propose(ProposeReply),
    /// Answer to a status request.
    Status(StatusReply),
    /// Answer to a log request.
    Log(LogReply),
    /// Answer to the master's ping.
    Pong(Pong),
}

impl Frame for Reply {
    fn encode_frame(&self, out: &mut BytesMut) {
        match self {
            Reply::Propose(m) => m.encode_frame(out),
            Reply::Status(m) => m.encode_frame(out),
            Reply::Log(m) => m.encode_frame(out),
            Reply::Pong(m) => m.encode_frame(out),
        }
    }
}

/// A reply carrying a command's outcome.
pub fn accepted(client: ClientId, seq: u64, leader: ReplicaId, outcome: Outcome) -> Reply {
    Reply::Propose(ProposeReply {
        client,
        seq,
        status: ReplyStatus::Ok,
        leader: Some(leader),
        outcome,
    })
}

/// A reply refusing a proposal, with a hint where to go.
pub fn reject(client: ClientId, seq: u64, status: ReplyStatus, leader: Option<ReplicaId>) -> Reply {
    Reply::Propose(ProposeReply {
        client,
        seq,
        status,
        leader,
        outcome: Outcome::default(),
    })
}

/// Everything one round of handlers wants done.
#[derive(Debug)]
pub struct Effects<M> {
    /// Peer messages, in order.
    pub sends: Vec<(Dest, M)>,
    /// Client and master replies, in order.
    pub replies: Vec<(ConnId, Reply)>,
    persist: BytesMut,
    persisted: usize,
    /// A compaction asked for: where in `persist` the new log starts, and the
    /// base record that stands for everything before.
    compaction: Option<(usize, Base)>,
    /// Whether records are kept at all; without a durable log they are not even encoded.
    durable: bool,
}

/// What an outbox asks of the disk, in order: append `records[..at]` to
/// the log, then (if `compaction` is set) replace the log by the base record
/// and `records[at..]` (see [`DurableLog::compact`]), else append the rest.
#[derive(Debug, Default)]
pub struct ToDisk {
    /// Framed records.
    pub records: BytesMut,
    /// A compaction: where in `records` the new log starts, and the base
    /// record (the snapshot file's content) that replaces what is before.
    pub compaction: Option<(usize, Base)>,
}

impl<M> Default for Effects<M> {
    /// An outbox that keeps records (what tests and simulations inspect).
    fn default() -> Self {
        Effects {
            sends: Vec::new(),
            replies: Vec::new(),
            persist: BytesMut::new(),
            persisted: 0,
            compaction: None,
            durable: true,
        }
    }
}

impl<M> Effects<M> {
    /// Queues a message to one peer.
    pub fn send(&mut self, to: ReplicaId, msg: M) {
        self.sends.push((Dest::Peer(to), msg));
    }

    /// Queues a message to every other replica.
    pub fn broadcast(&mut self, msg: M) {
        self.sends.push((Dest::All, msg));
    }

    /// Queues a message to the peers in `set` (bit `i` = replica `i`).
    pub fn send_set(&mut self, set: u64, msg: M) {
        if set != 0 {
            self.sends.push((Dest::Set(set), msg));
        }
    }

    /// Queues a reply on a client or master connection.
    pub fn reply(&mut self, conn: ConnId, r: Reply) {
        self.replies.push((conn, r));
    }

    /// An outbox for a replica without a durable log: records are dropped unencoded.
    pub fn without_persistence() -> Self {
        Effects {
            durable: false,
            ..Self::default()
        }
    }

    /// Queues a record to make durable before anything queued here is sent.
    pub fn persist<R: Marshal + ?Sized>(&mut self, rec: &R) {
        if self.durable {
            frame_record(rec, &mut self.persist);
            self.persisted += 1;
        }
    }

    /// Queues a compaction of the durable log: a base record stands for
    /// every record persisted so far (it is replayed first on restart), and
    /// only records persisted after this call follow it in the new log. A
    /// core persists after this call whatever it still needs (its promise,
    /// votes above the snapshot). A later call in the same outbox supersedes
    /// this one. The base record's payload is written later by `write`, off
    /// the event loop (the runtime's driver runs it on a thread of its own;
    /// see [`crate::disk`]); cores call it through
    /// [`crate::snapshot::Source::compact`]. `write` must own what it
    /// writes from: a copy of the state taken now
    /// ([`crate::snapshot::Capture`]), so later handlers cannot change it.
    /// `len` is the length of what `write` appends (the driver sizes its
    /// buffer by it).
    pub fn compact_later(
        &mut self,
        len: usize,
        write: impl FnOnce(&mut BytesMut) + Send + 'static,
    ) {
        if self.durable {
            self.compaction = Some((self.persist.len(), Base::Later(Box::new(write), len)));
        }
    }

    /// Whether a compaction of the durable log is queued.
    pub fn compacting(&self) -> bool {
        self.compaction.is_some()
    }

    /// Takes what the outbox asks of the disk (records and any compaction).
    pub fn take_disk(&mut self) -> ToDisk {
        let compaction = self.compaction.take();
        ToDisk {
            records: self.take_persist(),
            compaction,
        }
    }

    /// Whether records are kept (a durable replica); otherwise a core need not
    /// even build them.
    pub fn keeps_records(&self) -> bool {
        self.durable
    }

    /// Bytes of records queued for persistence since the last drain.
    pub fn persist_len(&self) -> usize {
        self.persist.len()
    }

    /// Records queued for persistence since the last drain.
    pub fn persisted(&self) -> usize {
        self.persisted
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty() && self.replies.is_empty() && self.persist.is_empty()
    }

    /// Takes the queued records (and drops any compaction asked for: use
    /// [`Effects::take_disk`] where the log can be compacted).
    pub fn take_persist(&mut self) -> BytesMut {
        self.compaction = None;
        self.persisted = 0;
        self.persist.split()
    }
}

/// Carries out [`Effects`] against the real transport and durable log.
pub struct Driver {
    transport: Transport,
    disk: Option<Disk>,
    scratch: BytesMut,
}

impl Driver {
    /// A driver sending through `transport` and persisting into `log` (if durable).
    pub fn new(transport: Transport, log: Option<DurableLog>) -> Self {
        Driver {
            transport,
            disk: log.map(Disk::new),
            scratch: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// Whether records are persisted.
    pub fn is_durable(&self) -> bool {
        self.disk.is_some()
    }

    /// The transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Persists, then sends, then replies; leaves `fx` empty for reuse.
    pub fn carry_out<M: Frame>(&mut self, fx: &mut Effects<M>) -> Result<(), DurableError> {
        let todo = fx.take_disk();
        if let Some(disk) = &mut self.disk {
            disk.write(&todo.records, todo.compaction)?;
        }
        let me = self.transport.me();
        let n = self.transport.n();
        for (dest, msg) in fx.sends.drain(..) {
            match dest {
                Dest::Peer(to) => {
                    self.transport.send_peer(to, &msg);
                }
                Dest::Set(_) | Dest::All => {
                    self.scratch.clear();
                    msg.encode_frame(&mut self.scratch);
                    for j in dest.targets(me, n) {
                        self.transport.send_peer_raw(j, &self.scratch);
                    }
                }
            }
        }
        // Consecutive replies to one connection are encoded together and queued
        // with one lock, which matters when a batch answers hundreds of commands.
        let mut current = None;
        self.scratch.clear();
        for (conn, r) in fx.replies.drain(..) {
            if current != Some(conn) {
                if let Some(c) = current {
                    self.transport.send_conn_raw(c, &self.scratch);
                }
                self.scratch.clear();
                current = Some(conn);
            }
            r.encode_frame(&mut self.scratch);
        }
        if let Some(c) = current {
            self.transport.send_conn_raw(c, &self.scratch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Dest;

    #[test]
    fn a_destination_never_reaches_the_sender_or_outside_the_group() {
        let all: Vec<u8> = Dest::All.targets(1, 4).collect();
        assert_eq!(all, [0, 2, 3]);
        let set: Vec<u8> = Dest::Set(0b1_0111).targets(0, 4).collect();
        assert_eq!(set, [1, 2]);
        assert_eq!(Dest::Peer(2).targets(0, 3).collect::<Vec<_>>(), [2]);
        assert_eq!(Dest::Peer(0).targets(0, 3).count(), 0);
        assert_eq!(Dest::Peer(200).targets(0, 3).count(), 0);
        assert_eq!(Dest::All.mask(63, 64), u64::MAX >> 1);
    }
}
