//! A replica's role on the shared Multi-Paxos log, declared once: each
//! protocol names what its leader keeps beside its ballot and next slot, and
//! what a replica recovering its promises keeps (if it can recover).

use crate::multi::phase1::Candidate;

/// The role of a replica whose slots travel as `W`; a leader also keeps an
/// `L`, and a replica that must recover what it promised before it votes an
/// `R` (use [`std::convert::Infallible`] where a protocol never recovers).
#[derive(Debug)]
pub enum Role<W, L, R> {
    /// Follows whoever leads.
    Follower,
    /// Running phase 1 for its own ballot.
    Candidate(Candidate<W>),
    /// Leads at `ballot`; proposes next at `next_slot`; `own` is what the
    /// protocol's leader keeps of its own (MDLin: its re-placement of
    /// unordered operations).
    Leader {
        /// The ballot it won phase 1 with.
        ballot: u64,
        /// The next slot it proposes into.
        next_slot: u64,
        /// The protocol's own leader state.
        own: L,
    },
    /// Not voting until it has learned what it may have promised before a
    /// restart without its votes (Multi-Paxos's recovery).
    Recovering(R),
}
