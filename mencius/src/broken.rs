//! Deliberately broken variants of the replica, for tests that show the
//! simulator, the handler harness and the checker catch them. They exist only
//! in builds with the `broken` feature; [`crate::Config::set_broken`] refuses
//! them otherwise.

/// Whether this build has the broken variants (the `broken` feature).
pub const BUILT: bool = cfg!(feature = "broken");

/// A deliberately broken behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// An idle owner never skips its slots: the others wait on them until
    /// a revocation decides them.
    NoSkips,
    /// A revoker proposes a no-op in every revoked slot, ignoring values
    /// reported in phase 1 (one may have been chosen).
    RevokeIgnoresReports,
}

impl Broken {
    /// The variant called `name` (`server --broken NAME`).
    pub fn named(name: &str) -> Option<Broken> {
        match name {
            "no-skips" => Some(Broken::NoSkips),
            "revoke-ignores-reports" => Some(Broken::RevokeIgnoresReports),
            _ => None,
        }
    }
}

/// [`crate::Config::set_broken`] on a build without the `broken` feature.
pub use genericsmr::broken::NotBuilt;
