//! Deliberately broken variants, for tests that show what PreVote and
//! CheckQuorum prevent. They exist only in builds with the `broken`
//! feature; a build without it refuses them (see [`genericsmr::broken`]).

/// Whether this build has the broken variants (the `broken` feature).
pub const BUILT: bool = cfg!(feature = "broken");

/// A deliberately broken behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// No PreVote: a replica takes a new term as soon as its timer fires,
    /// so one cut off for a while deposes the leader when it comes back.
    NoPreVote,
    /// No CheckQuorum: a leader cut off from a majority keeps leading, and
    /// followers grant votes however recently they heard their leader.
    NoCheckQuorum,
}

impl Broken {
    /// The variant called `name` (`server --broken NAME`).
    pub fn named(name: &str) -> Option<Broken> {
        match name {
            "no-pre-vote" => Some(Broken::NoPreVote),
            "no-check-quorum" => Some(Broken::NoCheckQuorum),
            _ => None,
        }
    }
}
