//! What the protocol crates' deliberately broken variants share: the error
//! a build without their `broken` feature gives when a test-only variant is
//! asked for (the variants themselves live in each protocol crate, behind
//! its own feature, so a normal build has none of their code).

/// A broken variant was asked of a build without the `broken` feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("built without the `broken` feature")]
pub struct NotBuilt;

/// The broken variant [`Settings::broken`](crate::protocol::Settings::broken)
/// names, parsed by `parse`; refused when this build lacks the variants
/// (`built` false) or `protocol` has none of that name.
pub fn variant<B>(
    s: &crate::protocol::Settings,
    protocol: &str,
    built: bool,
    parse: fn(&str) -> Option<B>,
) -> Result<Option<B>, crate::protocol::BootError> {
    use crate::protocol::BootError;
    let Some(name) = s.broken.as_deref() else {
        return Ok(None);
    };
    if !built {
        return Err(BootError::Settings(
            "this server was built without the `broken` feature; broken variants exist only for tests"
                .into(),
        ));
    }
    match parse(name) {
        Some(b) => {
            tracing::warn!(variant = name, "running a deliberately broken replica");
            Ok(Some(b))
        }
        None => Err(BootError::Settings(format!(
            "--broken {name} is not a broken variant of {protocol}"
        ))),
    }
}
