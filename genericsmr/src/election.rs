//! The election timer a replica of a leader-based protocol runs so that its
//! group replaces a dead leader without any outside help.
//!
//! Sans-IO: the core calls [`ElectionTimer::heard_leader`] whenever the current
//! leader (or a candidate it just voted for) shows signs of life, asks
//! [`ElectionTimer::due`] from its `tick(now)`, and calls
//! [`ElectionTimer::campaigned`] when it starts a campaign of its own.
//!
//! - **Randomized deadline.** After each reset the deadline is `now + t` with
//!   `t` uniform in `[T, 2T)` (`T` the election timeout), so replicas that lost
//!   the same leader at the same moment seldom fire together.
//! - **Deterministic.** The draws come from a counter-based generator seeded
//!   with the replica's id: no clock, no global randomness, so a simulated run
//!   replays exactly from its seed.
//! - **Backoff.** Each campaign that did not end with a leader heard (ours or
//!   someone else's) doubles the range, up to 16 times, so two candidates that
//!   collided do not collide forever.
//! - **Freshness.** A replica that knows its log is behind (it heard of commits
//!   it does not hold) passes `behind = true` to [`ElectionTimer::due`] and
//!   waits one more timeout, so an up-to-date replica normally fires first.

/// Most doublings of the deadline range after failed campaigns.
const MAX_BACKOFF_SHIFT: u32 = 4;

/// What a replica does with the master's hint that its leader is gone
/// ([`ElectionTimer::on_master_hint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnHint {
    /// Elections are off: campaign at once, as the master asks.
    Lead,
    /// The hint is taken: run the election tick now.
    Tick,
    /// Not a follower: nothing to do.
    Nothing,
}

/// Election bookkeeping of one replica: when the leader was last heard, when
/// to campaign, how many campaigns in a row failed.
#[derive(Debug, Clone)]
pub struct ElectionTimer {
    /// The election timeout `T`, nanoseconds; 0 turns elections off.
    timeout_ns: u64,
    /// Seed of the draws (the replica's id, spread).
    seed: u64,
    /// Draws made so far: each draw hashes (seed, counter).
    counter: u64,
    /// When the leader was last heard (or the timer last reset).
    last_heard: u64,
    /// Campaign once `now` reaches this (when armed).
    deadline: u64,
    /// Whether the timer has a deadline yet: it arms at the first tick, since
    /// a core is built before it knows the time.
    armed: bool,
    /// Campaigns in a row that did not end with a leader heard.
    failures: u32,
    /// A hint that the leader is gone shortened the deadline (until the next reset).
    hinted: bool,
}

impl ElectionTimer {
    /// A timer for replica `id` with election timeout `timeout_ns` (0: never fires).
    pub fn new(id: u64, timeout_ns: u64) -> Self {
        ElectionTimer {
            timeout_ns,
            seed: splitmix(id.wrapping_add(0x5eed)),
            counter: 0,
            last_heard: 0,
            deadline: 0,
            armed: false,
            failures: 0,
            hinted: false,
        }
    }

    /// Whether elections are on.
    pub fn enabled(&self) -> bool {
        self.timeout_ns > 0
    }

    /// The election timeout, nanoseconds.
    pub fn timeout_ns(&self) -> u64 {
        self.timeout_ns
    }

    /// When the leader was last heard.
    pub fn last_heard(&self) -> u64 {
        self.last_heard
    }

    /// The current deadline (meaningful once armed).
    pub fn deadline(&self) -> u64 {
        self.deadline
    }

    /// Campaigns in a row that did not end with a leader heard.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The leader (or a candidate we voted for) was heard at `now`: push the
    /// deadline out and forget past failures.
    pub fn heard_leader(&mut self, now: u64) {
        self.failures = 0;
        self.last_heard = now;
        self.rearm(now);
    }

    /// We start a campaign at `now`: if it does not end with a leader heard,
    /// the next one waits for a longer (backed-off) random time.
    pub fn campaigned(&mut self, now: u64) {
        self.failures = self.failures.saturating_add(1);
        self.last_heard = now;
        self.rearm(now);
    }

    /// Someone outside the group (the master) suspects the leader is gone:
    /// campaign as soon as the leader has been silent for `quiet_ns` (from the
    /// last time it was heard), without the extra wait of a replica behind.
    /// Hearing the leader again cancels the hint, so a hint cannot depose a
    /// leader this replica still hears.
    pub fn hint(&mut self, quiet_ns: u64) {
        if !self.enabled() || !self.armed {
            return;
        }
        self.deadline = self.deadline.min(self.last_heard.saturating_add(quiet_ns));
        self.hinted = true;
    }

    /// Whether to campaign at `now`. The first call arms the timer. A replica
    /// `behind` (it knows of commits it lacks) waits one more timeout, so that
    /// a replica with a fresher log normally campaigns first.
    pub fn due(&mut self, now: u64, behind: bool) -> bool {
        if !self.enabled() {
            return false;
        }
        if !self.armed {
            self.last_heard = now;
            self.rearm(now);
            return false;
        }
        let extra = if behind && !self.hinted {
            self.timeout_ns
        } else {
            0
        };
        now >= self.deadline.saturating_add(extra)
    }

    /// A follower's tick at `now`: whether to campaign ([`Self::due`], behind
    /// when `commit_index` is below the highest `known_commit` heard); if so
    /// the campaign is counted ([`Self::campaigned`]) and logged with the
    /// replica's `promised` ballot and `commit_index`.
    pub fn follower_due(
        &mut self,
        now: u64,
        promised: u64,
        commit_index: u64,
        known_commit: u64,
    ) -> bool {
        if !self.due(now, commit_index < known_commit) {
            return false;
        }
        tracing::info!(
            promised,
            commit_index,
            failures = self.failures,
            "no word from the leader within the election timeout: campaigning"
        );
        self.campaigned(now);
        true
    }

    /// The master lost sight of the leader and suggests this replica take
    /// over, at `now`: with elections off, it obeys ([`OnHint::Lead`]); a
    /// `follower` takes the hint ([`Self::hint`], then [`OnHint::Tick`]:
    /// campaign once the leader has been silent here too for `quiet_ns`, so a
    /// leader cut off from the master alone stays); anyone else ignores it.
    pub fn on_master_hint(&mut self, now: u64, follower: bool, quiet_ns: u64) -> OnHint {
        if !self.enabled() {
            return OnHint::Lead;
        }
        if !follower {
            return OnHint::Nothing;
        }
        tracing::info!(
            silent_ms = now.saturating_sub(self.last_heard) / 1_000_000,
            "the master lost sight of the leader: campaigning if it stays silent here too"
        );
        self.hint(quiet_ns);
        OnHint::Tick
    }

    fn rearm(&mut self, now: u64) {
        if !self.enabled() {
            return;
        }
        self.armed = true;
        self.hinted = false;
        let span = self.timeout_ns << self.failures.min(MAX_BACKOFF_SHIFT);
        self.counter += 1;
        let r = splitmix(self.seed ^ self.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // Uniform enough in [T, T + span): `span` is far below 2^64.
        self.deadline = now
            .saturating_add(self.timeout_ns)
            .saturating_add(r % span.max(1));
    }
}

/// SplitMix64: a small, well-mixed hash for the deterministic draws.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000;

    #[test]
    fn never_fires_when_off() {
        let mut e = ElectionTimer::new(1, 0);
        assert!(!e.enabled());
        assert!(!e.due(0, false));
        assert!(!e.due(u64::MAX / 2, false));
    }

    #[test]
    fn arms_at_the_first_tick_and_fires_between_one_and_two_timeouts() {
        let mut e = ElectionTimer::new(0, T);
        assert!(!e.due(100, false));
        let d = e.deadline();
        assert!((100 + T..100 + 2 * T).contains(&d), "deadline {d}");
        assert!(!e.due(d - 1, false));
        assert!(e.due(d, false));
    }

    #[test]
    fn hearing_the_leader_pushes_the_deadline_out() {
        let mut e = ElectionTimer::new(2, T);
        e.due(0, false);
        for now in (0..100 * T).step_by(T as usize / 2) {
            e.heard_leader(now);
            assert!(!e.due(now + T - 1, false));
        }
        assert_eq!(e.last_heard(), 100 * T - T / 2);
    }

    #[test]
    fn a_replica_behind_waits_one_more_timeout() {
        let mut e = ElectionTimer::new(3, T);
        e.due(0, false);
        let d = e.deadline();
        assert!(!e.due(d, true));
        assert!(!e.due(d + T - 1, true));
        assert!(e.due(d + T, true));
    }

    #[test]
    fn failed_campaigns_back_off_and_a_leader_resets_the_backoff() {
        let mut e = ElectionTimer::new(4, T);
        e.due(0, false);
        let mut spans = Vec::new();
        for i in 0..8 {
            e.campaigned(0);
            assert_eq!(e.failures(), i + 1);
            spans.push(e.deadline());
        }
        // Every deadline stays within T + T * 2^min(failures, 4).
        for (i, d) in spans.iter().enumerate() {
            let shift = (i as u32 + 1).min(MAX_BACKOFF_SHIFT);
            assert!(*d >= T && *d < T + (T << shift), "attempt {i}: {d}");
        }
        e.heard_leader(0);
        assert_eq!(e.failures(), 0);
        assert!(e.deadline() < 2 * T);
    }

    #[test]
    fn a_hint_fires_after_a_short_silence_unless_the_leader_is_heard() {
        let mut e = ElectionTimer::new(6, T);
        e.due(0, false);
        e.heard_leader(100);
        e.hint(T / 10);
        assert!(!e.due(100 + T / 10 - 1, true));
        assert!(
            e.due(100 + T / 10, true),
            "a hint skips the wait of a replica behind"
        );
        // The leader speaks again: the hint is gone.
        e.heard_leader(150);
        assert!(!e.due(150 + T / 10, false));
        assert!(!e.due(150 + T - 1, false));
    }

    #[test]
    fn draws_are_deterministic_and_differ_between_replicas() {
        let draw = |id| {
            let mut e = ElectionTimer::new(id, T);
            e.due(0, false);
            (0..20)
                .map(|i| {
                    e.heard_leader(i * T);
                    e.deadline() - i * T
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        // Spread over the range, not stuck at one end.
        let d = draw(5);
        assert!(d.iter().any(|x| *x < T + T / 2) && d.iter().any(|x| *x >= T + T / 2));
    }
}
