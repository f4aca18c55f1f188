//! What a leader proposed and has not yet seen done, counted in commands.
//!
//! A leader's pipeline bound (`--pipeline`) is in commands, not in slots or
//! instances: with batching one slot or instance holds up to `batch_max`
//! commands, so a bound in slots let a stalled group hold thousands of
//! times more than it names. [`InFlight`] notes, for each slot or instance
//! a leader proposes into, how many commands went in; what lies below the
//! protocol's "done" point (the commit index, the executed prefix) no
//! longer counts. Multi-Paxos and MDLin note their slots
//! (`paxos::multi::host::Host::propose_at`), EPaxos its own instances.

use std::collections::VecDeque;

/// Commands proposed into slots or instances at or above some done point,
/// by the index they went into.
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    /// (index, commands) in rising index order.
    open: VecDeque<(u64, usize)>,
    /// The commands of `open`.
    total: usize,
}

impl InFlight {
    /// Notes `commands` proposed into `index`; indexes must rise from one
    /// call to the next (a lower one is counted with the last).
    pub fn push(&mut self, index: u64, commands: usize) {
        let index = self.open.back().map_or(index, |&(last, _)| index.max(last));
        self.open.push_back((index, commands));
        self.total += commands;
    }

    /// Forgets what went into indexes below `done`, and returns the
    /// commands still in flight.
    pub fn settle(&mut self, done: u64) -> usize {
        while let Some(&(i, k)) = self.open.front() {
            if i >= done {
                break;
            }
            self.open.pop_front();
            self.total -= k;
        }
        self.total
    }

    /// The commands in flight at or above `done`, without forgetting the
    /// rest (for checks that cannot change the leader).
    pub fn held(&self, done: u64) -> usize {
        if self.open.back().is_none_or(|&(last, _)| last < done) {
            return 0;
        }
        let gone: usize = self
            .open
            .iter()
            .take_while(|&&(i, _)| i < done)
            .map(|&(_, k)| k)
            .sum();
        self.total - gone
    }

    /// Starts again from `entries`, in rising index order (after a replay).
    pub fn reset(&mut self, entries: impl IntoIterator<Item = (u64, usize)>) {
        self.open.clear();
        self.total = 0;
        for (i, k) in entries {
            self.push(i, k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_lies_below_the_done_point_stops_counting() {
        let mut f = InFlight::default();
        f.push(3, 10);
        f.push(4, 1);
        f.push(7, 100);
        assert_eq!(f.held(0), 111);
        assert_eq!(f.held(4), 101, "slot 3 is done");
        assert_eq!(f.held(8), 0);
        assert_eq!(f.settle(5), 100, "3 and 4 are done");
        assert_eq!(f.held(0), 100, "and forgotten");
        f.reset([(9, 2), (12, 5)]);
        assert_eq!(f.held(10), 5);
        assert_eq!(f.settle(13), 0);
    }

    #[test]
    fn an_index_lower_than_the_last_counts_with_the_last() {
        let mut f = InFlight::default();
        f.push(10, 4);
        f.push(2, 3);
        assert_eq!(f.held(10), 7, "still in flight until 10 is done");
        assert_eq!(f.settle(11), 0);
    }
}
