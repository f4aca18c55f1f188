//! AppendEntries, both ways, and the commit rule.
//!
//! The leader pipelines: it sends a follower the entries from its `next`
//! index on and moves `next` past them at once, without waiting for the
//! answer, up to [`crate::Config::max_inflight`] messages in flight. A
//! refusal names where the follower's log diverges (the term it holds at
//! the refused index and where that term starts there, or the end of its
//! log), so the leader skips a whole term per round trip. Unanswered
//! messages are sent again after [`crate::Config::retransmit_ns`]. A
//! follower behind what the leader compacted is told [`Compacted`] and
//! fetches a snapshot.

use genericsmr::effects::Effects;
use genericsmr::snapshot::Compacted;
use genericsmr::ReplicaId;

use crate::messages::{AppendEntries, AppendEntriesReply, Entry, RaftMsg};
use crate::replica::{Replica, Role};

impl Replica {
    /// Appends `e` to the leader's own log (and persists it).
    pub(crate) fn append(&mut self, e: Entry, fx: &mut Effects<RaftMsg>) {
        self.log.push(e);
        let last = self.log.last();
        self.persist_entry(last, fx);
        let me = self.cfg.id as usize;
        if let Role::Leader(l) = &mut self.role {
            l.progress[me].matched = last;
            l.progress[me].next = last + 1;
        }
    }

    /// Leader: sends every follower what it lacks, as far as the pipeline
    /// allows; with `heartbeat`, every follower gets a message even if it
    /// lacks nothing. Followers at the same point share one message.
    pub(crate) fn replicate(&mut self, now: u64, heartbeat: bool, fx: &mut Effects<RaftMsg>) {
        let me = self.cfg.id;
        let (last, base, commit, term) = (self.log.last(), self.log.base(), self.commit, self.term);
        let (max_bytes, max_count, depth, depth_bytes) = (
            self.cfg.max_msg_bytes,
            self.cfg.max_msg_entries,
            self.cfg.max_inflight,
            self.cfg.max_inflight_bytes,
        );
        let retransmit = self.cfg.retransmit_ns;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if heartbeat {
            l.heartbeat_at = now;
        }
        // (prev index, with entries, peers): each group is one message.
        let mut groups: Vec<(u64, bool, u64)> = Vec::new();
        let mut add = |prev: u64, with: bool, j: ReplicaId| match groups
            .iter_mut()
            .find(|g| g.0 == prev && g.1 == with)
        {
            Some(g) => g.2 |= Self::bit(j),
            None => groups.push((prev, with, Self::bit(j))),
        };
        let mut snapshot_needed = 0u64;
        for j in 0..self.cfg.n as ReplicaId {
            if j == me {
                continue;
            }
            let p = &mut l.progress[j as usize];
            if p.next <= base {
                // Behind the compacted prefix: now and then a note to fetch
                // a snapshot, and with heartbeats a probe at our base (which
                // succeeds once the snapshot is installed).
                if p.compacted_at
                    .is_none_or(|t| now.saturating_sub(t) >= retransmit)
                {
                    p.compacted_at = Some(now);
                    snapshot_needed |= Self::bit(j);
                }
                if heartbeat {
                    add(base, false, j);
                }
            } else if p.next <= last
                && p.inflight.len() < depth
                && (p.inflight.is_empty() || p.inflight_bytes < depth_bytes)
            {
                add(p.next - 1, true, j);
            } else if heartbeat {
                // Probe at the next index when nothing is in flight; else
                // at what is known to match, which an answer confirms
                // without undoing the pipeline.
                if p.inflight.is_empty() {
                    add(p.next - 1, false, j);
                } else if p.matched >= base {
                    add(p.matched, false, j);
                }
            }
        }
        if snapshot_needed != 0 {
            fx.send_set(
                snapshot_needed,
                RaftMsg::Compacted(Compacted { what: base + 1 }),
            );
        }
        for (prev, with, peers) in groups {
            let Some(prev_term) = self.log.term(prev) else {
                continue;
            };
            let entries = if with {
                let (end, bytes) = self.log.span(prev + 1, max_bytes, max_count);
                for j in 0..self.cfg.n {
                    if peers & (1 << j) != 0 {
                        let p = &mut l.progress[j];
                        if p.inflight.is_empty() {
                            p.sent_at = now;
                        }
                        p.inflight.push_back((prev + 1, end, bytes));
                        p.inflight_bytes += bytes;
                        p.next = end + 1;
                    }
                }
                self.log.slice(prev + 1, end)
            } else {
                Vec::new()
            };
            fx.send_set(
                peers,
                RaftMsg::AppendEntries(AppendEntries {
                    term,
                    prev_index: prev,
                    prev_term,
                    commit,
                    entries,
                }),
            );
        }
    }

    /// Leader timers: heartbeats, and resending what went unanswered.
    pub(crate) fn tick_leader(&mut self, now: u64, fx: &mut Effects<RaftMsg>) {
        let (hb, rt) = (self.cfg.heartbeat_ns, self.cfg.retransmit_ns);
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        for p in l.progress.iter_mut() {
            if let Some(&(first, _, _)) = p.inflight.front() {
                if now.saturating_sub(p.sent_at) >= rt {
                    // Lost somewhere: start again from the oldest unanswered.
                    p.inflight.clear();
                    p.inflight_bytes = 0;
                    p.next = first.max(p.matched + 1);
                }
            }
        }
        let due = now.saturating_sub(l.heartbeat_at) >= hb;
        self.replicate(now, due, fx);
        self.advance_transfer(now, fx);
    }

    /// Follower: the consistency check, then append (replacing a
    /// conflicting suffix), then commit as far as the leader's log is
    /// known to match ours.
    pub fn handle_append_entries(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: AppendEntries,
        fx: &mut Effects<RaftMsg>,
    ) {
        if m.term < self.term {
            return fx.send(
                from,
                RaftMsg::AppendEntriesReply(AppendEntriesReply {
                    term: self.term,
                    success: false,
                    index: m.prev_index,
                    hint_index: 0,
                    hint_term: 0,
                }),
            );
        }
        self.enter_term(m.term, fx);
        if !matches!(self.role, Role::Follower) {
            self.become_follower(fx);
        }
        self.heard_leader(from, now);
        let refuse = |r: &Self, hint_index: u64, hint_term: u64, fx: &mut Effects<RaftMsg>| {
            fx.send(
                from,
                RaftMsg::AppendEntriesReply(AppendEntriesReply {
                    term: r.term,
                    success: false,
                    index: m.prev_index,
                    hint_index,
                    hint_term,
                }),
            )
        };
        let base = self.log.base();
        let (mut prev, mut entries) = (m.prev_index, m.entries);
        if prev < base {
            // Everything up to our base is committed, so it matches.
            let skip = (base - prev).min(entries.len() as u64) as usize;
            entries.drain(..skip);
            prev += skip as u64;
            if prev < base {
                return self.accept_append(from, prev, m.commit, fx);
            }
        } else if prev > self.log.last() {
            return refuse(self, self.log.last() + 1, 0, fx);
        } else {
            let t = self.log.term(prev).unwrap_or(0);
            if t != m.prev_term {
                let first = self.log.first_of_term(prev, t);
                return refuse(self, first, t, fx);
            }
        }
        let mut at = prev;
        for e in entries {
            at += 1;
            match self.log.term(at) {
                Some(t) if t == e.term => continue,
                Some(_) if at <= self.commit => {
                    tracing::error!(
                        index = at,
                        commit = self.commit,
                        "a leader sent an entry that conflicts with a committed one: ignored"
                    );
                    return;
                }
                _ => {
                    self.log.truncate_after(at - 1);
                    self.log.push(e);
                    self.persist_entry(at, fx);
                }
            }
        }
        self.accept_append(from, at, m.commit, fx);
    }

    /// Follower: our log matches the leader's up to `matched`.
    fn accept_append(
        &mut self,
        from: ReplicaId,
        matched: u64,
        leader_commit: u64,
        fx: &mut Effects<RaftMsg>,
    ) {
        let c = leader_commit.min(matched);
        if c > self.commit {
            self.commit = c;
            self.apply(fx);
        }
        fx.send(
            from,
            RaftMsg::AppendEntriesReply(AppendEntriesReply {
                term: self.term,
                success: true,
                index: matched,
                hint_index: 0,
                hint_term: 0,
            }),
        );
    }

    /// Leader: a follower's answer.
    pub fn handle_append_entries_reply(
        &mut self,
        now: u64,
        from: ReplicaId,
        m: AppendEntriesReply,
        fx: &mut Effects<RaftMsg>,
    ) {
        if m.term > self.term {
            return self.enter_term(m.term, fx);
        }
        let last = self.log.last();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if m.term != self.term || from as usize >= l.progress.len() {
            return;
        }
        let p = &mut l.progress[from as usize];
        p.heard_at = now;
        if m.success {
            if m.index > p.matched && m.index <= last {
                p.matched = m.index;
                p.next = p.next.max(m.index + 1);
                p.sent_at = now;
                p.compacted_at = None;
                while let Some(&(_, e, b)) = p.inflight.front() {
                    if e > m.index {
                        break;
                    }
                    p.inflight.pop_front();
                    p.inflight_bytes -= b;
                }
                self.maybe_commit(fx);
                self.advance_transfer(now, fx);
            }
        } else if m.index >= p.matched && m.index < p.next {
            // Where the follower's log diverges: past the last entry of
            // its term in ours, else where that term starts in its log.
            let hinted = if m.hint_term != 0 {
                match self.log.last_of_term(m.index, m.hint_term) {
                    Some(j) => j + 1,
                    None => m.hint_index,
                }
            } else {
                m.hint_index
            };
            p.next = hinted.clamp(p.matched + 1, m.index.max(p.matched + 1));
            p.inflight.clear();
            p.inflight_bytes = 0;
            p.sent_at = now;
        }
        self.replicate(now, false, fx);
    }

    /// Leader: the highest index a majority holds, if of our term, is committed.
    pub(crate) fn maybe_commit(&mut self, fx: &mut Effects<RaftMsg>) {
        let Role::Leader(l) = &self.role else {
            return;
        };
        let mut m: Vec<u64> = l.progress.iter().map(|p| p.matched).collect();
        m.sort_unstable_by(|a, b| b.cmp(a));
        let n = m[self.cfg.quorum() - 1];
        if n > self.commit && self.log.term(n) == Some(self.term) {
            self.commit = n;
            self.apply(fx);
        }
    }
}
