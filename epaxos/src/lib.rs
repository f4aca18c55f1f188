//! # EPaxos
//!
//! Egalitarian Paxos on the genericsmr substrate: every replica is the command
//! leader of the commands its clients send it, and no replica is special.
//!
//! - Phase 1 (PreAccept): the command leader proposes a sequence number and
//!   dependencies from the per-key conflict table; peers add what they see.
//!   A fast quorum of `F + floor((F+1)/2)` that took the leader's attributes
//!   unchanged commits at once (fast path); otherwise the union goes through
//!   phase 2 (Accept) with a majority (slow path). Then Commit.
//! - Execution: the committed dependency graph, cut into strongly connected
//!   components by an iterative Tarjan; components run in dependency order,
//!   commands inside one by sequence number, then leader and instance.
//! - Recovery: a replica that waits on an instance for a grace period runs
//!   Prepare at a higher ballot and decides from the votes with the highest
//!   *vote* ballot (the fix of Sutra, 2019); see `docs/epaxos.md`.
//! - Bounded in-flight instances per replica (no execution livelock), bounded
//!   memory (executed instances are forgotten past a window), batching and
//!   thrifty sends as run-time settings.
//!
//! [`Replica`] is the pure core; it implements [`genericsmr::protocol::Protocol`],
//! through which the shared runtime, the simulator and the registry drive it.

#![warn(missing_docs)]

mod accept;
pub mod broken;
mod commit;
mod control;
mod exec;
mod keys;
pub mod messages;
mod preaccept;
mod protocol;
mod recovery;
mod replica;
pub mod snapshot;

pub use replica::{Config, Instance, Replica, Status};
