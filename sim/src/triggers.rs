//! Scripted faults: triggers that watch what a shard's replicas do (the
//! effects of each step: what they send, what they tell clients) or the
//! clock, and then crash, cut off or depose a replica; and delays of one
//! client's messages, to force an order of arrival.
//!
//! A trigger names messages by a predicate over the protocol's own message
//! type ([`MsgMatch::new`]), so a test of one protocol can say "when shard 1's
//! leader sends a coordination reply to another shard" without the engine
//! knowing what that is.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use genericsmr::effects::Reply;
use genericsmr::messages::{role, ReplyStatus};
use genericsmr::ReplicaId;

use crate::{Kind, Protocol, Sim};

/// A predicate over one protocol's messages (`M` is its `Protocol::Msg`).
/// It does not match messages of any other type.
#[derive(Clone)]
pub struct MsgMatch(Arc<Pred>);

/// The test behind a [`MsgMatch`].
type Pred = dyn Fn(&dyn Any) -> bool + Send + Sync;

impl MsgMatch {
    /// Matches the messages of type `M` for which `f` holds.
    pub fn new<M: 'static>(f: impl Fn(&M) -> bool + Send + Sync + 'static) -> Self {
        MsgMatch(Arc::new(move |m| m.downcast_ref::<M>().is_some_and(&f)))
    }

    /// Matches every message.
    pub fn any() -> Self {
        MsgMatch(Arc::new(|_| true))
    }

    /// Matches no message.
    pub fn none() -> Self {
        MsgMatch(Arc::new(|_| false))
    }

    /// Whether `m` matches.
    pub fn test<M: 'static>(&self, m: &M) -> bool {
        (self.0)(m)
    }
}

impl fmt::Debug for MsgMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MsgMatch(..)")
    }
}

/// When a trigger fires (once).
#[derive(Debug, Clone)]
pub enum When {
    /// At this virtual time (ns), on the shard's leader as the master sees it.
    At(u64),
    /// At the first step, at or after `after` ns, in which a replica of the
    /// shard that leads it sends a message matching `msg` to a replica of
    /// another shard.
    SendsAcross {
        /// Not before this time (ns).
        after: u64,
        /// Which messages.
        msg: MsgMatch,
    },
    /// At the first step in which a replica of the shard tells a client
    /// its operation failed (`ReplyStatus::Failed`).
    RepliesFailed,
}

/// What a trigger does to the replica it fired on.
#[derive(Debug, Clone)]
pub enum Then {
    /// It crashes (a timed crash only if its shard keeps a majority without
    /// it). Of the step that fired the trigger, only the sends to other
    /// shards matching `escape` leave, and the client replies if
    /// `replies_escape`; the rest is lost with it.
    /// It restarts after [`crate::Config::restart_after_ns`], if set.
    Crash {
        /// Sends that still leave.
        escape: MsgMatch,
        /// Whether that step's client replies leave.
        replies_escape: bool,
    },
    /// Every replica of its shard crashes at once (the whole shard is out).
    Outage,
    /// It is cut off from everyone (replicas, clients, master) while it
    /// keeps running, for `heal_after` ns; then it is back, maybe still
    /// believing it leads.
    Isolate {
        /// How long the cut lasts (ns).
        heal_after: u64,
    },
    /// It is cut off from the other replicas of its own shard for good
    /// (what it sent them and has not arrived is lost too), but still
    /// reaches other shards, clients and the master, which no longer counts
    /// it as its shard's leader: a deposed leader that keeps answering.
    Depose,
}

/// A scripted fault on one shard.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// The shard it watches.
    pub shard: usize,
    /// When it fires.
    pub when: When,
    /// What it does.
    pub then: Then,
}

impl Trigger {
    /// Crash `shard`'s leader at time `at` (ns).
    pub fn crash_at(at: u64, shard: usize) -> Self {
        Trigger {
            shard,
            when: When::At(at),
            then: Then::Crash {
                escape: MsgMatch::none(),
                replies_escape: false,
            },
        }
    }
}

/// Extra delay of one client's messages that match, on top of the network's
/// (several that match add up).
#[derive(Debug, Clone)]
pub struct ClientDelay {
    /// The client (its index).
    pub client: usize,
    /// Messages to this shard's replicas.
    pub shard: usize,
    /// Which messages.
    pub msg: MsgMatch,
    /// How much later they arrive (ns).
    pub extra_ns: u64,
}

impl<R: Protocol> Sim<R> {
    /// Schedules the triggers that fire at a time.
    pub(crate) fn schedule_triggers(&mut self) {
        for i in 0..self.cfg.triggers.len() {
            if let When::At(t) = self.cfg.triggers[i].when {
                self.at(t, Kind::Trigger(i));
            }
        }
    }

    /// A trigger's time came: it acts on its shard's leader.
    pub(crate) fn timed_trigger(&mut self, i: usize) {
        let t = self.cfg.triggers[i].clone();
        if std::mem::replace(&mut self.fired[i], true) {
            return;
        }
        let n = self.cfg.n;
        let members = self.members(t.shard);
        if let Then::Outage = t.then {
            for r in members {
                if self.nodes[r].core.is_some() {
                    self.crash_scripted(r as ReplicaId);
                }
            }
            return;
        }
        let leads = |s: &Self, r: usize| {
            s.nodes[r]
                .core
                .as_ref()
                .is_some_and(|c| c.status(0).role == role::LEADER)
        };
        let victim = self.leaders[t.shard]
            .map(|l| l as usize)
            .filter(|l| self.nodes[*l].core.is_some() && !self.cut[*l])
            .or_else(|| members.clone().find(|r| !self.cut[*r] && leads(self, *r)));
        let up = members
            .filter(|r| self.nodes[*r].core.is_some() && !self.cut[*r])
            .count();
        // Never below a majority: no protocol promises anything then.
        let Some(v) = victim.filter(|_| up > n / 2 + 1) else {
            return;
        };
        self.act(v as ReplicaId, &t.then);
    }

    /// Looks at what replica `r` is about to send and reply in this step,
    /// and fires the triggers it meets; what a crash loses is taken out of
    /// the step's effects.
    pub(crate) fn step_triggers(&mut self, r: ReplicaId) {
        let shard = self.shard(r);
        for i in 0..self.cfg.triggers.len() {
            let t = &self.cfg.triggers[i];
            if self.fired[i] || t.shard != shard || self.nodes[r as usize].core.is_none() {
                continue;
            }
            let hit = match &t.when {
                When::At(_) => false,
                When::SendsAcross { after, msg } => {
                    self.now >= *after
                        && self.fx.sends.iter().any(|(d, m)| {
                            msg.test(m)
                                && d.targets(r, self.total()).any(|to| self.shard(to) != shard)
                        })
                        && self.nodes[r as usize]
                            .core
                            .as_ref()
                            .is_some_and(|c| c.status(0).role == role::LEADER)
                }
                When::RepliesFailed => self.fx.replies.iter().any(
                    |(_, p)| matches!(p, Reply::Propose(p) if p.status == ReplyStatus::Failed),
                ),
            };
            if !hit {
                continue;
            }
            self.fired[i] = true;
            let then = t.then.clone();
            if let Then::Crash {
                escape,
                replies_escape,
            } = &then
            {
                let total = self.total();
                let n = self.cfg.n;
                self.fx.sends.retain(|(d, m)| {
                    escape.test(m) && d.targets(r, total).all(|to| to as usize / n != shard)
                });
                if !replies_escape {
                    self.fx.replies.clear();
                }
            }
            self.act(r, &then);
        }
    }

    fn act(&mut self, r: ReplicaId, then: &Then) {
        match then {
            Then::Crash { .. } => self.crash_scripted(r),
            Then::Outage => {
                for m in self.members(self.shard(r)) {
                    if self.nodes[m].core.is_some() {
                        self.crash_scripted(m as ReplicaId);
                    }
                }
            }
            Then::Isolate { heal_after } => {
                self.cut[r as usize] = true;
                self.crashed.push((self.now, r));
                self.log(|| format!("cut replica {r} off"));
                self.at(self.now + heal_after, Kind::Uncut(r));
            }
            Then::Depose => {
                self.deposed[r as usize] = true;
                self.crashed.push((self.now, r));
                self.log(|| format!("depose replica {r}"));
            }
        }
    }

    /// A scripted crash of replica `r`, back after `restart_after_ns` if set.
    fn crash_scripted(&mut self, r: ReplicaId) {
        self.kill(r);
        self.crashed.push((self.now, r));
        self.log(|| format!("crash replica {r} (scripted)"));
        if let Some(d) = self.cfg.restart_after_ns {
            self.at(self.now + d, Kind::Restart(r));
        }
    }

    /// The extra delay of client `c`'s message `m` to shard `shard`.
    pub(crate) fn client_delay(&self, c: usize, shard: usize, m: &R::Msg) -> u64 {
        self.cfg
            .client_delays
            .iter()
            .filter(|d| d.client == c && d.shard == shard && d.msg.test(m))
            .map(|d| d.extra_ns)
            .sum()
    }
}
