//! # master: membership, leader reports and admin relay
//!
//! The master waits for `n` replicas to register (`n` in each of `shards`
//! shards, for a sharded deployment), assigns their global ids, and hands
//! every replica the full address list once the deployment is complete. It then
//! pings every replica; the replica's protocol core answers, so a hung core
//! looks as dead as a killed process. Every ping tells every replica the
//! leader of each shard. Clients ask it for the replica list and the leader,
//! and may send control requests (status, faults, set-leader) through it to
//! any replica (see `relay`).
//!
//! ## Who picks leaders
//!
//! - **Multi-Paxos groups and MDLin shards elect their own leaders** (an
//!   election timer in each replica, see `docs/paxos.md` and `docs/mdlin.md`). The master's choice is only a hint: it
//!   reports the leader the replicas report (the live replica claiming
//!   leadership with the highest ballot, else the owner of the highest ballot
//!   its live replicas promised, i.e. the leader they follow) and never asks a
//!   replica to lead over it. So a leader cut off from the master but not
//!   from its peers is not deposed. When it loses sight of the leader it
//!   sends the most up-to-date live follower a hint (`BeLeader` with
//!   `BeLeader::HINT` in its nonce, at most once per liveness timeout): the
//!   follower campaigns only once it has not heard the leader itself for a
//!   few heartbeats, which replaces a killed leader in about 200 ms instead
//!   of an election timeout. It still picks a fresh group's first
//!   leader (only while no replica has promised any ballot, so it deposes
//!   nobody), to save the first election timeout. `--master-failover` brings
//!   back the older master-driven failover below.
//! - **Master-driven failover** (`--master-failover`): when a shard's leader's
//!   link breaks or its pongs stop, the master asks the shard's live replica
//!   with the highest commit index to take over.
//! - An operator's `set-leader` through the master always moves leadership
//!   (the replica runs phase 1 with a higher ballot).
//!
//! The master is not on the data path and holds no protocol state: losing it
//! never affects safety, and Multi-Paxos groups and MDLin shards keep failing
//! over without it.
//!
//! ## Restarting the master
//!
//! Replicas keep serving while the master is gone, and each keeps trying to
//! reconnect (with backoff), re-registering under the id, shard and addresses
//! it already has. A master started with `--state FILE` records the
//! membership (shape, protocol, every replica's id and addresses; see
//! [`State`]) in that file, rewritten atomically on every change. Restarted
//! on the same address with the same file, it knows every replica, including
//! those still down; it answers the re-registrations, and pings and tracks
//! leaders again, once a majority of every shard has reconnected, since that
//! is all a shard needs to serve. A replica that comes back later rejoins
//! under its id (and is told it is rejoining, so one without its votes on
//! disk recovers before voting). The file rather than the replicas' own
//! reports is the source because only the file knows the replicas that are
//! down and whether a registering process is new or rejoining. Without
//! `--state`, a restarted master starts empty and waits for every replica
//! to re-register, as at first start.

#![warn(missing_docs)]

mod registry;
mod relay;
mod server;
mod state;

pub use registry::{Registry, RegistryConfig};
pub use server::{serve, MasterConfig};
pub use state::{State, StateError};
