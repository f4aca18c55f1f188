//! What the protocol crates' deliberately broken variants share: the error
//! a build without their `broken` feature gives when a test-only variant is
//! asked for (the variants themselves live in each protocol crate, behind
//! its own feature, so a normal build has none of their code).

/// A broken variant was asked of a build without the `broken` feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("built without the `broken` feature")]
pub struct NotBuilt;
