//! The per-key conflict table: for each key and replica, one past the last
//! instance that touched the key and the last that wrote it, and the highest
//! sequence numbers seen. A write depends on everything before it on its key,
//! a read only on writes; finding a command's attributes is one lookup per key.
//!
//! Keys are identified by a 64-bit hash: two keys that collide merely look
//! like one key, which adds dependencies (never removes any), so a collision
//! costs ordering, not safety, and no key bytes are compared or copied.
//!
//! An entry whose instances every replica has executed is dropped: a
//! dependency on them orders nothing any more (every replica already ran
//! them, and a restarting replica replays its executions in their recorded
//! order). So the table holds the keys of recent instances only, not every
//! key ever written.

use std::collections::{HashMap, VecDeque};

use genericsmr::command::{Command, Op};
use genericsmr::ReplicaId;

fn key_id(c: &Command) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&c.key)
}

/// One key's entry.
#[derive(Debug, Clone)]
struct KeyDeps {
    /// `any` (first n) then `write` (last n), in one allocation.
    ends: Box<[u64]>,
    seq_any: u64,
    seq_write: u64,
}

impl KeyDeps {
    fn any(&self) -> &[u64] {
        &self.ends[..self.ends.len() / 2]
    }

    fn write(&self) -> &[u64] {
        &self.ends[self.ends.len() / 2..]
    }
}

/// The table, and per leader the keys its instances touched, oldest first.
#[derive(Debug)]
pub(crate) struct KeyTable {
    n: usize,
    map: HashMap<u64, KeyDeps, ahash::RandomState>,
    touched: Vec<VecDeque<(u64, u64)>>,
}

impl KeyTable {
    pub fn new(n: usize) -> Self {
        KeyTable {
            n,
            map: HashMap::default(),
            touched: (0..n).map(|_| VecDeque::new()).collect(),
        }
    }

    /// Keys with an entry.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The attributes `cmds` would get as instance `(leader, i)`: a sequence
    /// number above every conflicting instance seen, and their prefixes; and
    /// always the leader's earlier instances.
    pub fn attributes(&self, leader: ReplicaId, i: u64, cmds: &[Command]) -> (u64, Vec<u64>) {
        let mut seq = 0;
        let mut deps = vec![0; self.n];
        for c in cmds {
            let Some(k) = self.map.get(&key_id(c)) else {
                continue;
            };
            let (from, s) = if c.op.is_write() {
                (k.any(), k.seq_any)
            } else {
                (k.write(), k.seq_write)
            };
            seq = seq.max(s);
            for (d, f) in deps.iter_mut().zip(from) {
                *d = (*d).max(*f);
            }
        }
        let own = &mut deps[leader as usize];
        *own = (*own).max(i);
        (seq + 1, deps)
    }

    /// For each other replica whose instances conflicting with `cmds` reach
    /// beyond `deps`: (replica, one past its last such instance). The
    /// leader's own later instances depend on it anyway and are left out.
    pub fn conflicts_outside(
        &self,
        leader: ReplicaId,
        cmds: &[Command],
        deps: &[u64],
    ) -> Vec<(ReplicaId, u64)> {
        let mut out = Vec::new();
        for c in cmds {
            let Some(k) = self.map.get(&key_id(c)) else {
                continue;
            };
            let last = if c.op.is_write() { k.any() } else { k.write() };
            for (r, (&end, &d)) in last.iter().zip(deps).enumerate() {
                // The leader's later instances depend on (leader, i) anyway.
                if end > d && r != leader as usize {
                    out.push((r as ReplicaId, end));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Notes that instance `(leader, i)` touches its commands' keys with `seq`.
    pub fn note(&mut self, leader: ReplicaId, i: u64, seq: u64, cmds: &[Command]) {
        let (n, l) = (self.n, leader as usize);
        for c in cmds {
            if c.op == Op::Noop {
                continue;
            }
            let id = key_id(c);
            let k = self.map.entry(id).or_insert_with(|| KeyDeps {
                ends: vec![0; 2 * n].into_boxed_slice(),
                seq_any: 0,
                seq_write: 0,
            });
            if k.ends[l] < i + 1 {
                k.ends[l] = i + 1;
                self.touched[l].push_back((i, id));
            }
            k.seq_any = k.seq_any.max(seq);
            if c.op.is_write() {
                k.ends[n + l] = k.ends[n + l].max(i + 1);
                k.seq_write = k.seq_write.max(seq);
            }
        }
    }

    /// Drops the entries whose instances are all below `done` (per leader:
    /// executed by every replica).
    pub fn forget(&mut self, done: &[u64]) {
        for l in 0..self.n {
            while self.touched[l].front().is_some_and(|(i, _)| *i < done[l]) {
                let Some((_, key)) = self.touched[l].pop_front() else {
                    break;
                };
                let stale = self
                    .map
                    .get(&key)
                    .is_some_and(|k| k.any().iter().zip(done).all(|(a, d)| a <= d));
                if stale {
                    self.map.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn writes_depend_on_everything_reads_on_writes_and_old_entries_go() {
        let put = |k: &str| Command::put(1, 1, Bytes::from(k.to_string()), Bytes::from("v"));
        let get = |k: &str| Command::get(1, 1, Bytes::from(k.to_string()));
        let mut t = KeyTable::new(3);
        t.note(0, 4, 7, &[put("a")]);
        t.note(1, 2, 9, &[get("a")]);
        // A write after both depends on both; a read only on the write.
        assert_eq!(t.attributes(2, 0, &[put("a")]), (10, vec![5, 3, 0]));
        assert_eq!(t.attributes(2, 0, &[get("a")]), (8, vec![5, 0, 0]));
        // Its own leader's earlier instances, always.
        assert_eq!(t.attributes(2, 6, &[put("zzz")]).1, vec![0, 0, 6]);
        t.forget(&[5, 2, 0]);
        assert_eq!(t.len(), 1, "instance (1, 2) is not executed everywhere yet");
        t.forget(&[5, 3, 0]);
        assert_eq!(t.len(), 0);
    }
}
