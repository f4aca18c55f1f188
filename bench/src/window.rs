//! Outstanding requests of one client, by sequence number.
//!
//! A client issues sequence numbers one after another and most answers come
//! back roughly in order, so the outstanding ones fit a sliding window: a
//! ring indexed by `seq - low`. Compared with a hash map this touches memory
//! in order and hashes nothing, which matters under a flood, where the load
//! generator shares the machine's two cores with the replicas.

use std::collections::VecDeque;

/// Values keyed by sequence numbers that are inserted in increasing order.
#[derive(Debug)]
pub(crate) struct SeqWindow<T> {
    /// Sequence number of `slots[0]`; every lower one is answered.
    low: u64,
    slots: VecDeque<Option<T>>,
    len: usize,
}

impl<T> Default for SeqWindow<T> {
    fn default() -> Self {
        SeqWindow {
            low: 0,
            slots: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> SeqWindow<T> {
    /// Adds `v` under `seq`, which must be above every key inserted before
    /// (sequence numbers only grow); a lower one is ignored.
    pub fn insert(&mut self, seq: u64, v: T) {
        if self.slots.is_empty() {
            self.low = self.low.max(seq);
        }
        let Some(at) = seq.checked_sub(self.low) else {
            return;
        };
        let at = at as usize;
        if at < self.slots.len() {
            return;
        }
        while self.slots.len() < at {
            self.slots.push_back(None);
        }
        self.slots.push_back(Some(v));
        self.len += 1;
    }

    fn index(&self, seq: u64) -> Option<usize> {
        let at = usize::try_from(seq.checked_sub(self.low)?).ok()?;
        (at < self.slots.len()).then_some(at)
    }

    /// The value under `seq`.
    pub fn get(&self, seq: u64) -> Option<&T> {
        self.slots.get(self.index(seq)?)?.as_ref()
    }

    /// The value under `seq`, to change.
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut T> {
        let at = self.index(seq)?;
        self.slots.get_mut(at)?.as_mut()
    }

    /// Takes the value under `seq` out.
    pub fn remove(&mut self, seq: u64) -> Option<T> {
        let at = self.index(seq)?;
        let v = self.slots[at].take()?;
        self.len -= 1;
        while self.slots.front().is_some_and(Option::is_none) {
            self.slots.pop_front();
            self.low += 1;
        }
        Some(v)
    }

    /// The lowest key still held, if any.
    pub fn first(&self) -> Option<u64> {
        (self.len > 0).then_some(self.low)
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keys held, in order.
    pub fn keys(&self) -> Vec<u64> {
        (self.low..)
            .zip(&self.slots)
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_out_of_order_answers_and_slides() {
        let mut w = SeqWindow::default();
        for s in 5..10 {
            w.insert(s, s * 10);
        }
        assert_eq!(w.first(), Some(5));
        assert_eq!(w.remove(7), Some(70));
        assert_eq!(w.remove(7), None, "answered once");
        assert_eq!(w.remove(5), Some(50));
        assert_eq!(w.first(), Some(6));
        assert_eq!(w.remove(6), Some(60));
        assert_eq!(w.first(), Some(8), "7 was answered earlier");
        assert_eq!(w.keys(), vec![8, 9]);
        assert_eq!(w.get(4), None);
        assert_eq!(w.get(u64::MAX), None);
        w.insert(3, 0);
        assert_eq!(w.len(), 2, "a key below the window is ignored");
        w.remove(8);
        w.remove(9);
        assert!(w.is_empty());
        w.insert(20, 200);
        assert_eq!(w.first(), Some(20));
    }
}
