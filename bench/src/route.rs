//! Where clients send: the leader, found through the master or by trying replicas.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

const UNKNOWN: usize = usize::MAX;

/// Shared routing state of all clients of a run.
pub struct Route {
    master: Option<String>,
    replicas: RwLock<Vec<String>>,
    leader: AtomicUsize,
    last_refresh: Mutex<Option<Instant>>,
}

impl Route {
    /// Routes through the master at `master` (replica list fetched on demand).
    pub async fn with_master(master: &str) -> anyhow::Result<Route> {
        let r = Route {
            master: Some(master.to_string()),
            replicas: RwLock::new(Vec::new()),
            leader: AtomicUsize::new(UNKNOWN),
            last_refresh: Mutex::new(None),
        };
        r.refresh().await?;
        Ok(r)
    }

    /// Routes among fixed replica client addresses (no master).
    pub fn with_replicas(replicas: Vec<String>) -> Route {
        Route {
            master: None,
            replicas: RwLock::new(replicas),
            leader: AtomicUsize::new(0),
            last_refresh: Mutex::new(None),
        }
    }

    /// Number of replicas known.
    pub fn len(&self) -> usize {
        self.replicas.read().len()
    }

    /// Whether no replica is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Client address of replica `i`.
    pub fn addr(&self, i: usize) -> Option<String> {
        self.replicas.read().get(i).cloned()
    }

    /// Asks the master for the replica list and the leader.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let Some(m) = &self.master else { return Ok(()) };
        let info = client::admin::cluster(m, Duration::from_secs(2)).await?;
        let mut rs = info.replicas.clone();
        rs.sort_by_key(|r| r.id);
        *self.replicas.write() = rs.iter().map(|r| r.client_addr()).collect();
        self.leader.store(
            info.leader.map_or(UNKNOWN, |l| l as usize),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// The replica to send to now.
    pub async fn target(&self) -> Option<usize> {
        let l = self.leader.load(Ordering::Relaxed);
        if l != UNKNOWN && l < self.len() {
            return Some(l);
        }
        // Ask the master at most every 50 ms, however many clients are waiting.
        let due = {
            let mut t = self.last_refresh.lock();
            let due = t.is_none_or(|t| t.elapsed() > Duration::from_millis(50));
            if due {
                *t = Some(Instant::now());
            }
            due
        };
        if due {
            let _ = self.refresh().await;
        }
        let l = self.leader.load(Ordering::Relaxed);
        (l != UNKNOWN && l < self.len()).then_some(l)
    }

    /// `from` was not the leader (or failed): aim at `hint`, or find out anew.
    pub fn redirect(&self, from: usize, hint: Option<u8>) {
        let next = match hint.map(|h| h as usize) {
            Some(h) if h != from => h,
            _ if self.master.is_some() => UNKNOWN,
            _ => (from + 1) % self.len().max(1),
        };
        let _ = self
            .leader
            .compare_exchange(from, next, Ordering::Relaxed, Ordering::Relaxed);
        if self.leader.load(Ordering::Relaxed) == UNKNOWN {
            return;
        }
        if hint.is_some() && next != from {
            self.leader.store(next, Ordering::Relaxed);
        }
    }
}
