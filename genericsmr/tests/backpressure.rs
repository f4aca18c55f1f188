//! The client lane's bound, end to end over real TCP: a client that writes
//! far more than the core takes is held back by the transport (its socket
//! stops being read), the lane never holds more than the bound, and once the
//! core takes again every request arrives, in order, none lost.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use genericsmr::command::Command;
use genericsmr::gate::ClientGate;
use genericsmr::messages::Propose;
use genericsmr::rpc_table::{class, RpcTable};
use genericsmr::transport::{Transport, TransportConfig};
use genericsmr::wire::Frame;

/// Requests the client writes: about 40 MB, far more than the kernel's
/// socket buffers on both ends hold, so the writer must wait for the core.
const TOTAL: u64 = 1_000_000;
/// The lane's bound in this test.
const LIMIT: usize = 32;

#[test]
fn a_client_faster_than_the_core_waits_in_tcp_not_in_the_lane() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut table = RpcTable::new();
    let (tx, lane) = crossbeam_channel::unbounded();
    table.register_into(class::CLIENT, tx, |p: Propose| p);
    let watch = lane.clone();
    let gate = Arc::new(ClientGate::new(move || watch.len()));
    table.set_client_gate(gate.clone());
    let (peer_l, client_l) = rt.block_on(async {
        (
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind"),
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind"),
        )
    });
    let addr = client_l.local_addr().expect("an address");
    let mut cfg = TransportConfig::new(0, vec![String::new()]);
    cfg.client_queue = LIMIT;
    let _t = Transport::start(rt.handle(), cfg, Arc::new(table), peer_l, client_l);

    // The client writes every request in batches and counts what it wrote.
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let writer = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        let mut buf = BytesMut::new();
        for seq in 0..TOTAL {
            let cmd = Command::put(7, seq, format!("k{}", seq % 100), format!("v{seq}"));
            Propose { cmd }.encode_frame(&mut buf);
            if seq % 1000 == 999 || seq + 1 == TOTAL {
                s.write_all(&buf).expect("write");
                buf.clear();
                w.store(seq + 1, Ordering::SeqCst);
            }
        }
    });

    // Nothing takes from the lane: it fills to the bound and the writer
    // stalls (its count stops moving) well short of the end.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut peak = 0;
    let mut last = (0, Instant::now());
    loop {
        peak = peak.max(lane.len());
        let n = written.load(Ordering::SeqCst);
        if n != last.0 {
            last = (n, Instant::now());
        } else if lane.len() >= LIMIT && last.1.elapsed() > Duration::from_millis(300) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the writer never stalled: wrote {n}"
        );
        std::thread::yield_now();
    }
    let stalled_at = written.load(Ordering::SeqCst);
    assert!(
        peak <= LIMIT,
        "the lane held {peak} requests, above its bound of {LIMIT}"
    );
    assert!(
        stalled_at < TOTAL,
        "the client wrote all {TOTAL} requests while the core took none"
    );

    // The core takes again: everything arrives, in order, and the lane stays bounded.
    let deadline = Instant::now() + Duration::from_secs(60);
    for want in 0..TOTAL {
        let (_, p) = lane
            .recv_deadline(deadline)
            .unwrap_or_else(|_| panic!("request {want} never arrived"));
        assert_eq!(p.cmd.seq, want, "requests arrive in the order written");
        peak = peak.max(lane.len());
        gate.opened();
    }
    writer.join().expect("the writer ends");
    assert!(
        peak <= LIMIT,
        "the lane held {peak} requests, above its bound of {LIMIT}"
    );
    println!(
        "the writer stalled at {stalled_at} of {TOTAL} requests with {LIMIT} queued; all {TOTAL} then arrived in order"
    );
}
