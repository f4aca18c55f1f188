//! # checker: is a recorded history linearizable?
//!
//! - [`history`]: the operation history format `bench --history` writes (one
//!   JSON object per line) and its reader.
//! - [`linear`]: the linearizability check for the key-value store: each key is a
//!   register checked on its own (single-key operations compose), with a
//!   Wing-Gong search memoised on (operations done, value). Failed operations
//!   never took effect; operations without an answer may have taken effect at
//!   any time after they were invoked, or never.

#![warn(missing_docs)]

pub mod history;
pub mod linear;

pub use linear::{check, Report, Verdict};
