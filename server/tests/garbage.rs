//! Malformed input closes that connection only; the replica keeps serving.

mod common;

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::{bounded, Cluster, Opts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` and expects the server to close the connection (EOF or reset).
async fn expect_closed(addr: &str, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "server kept a connection open after receiving {:02x?}",
        &bytes[..bytes.len().min(8)]
    );
}

fn frame(code: u8, len: u32, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(code);
    b.put_u32_le(len);
    b.put_slice(body);
    b.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_unknown_codes_and_huge_lengths_close_only_that_connection() {
    bounded(async {
        let c = Cluster::start(3, Opts::default());
        let l = c.leader().await;
        let cl = c.client().await;
        cl.put("before", "1").await.unwrap();
        let client_port = c.client_addr(l);
        let peer_port = {
            // The peer port is the one that is not the client port; find it via the master.
            let info = client::admin::cluster(&c.master_addr, Duration::from_secs(2))
                .await
                .unwrap();
            info.replicas
                .iter()
                .find(|r| r.id as usize == l)
                .unwrap()
                .peer_addr()
        };
        let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("garbage", garbage),
            ("unknown type code", frame(0xee, 4, &[1, 2, 3, 4])),
            ("4 GiB length", frame(0x01, u32::MAX, &[0; 16])),
            ("truncated body", frame(0x01, 3, &[1, 2, 3])),
            ("peer message on the client port", frame(0x32, 0, &[])),
        ];
        for (what, bytes) in &cases {
            expect_closed(&client_port, bytes).await;
            expect_closed(&peer_port, bytes).await;
            // The replica still serves everyone else.
            cl.put(format!("after-{what}"), "ok").await.unwrap();
        }
        // A hello that claims to be ourselves, then a valid-looking frame, is also refused.
        expect_closed(&peer_port, &frame(0x20, 2, &[l as u8, 3])).await;
        // After a valid hello (naming another replica), bad frames still close
        // only that connection.
        let other = ((l + 1) % 3) as u8;
        for (what, bytes) in &cases {
            let mut with_hello = frame(0x20, 2, &[other, 3]);
            with_hello.extend_from_slice(bytes);
            expect_closed(&peer_port, &with_hello).await;
            cl.put(format!("after-hello-{what}"), "ok").await.unwrap();
        }
        assert_eq!(cl.get("before").await.unwrap().as_deref(), Some(&b"1"[..]));
        c.converged(Duration::from_secs(10)).await;
    })
    .await
}
