//! The fault layer: sits between the protocol and the sockets of one replica.
//!
//! Kernel netem is not available on these machines, so every fault lives here:
//!
//! - **crash**: the replica drops everything it receives and would send, on
//!   every connection, while keeping its state (as a hung process looks from
//!   outside); **restore** undoes it;
//! - **partitions**: messages to and from chosen peers are dropped (one-way
//!   when only the outbound side is cut);
//! - **links**: per outbound peer link, a one-way delay with jitter (so
//!   messages reorder), a loss probability and a duplication probability;
//! - **hold**: the next message of a type to a peer is kept back until
//!   released (a deterministic reordering);
//! - **phase delays**: messages of a type received by this replica are
//!   delivered late, or dropped.
//!
//! With no fault set, one atomic load is the whole cost on the hot path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::ReplicaId;

/// Faults on the outbound link to one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Link {
    /// One-way delay added to every message.
    pub delay: Duration,
    /// Up to this much more, drawn uniformly per message (reorders messages).
    pub jitter: Duration,
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is sent twice.
    pub dup: f64,
    /// Messages to this peer are dropped (a partition, outbound side).
    pub cut: bool,
}

impl Link {
    fn is_clear(&self) -> bool {
        *self == Link::default()
    }
}

/// What happens to an inbound message of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Delivered after this long.
    Delay(Duration),
    /// Never delivered.
    Drop,
}

#[derive(Debug, Default)]
struct State {
    crashed: bool,
    links: HashMap<ReplicaId, Link>,
    /// Peers whose messages to us are dropped (a partition, inbound side).
    inbound_cut: u64,
    /// (peer, type code) -> the held message once it came (None: waiting for it).
    holds: HashMap<(ReplicaId, u8), Option<Bytes>>,
    /// Inbound handling per type code; `None` key: every type.
    phases: HashMap<Option<u8>, Phase>,
}

/// Fault state of one replica, shared by its connections.
#[derive(Debug)]
pub struct Faults {
    active: AtomicBool,
    state: Mutex<State>,
    rng: Mutex<SmallRng>,
}

/// What to do with one outbound message.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Send now.
    Send,
    /// Do not send.
    Drop,
    /// Send each copy after its delay.
    Later(Vec<Duration>),
    /// Held back until released.
    Held,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            active: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            rng: Mutex::new(SmallRng::seed_from_u64(7)),
        }
    }
}

impl Faults {
    /// Seeds the random choices (loss, duplication, jitter), for repeatable runs.
    pub fn with_seed(seed: u64) -> Self {
        Faults {
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            ..Default::default()
        }
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut s = self.state.lock();
        f(&mut s);
        let any = s.crashed
            || s.inbound_cut != 0
            || !s.holds.is_empty()
            || !s.phases.is_empty()
            || s.links.values().any(|l| !l.is_clear());
        self.active.store(any, Ordering::Release);
    }

    /// Whether any fault is set (the hot path checks only this).
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Whether the replica plays crashed.
    pub fn crashed(&self) -> bool {
        self.active() && self.state.lock().crashed
    }

    /// Crash (true) or restore (false).
    pub fn set_crashed(&self, c: bool) {
        self.update(|s| s.crashed = c);
    }

    /// Cuts the links to and from `peers` (bit i = replica i); with `one_way`
    /// only messages from us to them are dropped.
    pub fn partition(&self, peers: u64, one_way: bool) {
        self.update(|s| {
            for p in 0..64u8 {
                if peers >> p & 1 == 1 {
                    s.links.entry(p).or_default().cut = true;
                }
            }
            if !one_way {
                s.inbound_cut |= peers;
            }
        });
    }

    /// Undoes every partition.
    pub fn heal(&self) {
        self.update(|s| {
            s.inbound_cut = 0;
            for l in s.links.values_mut() {
                l.cut = false;
            }
        });
    }

    /// Sets delay, jitter, loss and duplication on the links to `peers`.
    pub fn set_link(&self, peers: u64, delay: Duration, jitter: Duration, drop: f64, dup: f64) {
        self.update(|s| {
            for p in 0..64u8 {
                if peers >> p & 1 == 1 {
                    let l = s.links.entry(p).or_default();
                    (l.delay, l.jitter, l.drop, l.dup) =
                        (delay, jitter, drop.clamp(0.0, 1.0), dup.clamp(0.0, 1.0));
                }
            }
        });
    }

    /// Holds back the next message of type `code` to `peer`.
    pub fn hold(&self, peer: ReplicaId, code: u8) {
        self.update(|s| {
            s.holds.insert((peer, code), None);
        });
    }

    /// Stops holding messages to `peer` and returns those held, to be sent now.
    pub fn release(&self, peer: ReplicaId) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.update(|s| {
            s.holds.retain(|(p, _), held| {
                if *p == peer {
                    out.extend(held.take());
                    false
                } else {
                    true
                }
            })
        });
        out
    }

    /// Delays (or drops) inbound messages of type `code` (`None`: every type).
    pub fn set_phase(&self, code: Option<u8>, phase: Option<Phase>) {
        self.update(|s| match phase {
            Some(p) => {
                s.phases.insert(code, p);
            }
            None => {
                s.phases.remove(&code);
            }
        });
    }

    /// Clears every fault.
    pub fn clear(&self) {
        self.update(|s| *s = State::default());
    }

    /// What to do with a frame of type `code` we are about to send to `peer`.
    pub fn outbound(&self, peer: ReplicaId, code: u8, frame: &Bytes) -> Verdict {
        if !self.active() {
            return Verdict::Send;
        }
        let mut s = self.state.lock();
        if s.crashed {
            return Verdict::Drop;
        }
        if let Some(slot) = s.holds.get_mut(&(peer, code)) {
            if slot.is_none() {
                *slot = Some(frame.clone());
                return Verdict::Held;
            }
        }
        let Some(l) = s.links.get(&peer).copied() else {
            return Verdict::Send;
        };
        drop(s);
        if l.cut {
            return Verdict::Drop;
        }
        let mut rng = self.rng.lock();
        if l.drop > 0.0 && rng.gen_bool(l.drop) {
            return Verdict::Drop;
        }
        let copies = if l.dup > 0.0 && rng.gen_bool(l.dup) {
            2
        } else {
            1
        };
        if l.delay.is_zero() && l.jitter.is_zero() && copies == 1 {
            return Verdict::Send;
        }
        let delays = (0..copies)
            .map(|_| {
                let j = if l.jitter.is_zero() {
                    0
                } else {
                    rng.gen_range(0..=l.jitter.as_nanos() as u64)
                };
                l.delay + Duration::from_nanos(j)
            })
            .collect();
        Verdict::Later(delays)
    }

    /// What to do with a frame of type `code` received from `from` (`None`: a
    /// client or the master): `Some(delay)` to deliver (after it), `None` to drop.
    pub fn inbound(&self, from: Option<ReplicaId>, code: u8) -> Option<Duration> {
        if !self.active() {
            return Some(Duration::ZERO);
        }
        let s = self.state.lock();
        if s.crashed || from.is_some_and(|p| s.inbound_cut >> p & 1 == 1) {
            return None;
        }
        match s.phases.get(&Some(code)).or_else(|| s.phases.get(&None)) {
            None => Some(Duration::ZERO),
            Some(Phase::Drop) => None,
            Some(Phase::Delay(d)) => Some(*d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_means_send_and_no_cost() {
        let f = Faults::default();
        assert!(!f.active());
        assert_eq!(f.outbound(1, 0x32, &Bytes::new()), Verdict::Send);
        assert_eq!(f.inbound(Some(1), 0x32), Some(Duration::ZERO));
    }

    #[test]
    fn crash_partition_hold_and_phases() {
        let f = Faults::default();
        f.set_crashed(true);
        assert_eq!(f.outbound(1, 1, &Bytes::new()), Verdict::Drop);
        assert_eq!(f.inbound(None, 1), None);
        f.set_crashed(false);
        assert!(!f.active());
        f.partition(0b10, true);
        assert_eq!(f.outbound(1, 1, &Bytes::new()), Verdict::Drop);
        assert_eq!(f.outbound(2, 1, &Bytes::new()), Verdict::Send);
        assert_eq!(
            f.inbound(Some(1), 1),
            Some(Duration::ZERO),
            "one-way: inbound still flows"
        );
        f.partition(0b10, false);
        assert_eq!(f.inbound(Some(1), 1), None);
        f.heal();
        assert!(!f.active());
        f.hold(2, 0x32);
        let m = Bytes::from_static(b"accept");
        assert_eq!(f.outbound(2, 0x32, &m), Verdict::Held);
        assert_eq!(
            f.outbound(2, 0x32, &m),
            Verdict::Send,
            "only the next one is held"
        );
        assert_eq!(f.release(2), vec![m]);
        f.set_phase(Some(0x30), Some(Phase::Delay(Duration::from_secs(10))));
        assert_eq!(f.inbound(Some(1), 0x30), Some(Duration::from_secs(10)));
        assert_eq!(f.inbound(Some(1), 0x32), Some(Duration::ZERO));
        f.set_phase(None, Some(Phase::Drop));
        assert_eq!(f.inbound(Some(1), 0x32), None);
        f.clear();
        assert!(!f.active());
    }

    #[test]
    fn links_delay_jitter_loss_and_duplicates() {
        let f = Faults::with_seed(1);
        f.set_link(
            0b10,
            Duration::from_millis(5),
            Duration::from_millis(2),
            0.5,
            0.5,
        );
        let (mut dropped, mut dup) = (0, 0);
        for _ in 0..1000 {
            match f.outbound(1, 1, &Bytes::new()) {
                Verdict::Drop => dropped += 1,
                Verdict::Later(d) => {
                    dup += (d.len() == 2) as usize;
                    for x in d {
                        assert!(x >= Duration::from_millis(5) && x <= Duration::from_millis(7));
                    }
                }
                v => panic!("{v:?}"),
            }
        }
        assert!((400..600).contains(&dropped), "{dropped}");
        assert!((150..350).contains(&dup), "{dup}");
    }
}
