//! # client: talk to a replica group
//!
//! [`Client`] finds the leader (through the master, or by trying the replicas),
//! sends commands, and retries a command that timed out or was refused with the
//! *same* (client id, sequence number), so the replicas apply it at most once
//! however often it is retried. Many commands may be in flight on one client at
//! once; each call returns its own outcome. When no quorum answers within the
//! configured timeout, a call returns [`ClientError::Timeout`], which means the
//! command may or may not have taken effect, never a false success.
//!
//! On a sharded deployment (`master --shards S`) the client learns the shard
//! count and every shard's leader from the master and sends each command to
//! the leader of its key's shard ([`genericsmr::shard::shard_of`]); a refusal
//! or a time-out re-learns that shard's leader only. On one group it behaves
//! as it always did.
//!
//! On an MDLin deployment (`server --protocol mdlin`), [`MdlClient`] (module
//! [`mdl`]) keeps many operations in flight across shards and still has them
//! take effect, and delivers their results, in issue order; [`Client`] works
//! there too, one operation at a time (each is a chain head).
//!
//! [`admin`] holds one-shot queries: the cluster layout from the master, and a
//! replica's status or log digests, and control requests (faults,
//! set-leader), sent to a replica directly or through the master. [`faults`]
//! holds fault commands and time-ordered fault schedules.

#![warn(missing_docs)]

pub mod admin;
mod conn;
pub mod faults;
pub mod mdl;
pub mod pipe;
mod session;

pub use mdl::{Issued, MdlClient, MdlFuture};
pub use session::{Client, ClientConfig, ClientError};
