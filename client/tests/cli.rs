//! The `client` binary's own command line. Having a test here also makes
//! `cargo test --workspace` build the binary before any test runs, so the
//! server tests that drive it never have to build it under their time limit.

use std::process::Command;

fn client() -> Command {
    Command::new(env!("CARGO_BIN_EXE_client"))
}

#[test]
fn help_shows_examples() {
    let out = client().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Examples"), "{text}");
    assert!(text.contains("schedule faults.toml"), "{text}");
}

#[test]
fn an_unknown_command_is_refused_with_a_hint() {
    let out = client()
        .args(["--master", "127.0.0.1:1", "frobnicate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("frobnicate") && err.contains("--help"),
        "{err}"
    );
}

#[test]
fn an_unreachable_master_is_an_error_not_a_hang() {
    // Port 1 on loopback refuses at once.
    let out = client()
        .args(["--master", "127.0.0.1:1", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to 127.0.0.1:1"), "{err}");
}
