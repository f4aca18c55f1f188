//! # checker: is a recorded history linearizable (or multi-dispatch linearizable)?
//!
//! - [`history`]: the operation history format `bench --history` writes (one
//!   JSON object per line) and its reader.
//! - [`linear`]: the linearizability check for the key-value store: each key is a
//!   register checked on its own (single-key operations compose), with a
//!   Wing-Gong search memoised on (operations done, value). Failed operations
//!   never took effect; operations without an answer may have taken effect at
//!   any time after they were invoked, or never.
//! - [`mdl`]: the multi-dispatch linearizability (MDL) check: a client may have
//!   several operations in flight, chained by `pred`; every operation must take
//!   effect after its chain predecessor, and failures are suffix-closed. MDL is
//!   not local, so keys tied together by some client's chain are searched
//!   together.
//! - [`mdl_log`]: the white-box MDL check for long runs, from the servers'
//!   executed logs: replica agreement, exactly-once execution, replayed values,
//!   and an acyclic union of shard order, issue order and real time.
//! - `zones`: the O(n log n) decision the linearizability check uses for a
//!   key of puts and gets that wrote no value twice (every bench run's keys).
//! - [`stats`]: what a history lets a check see (reads, writes, distinct
//!   values, overwritten keys), and whether an `ok` on it is vacuous.

#![warn(missing_docs)]

pub mod history;
pub mod linear;
pub mod mdl;
pub mod mdl_log;
mod register;
mod search;
pub mod stats;
mod zones;

pub use linear::{check, Report, Verdict};
pub use mdl::check_mdl;
pub use mdl_log::check_logs;
pub use stats::HistoryStats;
