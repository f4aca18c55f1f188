//! Backpressure from the core to clients: the client lane's bound.
//!
//! The lanes from the transport to the core are channels without a bound,
//! so a load above what the core can serve would queue there without limit
//! and the replica's memory would grow for as long as the overload lasted.
//! The [`ClientGate`] bounds the client lane instead: once it holds its
//! limit, the reader of every client connection stops reading until the core
//! has taken some, so the kernel's socket buffers fill and TCP slows the
//! clients down. Nothing is dropped and no request is refused; a client just
//! waits, as it would for any slow server.
//!
//! Only client connections wait. Peer and master connections are never held
//! back (votes and the master's probe must not queue behind clients), and
//! the few messages peers put into the client lane (MDLin's coordination
//! requests from other shards' leaders) may pass the limit.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The shared bound on one replica's client lane: the transport's client
/// readers wait on it, the runtime opens it as it takes requests.
pub struct ClientGate {
    /// How many messages the client lane holds now.
    len: Box<dyn Fn() -> usize + Send + Sync>,
    /// Readers waiting for room: the runtime wakes them only when some are.
    waiting: AtomicUsize,
    wake: Notify,
}

impl std::fmt::Debug for ClientGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientGate")
            .field("queued", &(self.len)())
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish()
    }
}

impl ClientGate {
    /// A gate over a lane whose length `len` reports.
    pub fn new(len: impl Fn() -> usize + Send + Sync + 'static) -> Self {
        ClientGate {
            len: Box::new(len),
            waiting: AtomicUsize::new(0),
            wake: Notify::new(),
        }
    }

    /// How many messages wait in the client lane now.
    pub fn queued(&self) -> usize {
        (self.len)()
    }

    /// Returns once the lane holds fewer than `limit` messages (at once if
    /// `limit` is 0: no bound).
    pub async fn room(&self, limit: usize) {
        if limit == 0 {
            return;
        }
        while (self.len)() >= limit {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            // Registered before the second look, so a wake between the look
            // and the await is not lost.
            woken.as_mut().enable();
            let _counted = Waiting::count(&self.waiting);
            if (self.len)() < limit {
                return;
            }
            woken.await;
        }
    }

    /// Wakes the waiting readers, if any (each looks at the lane again).
    /// The runtime calls it after every round in which it took requests.
    pub fn opened(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.wake.notify_waiters();
        }
    }
}

/// One reader counted as waiting for as long as it lives, so a reader
/// dropped while it waits (its connection closed) is not counted for ever.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn count(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Waiting(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A reader waits while the lane is full and goes on once it is drained.
    #[test]
    fn a_full_lane_holds_readers_until_the_runtime_takes_from_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let (tx, rx) = crossbeam_channel::unbounded::<u32>();
        let lane = rx.clone();
        let gate = Arc::new(ClientGate::new(move || lane.len()));
        for i in 0..4 {
            tx.send(i).expect("the lane is open");
        }
        rt.block_on(async {
            // Room below 8 but not below 4.
            tokio::time::timeout(std::time::Duration::from_secs(5), gate.room(8))
                .await
                .expect("a lane of 4 has room below 8");
            let blocked =
                tokio::time::timeout(std::time::Duration::from_millis(50), gate.room(4)).await;
            assert!(blocked.is_err(), "a lane of 4 has no room below 4");
            // The runtime takes two and opens the gate from another thread.
            let g = gate.clone();
            let taker = std::thread::spawn(move || {
                rx.recv().expect("queued");
                rx.recv().expect("queued");
                g.opened();
            });
            tokio::time::timeout(std::time::Duration::from_secs(5), gate.room(4))
                .await
                .expect("the reader goes on once the runtime took two");
            taker.join().expect("the taker ends");
            assert_eq!(gate.queued(), 2);
            assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
            // No bound: never waits.
            gate.room(0).await;
        });
    }
}
