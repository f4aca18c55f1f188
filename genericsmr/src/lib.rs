//! # genericsmr: the substrate every replication protocol of this workspace shares
//!
//! The layers, bottom up:
//!
//! - [`wire`]: frames (`u8` type code + `u32` length + body), the
//!   [`Marshal`](wire::Marshal)/[`Unmarshal`](wire::Unmarshal) traits and their limits.
//! - [`messages`]: the client, master and peer-handshake messages all protocols share.
//! - [`rpc_table`]: a protocol registers each message type and gets a
//!   `crossbeam_channel::Receiver` for it; unknown or malformed input never reaches it.
//! - [`transport`]: the TCP mesh between replicas, the client listener and the
//!   coalescing per-connection writers.
//! - [`gate`]: the client lane's bound, which holds client readers back
//!   while the core is behind (backpressure instead of unbounded queues).
//! - [`in_flight`]: a leader's proposed commands not yet done, which its
//!   `--pipeline` bound counts (commands, not slots or instances).
//! - [`command`] and [`state`]: the key-value state machine with its conflict
//!   relation, digest and per-client dedup table.
//! - [`durable`]: the checksummed append-only log with an fsync policy, and
//!   its compaction into a snapshot file plus the records still needed.
//! - [`snapshot`]: the state at one point (state machine image plus a
//!   protocol's part), its chunked transfer to a peer that fell behind what
//!   the others forgot, and the messages that carry it.
//! - [`effects`]: the outbox a protocol core fills (sends, replies, records to
//!   persist) and [`effects::Driver`], which carries it out: persist first, then send.
//! - [`election`]: the randomized, backed-off election timer with which a
//!   replica group replaces a dead leader without the master.
//! - [`master_link`]: registration with the master and the replica's side of the
//!   master connection.
//! - [`shard`]: global and local replica ids of sharded deployments and the
//!   key-to-shard map.
//! - [`broken`]: the error shared by the protocols' test-only broken variants.
//!
//! - [`protocol`]: the one seam: the [`protocol::Protocol`] trait a
//!   protocol's pure core implements (no sockets, threads or clocks: handlers
//!   take a message and `now`, and push [`effects::Effects`]), with the
//!   settings it boots from and the capabilities it declares; [`knobs`]:
//!   the settings most protocols share, read once into each configuration.
//! - [`runtime`]: the one runtime, `run::<P>`: three priority lanes (control,
//!   peer, client) from the rpc table into the core, the ticker, and the
//!   driver. The simulator (`sim`) drives the same trait.

#![warn(missing_docs)]

pub mod broken;
pub mod command;
pub mod disk;
pub mod durable;
pub mod effects;
pub mod election;
pub mod gate;
pub mod in_flight;
pub mod knobs;
pub mod logging;
pub mod master_link;
pub mod messages;
pub mod protocol;
pub mod rpc_table;
pub mod runtime;
pub mod shard;
pub mod snapshot;
pub mod state;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod transport;
pub mod wire;

/// A replica's index: its global id in the deployment (at most 64 replicas
/// over all shards), or its local id inside its shard's group (see [`shard`]).
pub type ReplicaId = u8;

/// Identifies one client or master connection at a replica.
pub type ConnId = u64;

/// Largest deployment (shards times replicas per shard), bounded by the vote
/// and fault bitmasks, which have one bit per replica.
pub const MAX_REPLICAS: usize = 64;
