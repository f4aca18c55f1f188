//! The durable records of a Raft replica and their replay at restart.
//!
//! The durable log holds the term and vote ([`Record::HardState`], written
//! before any message that depends on them leaves), every entry appended
//! ([`Record::Entry`]; one at an index already held replaces it and
//! everything after, as a conflicting append does in memory), and after a
//! compaction a base record ([`Record::Snapshot`]) standing for every entry
//! up to its index. [`Record::Truncate`] voids a suffix (see there). The commit index is not kept: a restarted replica
//! learns it from the leader again.

use bytes::{BufMut, Bytes, BytesMut};
use genericsmr::command::Command;
use genericsmr::effects::Effects;
use genericsmr::wire::{decode_body, Marshal, Reader, Unmarshal, WireError};
use genericsmr::ReplicaId;

use crate::messages::{Entry, RaftMsg};
use crate::replica::Replica;

/// What the durable log holds; replayed in order at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The current term and the vote given in it.
    HardState {
        /// The term.
        term: u64,
        /// The candidate voted for in `term`, if any.
        vote: Option<ReplicaId>,
    },
    /// The entry at `index`; replaces whatever was at `index` and after.
    Entry {
        /// Its index.
        index: u64,
        /// Its term.
        term: u64,
        /// Its commands.
        cmds: Vec<Command>,
    },
    /// A snapshot ([`genericsmr::snapshot::Snapshot::to_bytes`]) standing
    /// for every entry up to its index: the base record of a compacted log.
    Snapshot(Bytes),
    /// Every entry after `after` is void: written to the old log just before
    /// a compaction to a snapshot that did not match the log, so that a
    /// crash between the two steps of that compaction (the new snapshot,
    /// then the old log) does not bring back the entries it dropped.
    Truncate {
        /// The last index kept.
        after: u64,
    },
}

impl Record {
    /// The kind byte of a snapshot record (the base of a compacted log).
    pub const SNAPSHOT: u8 = 3;

    /// The encoding of `Record::Entry`, from a borrowed entry.
    pub fn encode_entry(buf: &mut BytesMut, index: u64, e: &Entry) {
        buf.put_u8(2);
        index.marshal(buf);
        e.term.marshal(buf);
        e.cmds.marshal(buf);
    }
}

impl Marshal for Record {
    fn marshal(&self, buf: &mut BytesMut) {
        match self {
            Record::HardState { term, vote } => {
                buf.put_u8(1);
                term.marshal(buf);
                vote.marshal(buf);
            }
            Record::Entry { index, term, cmds } => {
                buf.put_u8(2);
                index.marshal(buf);
                term.marshal(buf);
                cmds.marshal(buf);
            }
            Record::Snapshot(b) => {
                buf.put_u8(Record::SNAPSHOT);
                b.marshal(buf);
            }
            Record::Truncate { after } => {
                buf.put_u8(4);
                after.marshal(buf);
            }
        }
    }
}

impl Unmarshal for Record {
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        Ok(match r.u8("record kind")? {
            1 => Record::HardState {
                term: r.u64("term")?,
                vote: Option::unmarshal(r)?,
            },
            2 => Record::Entry {
                index: r.u64("index")?,
                term: r.u64("term")?,
                cmds: Vec::unmarshal(r)?,
            },
            Record::SNAPSHOT => Record::Snapshot(Bytes::unmarshal(r)?),
            4 => Record::Truncate {
                after: r.u64("after")?,
            },
            v => {
                return Err(WireError::Invalid {
                    what: "record kind",
                    value: v as u64,
                })
            }
        })
    }
}

/// Why the durable records cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A record does not decode.
    #[error("record {at}: {source}")]
    Decode {
        /// Its position among the records.
        at: usize,
        /// What is wrong.
        source: WireError,
    },
    /// An entry that leaves a hole after the log's end.
    #[error("record {at}: entry {index} after a log ending at {last}")]
    Gap {
        /// Its position among the records.
        at: usize,
        /// The entry's index.
        index: u64,
        /// The log's last index then.
        last: u64,
    },
}

impl Replica {
    /// Persists the entry at `index` (held in the log).
    pub(crate) fn persist_entry(&self, index: u64, fx: &mut Effects<RaftMsg>) {
        if let Some(e) = self.log.get(index) {
            fx.persist(&genericsmr::wire::Encoded(|b: &mut BytesMut| {
                Record::encode_entry(b, index, e)
            }));
        }
    }

    /// Rebuilds the replica from its durable records, oldest first.
    ///
    /// After a crash between the two steps of a compaction, the old log
    /// follows the new snapshot: its entries at or below the snapshot's
    /// index are covered, and one of them there means the old log rewrote
    /// history from that point, so what followed it in memory goes too.
    pub fn restore(&mut self, records: &[Bytes]) -> Result<(), RestoreError> {
        for (at, b) in records.iter().enumerate() {
            let rec = decode_body::<Record>(b.clone())
                .map_err(|source| RestoreError::Decode { at, source })?;
            match rec {
                Record::HardState { term, vote } => {
                    if term >= self.term {
                        self.term = term;
                        self.vote = vote;
                    }
                }
                Record::Entry { index, term, cmds } => {
                    if index <= self.log.base() {
                        self.log.truncate_after(self.log.base());
                        continue;
                    }
                    if index > self.log.last() + 1 {
                        return Err(RestoreError::Gap {
                            at,
                            index,
                            last: self.log.last(),
                        });
                    }
                    self.log.truncate_after(index - 1);
                    self.log.push(Entry { term, cmds });
                }
                Record::Truncate { after } => {
                    self.log.truncate_after(after.max(self.log.base()));
                }
                Record::Snapshot(b) => {
                    let snap = genericsmr::snapshot::Snapshot::from_bytes(b)
                        .map_err(|source| RestoreError::Decode { at, source })?;
                    self.load_snapshot(&snap)
                        .map_err(|source| RestoreError::Decode { at, source })?;
                }
            }
        }
        self.replayed = records.len() as u64;
        Ok(())
    }
}
