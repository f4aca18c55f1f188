//! The log held in memory: the entries after a base point (everything up to
//! the base is executed and compacted away, and stands in the snapshot).

use std::collections::VecDeque;

use crate::messages::Entry;

/// Entries `base + 1 ..= last()`, with the term of the entry at `base`.
#[derive(Debug, Default)]
pub struct Log {
    /// Index of the last entry compacted away (0: none).
    base: u64,
    /// Term of the entry at `base` (0 for the empty log).
    base_term: u64,
    /// `entries[i]` is the entry at index `base + 1 + i`.
    entries: VecDeque<Entry>,
}

impl Log {
    /// Index of the last entry compacted away.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Term of the entry at the base.
    pub fn base_term(&self) -> u64 {
        self.base_term
    }

    /// Index of the last entry (the base if none is held).
    pub fn last(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// Term of the last entry.
    pub fn last_term(&self) -> u64 {
        self.entries.back().map_or(self.base_term, |e| e.term)
    }

    /// Term of the entry at `i`, if known (the base or a held entry).
    pub fn term(&self, i: u64) -> Option<u64> {
        if i == self.base {
            return Some(self.base_term);
        }
        self.get(i).map(|e| e.term)
    }

    /// The entry at `i`, if held.
    pub fn get(&self, i: u64) -> Option<&Entry> {
        let k = i.checked_sub(self.base + 1)?;
        self.entries.get(usize::try_from(k).ok()?)
    }

    /// Appends `e` at `last() + 1`.
    pub fn push(&mut self, e: Entry) {
        self.entries.push_back(e);
    }

    /// Drops every entry after `i` (`i >= base`).
    pub fn truncate_after(&mut self, i: u64) {
        let keep = i.saturating_sub(self.base) as usize;
        self.entries.truncate(keep);
    }

    /// Entries `from ..= to`, cloned (`from > base`).
    pub fn slice(&self, from: u64, to: u64) -> Vec<Entry> {
        let a = from.saturating_sub(self.base + 1) as usize;
        let b = to.saturating_sub(self.base) as usize;
        self.entries
            .range(a..b.min(self.entries.len()))
            .cloned()
            .collect()
    }

    /// Entries from `from` on, as long as they fit `max_bytes` (at least
    /// one) and number at most `max_count`: the end of the range `from ..=
    /// end`, and the bytes of commands in it.
    pub fn span(&self, from: u64, max_bytes: usize, max_count: usize) -> (u64, usize) {
        let (mut bytes, mut count) = (0, 0);
        let mut end = from - 1;
        while end < self.last() && count < max_count {
            let b = self.get(end + 1).map_or(0, Entry::wire_len);
            if count > 0 && bytes + b > max_bytes {
                break;
            }
            bytes += b;
            count += 1;
            end += 1;
        }
        (end, bytes)
    }

    /// First index of the run of entries with term `t` that ends at `i`
    /// (no lower than `base + 1`).
    pub fn first_of_term(&self, i: u64, t: u64) -> u64 {
        let mut j = i;
        while j > self.base + 1 && self.term(j - 1) == Some(t) {
            j -= 1;
        }
        j
    }

    /// The last index at or below `i` holding an entry of term `t`, if any.
    pub fn last_of_term(&self, i: u64, t: u64) -> Option<u64> {
        let mut j = i.min(self.last());
        while j > self.base {
            match self.term(j) {
                Some(x) if x == t => return Some(j),
                Some(x) if x < t => return None,
                _ => j -= 1,
            }
        }
        None
    }

    /// Drops entries up to `i` (`base < i <= last`): `i` becomes the base.
    /// Returns the bytes of commands dropped.
    pub fn compact_to(&mut self, i: u64) -> usize {
        if i <= self.base {
            return 0;
        }
        let Some(t) = self.term(i) else {
            return 0;
        };
        let n = ((i - self.base) as usize).min(self.entries.len());
        let dropped = self.entries.drain(..n).map(|e| e.wire_len()).sum();
        self.base = i;
        self.base_term = t;
        dropped
    }

    /// Starts over at `(i, t)` with no entries (a snapshot that does not
    /// match this log).
    pub fn reset(&mut self, i: u64, t: u64) {
        self.entries.clear();
        self.base = i;
        self.base_term = t;
    }

    /// Frees memory held by a deque far larger than its contents.
    pub fn shrink(&mut self) {
        if self.entries.capacity() > 4 * self.entries.len().max(1024) {
            self.entries.shrink_to_fit();
        }
    }
}
