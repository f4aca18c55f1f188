//! What the two searches (linearizability and MDL) share: the window of
//! placed operations a state carries, and the depth-first walk over states.
//!
//! Both sort a key's or component's operations by invocation and describe a
//! state as "operations `..p` placed, plus these past `p`". An operation that
//! stays unplaced for long (a request that waited out a failover while
//! hundreds of others came and went) keeps `p` from moving, so the window
//! must be wide enough for all the operations invoked meanwhile; a branch
//! that needs more than [`WINDOW`] is abandoned.

use std::hash::Hash;

use ahash::AHashSet;

/// How a search ended.
pub enum Search {
    /// A valid order of every operation exists.
    Found,
    /// No order gets past this many operations: a violation.
    Stuck(usize),
    /// The state budget ran out, or a branch outgrew the window: undecided.
    GaveUp,
}

/// Walks the states from `start` depth first, best successor first, and
/// stops at the first state `found` accepts. `prefix` is how many operations
/// a state has placed for sure (for the report of where no order gets past);
/// `successors` fills the states one placement away and returns false when
/// the state outgrew the window (its branch is abandoned, and failing to
/// find an order then proves nothing). At most `budget` states are visited.
///
/// One frame per state with a cursor into its successors, which are
/// recomputed when the walk comes back to it: memory stays at about one small
/// frame per placed operation, plus the set of states seen.
pub fn depth_first<S: Copy + Eq + Hash>(
    start: S,
    budget: usize,
    prefix: impl Fn(&S) -> usize,
    mut found: impl FnMut(&S) -> bool,
    mut successors: impl FnMut(&S, &mut Vec<S>) -> bool,
) -> (Search, u64) {
    let mut seen: AHashSet<S> = AHashSet::new();
    seen.insert(start);
    let mut stack = vec![(start, 0usize)];
    let mut deepest = 0;
    let mut overflowed = false;
    let mut succ = Vec::new();
    while let Some(&mut (s, ref mut next)) = stack.last_mut() {
        if found(&s) {
            return (Search::Found, seen.len() as u64);
        }
        deepest = deepest.max(prefix(&s));
        if seen.len() > budget {
            return (Search::GaveUp, seen.len() as u64);
        }
        if !successors(&s, &mut succ) {
            overflowed = true;
            succ.clear();
        }
        let fresh = succ
            .iter()
            .enumerate()
            .skip(*next)
            .find(|(_, t)| !seen.contains(t))
            .map(|(i, t)| (i, *t));
        match fresh {
            Some((i, t)) => {
                *next = i + 1;
                seen.insert(t);
                stack.push((t, 0));
            }
            None => {
                stack.pop();
            }
        }
    }
    let outcome = if overflowed {
        Search::GaveUp
    } else {
        Search::Stuck(deepest)
    };
    (outcome, seen.len() as u64)
}

/// How many operations past the prefix a state can tell apart.
pub const WINDOW: usize = 512;
const WORDS: usize = WINDOW / 64;

/// A bit per operation past the prefix: bit `i` = operation `p + i` placed.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
pub struct Window([u64; WORDS]);

impl Window {
    /// Whether operation `p + off` is placed (false past the window).
    pub fn has(&self, off: usize) -> bool {
        off < WINDOW && self.0[off / 64] >> (off % 64) & 1 == 1
    }

    /// The window with operation `p + off` placed too; `off` must be below [`WINDOW`].
    pub fn with(mut self, off: usize) -> Window {
        self.0[off / 64] |= 1 << (off % 64);
        self
    }

    /// Drops the run of placed operations at the front and returns its
    /// length (by which the prefix grows).
    pub fn take_front(&mut self) -> usize {
        let mut k = 0;
        for w in self.0 {
            let t = w.trailing_ones() as usize;
            k += t;
            if t < 64 {
                break;
            }
        }
        if k > 0 {
            let (words, bits) = (k / 64, k % 64);
            let mut out = [0u64; WORDS];
            for (i, o) in out.iter_mut().enumerate() {
                let Some(&lo) = self.0.get(i + words) else {
                    break;
                };
                let hi = match self.0.get(i + words + 1) {
                    Some(&h) if bits > 0 => h << (64 - bits),
                    _ => 0,
                };
                *o = (lo >> bits) | hi;
            }
            self.0 = out;
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_runs_across_words_shift_out() {
        let mut w = Window::default();
        for off in (0..70).chain([72, 200, WINDOW - 1]) {
            w = w.with(off);
        }
        assert_eq!(w.take_front(), 70);
        assert!(!w.has(0) && !w.has(1) && w.has(2) && w.has(130) && w.has(WINDOW - 71));
        assert!(!w.has(WINDOW - 70) && !w.has(WINDOW + 5));
        assert_eq!(w.take_front(), 0);
        let mut full = Window::default();
        for off in 0..WINDOW {
            full = full.with(off);
        }
        assert_eq!(full.take_front(), WINDOW);
        assert_eq!(full, Window::default());
    }
}
