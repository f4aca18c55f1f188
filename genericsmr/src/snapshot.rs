//! Snapshots: a replica's state at one point, so that a peer that fell behind
//! what the others have forgotten can start again from it instead of from
//! instances nobody holds any more.
//!
//! The parts, shared by every protocol:
//!
//! - [`Snapshot`]: the state machine image (store and dedup table, see
//!   [`StateMachine::encode_image`](crate::state::StateMachine::encode_image))
//!   plus an opaque part the protocol needs to go on from that point (for
//!   EPaxos, the executed frontier per command leader).
//! - The peer messages: [`Compacted`] (the answer to a question about
//!   something forgotten: never silence), [`SnapshotRequest`] and
//!   [`SnapshotChunk`]. A snapshot travels in chunks that respect the frame
//!   limit, each carrying the total length and a checksum of the whole;
//!   they may arrive in any order.
//! - [`Fetch`]: the receiving side's state, sans-IO like every core: which
//!   peer it asked, when, and the chunks assembled so far. A transfer that
//!   stalls is asked for again after a timeout, from the next peer.
//!
//! A protocol installs a snapshot atomically (it swaps its state machine and
//! drops what the snapshot covers in one handler) and, when durable, persists
//! the snapshot's bytes as a record of its log before anything that depends
//! on it leaves the replica (the driver persists before it sends).

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use crate::messages::codes;
use crate::wire::{Marshal, Reader, WireError};
use crate::ReplicaId;

/// A replica's state at one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The state machine image.
    pub state: Bytes,
    /// What the protocol needs besides (its own encoding).
    pub protocol: Bytes,
}
crate::wire_struct!(Snapshot { state, protocol });

impl Snapshot {
    /// The snapshot of state machine `sm` with the protocol's part `protocol`.
    pub fn of(sm: &crate::state::StateMachine, protocol: &impl Marshal) -> Snapshot {
        let mut state = BytesMut::new();
        sm.encode_image(&mut state);
        let mut p = BytesMut::new();
        protocol.marshal(&mut p);
        Snapshot {
            state: state.freeze(),
            protocol: p.freeze(),
        }
    }

    /// The snapshot as one byte string (what is chunked and persisted).
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(8 + self.state.len() + self.protocol.len());
        self.marshal(&mut b);
        b.freeze()
    }

    /// Decodes [`Snapshot::to_bytes`].
    pub fn from_bytes(b: Bytes) -> Result<Snapshot, WireError> {
        crate::wire::decode_body(b)
    }

    /// The state machine in the snapshot, decoded with the limits of `like`
    /// (the replica's own state machine); trailing bytes are an error.
    pub fn state_machine(
        &self,
        like: &crate::state::StateMachine,
    ) -> Result<crate::state::StateMachine, WireError> {
        let mut r = Reader::new(self.state.clone());
        let sm = like.decode_image(&mut r)?;
        r.finish()?;
        Ok(sm)
    }

    /// The protocol part of a snapshot that stands for one point of a log:
    /// the slot (or index) it was taken at, a lone `u64`.
    pub fn slot(&self) -> Result<u64, WireError> {
        read_protocol(&self.protocol, |r| r.u64("snapshot slot"))
    }
}

/// Answers the clients waiting on this replica for commands a snapshot it
/// just installed ran (or found stale), in (client, seq) order so that the
/// effects do not depend on hash seeds; those still to run stay waiting.
pub fn answer_waiting<M, S: std::hash::BuildHasher + Default>(
    sm: &crate::state::StateMachine,
    me: ReplicaId,
    waiting: &mut std::collections::HashMap<(crate::command::ClientId, u64), crate::ConnId, S>,
    fx: &mut crate::effects::Effects<M>,
) {
    use crate::effects::{accepted, reject};
    use crate::state::Check;
    let mut all: Vec<_> = std::mem::take(waiting).into_iter().collect();
    all.sort_unstable();
    for ((client, seq), conn) in all {
        match sm.check(client, seq) {
            Check::Done(o) => fx.reply(conn, accepted(client, seq, me, o.clone())),
            Check::Stale => fx.reply(
                conn,
                reject(client, seq, crate::messages::ReplyStatus::Stale, Some(me)),
            ),
            Check::Fresh => {
                waiting.insert((client, seq), conn);
            }
        }
    }
}

/// Replica -> replica: what you asked about is compacted here; ask for my
/// snapshot instead. The answer to any question about a forgotten instance
/// or slot, so that a replica behind the horizon is never met with silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// The instance or slot asked about, as the protocol numbers it.
    pub what: u64,
}
crate::wire_struct!(Compacted { what } = codes::COMPACTED);

/// Replica -> replica: send me your snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// Chosen by the asker; every chunk of the answer carries it, so chunks
    /// of an older transfer are told apart.
    pub nonce: u64,
}
crate::wire_struct!(SnapshotRequest { nonce } = codes::SNAPSHOT_REQUEST);

/// Replica -> replica: one piece of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The request's nonce.
    pub nonce: u64,
    /// Length of the whole snapshot in bytes.
    pub total: u64,
    /// Where this piece starts.
    pub offset: u64,
    /// xxh3-64 of the whole snapshot, checked once it is assembled.
    pub checksum: u64,
    /// The bytes.
    pub data: Bytes,
}
crate::wire_struct!(
    SnapshotChunk {
        nonce,
        total,
        offset,
        checksum,
        data
    } = codes::SNAPSHOT_CHUNK
);

/// A snapshot's contents taken at one point, to be encoded later, off the
/// event loop: a copy of the state machine and the protocol's part, already
/// encoded (it is small next to the store). Compaction takes one in a
/// handler and hands it to the driver ([`crate::effects::Effects::compact_later`]),
/// whose thread writes the image while the replica goes on serving: copying
/// the state costs a fraction of encoding it, and the write and the fsync
/// leave the loop altogether.
#[derive(Debug, Clone)]
pub struct Capture {
    /// The state machine at the snapshot's point.
    sm: crate::state::StateMachine,
    /// The protocol's part, encoded.
    protocol: Bytes,
}

impl Capture {
    /// The snapshot of `sm` with the protocol's part `protocol`, to encode later.
    pub fn of(sm: &crate::state::StateMachine, protocol: &impl Marshal) -> Capture {
        let mut p = BytesMut::new();
        protocol.marshal(&mut p);
        Capture {
            sm: sm.clone(),
            protocol: p.freeze(),
        }
    }

    /// How many bytes the snapshot will take as one byte string
    /// ([`Snapshot::to_bytes`]; see [`crate::state::StateMachine::image_len`]).
    pub fn len(&self) -> usize {
        4 + self.sm.image_len() + 4 + self.protocol.len()
    }

    /// Whether the snapshot is empty (never: it always has its lengths).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends exactly what `Snapshot::to_bytes()` marshalled as `Bytes`
    /// (a `u32` length, then the snapshot) would, without building the
    /// snapshot apart first: a snapshot is large, and every extra copy is
    /// one more buffer of its size.
    pub fn write_bytes_field(&self, out: &mut BytesMut) {
        use bytes::BufMut;
        let outer = out.len();
        out.put_u32_le(0);
        let state = out.len();
        out.put_u32_le(0);
        self.sm.encode_image(out);
        let state_len = (out.len() - state - 4) as u32;
        out[state..state + 4].copy_from_slice(&state_len.to_le_bytes());
        self.protocol.marshal(out);
        let total = (out.len() - outer - 4) as u32;
        out[outer..outer + 4].copy_from_slice(&total.to_le_bytes());
    }
}

/// The snapshot a compaction's base record holds.
#[derive(Debug, Clone)]
pub enum Source {
    /// A peer's snapshot just installed, at hand as bytes.
    Installed(Bytes),
    /// This replica's own, taken to be encoded off the event loop.
    Captured(Box<Capture>),
}

impl Source {
    /// Its size: what compaction weighs the log written since against.
    pub fn len(&self) -> usize {
        match self {
            Source::Installed(b) => b.len(),
            Source::Captured(c) => c.len(),
        }
    }

    /// Whether it has no bytes (only an installed one can be empty).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues the compaction of the durable log on `fx`, with a base
    /// record of the byte `tag` and then the snapshot as a length-prefixed
    /// field: the layout of every protocol's snapshot record. It is written
    /// off the event loop ([`crate::effects::Effects::compact_later`]).
    pub fn compact<M>(self, tag: u8, fx: &mut crate::effects::Effects<M>) {
        // The kind byte, the length, the snapshot.
        let len = 1 + 4 + self.len();
        fx.compact_later(len, move |out| {
            use bytes::BufMut;
            out.put_u8(tag);
            match self {
                Source::Installed(b) => b.marshal(out),
                Source::Captured(c) => c.write_bytes_field(out),
            }
        });
    }
}

/// Settings of snapshot transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferConfig {
    /// Bytes of snapshot in one chunk (well under the frame limit).
    pub chunk_bytes: usize,
    /// Largest snapshot accepted; a peer announcing more is refused.
    pub max_bytes: u64,
    /// Ask again (from the next peer) when a transfer made no progress this long.
    pub timeout_ns: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            chunk_bytes: 1 << 20,
            max_bytes: crate::durable::MAX_RECORD as u64,
            timeout_ns: 2_000_000_000,
        }
    }
}

impl TransferConfig {
    /// The sending side in one call: answers peer `from`'s request `req`
    /// with the chunks of `snapshot` (see [`serve`]), each wrapped by
    /// `wrap`. Returns whether it answered.
    pub fn answer<M>(
        &self,
        from: ReplicaId,
        req: &SnapshotRequest,
        snapshot: &Snapshot,
        wrap: fn(SnapshotChunk) -> M,
        fx: &mut crate::effects::Effects<M>,
    ) -> bool {
        let Some(chunks) = serve(from, req, snapshot, self) else {
            return false;
        };
        for c in chunks {
            fx.send(from, wrap(c));
        }
        true
    }

    /// These settings with what `s` sets (`--snapshot-chunk`, the transfer timeout).
    pub fn with_settings(mut self, s: &crate::protocol::Settings) -> Self {
        if let Some(v) = s.snapshot_chunk {
            self.chunk_bytes = v;
        }
        if let Some(v) = s.snapshot_timeout_ns {
            self.timeout_ns = v;
        }
        self
    }
}

/// Logs how installing a snapshot from `from` went; returns whether it was
/// installed (`Ok(false)`: not needed, older than what the replica has).
pub fn installed<E: std::fmt::Display>(from: ReplicaId, r: Result<bool, E>) -> bool {
    let done = matches!(r, Ok(true));
    match r {
        Ok(true) => tracing::info!(peer = from, "snapshot installed"),
        Ok(false) => tracing::info!(peer = from, "snapshot not needed or not usable"),
        Err(e) => tracing::warn!(peer = from, error = %e, "snapshot refused"),
    }
    done
}

/// The sending side: the chunks answering peer `from`'s request `req`
/// for `snapshot`, or none (with a warning) when the snapshot is larger
/// than `cfg` lets a peer take.
pub fn serve(
    from: ReplicaId,
    req: &SnapshotRequest,
    snapshot: &Snapshot,
    cfg: &TransferConfig,
) -> Option<Vec<SnapshotChunk>> {
    let bytes = snapshot.to_bytes();
    if bytes.len() as u64 > cfg.max_bytes {
        tracing::warn!(
            peer = from,
            bytes = bytes.len(),
            "snapshot larger than the transfer limit: not sent"
        );
        return None;
    }
    Some(chunks(req.nonce, &bytes, cfg.chunk_bytes))
}

/// The chunks of `snapshot` for the request `nonce`, in order.
pub fn chunks(nonce: u64, snapshot: &Bytes, chunk_bytes: usize) -> Vec<SnapshotChunk> {
    let total = snapshot.len() as u64;
    let checksum = xxhash_rust::xxh3::xxh3_64(snapshot);
    let step = chunk_bytes.max(1);
    let mut out = Vec::with_capacity(snapshot.len() / step + 1);
    let mut at = 0;
    loop {
        let end = (at + step).min(snapshot.len());
        out.push(SnapshotChunk {
            nonce,
            total,
            offset: at as u64,
            checksum,
            data: snapshot.slice(at..end),
        });
        at = end;
        if at >= snapshot.len() {
            return out;
        }
    }
}

/// Why a chunk was refused (the transfer starts over).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The announced size is above [`TransferConfig::max_bytes`].
    #[error("snapshot of {total} bytes is larger than the {max} accepted")]
    TooLarge {
        /// Announced size.
        total: u64,
        /// The limit.
        max: u64,
    },
    /// A chunk that lies outside the announced size, or is empty.
    #[error("snapshot chunk at offset {offset} lies outside the announced {total} bytes")]
    OutOfRange {
        /// Its offset.
        offset: u64,
        /// The announced size.
        total: u64,
    },
    /// The assembled bytes do not match the checksum.
    #[error("assembled snapshot does not match its checksum")]
    Checksum,
}

/// A transfer under way: from whom, which request, the pieces so far.
#[derive(Debug)]
struct Transfer {
    peer: ReplicaId,
    nonce: u64,
    /// Pieces by offset (they may arrive in any order, and twice).
    pieces: BTreeMap<u64, Bytes>,
    received: u64,
    /// When the last new piece arrived (or the request left).
    at: u64,
}

/// The receiving side of a transfer.
#[derive(Debug, Default)]
pub struct Fetch {
    cfg: Option<TransferConfig>,
    current: Option<Transfer>,
    nonces: u64,
    /// Requests sent so far.
    tries: u64,
    /// Transfers completed.
    done: u64,
    /// No new request before this time: a snapshot just arrived (if it could
    /// not be used, asking again at once would only cost the sender a copy
    /// of its store every heartbeat).
    quiet_until: u64,
}

impl Fetch {
    /// A fetcher with these settings.
    pub fn new(cfg: TransferConfig) -> Self {
        Fetch {
            cfg: Some(cfg),
            ..Fetch::default()
        }
    }

    fn cfg(&self) -> TransferConfig {
        self.cfg.unwrap_or_default()
    }

    /// Whether a transfer is in progress.
    pub fn in_progress(&self) -> bool {
        self.current.is_some()
    }

    /// Snapshots assembled from peers.
    pub fn completed(&self) -> u64 {
        self.done
    }

    /// Asks `peer` for its snapshot unless a transfer is in progress and
    /// still moving: the request to send, if any.
    pub fn start(&mut self, now: u64, peer: ReplicaId) -> Option<(ReplicaId, SnapshotRequest)> {
        if now < self.quiet_until {
            return None;
        }
        if let Some(t) = &self.current {
            if now.saturating_sub(t.at) < self.cfg().timeout_ns {
                return None;
            }
        }
        self.nonces += 1;
        self.tries += 1;
        let nonce = self.nonces;
        self.current = Some(Transfer {
            peer,
            nonce,
            pieces: BTreeMap::new(),
            received: 0,
            at: now,
        });
        Some((peer, SnapshotRequest { nonce }))
    }

    /// [`Fetch::start`], with the request sent through `fx` as `wrap`
    /// makes it: this replica is behind what `peer` has compacted. Returns
    /// whether a request left.
    pub fn ask<M>(
        &mut self,
        now: u64,
        peer: ReplicaId,
        wrap: fn(SnapshotRequest) -> M,
        fx: &mut crate::effects::Effects<M>,
    ) -> bool {
        let Some((to, req)) = self.start(now, peer) else {
            return false;
        };
        tracing::info!(
            peer = to,
            "behind what a peer has compacted: asking it for a snapshot"
        );
        fx.send(to, wrap(req));
        true
    }

    /// How many requests were sent so far.
    pub fn tries(&self) -> u64 {
        self.tries
    }

    /// A transfer that stalled past the timeout: forget it, so the next
    /// [`Fetch::start`] asks afresh. Returns whether one was dropped.
    pub fn expire(&mut self, now: u64) -> bool {
        let stalled = self
            .current
            .as_ref()
            .is_some_and(|t| now.saturating_sub(t.at) >= self.cfg().timeout_ns);
        if stalled {
            self.current = None;
        }
        stalled
    }

    /// [`Fetch::on_chunk`], with a failed transfer logged (it starts over).
    pub fn receive(&mut self, now: u64, from: ReplicaId, c: SnapshotChunk) -> Option<Snapshot> {
        self.on_chunk(now, from, c).unwrap_or_else(|e| {
            tracing::warn!(peer = from, error = %e, "snapshot transfer failed");
            None
        })
    }

    /// A chunk from `from`: the whole snapshot once every byte arrived and
    /// the checksum holds. Chunks of another transfer, and repeats, are
    /// ignored; pieces may come in any order.
    pub fn on_chunk(
        &mut self,
        now: u64,
        from: ReplicaId,
        c: SnapshotChunk,
    ) -> Result<Option<Snapshot>, TransferError> {
        let max = self.cfg().max_bytes;
        let Some(t) = self.current.as_mut() else {
            return Ok(None);
        };
        if t.peer != from || t.nonce != c.nonce {
            return Ok(None);
        }
        if c.total > max {
            self.current = None;
            return Err(TransferError::TooLarge {
                total: c.total,
                max,
            });
        }
        let end = c.offset.saturating_add(c.data.len() as u64);
        let overlaps = t
            .pieces
            .range(..end)
            .next_back()
            .is_some_and(|(o, p)| o + p.len() as u64 > c.offset);
        if end > c.total || (c.data.is_empty() && c.total > 0) {
            self.current = None;
            return Err(TransferError::OutOfRange {
                offset: c.offset,
                total: c.total,
            });
        }
        if overlaps {
            return Ok(None); // a repeat
        }
        t.received += c.data.len() as u64;
        t.pieces.insert(c.offset, c.data);
        t.at = now;
        if t.received < c.total {
            return Ok(None);
        }
        let Some(t) = self.current.take() else {
            return Ok(None);
        };
        let mut whole = BytesMut::with_capacity(c.total as usize);
        for p in t.pieces.values() {
            whole.extend_from_slice(p);
        }
        let whole = whole.freeze();
        if whole.len() as u64 != c.total || xxhash_rust::xxh3::xxh3_64(&whole) != c.checksum {
            return Err(TransferError::Checksum);
        }
        let snap = Snapshot::from_bytes(whole).map_err(|_| TransferError::Checksum)?;
        self.done += 1;
        self.quiet_until = now.saturating_add(self.cfg().timeout_ns);
        Ok(Some(snap))
    }
}

/// Decodes a protocol part with [`Reader`], rejecting trailing bytes.
pub fn read_protocol<T>(
    b: &Bytes,
    f: impl FnOnce(&mut Reader) -> Result<T, WireError>,
) -> Result<T, WireError> {
    let mut r = Reader::new(b.clone());
    let v = f(&mut r)?;
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(len: usize) -> Snapshot {
        Snapshot {
            state: Bytes::from((0..len).map(|i| (i * 7) as u8).collect::<Vec<u8>>()),
            protocol: Bytes::from_static(b"frontier"),
        }
    }

    #[test]
    fn chunks_reassemble_in_any_order() {
        let s = snap(10_000);
        let bytes = s.to_bytes();
        let mut f = Fetch::new(TransferConfig {
            chunk_bytes: 999,
            ..TransferConfig::default()
        });
        let (to, req) = f.start(0, 2).expect("a request");
        assert_eq!(to, 2);
        let cs = chunks(req.nonce, &bytes, 999);
        assert!(cs.len() > 10, "several chunks: {}", cs.len());
        // Reversed, with a repeat: order does not matter.
        let mut got = None;
        let again = cs[3].clone();
        for c in cs.into_iter().rev().chain([again]) {
            if let Some(s) = f.on_chunk(1, 2, c).expect("fits") {
                assert!(got.is_none(), "assembled once");
                got = Some(s);
            }
        }
        assert_eq!(got, Some(s));
        assert!(!f.in_progress());
        assert_eq!(f.completed(), 1);
        // Not asked again at once, in case that one could not be used.
        assert!(f.start(2, 2).is_none());
        assert!(f
            .start(2 + TransferConfig::default().timeout_ns, 2)
            .is_some());
    }

    #[test]
    fn damaged_reordered_foreign_and_oversized_chunks_are_refused() {
        let bytes = snap(3000).to_bytes();
        let cfg = TransferConfig {
            chunk_bytes: 1000,
            max_bytes: 2000,
            timeout_ns: 10,
        };
        let mut f = Fetch::new(TransferConfig {
            max_bytes: 1 << 20,
            ..cfg
        });
        let (_, req) = f.start(0, 1).expect("a request");
        let mut cs = chunks(req.nonce, &bytes, 1000);
        // Another peer's chunk, or an older nonce: ignored.
        assert_eq!(f.on_chunk(0, 2, cs[0].clone()), Ok(None));
        let mut old = cs[0].clone();
        old.nonce += 100;
        assert_eq!(f.on_chunk(0, 1, old), Ok(None));
        // Out of range: the transfer starts over.
        let mut wild = cs[1].clone();
        wild.offset = 2900;
        assert!(matches!(
            f.on_chunk(0, 1, wild),
            Err(TransferError::OutOfRange { .. })
        ));
        assert!(!f.in_progress());
        // A flipped byte: the checksum catches it.
        let (_, req) = f.start(1, 1).expect("asked again");
        cs = chunks(req.nonce, &bytes, 1000);
        let mut bad = cs[1].data.to_vec();
        bad[5] ^= 1;
        cs[1].data = Bytes::from(bad);
        let mut last = Ok(None);
        for c in cs {
            last = f.on_chunk(2, 1, c);
        }
        assert_eq!(last, Err(TransferError::Checksum));
        // Larger than accepted.
        let mut small = Fetch::new(cfg);
        let (_, req) = small.start(0, 1).expect("a request");
        let c = chunks(req.nonce, &bytes, 1000).remove(0);
        assert!(matches!(
            small.on_chunk(0, 1, c),
            Err(TransferError::TooLarge { .. })
        ));
    }

    #[test]
    fn waiting_clients_are_answered_in_order_and_the_rest_keep_waiting() {
        use crate::command::Command;
        use crate::effects::{Effects, Reply};
        use crate::state::StateMachine;
        let mut sm = StateMachine::default();
        for client in 1..=20u64 {
            sm.execute(&Command::put(client, 1, "k", "v"));
        }
        // Every client's seq 1 ran; seq 2 did not.
        let mut waiting = std::collections::HashMap::new();
        for client in (1..=20u64).rev() {
            waiting.insert((client, 1), client * 10);
            waiting.insert((client, 2), client * 10 + 1);
        }
        let mut fx = Effects::<()>::without_persistence();
        answer_waiting(&sm, 3, &mut waiting, &mut fx);
        let answered: Vec<u64> = fx.replies.iter().map(|(conn, _)| *conn).collect();
        let want: Vec<u64> = (1..=20u64).map(|c| c * 10).collect();
        assert_eq!(
            answered, want,
            "in (client, seq) order, whatever the hash seeds"
        );
        assert!(fx
            .replies
            .iter()
            .all(|(_, r)| matches!(r, Reply::Propose(p) if p.leader == Some(3))));
        assert_eq!(waiting.len(), 20, "what did not run keeps waiting");
        assert!(waiting.keys().all(|(_, seq)| *seq == 2));
    }

    #[test]
    fn a_stalled_transfer_is_asked_again_after_the_timeout() {
        let mut f = Fetch::new(TransferConfig {
            timeout_ns: 100,
            ..TransferConfig::default()
        });
        assert!(f.start(0, 1).is_some());
        assert!(f.start(50, 2).is_none(), "still within the timeout");
        assert!(!f.expire(99));
        assert!(f.expire(100));
        let (to, _) = f.start(100, 2).expect("asked again");
        assert_eq!(to, 2);
        assert_eq!(f.tries(), 2);
    }
}
