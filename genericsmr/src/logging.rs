//! Log set-up shared by every binary: `RUST_LOG` filters, colours only on a terminal.

use std::io::IsTerminal;

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` or else `default`.
///
/// Also keeps error reports short: `anyhow` attaches a backtrace to every error
/// when `RUST_BACKTRACE` is set, which buries the message a user needs; set
/// `RUST_LIB_BACKTRACE=1` to get them back.
pub fn init(default: &str) {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
