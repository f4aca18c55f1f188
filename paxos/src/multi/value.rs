//! How a slot value of the log travels in messages and durable records.

use crate::log::Value;
use crate::multi::messages::Codes;

/// A slot value of the log ([`crate::log::Slot::entry`]) and what messages
/// and durable records carry for it. Multi-Paxos keeps a batch that packs
/// itself once executed and sends its commands; MDLin keeps and sends the
/// same journal entry.
pub trait Carried: Value {
    /// What messages and durable records carry for this value.
    type Wire: Codes + Clone;
    /// A copy to send.
    fn to_wire(&self) -> Self::Wire;
    /// The value for a slot, from what was received.
    fn from_wire(w: Self::Wire) -> Self;
    /// Whether it holds the same as `w` (compared without a copy).
    fn same(&self, w: &Self::Wire) -> bool;
}
