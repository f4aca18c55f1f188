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

use hashbrown::HashTable;

use genericsmr::command::{Command, Op};
use genericsmr::ReplicaId;

/// The table.
///
/// Entries live in one slab (`slots`), `2n + 3` words each: the key id, one
/// past the last instance per replica that touched the key, the same for
/// writes, then the highest sequence numbers of any command and of writes.
/// The index maps a key id to its slot with four bytes a key and finds it
/// by comparing the id stored in the slot, so a lookup touches the small
/// index and the slot it needs, and nothing else that could miss. A freed entry
/// is reused by the next new key, so the slab stays as large as the number
/// of keys in flight and touching an entry allocates nothing. Forgetting
/// scans the slab in order, which costs less than finding each key of each
/// executed instance again at random; each scan resumes where the last one
/// stopped and visits about two slots per key noted since, so its cost
/// follows the load even when a lagging replica keeps many keys alive.
#[derive(Debug)]
pub(crate) struct KeyTable {
    n: usize,
    /// Seed of the key ids: random per table, so clients cannot choose keys
    /// whose ids collide and slow the table down.
    seed: u64,
    /// Slot numbers, hashed by the key id in the slot's first word.
    index: HashTable<u32>,
    slots: Vec<u64>,
    /// Whether each slot holds a key (freed slots wait in `free`).
    live: Vec<bool>,
    free: Vec<u32>,
    /// Where the next forgetting scan starts.
    cursor: usize,
    /// Slots the next scan may visit (two per key noted since the last).
    budget: usize,
    /// Broken on purpose ([`crate::broken::Broken::DropDependency`]): this
    /// replica, voting on another leader's instance, leaves out its own
    /// latest conflicting instance.
    #[cfg(feature = "broken")]
    pub(crate) drop_own: Option<ReplicaId>,
}

impl KeyTable {
    pub fn new(n: usize) -> Self {
        KeyTable {
            n,
            seed: ahash::RandomState::new().hash_one(0u64),
            index: HashTable::new(),
            slots: Vec::new(),
            live: Vec::new(),
            free: Vec::new(),
            cursor: 0,
            budget: 0,
            #[cfg(feature = "broken")]
            drop_own: None,
        }
    }

    fn key_id(&self, c: &Command) -> u64 {
        xxhash_rust::xxh3::xxh3_64_with_seed(&c.key, self.seed)
    }

    fn stride(&self) -> usize {
        2 * self.n + 3
    }

    /// The slot of key `id`, if the key has one.
    fn find(&self, id: u64) -> Option<u32> {
        let stride = self.stride();
        self.index
            .find(id, |&s| self.slots[s as usize * stride] == id)
            .copied()
    }

    /// The entry of slot `s`: `(any ends, write ends, seq_any, seq_write)`.
    fn entry(&self, s: u32) -> (&[u64], &[u64], u64, u64) {
        let (n, at) = (self.n, s as usize * self.stride() + 1);
        let e = &self.slots[at..at + 2 * n + 2];
        (&e[..n], &e[n..2 * n], e[2 * n], e[2 * n + 1])
    }

    /// Raises `seq` and `deps` above what a command conflicting with slot
    /// `slot`'s key must follow: everything for a write, writes for a read.
    fn raise(&self, slot: u32, write: bool, seq: &mut u64, deps: &mut [u64]) {
        let (any, writes, seq_any, seq_write) = self.entry(slot);
        let (from, s) = if write {
            (any, seq_any)
        } else {
            (writes, seq_write)
        };
        *seq = (*seq).max(s);
        for (d, f) in deps.iter_mut().zip(from) {
            *d = (*d).max(*f);
        }
    }

    /// Keys with an entry.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// The attributes `cmds` would get as instance `(leader, i)`: a sequence
    /// number above every conflicting instance seen, and their prefixes; and
    /// always the leader's earlier instances.
    pub fn attributes(&self, leader: ReplicaId, i: u64, cmds: &[Command]) -> (u64, Vec<u64>) {
        let mut seq = 0;
        let mut deps = vec![0; self.n];
        for c in cmds {
            let Some(slot) = self.find(self.key_id(c)) else {
                continue;
            };
            self.raise(slot, c.op.is_write(), &mut seq, &mut deps);
        }
        let own = &mut deps[leader as usize];
        *own = (*own).max(i);
        (seq + 1, deps)
    }

    /// [`KeyTable::attributes`] raised to at least `floor` (the attributes a
    /// PreAccept arrived with, if any), then [`KeyTable::note`] with the
    /// result, probing the map once per key instead of twice: the table is
    /// consulted for every command of every instance on every replica.
    pub fn attributes_noted(
        &mut self,
        leader: ReplicaId,
        i: u64,
        cmds: &[Command],
        floor: Option<(u64, &[u64])>,
    ) -> (u64, Vec<u64>) {
        let (n, l) = (self.n, leader as usize);
        let mut seq = 0;
        let mut deps = vec![0; n];
        let mut slots = Vec::with_capacity(cmds.len());
        for c in cmds {
            let slot = if c.op == Op::Noop {
                // Read like any command, but never noted.
                self.find(self.key_id(c))
            } else {
                Some(self.slot_for(self.key_id(c)))
            };
            let Some(slot) = slot else {
                continue;
            };
            self.raise(slot, c.op.is_write(), &mut seq, &mut deps);
            if c.op != Op::Noop {
                slots.push((slot, c.op.is_write()));
            }
        }
        deps[l] = deps[l].max(i);
        // Broken on purpose: one past our last conflicting instance becomes
        // one past the one before, which drops that dependency (unless the
        // leader's proposal already carries it).
        #[cfg(feature = "broken")]
        let dropped = match self.drop_own.filter(|me| *me as usize != l) {
            Some(me) if deps[me as usize] > 0 => {
                deps[me as usize] -= 1;
                true
            }
            _ => false,
        };
        seq += 1;
        if let Some((s, d)) = floor {
            seq = seq.max(s);
            for (a, b) in deps.iter_mut().zip(d) {
                *a = (*a).max(*b);
            }
            // ... and so does the sequence number it implied, when it was
            // all this replica would have added: the vote is "unchanged".
            #[cfg(feature = "broken")]
            if dropped && deps[..] == *d {
                seq = s;
            }
        }
        for (slot, write) in slots {
            self.mark(slot, leader, i, seq, write);
        }
        (seq, deps)
    }

    /// The slot of key `id`, a fresh zeroed one if the key has none.
    fn slot_for(&mut self, id: u64) -> u32 {
        if let Some(s) = self.find(id) {
            return s;
        }
        let stride = self.stride();
        let s = match self.free.pop() {
            Some(s) => {
                let at = s as usize * stride;
                self.slots[at..at + stride].fill(0);
                self.live[s as usize] = true;
                s
            }
            None => {
                self.slots.resize(self.slots.len() + stride, 0);
                self.live.push(true);
                (self.live.len() - 1) as u32
            }
        };
        self.slots[s as usize * stride] = id;
        let slots = &self.slots;
        self.index
            .insert_unique(id, s, |&t| slots[t as usize * stride]);
        s
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
            let Some(slot) = self.find(self.key_id(c)) else {
                continue;
            };
            let (any, write, _, _) = self.entry(slot);
            let last = if c.op.is_write() { any } else { write };
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
        for c in cmds {
            if c.op == Op::Noop {
                continue;
            }
            let slot = self.slot_for(self.key_id(c));
            self.mark(slot, leader, i, seq, c.op.is_write());
        }
    }

    /// Records in `slot` that instance `(leader, i)` touches its key with `seq`.
    fn mark(&mut self, slot: u32, leader: ReplicaId, i: u64, seq: u64, write: bool) {
        let (n, l, stride) = (self.n, leader as usize, self.stride());
        self.budget += 2;
        let e = &mut self.slots[slot as usize * stride + 1..][..stride - 1];
        e[l] = e[l].max(i + 1);
        e[2 * n] = e[2 * n].max(seq);
        if write {
            e[n + l] = e[n + l].max(i + 1);
            e[2 * n + 1] = e[2 * n + 1].max(seq);
        }
    }

    /// The table as it stands, for the durable log: a compacted log keeps
    /// no records of executed instances, yet their conflicts must outlive a
    /// restart until every replica has executed them.
    pub fn export(&self) -> crate::messages::Conflicts {
        let stride = self.stride();
        let mut entries = Vec::with_capacity(self.len() * stride);
        for (s, live) in self.live.iter().enumerate() {
            if *live {
                entries.extend_from_slice(&self.slots[s * stride..(s + 1) * stride]);
            }
        }
        crate::messages::Conflicts {
            seed: self.seed,
            entries,
        }
    }

    /// Takes the entries of an exported table (at replay). Key ids depend on
    /// the seed, so an empty table adopts the exported seed; a table already
    /// holding entries under another seed cannot merge them.
    pub fn import(&mut self, c: &crate::messages::Conflicts) -> Result<(), ImportError> {
        let stride = self.stride();
        if !c.entries.len().is_multiple_of(stride) {
            return Err(ImportError::Shape);
        }
        if self.len() == 0 {
            self.seed = c.seed;
        } else if self.seed != c.seed {
            return Err(ImportError::Seed);
        }
        for e in c.entries.chunks_exact(stride) {
            let s = self.slot_for(e[0]) as usize;
            let mine = &mut self.slots[s * stride + 1..(s + 1) * stride];
            for (a, b) in mine.iter_mut().zip(&e[1..]) {
                *a = (*a).max(*b);
            }
        }
        Ok(())
    }

    /// Becomes the exported table `c`, whatever it held (at replay: a
    /// compaction restates the whole table, and the log may hold it after
    /// the instance records it covers, noted meanwhile under this table's
    /// own seed, when the compaction's tail went to the old log too).
    pub fn restore(&mut self, c: &crate::messages::Conflicts) -> Result<(), ImportError> {
        let mut fresh = KeyTable::new(self.n);
        #[cfg(feature = "broken")]
        {
            fresh.drop_own = self.drop_own;
        }
        fresh.import(c)?;
        *self = fresh;
        Ok(())
    }

    /// Drops the entries whose instances are all below `done` (per leader:
    /// executed by every replica).
    pub fn forget(&mut self, done: &[u64]) {
        let (n, stride) = (self.n, self.stride());
        let total = self.live.len();
        let visits = (self.budget + 1024).min(total);
        self.budget = 0;
        for _ in 0..visits {
            let s = self.cursor % total;
            self.cursor = s + 1;
            let e = &self.slots[s * stride..s * stride + 1 + n];
            if self.live[s] && e[1..].iter().zip(done).all(|(a, d)| a <= d) {
                self.live[s] = false;
                if let Ok(o) = self.index.find_entry(e[0], |&t| t as usize == s) {
                    o.remove();
                }
                self.free.push(s as u32);
            }
        }
    }
}

/// Why an exported conflict table cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// Its entries are not whole entries of this group size.
    #[error("conflict table entries do not fit the group size")]
    Shape,
    /// The table already holds entries under another key seed.
    #[error("conflict table follows other records under another seed")]
    Seed,
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

    #[test]
    fn an_exported_table_imports_into_an_empty_one_alike() {
        let put = |k: &str| Command::put(1, 1, Bytes::from(k.to_string()), Bytes::from("v"));
        let get = |k: &str| Command::get(1, 1, Bytes::from(k.to_string()));
        let mut t = KeyTable::new(3);
        t.note(0, 11, 23, &[put("a"), get("b")]);
        t.note(2, 5, 31, &[put("b")]);
        let mut u = KeyTable::new(3);
        u.import(&t.export()).unwrap();
        assert_eq!(u.len(), 2);
        for cmds in [[put("a")], [get("a")], [put("b")], [get("b")], [put("c")]] {
            assert_eq!(u.attributes(1, 3, &cmds), t.attributes(1, 3, &cmds));
        }
        assert_eq!(u.attributes(1, 3, &[put("b")]), (32, vec![12, 3, 6]));
        // Entries under another seed cannot join a table that holds some.
        let mut v = KeyTable::new(3);
        v.note(1, 0, 1, &[put("z")]);
        v.seed ^= 1;
        assert_eq!(v.import(&t.export()), Err(ImportError::Seed));
        // Restoring replaces them instead.
        v.restore(&t.export()).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v.attributes(1, 3, &[put("b")]), (32, vec![12, 3, 6]));
        assert_eq!(
            v.attributes(1, 3, &[put("z")]),
            t.attributes(1, 3, &[put("z")])
        );
        let mut bad = t.export();
        bad.entries.pop();
        assert_eq!(KeyTable::new(3).import(&bad), Err(ImportError::Shape));
    }

    #[test]
    fn one_probe_attributes_match_attributes_then_note() {
        let cmd = |k: u64, w: bool| {
            let key = Bytes::from(format!("k{}", k % 7));
            if w {
                Command::put(1, k, key, Bytes::from("v"))
            } else {
                Command::get(1, k, key)
            }
        };
        let (mut a, mut b) = (KeyTable::new(3), KeyTable::new(3));
        b.seed = a.seed;
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..200u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let leader = (x % 3) as u8;
            let cmds: Vec<Command> = (0..(x >> 8) % 4)
                .map(|j| cmd(x >> (j + 12), (x >> j) & 1 == 1))
                .collect();
            let floor_deps = [(x >> 20) % 50, 0, (x >> 30) % 50];
            let floor = (i % 2 == 0).then_some(((x >> 40) % 300, &floor_deps[..]));
            let (mut seq, mut deps) = a.attributes(leader, i, &cmds);
            if let Some((s, d)) = floor {
                seq = seq.max(s);
                for (p, q) in deps.iter_mut().zip(d) {
                    *p = (*p).max(*q);
                }
            }
            a.note(leader, i, seq, &cmds);
            assert_eq!(b.attributes_noted(leader, i, &cmds, floor), (seq, deps));
            if i % 50 == 49 {
                a.forget(&[i / 2, i / 3, i / 2]);
                b.forget(&[i / 2, i / 3, i / 2]);
                assert_eq!(a.len(), b.len());
            }
        }
    }
}
