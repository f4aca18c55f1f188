//! # raft: Raft on the genericsmr substrate
//!
//! A pure core ([`Replica`]) implementing [`genericsmr::protocol::Protocol`]:
//! leader election with randomized timeouts and terms (a vote only for an
//! up-to-date log), PreVote and CheckQuorum, AppendEntries with the
//! consistency check and fast backtracking, commit by counting entries of
//! the leader's own term, a durable term, vote and log with compaction,
//! snapshots through [`genericsmr::snapshot`], batching and pipelining, and
//! leadership transfer. docs/raft.md describes the messages and guarantees.

#![warn(missing_docs)]

pub mod broken;
mod client;
mod control;
pub mod durable;
mod election;
pub mod log;
pub mod messages;
mod protocol;
mod replica;
mod replication;
mod snapshot;

pub use control::entry_hash;
pub use durable::{Record, RestoreError};
pub use messages::RaftMsg;
pub use replica::{Config, Replica};
