//! Client commands and their outcomes: what the replicated log holds.

use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::{Marshal, Reader, Unmarshal, WireError};

/// Identifies a client session; chosen at random by the client.
pub type ClientId = u64;

/// The operations of the key-value state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    /// Does nothing; fills a log slot that a new leader found empty.
    Noop = 0,
    /// Sets `key` to `value`.
    Put = 1,
    /// Reads `key`.
    Get = 2,
    /// Removes `key`.
    Delete = 3,
    /// Sets `key` to `value` only if it currently equals `expected` (absent when `None`).
    Cas = 4,
}

impl Op {
    /// Whether the operation can change the state (used by the conflict relation).
    pub fn is_write(self) -> bool {
        !matches!(self, Op::Get | Op::Noop)
    }

    /// Lower-case name used by the CLI and histories.
    pub fn name(self) -> &'static str {
        match self {
            Op::Noop => "noop",
            Op::Put => "put",
            Op::Get => "get",
            Op::Delete => "delete",
            Op::Cas => "cas",
        }
    }
}

impl TryFrom<u8> for Op {
    type Error = WireError;
    fn try_from(v: u8) -> Result<Self, WireError> {
        Ok(match v {
            0 => Op::Noop,
            1 => Op::Put,
            2 => Op::Get,
            3 => Op::Delete,
            4 => Op::Cas,
            _ => {
                return Err(WireError::Invalid {
                    what: "op",
                    value: v as u64,
                })
            }
        })
    }
}

impl Marshal for Op {
    fn marshal(&self, buf: &mut BytesMut) {
        buf.put_u8(*self as u8)
    }
}
impl Unmarshal for Op {
    const MIN_ENCODED: usize = 1;
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        Op::try_from(r.u8("op")?)
    }
}

/// One client command, as proposed and as stored in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The issuing client's session id; with `seq`, the key of the dedup table.
    pub client: ClientId,
    /// Per-client sequence number; a retry reuses it so the command applies once.
    pub seq: u64,
    /// Every sequence number below this one has been answered to the client, so
    /// replicas may forget those results (keeps the dedup table bounded).
    pub acked_below: u64,
    /// What to do.
    pub op: Op,
    /// The key (empty for `Noop`).
    pub key: Bytes,
    /// The new value for `Put` and `Cas`; empty otherwise.
    pub value: Bytes,
    /// For `Cas`: the value the key must hold (`None`: the key must be absent).
    pub expected: Option<Bytes>,
}

crate::wire_struct!(Command {
    client,
    seq,
    acked_below,
    op,
    key,
    value,
    expected
});

impl Command {
    /// A no-op command (client 0, seq 0) used to fill holes.
    pub fn noop() -> Self {
        Command {
            client: 0,
            seq: 0,
            acked_below: 0,
            op: Op::Noop,
            key: Bytes::new(),
            value: Bytes::new(),
            expected: None,
        }
    }

    /// A `Put`.
    pub fn put(client: ClientId, seq: u64, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Command {
            op: Op::Put,
            value: value.into(),
            ..Self::read(client, seq, key)
        }
    }

    /// A `Get`.
    pub fn get(client: ClientId, seq: u64, key: impl Into<Bytes>) -> Self {
        Self::read(client, seq, key)
    }

    /// A `Delete`.
    pub fn delete(client: ClientId, seq: u64, key: impl Into<Bytes>) -> Self {
        Command {
            op: Op::Delete,
            ..Self::read(client, seq, key)
        }
    }

    /// A compare-and-swap.
    pub fn cas(
        client: ClientId,
        seq: u64,
        key: impl Into<Bytes>,
        expected: Option<Bytes>,
        value: impl Into<Bytes>,
    ) -> Self {
        Command {
            op: Op::Cas,
            value: value.into(),
            expected,
            ..Self::read(client, seq, key)
        }
    }

    fn read(client: ClientId, seq: u64, key: impl Into<Bytes>) -> Self {
        Command {
            client,
            seq,
            acked_below: 0,
            op: Op::Get,
            key: key.into(),
            value: Bytes::new(),
            expected: None,
        }
    }

    /// Exact encoded size of the command, for limits and buffer sizes.
    pub fn wire_len(&self) -> usize {
        8 * 3
            + 1
            + 4
            + self.key.len()
            + 4
            + self.value.len()
            + 1
            + self.expected.as_ref().map_or(0, |e| 4 + e.len())
    }

    /// Two commands conflict when they touch the same key and at least one writes.
    pub fn conflicts(&self, other: &Command) -> bool {
        self.op != Op::Noop
            && other.op != Op::Noop
            && (self.op.is_write() || other.op.is_write())
            && self.key == other.key
    }
}

/// What applying a command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `Get`: the value read. `Cas`: the value found before the operation.
    /// `Delete`: the value removed. `Put`: the value replaced. `None` when absent.
    pub value: Option<Bytes>,
    /// `Cas`: whether the swap happened. `Delete`: whether the key existed.
    pub flag: bool,
}

crate::wire_struct!(Outcome { value, flag });
