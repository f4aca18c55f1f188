//! One connection to one replica, with replies matched to requests by sequence number.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use genericsmr::messages::{codes, Propose, ProposeReply};
use genericsmr::transport::{read_frame, ConnOutbox};
use genericsmr::wire::{decode_body, Frame, DEFAULT_MAX_FRAME};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<ProposeReply>>>>;

/// A live connection to a replica's client port.
pub(crate) struct Conn {
    /// Index of the replica in the client's list.
    pub target: usize,
    out: Arc<ConnOutbox>,
    waiters: Waiters,
    closed: Arc<AtomicBool>,
}

impl Conn {
    pub(crate) async fn open(target: usize, addr: &str) -> std::io::Result<Arc<Conn>> {
        let s = TcpStream::connect(addr).await?;
        let _ = s.set_nodelay(true);
        let (mut rd, mut wr) = s.into_split();
        let out = Arc::new(ConnOutbox::new(true, 64 << 20));
        let waiters: Waiters = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let c = Arc::new(Conn {
            target,
            out: out.clone(),
            waiters: waiters.clone(),
            closed: closed.clone(),
        });
        let o = out.clone();
        tokio::spawn(async move {
            let _ = o.run_writer(&mut wr).await;
        });
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            while let Ok(Some((code, body))) =
                read_frame(&mut rd, &mut buf, DEFAULT_MAX_FRAME).await
            {
                if code != codes::PROPOSE_REPLY {
                    continue;
                }
                let Ok(r) = decode_body::<ProposeReply>(body) else {
                    break;
                };
                if let Some(tx) = waiters.lock().remove(&r.seq) {
                    let _ = tx.send(r);
                }
            }
            closed.store(true, Ordering::Release);
            out.close();
            // Dropping the senders wakes every waiter with an error: the connection is gone.
            waiters.lock().clear();
        });
        Ok(c)
    }

    pub(crate) fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// Sends a proposal; the receiver yields its reply, or an error if the connection dies.
    pub(crate) fn send(&self, p: &Propose) -> oneshot::Receiver<ProposeReply> {
        self.send_for(p.cmd.seq, p)
    }

    /// Sends any request that the replica answers with a `ProposeReply` for
    /// sequence number `seq` (a `Propose`, or MDLin's `MdlPropose`); the
    /// receiver yields the reply, or an error if the connection dies.
    pub(crate) fn send_for<M: Frame + ?Sized>(
        &self,
        seq: u64,
        m: &M,
    ) -> oneshot::Receiver<ProposeReply> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(seq, tx);
        if !self.out.push(m) || !self.is_open() {
            self.waiters.lock().remove(&seq);
        }
        rx
    }

    /// Sends a message that gets no reply (MDLin's `CoordReq`, or a resend
    /// nobody waits for); false if the connection is closed.
    pub(crate) fn push<M: Frame + ?Sized>(&self, m: &M) -> bool {
        self.is_open() && self.out.push(m)
    }

    /// Forgets a request that timed out.
    pub(crate) fn forget(&self, seq: u64) {
        self.waiters.lock().remove(&seq);
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.out.close();
    }
}
