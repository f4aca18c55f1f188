//! What the tests of `bench` share: the binary, run with a time limit.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `bench` binary of this build, with `master` and `server` built beside it.
pub fn bench_bin() -> PathBuf {
    let b = PathBuf::from(env!("CARGO_BIN_EXE_bench"));
    bench::local::ensure_built(b.parent().unwrap(), &["master", "server"]).unwrap();
    b
}

/// Three replicas of `protocol` on this build's binaries, one shard, no
/// durable log, each server started with `server_flags`.
pub fn cluster(protocol: &str, server_flags: &[&str]) -> bench::local::LocalCluster {
    let dir = bench_bin().parent().unwrap().to_path_buf();
    bench::local::LocalCluster::start(bench::local::ClusterSpec {
        replicas: 3,
        shards: 1,
        protocol: protocol.into(),
        server_flags: server_flags.iter().map(|f| f.to_string()).collect(),
        master_flags: Vec::new(),
        durable: false,
        bin_dir: dir,
        log_dir: None,
        data_root: None,
        start_order: Vec::new(),
        slot_flags: Vec::new(),
    })
    .unwrap()
}

/// Runs `bench ARGS` with a time limit; returns its stdout (read while it
/// runs, so a large output cannot fill the pipe and stall it).
pub fn run(args: &[&str], limit: Duration) -> String {
    let mut child = Command::new(bench_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
        out
    });
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let out = reader.join().unwrap();
            assert!(st.success(), "bench {args:?} failed: {out}");
            return out;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bench {args:?} took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `p` is a PNG with something in it.
pub fn assert_png(p: &Path) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(
        b.len() > 1000 && b.starts_with(b"\x89PNG"),
        "{} is not a non-empty PNG",
        p.display()
    );
}

/// `p` is an SVG with a drawing in it.
pub fn assert_svg(p: &Path) {
    let s = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(
        s.contains("<svg") && s.contains("polyline") || s.contains("<path"),
        "{} has no drawing",
        p.display()
    );
}
