//! Deliberately broken variants of the replica, for tests that show the
//! history checker catches a replica that is not linearizable. They exist
//! only in builds with the `broken` feature (the server's tests enable it;
//! `cargo build` does not); [`Config::set_broken`] refuses them otherwise.
//!
//! [`Config::set_broken`]: crate::Config::set_broken

/// Whether this build has the broken variants (the `broken` feature).
pub const BUILT: bool = cfg!(feature = "broken");

/// A deliberately broken behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// A follower answers client reads from its own state machine instead
    /// of sending them to the leader: it serves stale values.
    FollowerReads,
    /// A replica acknowledges Accepts (its own vote as leader too) without
    /// writing them to its durable log, so a restart forgets them.
    ForgetAccepts,
}

impl Broken {
    /// The variant called `name` (`server --broken NAME`).
    pub fn named(name: &str) -> Option<Broken> {
        match name {
            "follower-reads" => Some(Broken::FollowerReads),
            "forget-accepts" => Some(Broken::ForgetAccepts),
            _ => None,
        }
    }
}

/// [`crate::Config::set_broken`] on a build without the `broken` feature.
pub use genericsmr::broken::NotBuilt;
