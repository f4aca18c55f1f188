//! Registration against a real master process: ids, completion, rejoin, refusal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use genericsmr::messages::{codes, ClusterInfo, GetCluster, Register, RegisterReply};
use genericsmr::transport::{read_frame, write_frame};
use genericsmr::wire::{decode_body, DEFAULT_MAX_FRAME};
use tokio::net::TcpStream;

struct Master(std::process::Child, String);

impl Drop for Master {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(n: usize) -> Master {
    let mut child = Command::new(env!("CARGO_BIN_EXE_master"))
        .args(["--port", "0", "--replicas", &n.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read the first line in a thread, so a master that never prints fails the test in time.
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("master prints its address");
    let addr = line.split_whitespace().nth(3).unwrap().to_string();
    Master(child, addr)
}

fn reg(id: Option<u8>, port: u16) -> Register {
    Register {
        id,
        host: "127.0.0.1".into(),
        peer_port: port,
        client_port: port + 1,
        protocol: "paxos".into(),
        shard: 0,
        reply_after_exec: false,
    }
}

async fn send(addr: &str, r: &Register) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    write_frame(&mut s, r).await.unwrap();
    s
}

async fn reply(s: &mut TcpStream) -> RegisterReply {
    let mut buf = BytesMut::new();
    loop {
        let (code, body) = tokio::time::timeout(
            Duration::from_secs(10),
            read_frame(s, &mut buf, DEFAULT_MAX_FRAME),
        )
        .await
        .expect("reply in time")
        .unwrap()
        .expect("a frame");
        if code == codes::REGISTER_REPLY {
            return decode_body(body).unwrap();
        }
    }
}

#[tokio::test]
async fn ids_rejoin_and_refusals() {
    let m = start(2);
    let mut a = send(&m.1, &reg(None, 9000)).await;
    let mut b = send(&m.1, &reg(None, 9100)).await;
    let (ra, rb) = (reply(&mut a).await, reply(&mut b).await);
    assert!(ra.ok && rb.ok);
    assert_ne!(ra.id, rb.id);
    assert_eq!(ra.replicas.len(), 2);
    assert!(!ra.rejoin);
    // A stranger is refused once the group is complete.
    let mut c = send(&m.1, &reg(None, 9200)).await;
    let rc = reply(&mut c).await;
    assert!(!rc.ok && rc.error.contains("complete"), "{rc:?}");
    // Out-of-range ids are refused.
    let mut d = send(&m.1, &reg(Some(7), 9300)).await;
    assert!(!reply(&mut d).await.ok);
    // A wrong protocol is refused.
    let mut wrong = reg(None, 9000);
    wrong.protocol = "epaxos".into();
    let mut e = send(&m.1, &wrong).await;
    assert!(reply(&mut e).await.error.contains("paxos"));
    // A second live process may not take a registered id from another address.
    let mut dup = send(&m.1, &reg(Some(ra.id), 9900)).await;
    let rd = reply(&mut dup).await;
    assert!(!rd.ok && rd.error.contains("alive"), "{rd:?}");
    // A restarted replica re-registers under its old id, by address or by id.
    drop(a);
    let mut a2 = send(&m.1, &reg(None, 9000)).await;
    let ra2 = reply(&mut a2).await;
    assert!(ra2.ok && ra2.rejoin && ra2.id == ra.id, "{ra2:?}");
    let mut b2 = send(&m.1, &reg(Some(rb.id), 9100)).await;
    assert!(reply(&mut b2).await.rejoin);
    // The cluster description lists both.
    let mut q = TcpStream::connect(&m.1).await.unwrap();
    write_frame(&mut q, &GetCluster { nonce: 9 }).await.unwrap();
    let mut buf = BytesMut::new();
    let (code, body) = read_frame(&mut q, &mut buf, DEFAULT_MAX_FRAME)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, codes::CLUSTER_INFO);
    let info: ClusterInfo = decode_body(body).unwrap();
    assert!(info.complete);
    assert_eq!(info.nonce, 9);
    assert_eq!(info.replicas.len(), 2);
    assert_eq!((info.shards, info.leaders.len()), (1, 1));
    // A shard the group does not have is refused with the reason.
    let mut bad = reg(None, 9400);
    bad.shard = 1;
    let mut f = send(&m.1, &bad).await;
    let rf = reply(&mut f).await;
    assert!(!rf.ok && rf.error.contains("--shard"), "{rf:?}");
}

#[tokio::test]
async fn garbage_closes_the_connection_and_the_master_keeps_serving() {
    let m = start(1);
    let mut s = TcpStream::connect(&m.1).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, &[0x01, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        read_frame(&mut s, &mut buf, DEFAULT_MAX_FRAME),
    )
    .await;
    assert!(
        matches!(r, Ok(Ok(None)) | Ok(Err(_))),
        "connection still open"
    );
    let mut a = send(&m.1, &reg(None, 9000)).await;
    assert!(reply(&mut a).await.ok);
}
