//! The Multi-Paxos protocol pieces shared by every protocol built on the
//! slot log ([`crate::log`]): Multi-Paxos itself (values are batches of
//! commands) and MDLin (values are journal entries).
//!
//! - [`messages`]: the slot-carrying messages, generic over the slot value,
//!   with their codecs written once; each protocol gives them its own wire
//!   codes ([`messages::Codes`]) and wraps them in its own message enum.

pub mod messages;
