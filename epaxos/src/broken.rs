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
    /// A replica voting on another leader's PreAccept leaves its own latest
    /// conflicting instance out of the dependencies it reports, so two
    /// conflicting commands can commit without either depending on the
    /// other, and replicas may execute them in different orders.
    DropDependency,
}

impl Broken {
    /// The variant called `name` (`server --broken NAME`).
    pub fn named(name: &str) -> Option<Broken> {
        match name {
            "drop-dependency" => Some(Broken::DropDependency),
            _ => None,
        }
    }
}

/// [`crate::Config::set_broken`] on a build without the `broken` feature.
pub use genericsmr::broken::NotBuilt;
