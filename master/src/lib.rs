//! # master: membership and leader oracle
//!
//! The master waits for `n` replicas to register (`n` in each of `shards`
//! shards, for a sharded deployment), assigns their global ids, and hands
//! every replica the full address list once the deployment is complete. It then
//! pings every replica; the replica's protocol core answers, so a hung core
//! looks as dead as a killed process. It keeps track of each shard's leader
//! (the shard's replica that reports leadership with the highest ballot) and,
//! when a leader's link breaks or its pongs stop, asks the shard's live replica
//! with the highest commit index to take over; every ping tells every replica
//! the leader of each shard. Clients ask it for the replica list and the leader, and may
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
