//! A minimal closed-loop load through the client library: C sessions, each with
//! W requests in flight, for D seconds; prints throughput and mean latency.
//! (`bench` is the full tool; this is the library's own smoke load.)
//!
//! ```text
//! cargo run --release -p client --example closed_loop -- 127.0.0.1:7087 16 4 5
//! ```
//! Arguments: MASTER CLIENTS WINDOW SECONDS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{Client, ClientConfig};

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let master = a
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7087".into());
    let clients: usize = a.get(1).map_or(Ok(16), |s| s.parse())?;
    let window: usize = a.get(2).map_or(Ok(4), |s| s.parse())?;
    let secs: u64 = a.get(3).map_or(Ok(5), |s| s.parse())?;
    let ops = Arc::new(AtomicU64::new(0));
    let lat_ns = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let cl = Client::connect(ClientConfig::with_master(master.clone())).await?;
        for w in 0..window {
            let (cl, ops, lat_ns) = (cl.clone(), ops.clone(), lat_ns.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < end {
                    let t = Instant::now();
                    cl.put(format!("c{c}-w{w}-{}", i % 1000), "value-16-bytes!!")
                        .await?;
                    lat_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    ops.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                anyhow::Ok(())
            }));
        }
    }
    for t in tasks {
        t.await??;
    }
    let n = ops.load(Ordering::Relaxed);
    println!(
        "{clients} clients x {window} in flight, {secs} s: {n} ops, {:.0} ops/s, mean latency {:.1} us",
        n as f64 / secs as f64,
        lat_ns.load(Ordering::Relaxed) as f64 / n.max(1) as f64 / 1e3
    );
    Ok(())
}
