//! The Multi-Paxos protocol pieces shared by every protocol built on the
//! slot log ([`crate::log`]): Multi-Paxos itself (values are batches of
//! commands) and MDLin (values are journal entries).
//!
//! - [`messages`]: the slot-carrying messages, generic over the slot value,
//!   with their codecs written once; each protocol gives them its own wire
//!   codes ([`messages::Codes`]) and wraps them in its own message enum;
//! - [`value`]: how a slot value travels ([`value::Carried`]);
//! - [`votes`]: the per-slot steps (vote, learn, a leader's own vote and the
//!   votes it counts, phase-1 reports, commits by a chosen prefix);
//! - [`phase1`]: a candidate's promises and the best value per slot;
//! - [`role`]: a replica's role, with the protocol's own leader state ([`role::Role`]);
//! - [`targets`]: whom a leader's Accepts go to (thrifty or not);
//! - [`config`]: the settings every such protocol has ([`config::GroupConfig`]);
//! - [`state`]: the replica state every such protocol keeps ([`state::State`]);
//! - [`host`]: the handler steps written once over a replica ([`host::Host`]);
//! - [`snapshot`]: compaction and snapshot transfer ([`snapshot::Snapshots`]);
//! - [`accessors`]: a replica's accessors, by [`replica_accessors!`](crate::replica_accessors);
//! - `testkit` (feature `testkit`): property-test strategies for the shared
//!   messages and records, generic over the slot value.
//!
//! What the protocols do differently stays in each: MDLin's prefix rule
//! (a follower votes for slot `i` at ballot `b` only once every earlier slot
//! is chosen or accepted at `b`, holding early accepts), whom accepts go to
//! with thrifty sends, and what follows a slot chosen or a leadership won.

pub mod accessors;
pub mod config;
pub mod host;
pub mod messages;
pub mod phase1;
pub mod role;
pub mod snapshot;
pub mod state;
pub mod targets;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod value;
pub mod votes;
