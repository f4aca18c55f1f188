//! Per-connection outbound queue that coalesces every queued frame into one write.
//!
//! The protocol thread encodes frames straight into the queue's buffer under a
//! short lock; the connection's writer task swaps the whole buffer out and writes
//! it with one `write_all`. Under load many frames share one system call, which is
//! where most of the throughput of a replica comes from.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::wire::Frame;

/// The outbound queue of one connection.
#[derive(Debug)]
pub struct ConnOutbox {
    buf: Mutex<BytesMut>,
    notify: Notify,
    open: AtomicBool,
    high_water: usize,
}

impl ConnOutbox {
    /// A queue that drops frames once `high_water` bytes are waiting (a dead or
    /// hopelessly slow receiver must not grow our memory without bound).
    pub fn new(open: bool, high_water: usize) -> Self {
        ConnOutbox {
            buf: Mutex::new(BytesMut::with_capacity(64 * 1024)),
            notify: Notify::new(),
            open: AtomicBool::new(open),
            high_water,
        }
    }

    /// Queues a frame. Returns false when it was dropped (closed or over the high-water mark).
    pub fn push<F: Frame + ?Sized>(&self, msg: &F) -> bool {
        self.push_with(|b| msg.encode_frame(b))
    }

    /// Queues already-encoded frames.
    pub fn push_raw(&self, frames: &[u8]) -> bool {
        self.push_with(|b| b.extend_from_slice(frames))
    }

    fn push_with(&self, f: impl FnOnce(&mut BytesMut)) -> bool {
        if !self.is_open() {
            return false;
        }
        let mut b = self.buf.lock();
        if b.len() >= self.high_water {
            return false;
        }
        let was_empty = b.is_empty();
        f(&mut b);
        drop(b);
        if was_empty {
            self.notify.notify_one();
        }
        true
    }

    /// Takes every queued frame out of the queue, leaving it empty (for tests
    /// and tools that inspect what would have been sent).
    pub fn take_queued(&self) -> BytesMut {
        std::mem::take(&mut *self.buf.lock())
    }

    /// Whether frames are currently accepted.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Starts accepting frames (a fresh connection).
    pub fn open(&self) {
        self.buf.lock().clear();
        self.open.store(true, Ordering::Release);
    }

    /// Stops accepting frames, discards what is queued and wakes the writer so it exits.
    pub fn close(&self) {
        self.open.store(false, Ordering::Release);
        self.buf.lock().clear();
        self.notify.notify_one();
    }

    /// Writes queued frames to `w` until the queue is closed or a write fails.
    pub async fn run_writer<W: AsyncWriteExt + Unpin>(&self, w: &mut W) -> std::io::Result<()> {
        let mut spare = BytesMut::with_capacity(64 * 1024);
        loop {
            self.notify.notified().await;
            loop {
                {
                    let mut b = self.buf.lock();
                    if b.is_empty() {
                        break;
                    }
                    std::mem::swap(&mut *b, &mut spare);
                }
                w.write_all(&spare).await?;
                spare.clear();
            }
            if !self.is_open() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Ping;

    #[test]
    fn drops_when_closed_or_full() {
        let o = ConnOutbox::new(false, 30);
        assert!(!o.push(&Ping {
            nonce: 1,
            leaders: Vec::new()
        }));
        o.open();
        assert!(o.push(&Ping {
            nonce: 1,
            leaders: Vec::new()
        }));
        assert!(o.push(&Ping {
            nonce: 2,
            leaders: Vec::new()
        }));
        // 34 bytes queued >= 30: the next frame is dropped.
        assert!(!o.push(&Ping {
            nonce: 3,
            leaders: Vec::new()
        }));
    }

    #[tokio::test]
    async fn coalesces_queued_frames_into_the_stream() {
        let o = std::sync::Arc::new(ConnOutbox::new(true, 1 << 20));
        for i in 0..100 {
            o.push(&Ping {
                nonce: i,
                leaders: Vec::new(),
            });
        }
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let o2 = o.clone();
        let w = tokio::spawn(async move { o2.run_writer(&mut a).await });
        let mut buf = BytesMut::new();
        for i in 0..100u64 {
            let (code, body) = crate::transport::read_frame(&mut b, &mut buf, 1024)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(code, crate::messages::codes::PING);
            assert_eq!(crate::wire::decode_body::<Ping>(body).unwrap().nonce, i);
        }
        o.close();
        w.await.unwrap().unwrap();
    }
}
