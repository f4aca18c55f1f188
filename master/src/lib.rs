//! # master: membership and leader oracle
//!
//! The master waits for `n` replicas to register, assigns their ids, and hands
//! every replica the full address list once the group is complete. It then
//! pings every replica; the replica's protocol core answers, so a hung core
//! looks as dead as a killed process. It keeps track of the leader (the replica
//! that reports leadership with the highest ballot) and, when the leader's link
//! breaks or its pongs stop, asks the live replica with the highest commit index
//! to take over. Clients ask it for the replica list and the leader, and may
//! send control requests (status, faults, set-leader) through it to any
//! replica (see `relay`).
//!
//! The master is not on the data path and holds no protocol state: losing it
//! stops failover, never safety.

#![warn(missing_docs)]

mod registry;
mod relay;
mod server;

pub use registry::{Registry, RegistryConfig};
pub use server::{serve, MasterConfig};
