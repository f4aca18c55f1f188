//! # Mencius
//!
//! Multi-leader state-machine replication on the genericsmr substrate, after
//! Mao, Junqueira and Marzullo (OSDI 2008):
//!
//! - slots are pre-assigned round-robin: slot `s` belongs to replica `s mod n`,
//!   which proposes into it at ballot 0 without a phase 1, so every replica
//!   takes clients and commits in one round trip;
//! - an owner with nothing to propose skips its slots (they are decided
//!   no-ops at once), in its next Accept or in a Skip message, so an idle
//!   replica does not hold the others back;
//! - a silent owner's slots are revoked by another replica with Paxos phase
//!   1 over a range of them, choosing no-op unless a value may have been
//!   chosen;
//! - execution in slot order; replies after execution;
//! - a durable log, compaction, and snapshot transfer through
//!   [`genericsmr::snapshot`].
//!
//! [`Replica`] is the pure core; it implements
//! [`genericsmr::protocol::Protocol`]. docs/mencius.md describes the
//! messages and what is guaranteed.

#![warn(missing_docs)]

mod acceptor;
pub mod broken;
mod catchup;
mod control;
mod exec;
pub mod messages;
mod owner;
mod protocol;
mod replica;
mod revoke;
mod snapshot;

pub use replica::{Config, Replica, Slot, SlotState};
