//! # Multi-Paxos
//!
//! A complete Multi-Paxos on the genericsmr substrate:
//!
//! - ballots unique per replica ([`messages::ballot`]);
//! - phase 1 once per leadership, covering every slot from the first unchosen one;
//!   the new leader re-proposes the highest-ballot value of every reported slot and
//!   fills holes with no-ops;
//! - pipelined phase 2, optional thrifty sends, adaptive batching;
//! - Commit (full value) and CommitShort (a chosen prefix, also the heartbeat);
//! - execution in slot order, replies at commit (writes) or after execution;
//! - catch-up of lagging or restarted replicas, and recovery without a durable log;
//! - log compaction (in memory and in the durable log) and snapshot transfer to
//!   a replica behind the compaction point.
//!
//! [`Replica`] is the pure core; it implements [`genericsmr::protocol::Protocol`],
//! through which the shared runtime, the simulator and the registry drive it.

#![warn(missing_docs)]

mod acceptor;
pub mod broken;
mod catchup;
mod control;
mod exec;
mod leader;
pub mod log;
pub mod messages;
pub mod multi;
mod protocol;
mod replica;
mod snapshot;

pub use replica::{Batch, Config, Replica, Slot, SlotState};
