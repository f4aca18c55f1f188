//! Where clients send: each shard's leader, found through the master or by
//! trying replicas.
//!
//! Replicas are indexed by global id (shard `i / n` for `n` replicas per
//! shard); an unsharded group is one shard.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

const UNKNOWN: usize = usize::MAX;

/// Shared routing state of all clients of a run.
pub struct Route {
    master: Option<String>,
    replicas: RwLock<Vec<String>>,
    /// Replicas per shard.
    n: usize,
    /// The leader of each shard (global index), or `UNKNOWN`.
    leaders: Vec<AtomicUsize>,
    last_refresh: Mutex<Option<Instant>>,
}

impl Route {
    /// Routes through the master at `master` (replica list fetched on demand).
    pub async fn with_master(master: &str) -> anyhow::Result<Route> {
        let info = client::admin::cluster(master, Duration::from_secs(2)).await?;
        let r = Route {
            master: Some(master.to_string()),
            replicas: RwLock::new(Vec::new()),
            n: (info.n as usize).max(1),
            leaders: (0..info.shard_count())
                .map(|_| AtomicUsize::new(UNKNOWN))
                .collect(),
            last_refresh: Mutex::new(None),
        };
        r.apply(&info);
        Ok(r)
    }

    /// Routes among fixed replica client addresses of one group (no master),
    /// taking replica `i` to be the `i`th address (see [`Route::discover`]
    /// when the order is not known).
    pub fn with_replicas(replicas: Vec<String>) -> Route {
        Route {
            master: None,
            n: replicas.len().max(1),
            replicas: RwLock::new(replicas),
            leaders: vec![AtomicUsize::new(0)],
            last_refresh: Mutex::new(None),
        }
    }

    /// Routes among the replicas of one group given only their client
    /// addresses (no master), in any order. Leader hints in replies name
    /// replica ids, and ids follow registration order rather than the order
    /// given, so each replica is asked for its status: the list is put in id
    /// order (a replica that does not answer takes an id no other claims) and
    /// the first target is the replica that leads or that the others name.
    pub async fn discover(replicas: Vec<String>) -> anyhow::Result<Route> {
        use genericsmr::messages::role;
        let n = replicas.len();
        anyhow::ensure!(n > 0, "no replica address given");
        let mut asks = tokio::task::JoinSet::new();
        for (i, a) in replicas.iter().enumerate() {
            let a = a.clone();
            asks.spawn(async move { (i, client::admin::status(&a, Duration::from_secs(2)).await) });
        }
        let mut answers = vec![None; n];
        while let Some(j) = asks.join_next().await {
            let (i, r) = j?;
            answers[i] = r.ok();
        }
        let mut slots: Vec<Option<String>> = vec![None; n];
        for (i, s) in answers.iter().enumerate() {
            let Some(s) = s else { continue };
            let id = s.replica as usize;
            anyhow::ensure!(
                id < n,
                "{} is replica {id}, but only {n} addresses were given: list every replica of the group",
                replicas[i]
            );
            anyhow::ensure!(
                slots[id].is_none(),
                "{} and {} both say they are replica {id}",
                slots[id].as_deref().unwrap_or("?"),
                replicas[i]
            );
            slots[id] = Some(replicas[i].clone());
        }
        anyhow::ensure!(
            answers.iter().any(Option::is_some),
            "none of the replicas {} answers",
            replicas.join(",")
        );
        let mut silent = (0..n).filter(|i| answers[*i].is_none());
        for slot in slots.iter_mut().filter(|s| s.is_none()) {
            *slot = silent.next().map(|i| replicas[i].clone());
        }
        let leading = answers.iter().flatten().find(|s| s.role == role::LEADER);
        let leader = leading
            .map(|s| s.replica as usize)
            .or_else(|| {
                answers
                    .iter()
                    .flatten()
                    .find_map(|s| s.leader.map(usize::from))
            })
            .map_or(0, |l| l.min(n - 1));
        let r = Route::with_replicas(slots.into_iter().flatten().collect());
        r.leaders[0].store(leader, Ordering::Relaxed);
        Ok(r)
    }

    /// Number of replicas known (all shards).
    pub fn len(&self) -> usize {
        self.replicas.read().len()
    }

    /// Whether no replica is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.leaders.len()
    }

    /// Replicas per shard.
    pub fn per_shard(&self) -> usize {
        self.n
    }

    /// The shard that owns `key`.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        genericsmr::shard::shard_of(key, self.shards() as u32) as usize
    }

    /// Global indexes of the replicas of shard `s`.
    pub fn members(&self, s: usize) -> std::ops::Range<usize> {
        genericsmr::shard::members(s, self.n)
    }

    /// Client address of replica `i` (global index).
    pub fn addr(&self, i: usize) -> Option<String> {
        self.replicas.read().get(i).cloned()
    }

    fn apply(&self, info: &genericsmr::messages::ClusterInfo) {
        let mut rs = info.replicas.clone();
        rs.sort_by_key(|r| r.id);
        *self.replicas.write() = rs.iter().map(|r| r.client_addr()).collect();
        for (s, l) in self.leaders.iter().enumerate() {
            l.store(
                info.leader_of(s).map_or(UNKNOWN, |l| l as usize),
                Ordering::Relaxed,
            );
        }
    }

    /// Asks the master for the replica list and every shard's leader.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let Some(m) = &self.master else { return Ok(()) };
        let info = client::admin::cluster(m, Duration::from_secs(2)).await?;
        self.apply(&info);
        Ok(())
    }

    /// The replica to send to now (of shard 0, for an unsharded group).
    pub async fn target(&self) -> Option<usize> {
        self.target_of(0).await
    }

    /// The replica of shard `s` to send to now: its leader.
    pub async fn target_of(&self, s: usize) -> Option<usize> {
        let known = |me: &Self| {
            let l = me.leaders.get(s)?.load(Ordering::Relaxed);
            (l != UNKNOWN && l < me.len()).then_some(l)
        };
        if let Some(l) = known(self) {
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
        known(self)
    }

    /// `from` (a global index) was not its shard's leader, or failed: aim at
    /// `hint` (named by its id inside the shard, as replicas reply), or find
    /// out anew.
    pub fn redirect(&self, from: usize, hint: Option<u8>) {
        let shard = (from / self.n).min(self.shards() - 1);
        let base = self.members(shard).start;
        let leader = &self.leaders[shard];
        let next = match hint.map(|h| base + h as usize) {
            Some(h) if h != from => h,
            _ if self.master.is_some() => UNKNOWN,
            _ => base + (from - base + 1) % self.n,
        };
        let _ = leader.compare_exchange(from, next, Ordering::Relaxed, Ordering::Relaxed);
        if leader.load(Ordering::Relaxed) == UNKNOWN {
            return;
        }
        if hint.is_some() && next != from {
            leader.store(next, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_read_inside_the_shard() {
        let r = Route {
            master: Some("unused".into()),
            replicas: RwLock::new((0..9).map(|i| format!("h:{i}")).collect()),
            n: 3,
            leaders: (0..3).map(|s| AtomicUsize::new(s * 3)).collect(),
            last_refresh: Mutex::new(None),
        };
        // Replica 3 (shard 1) says local replica 2 leads: that is replica 5.
        r.redirect(3, Some(2));
        assert_eq!(r.leaders[1].load(Ordering::Relaxed), 5);
        assert_eq!(r.leaders[0].load(Ordering::Relaxed), 0);
        // No hint through a master: unknown until the master is asked.
        r.redirect(6, None);
        assert_eq!(r.leaders[2].load(Ordering::Relaxed), UNKNOWN);
        assert_eq!(r.members(2), 6..9);
        let one = Route::with_replicas(vec!["a".into(), "b".into(), "c".into()]);
        one.redirect(0, None);
        assert_eq!(one.leaders[0].load(Ordering::Relaxed), 1);
        one.redirect(1, Some(2));
        assert_eq!(one.leaders[0].load(Ordering::Relaxed), 2);
    }
}
