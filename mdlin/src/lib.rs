//! # MDLin: multi-dispatch linearizability across shards
//!
//! A client may keep many operations in flight, on several shards, and still
//! get one order that respects its issue order, real time, and failures that
//! close the suffix of a chain. Each shard runs one Multi-Paxos journal
//! (`journal.rs`); an operation takes three steps:
//!
//! 1. **Round 1** (`admit.rs`): the shard leader replicates the operation with
//!    its chain predecessor (a `Pending` entry), in parallel with everything else.
//! 2. **Coordination** (`coordination.rs`): the predecessor's shard leader tells
//!    this one, leader to leader, once the predecessor is committed and
//!    coordinated itself, with its timestamp. The operation then takes timestamp
//!    `max(pred_ts + 1, shard_ts)`.
//! 3. **Round 2**: the leader replicates the operation's position (an `Order`
//!    entry); execution (`exec.rs`) follows order entries in journal order.
//!
//! An operation without a predecessor takes one round (a `Head` entry), like
//! Multi-Paxos. Failures are replicated `Fail` entries. A new shard leader
//! recovers the journal with phase 1 and then re-places committed but
//! unordered operations (`failover.rs`). With a durable log the journal's
//! promises, votes and commits are persisted and a restarted replica
//! replays them (`restore.rs`). [`Replica`] implements
//! [`genericsmr::protocol::Protocol`], through which the shared runtime
//! drives one replica and the shared simulator (`sim`, a dev-dependency)
//! whole sharded deployments with chained clients. The design and its safety argument: `docs/mdlin.md`.

#![warn(missing_docs)]

mod admit;
mod control;
mod coordination;
mod exec;
mod failover;
mod journal;
pub mod messages;
mod protocol;
mod replica;
mod restore;
mod snapshot;

pub use paxos::messages::ballot;
pub use replica::{Config, CoordMode, Replica, Slot, SlotState};
pub use restore::RestoreError;
