//! A deterministic simulator of a whole sharded MDLin deployment.
//!
//! Everything comes from one seed: message delays (a fixed one-way delay plus
//! jitter, which reorders), drops, leader crashes at chosen moments, and the
//! clients' workload. Clients multi-dispatch: each application request issues
//! up to `fanout` operations back to back, chained (each names the previous
//! one as predecessor), and delivers their answers in issue order. A stand-in
//! for the master publishes each shard's leader and asks a live replica to
//! take over when a leader is down (crashed, cut off, or deposed: cut off
//! from its own shard only, so it keeps answering the other shards). The run
//! yields the client history (with chain links) and every replica's executed
//! order, for the MDL checkers.
//!
//! With `restart_after_ns`, every replica keeps its durable records (a
//! simulated disk, written before its messages leave, as the runtime's
//! driver does) and a crashed replica restarts on them after that delay;
//! `outages` crash every replica of a shard at once.
//!
//! With `single_dispatch`, clients issue one operation at a time without
//! predecessors: every operation takes the one-round path, the message pattern
//! of Multi-Paxos, which gives a baseline measured on the same shards.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use bytes::Bytes;
use checker::history::{Outcome, Record};
use genericsmr::command::{Command, Op, Outcome as CmdOutcome};
use genericsmr::effects::{Dest, Effects, Reply};
use genericsmr::messages::{ProposeReply, ReplyStatus};
use genericsmr::ReplicaId;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::messages::{CoordReq, Entry, MdlMsg, MdlPropose, OpId, Pred};
use crate::replica::{Config as ReplicaConfig, CoordMode, Replica, SlotState};

/// The shard of a key (the deployment-wide map).
fn shard_of(key: &[u8], shards: usize) -> u8 {
    genericsmr::shard::shard_of(key, shards as u32) as u8
}

/// When to crash a shard's leader.
#[derive(Debug, Clone, Copy)]
pub struct Crash {
    /// Simulated time of the crash (ns).
    pub at: u64,
    /// The shard whose current leader crashes.
    pub shard: u8,
}

/// One client's scripted chain: its operations, issued at once at `start_ns`
/// (instead of the random workload).
#[derive(Debug, Clone)]
pub struct Script {
    /// When the chain is issued (ns).
    pub start_ns: u64,
    /// (write?, key) per operation, in issue order; writes put a unique value.
    pub ops: Vec<(bool, String)>,
    /// Extra one-way delay of this client's messages to each shard (ns),
    /// to force an arrival order.
    pub shard_delay_ns: Vec<u64>,
    /// Further delay of this client's coordination requests to each
    /// (predecessor's) shard (ns), on top of `shard_delay_ns`: a request that
    /// reaches a leader long after its operation was proposed.
    pub coord_delay_ns: Vec<u64>,
}

/// Cut a shard's leader off from everyone (replicas, clients, master) while
/// it keeps running, then heal the cut: a stale leader that must not harm.
#[derive(Debug, Clone, Copy)]
pub struct Isolate {
    /// Simulated time of the cut (ns).
    pub at: u64,
    /// The shard whose current leader is cut off.
    pub shard: u8,
    /// How long the cut lasts (ns).
    pub heal_after: u64,
}

/// Crash a shard's leader at the moment it sends its first coordination
/// reply to another shard (the scripted failure scenarios).
#[derive(Debug, Clone, Copy)]
pub struct CrashOnCoord {
    /// The shard whose leader crashes.
    pub shard: u8,
    /// Let the coordination reply out (the leader crashes right after sending
    /// it, before its round 2 completes); otherwise it is lost with the leader
    /// (round 1 committed, no reply sent).
    pub reply_escapes: bool,
    /// Only once this much simulated time has passed (ns).
    pub after: u64,
}

/// Depose a shard's leader without stopping it: at the moment it sends its
/// first coordination reply to another shard, cut it off from the other
/// replicas of its own shard, for good (what it sent them and has not
/// arrived is lost too). It still reaches the other shards' replicas, the
/// clients and the master, which elects another leader for the shard (it
/// sees the shard lost its leader) but keeps sending the deposed one the
/// shard leaders' list. So it keeps believing it leads, and keeps answering
/// coordination requests from what it alone knows.
#[derive(Debug, Clone, Copy)]
pub struct DeposeOnCoord {
    /// The shard whose leader is deposed.
    pub shard: u8,
    /// Only once this much simulated time has passed (ns).
    pub after: u64,
}

/// One simulated run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of everything random.
    pub seed: u64,
    /// Number of shards.
    pub shards: usize,
    /// Replicas per shard.
    pub n: usize,
    /// Coordination mode.
    pub mode: CoordMode,
    /// Thrifty replicas (accepts to a bare majority).
    pub thrifty: bool,
    /// Number of clients.
    pub clients: usize,
    /// Application requests per client.
    pub requests: usize,
    /// Operations per application request: exactly this many, or uniformly
    /// 1..=fanout with `random_fanout`.
    pub fanout: usize,
    /// Draw each request's fanout at random.
    pub random_fanout: bool,
    /// Issue one operation at a time, without chains (the Multi-Paxos pattern).
    pub single_dispatch: bool,
    /// Keys in the workload (small: reads see writes).
    pub keys: usize,
    /// Share of writes, in percent.
    pub write_pct: u32,
    /// One-way delay of every message (ns).
    pub one_way_ns: u64,
    /// Extra uniform delay in 0..jitter (ns); reorders messages.
    pub jitter_ns: u64,
    /// Chance, in per mille, that a replica-to-replica message is lost.
    pub drop_per_mille: u32,
    /// Leader crashes.
    pub crashes: Vec<Crash>,
    /// Every replica of the shard crashes at once (they come back only with
    /// `restart_after_ns`).
    pub outages: Vec<Crash>,
    /// Crashed replicas restart on their durable records this long after
    /// they crashed (ns); `None`: they stay down and keep no records.
    pub restart_after_ns: Option<u64>,
    /// Leaders cut off for a while.
    pub isolations: Vec<Isolate>,
    /// Scripted clients (one chain each) instead of the random workload.
    pub scripts: Vec<Script>,
    /// Shards whose leader crashes right after it tells a client an operation failed.
    pub crash_on_fail: Vec<u8>,
    /// Leader crashes tied to coordination.
    pub crash_on_coord: Vec<CrashOnCoord>,
    /// Leaders deposed (cut off from their own shard only) at a coordination reply.
    pub depose_on_coord: Vec<DeposeOnCoord>,
    /// Chance, in per mille, that a client "loses" a chained operation: it
    /// reaches its leader only `late_ns` later, as from a client that stalled
    /// mid-chain. Its successors fail; it may still succeed.
    pub lose_per_mille: u32,
    /// How late a lost operation arrives (ns); above the coordination timeout.
    pub late_ns: u64,
    /// A client resends an unanswered operation after this long (ns).
    pub client_retry_ns: u64,
    /// A client gives up on an operation after this long (ns): outcome unknown.
    pub client_give_up_ns: u64,
    /// Stop issuing after this simulated time (ns).
    pub max_time_ns: u64,
    /// Replica timing, applied to every replica.
    pub coord_timeout_ns: u64,
    /// How long every replica keeps timestamps, early replies and queued
    /// requests for late coordination messages (`Config::keep_ns`).
    pub keep_ns: u64,
    /// Every replica's election timeout (`Config::election_timeout_ns`; 0: no
    /// elections, leaders change only when the scripted master asks).
    pub election_timeout_ns: u64,
    /// How often shard leaders announce themselves to the other shards
    /// (`Config::announce_ns`; 0: never, leaders come from the master).
    pub announce_ns: u64,
    /// Whether the scripted master runs: it picks the first leaders, replaces
    /// dead ones and tells every replica who leads each shard. Off, the
    /// replicas are on their own (elections and announcements); the master
    /// event then only updates the clients' view of who leads, standing in
    /// for the leader hints real clients follow.
    pub oracle: bool,
}

impl SimConfig {
    /// A small default run: 2 shards of 3, 3 clients, fanout up to 4.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            shards: 2,
            n: 3,
            mode: CoordMode::Fast,
            thrifty: false,
            clients: 3,
            requests: 15,
            fanout: 4,
            random_fanout: true,
            single_dispatch: false,
            keys: 4,
            write_pct: 50,
            one_way_ns: 500_000,
            jitter_ns: 500_000,
            drop_per_mille: 0,
            crashes: Vec::new(),
            outages: Vec::new(),
            restart_after_ns: None,
            crash_on_coord: Vec::new(),
            depose_on_coord: Vec::new(),
            isolations: Vec::new(),
            scripts: Vec::new(),
            crash_on_fail: Vec::new(),
            lose_per_mille: 0,
            late_ns: 5_000_000_000,
            client_retry_ns: 400_000_000,
            client_give_up_ns: 8_000_000_000,
            max_time_ns: 60_000_000_000,
            coord_timeout_ns: 3_000_000_000,
            keep_ns: ReplicaConfig::new(0, 1, 1).keep_ns,
            election_timeout_ns: 0,
            announce_ns: 0,
            oracle: true,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct SimReport {
    /// Every operation, with chain links, invocation and delivery times.
    pub history: Vec<Record>,
    /// `logs[shard][replica]`: each replica's executed order, as (client, seq).
    pub logs: Vec<Vec<Vec<(u64, u64)>>>,
    /// `timestamps[shard][replica][i]`: the timestamp `logs[shard][replica][i]`
    /// executed with.
    pub timestamps: Vec<Vec<Vec<u64>>>,
    /// Latency of each completed application request (ns).
    pub request_latency_ns: Vec<u64>,
    /// Peer messages delivered.
    pub messages: u64,
    /// Simulated time at the end (ns).
    pub end_ns: u64,
    /// Operations still in flight at a live leader at the end.
    pub stuck: usize,
    /// What those operations wait for.
    pub stuck_detail: String,
    /// Crashes, cuts and depositions that happened: (time, replica).
    pub crashed: Vec<(u64, ReplicaId)>,
    /// Restarts of crashed replicas on their durable records.
    pub restarts: u64,
    /// Per shard, the live replica serving as its leader at the end (the
    /// highest ballot if several think so), if any.
    pub leaders: Vec<Option<ReplicaId>>,
    /// The first broken per-event invariant (two replicas of a shard
    /// committed different entries in one journal slot), if any.
    pub violation: Option<String>,
}

#[derive(Debug)]
enum Kind {
    Peer {
        to: ReplicaId,
        from: ReplicaId,
        msg: MdlMsg,
    },
    Propose {
        to: ReplicaId,
        client: usize,
        msg: MdlPropose,
    },
    Coord {
        to: ReplicaId,
        msg: CoordReq,
    },
    Reply {
        client: usize,
        reply: ProposeReply,
    },
    Tick {
        r: ReplicaId,
    },
    Issue {
        client: usize,
    },
    Retry {
        client: usize,
        idx: usize,
        attempt: u32,
    },
    Crash {
        shard: u8,
    },
    Outage {
        shard: u8,
    },
    Restart {
        r: ReplicaId,
    },
    Isolate {
        shard: u8,
        heal_after: u64,
    },
    Heal {
        r: ReplicaId,
    },
    Master,
}

struct OpRec {
    cmd: Command,
    shard: u8,
    shard_seq: u64,
    pred: Option<Pred>,
    invoked: u64,
    answer: Option<(u64, ReplyStatus, CmdOutcome)>,
    given_up: bool,
}

#[derive(Default)]
struct Client {
    seq: u64,
    shard_seq: HashMap<u8, u64>,
    done: usize,
    /// The application request in flight: its operations and start time.
    current: Vec<OpRec>,
    started: u64,
    delivered: usize,
    /// Operations of the request not issued yet (single dispatch).
    remaining: usize,
    /// Whether every operation of the request so far was answered.
    complete: bool,
}

struct Sim {
    cfg: SimConfig,
    now: u64,
    next: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: HashMap<usize, Kind>,
    ev_id: usize,
    rng: SmallRng,
    replicas: Vec<Replica>,
    /// Each replica's durable records, framed (with `restart_after_ns`).
    disk: Vec<bytes::BytesMut>,
    /// Restarts on the durable records.
    restarts: u64,
    alive: Vec<bool>,
    /// Cut off from everyone (but running).
    cut: Vec<bool>,
    /// Cut off from the other replicas of its own shard only (but running).
    deposed: Vec<bool>,
    leaders: Vec<Option<ReplicaId>>,
    asked: Vec<Option<(ReplicaId, u64)>>,
    clients: Vec<Client>,
    history: Vec<Record>,
    latencies: Vec<u64>,
    messages: u64,
    crashed: Vec<(u64, ReplicaId)>,
    /// `chosen[shard]`: slot -> (the entry first seen committed there, by whom).
    chosen: Vec<HashMap<u64, (Entry, ReplicaId)>>,
    /// Per replica: the slots below this were checked already.
    checked_upto: Vec<u64>,
    violation: Option<String>,
}

/// Runs one simulation.
pub fn run(cfg: &SimConfig) -> SimReport {
    let total = cfg.shards * cfg.n;
    let replicas = (0..total)
        .map(|g| Replica::new(replica_config(cfg, g as ReplicaId)))
        .collect();
    let mut s = Sim {
        cfg: cfg.clone(),
        now: 0,
        next: 0,
        queue: BinaryHeap::new(),
        events: HashMap::new(),
        ev_id: 0,
        rng: SmallRng::seed_from_u64(cfg.seed),
        replicas,
        disk: vec![bytes::BytesMut::new(); total],
        restarts: 0,
        alive: vec![true; total],
        cut: vec![false; total],
        deposed: vec![false; total],
        leaders: vec![None; cfg.shards],
        asked: vec![None; cfg.shards],
        clients: (0..cfg.clients.max(cfg.scripts.len()))
            .map(|_| Client::default())
            .collect(),
        history: Vec::new(),
        latencies: Vec::new(),
        messages: 0,
        crashed: Vec::new(),
        chosen: vec![HashMap::new(); cfg.shards],
        checked_upto: vec![0; total],
        violation: None,
    };
    for sh in (0..cfg.shards).filter(|_| cfg.oracle) {
        let first = (sh * cfg.n) as ReplicaId;
        s.on(first, |r, now, fx| r.handle_be_leader(now, fx));
        s.asked[sh] = Some((first, 0));
    }
    for r in 0..total {
        let t = s.rng.gen_range(0..5_000_000);
        s.at(t, Kind::Tick { r: r as ReplicaId });
    }
    if cfg.scripts.is_empty() {
        for c in 0..cfg.clients {
            s.at(20_000_000 + c as u64 * 100_000, Kind::Issue { client: c });
        }
    } else {
        for (c, sc) in cfg.scripts.iter().enumerate() {
            s.at(sc.start_ns, Kind::Issue { client: c });
        }
    }
    for c in &cfg.crashes {
        s.at(c.at, Kind::Crash { shard: c.shard });
    }
    for c in &cfg.outages {
        s.at(c.at, Kind::Outage { shard: c.shard });
    }
    for i in &cfg.isolations {
        let k = Kind::Isolate {
            shard: i.shard,
            heal_after: i.heal_after,
        };
        s.at(i.at, k);
    }
    s.at(0, Kind::Master);
    let hard_end = cfg.max_time_ns + cfg.client_give_up_ns + 10_000_000_000;
    while let Some(Reverse((t, _, id))) = s.queue.pop() {
        if t > hard_end {
            break;
        }
        s.now = t;
        let Some(k) = s.events.remove(&id) else {
            continue;
        };
        s.handle(k);
        if s.clients
            .iter()
            .all(|c| c.current.is_empty() && c.done >= cfg.requests)
            && !matches!(s.queue.peek(), Some(Reverse((t, _, _))) if *t <= s.now)
        {
            // Let replicas settle (commits reach followers), then stop.
            s.settle(s.now + 1_000_000_000);
            break;
        }
    }
    s.finish()
}

/// The configuration of replica `g` in a run of `cfg`.
fn replica_config(cfg: &SimConfig, g: ReplicaId) -> ReplicaConfig {
    let mut c = ReplicaConfig::new(g, cfg.n, cfg.shards);
    c.mode = cfg.mode;
    c.thrifty = cfg.thrifty;
    c.record_order = true;
    c.coord_timeout_ns = cfg.coord_timeout_ns;
    c.keep_ns = cfg.keep_ns;
    c.election_timeout_ns = cfg.election_timeout_ns;
    c.announce_ns = cfg.announce_ns;
    c
}

impl Sim {
    /// Replica `r` crashes now (and restarts later if so configured).
    fn crash(&mut self, r: ReplicaId) {
        self.alive[r as usize] = false;
        self.crashed.push((self.now, r));
        if let Some(d) = self.cfg.restart_after_ns {
            let t = self.now + d;
            self.at(t, Kind::Restart { r });
        }
    }

    /// Replica `r` restarts on its durable records: a fresh core restored
    /// from them, a follower. Its restored journal is checked for agreement
    /// again from the start.
    fn restart(&mut self, r: ReplicaId) {
        let i = r as usize;
        if self.alive[i] {
            return;
        }
        let mut rep = Replica::new(replica_config(&self.cfg, r));
        let restored = genericsmr::durable::parse_records(&self.disk[i])
            .map_err(|e| e.to_string())
            .and_then(|recs| rep.restore(self.now, &recs).map_err(|e| e.to_string()));
        if let Err(e) = restored {
            self.violation
                .get_or_insert(format!("replica {r} cannot restart on its records: {e}"));
            return;
        }
        self.replicas[i] = rep;
        self.alive[i] = true;
        self.restarts += 1;
        self.checked_upto[i] = 0;
        self.check_agreement(r);
        let t = self.now + 1_000_000;
        self.at(t, Kind::Tick { r });
    }

    fn at(&mut self, time: u64, k: Kind) {
        self.ev_id += 1;
        self.next += 1;
        self.events.insert(self.ev_id, k);
        self.queue.push(Reverse((time, self.next, self.ev_id)));
    }

    fn delay(&mut self) -> u64 {
        let j = if self.cfg.jitter_ns > 0 {
            self.rng.gen_range(0..self.cfg.jitter_ns)
        } else {
            0
        };
        self.cfg.one_way_ns + j
    }

    fn on(&mut self, r: ReplicaId, f: impl FnOnce(&mut Replica, u64, &mut Effects<MdlMsg>)) {
        if !self.alive[r as usize] {
            return;
        }
        let mut fx = if self.cfg.restart_after_ns.is_some() {
            Effects::default()
        } else {
            Effects::without_persistence()
        };
        let now = self.now;
        let rep = &mut self.replicas[r as usize];
        f(rep, now, &mut fx);
        rep.flush(now, &mut fx);
        // Durable before anything leaves (a crash below keeps them too).
        let records = fx.take_persist();
        self.disk[r as usize].extend_from_slice(&records);
        let shard = r as usize / self.cfg.n;
        self.check_agreement(r);
        // A leader sending a coordination reply to another shard: what the
        // scripted crashes and depositions wait for.
        let replying = self.replicas[r as usize].is_leader()
            && fx.sends.iter().any(|(d, m)| {
                matches!(m, MdlMsg::CoordReply(_))
                    && matches!(d, Dest::Peer(p) if *p as usize / self.cfg.n != shard)
            });
        let trigger = self
            .cfg
            .crash_on_coord
            .iter()
            .position(|t| replying && t.shard as usize == shard && now >= t.after);
        let depose = self
            .cfg
            .depose_on_coord
            .iter()
            .position(|t| replying && t.shard as usize == shard && now >= t.after);
        if let Some(i) = depose {
            self.cfg.depose_on_coord.remove(i);
            self.deposed[r as usize] = true;
            self.crashed.push((now, r));
        }
        let failed_reply = fx
            .replies
            .iter()
            .any(|(_, r)| matches!(r, Reply::Propose(p) if p.status == ReplyStatus::Failed));
        if failed_reply && self.cfg.crash_on_fail.contains(&(shard as u8)) {
            // Right after a replicated failure was told to its client: the
            // replies escape, nothing else does.
            self.cfg.crash_on_fail.retain(|s| *s as usize != shard);
            self.crash(r);
            fx.sends.clear();
        }
        if let Some(i) = trigger {
            let t = self.cfg.crash_on_coord.remove(i);
            self.crash(r);
            // What escapes: the coordination replies, if so scripted; nothing else.
            fx.sends
                .retain(|(_, m)| t.reply_escapes && matches!(m, MdlMsg::CoordReply(_)));
            fx.replies.clear();
        }
        for (dest, msg) in fx.sends.drain(..) {
            let set = dest.mask(r, self.replicas.len());
            for to in 0..self.replicas.len() {
                if set & (1u64 << to) != 0 {
                    if self.cut[r as usize] || self.cut[to] || self.severed(r, to as ReplicaId) {
                        continue;
                    }
                    if self.cfg.drop_per_mille > 0
                        && self.rng.gen_range(0..1000) < self.cfg.drop_per_mille
                    {
                        continue;
                    }
                    let d = self.delay();
                    let k = Kind::Peer {
                        to: to as ReplicaId,
                        from: r,
                        msg: msg.clone(),
                    };
                    self.at(now + d, k);
                }
            }
        }
        for (conn, reply) in fx.replies.drain(..) {
            if self.cut[r as usize] {
                continue;
            }
            if let Reply::Propose(p) = reply {
                let d = self.delay();
                self.at(
                    now + d,
                    Kind::Reply {
                        client: conn as usize,
                        reply: p,
                    },
                );
            }
        }
    }

    /// Agreement, after every event at `r`: each slot `r` holds committed
    /// must hold the entry any other replica of its shard committed there.
    fn check_agreement(&mut self, r: ReplicaId) {
        let shard = r as usize / self.cfg.n;
        let rep = &self.replicas[r as usize];
        let from = self.checked_upto[r as usize];
        for (slot, s) in rep.log().iter().enumerate().skip(from as usize) {
            if s.state != SlotState::Committed {
                continue;
            }
            let (first, by) = self.chosen[shard]
                .entry(slot as u64)
                .or_insert_with(|| (s.entry.clone(), r));
            if *first != s.entry && self.violation.is_none() {
                self.violation = Some(format!(
                    "agreement: replica {r} committed {:?} in shard {shard}'s slot {slot}, \
                     replica {by} committed {first:?}",
                    s.entry
                ));
            }
        }
        // Slots below the commit index do not change again.
        self.checked_upto[r as usize] = rep.commit_index();
    }

    /// Whether messages between `a` and `b` are lost: same shard, one of them deposed.
    fn severed(&self, a: ReplicaId, b: ReplicaId) -> bool {
        let n = self.cfg.n;
        a as usize / n == b as usize / n && (self.deposed[a as usize] || self.deposed[b as usize])
    }

    fn handle(&mut self, k: Kind) {
        match k {
            Kind::Peer { to, from, msg } => {
                if self.alive[to as usize]
                    && !self.cut[to as usize]
                    && !self.cut[from as usize]
                    && !self.severed(from, to)
                {
                    self.messages += 1;
                    self.on(to, |r, now, fx| r.handle_peer(now, from, msg, fx));
                }
            }
            Kind::Propose { to, client, msg } => {
                if !self.cut[to as usize] {
                    self.on(to, |r, now, fx| {
                        r.handle_propose(now, client as u64, msg, fx)
                    })
                }
            }
            Kind::Coord { to, msg } => {
                if !self.cut[to as usize] {
                    self.on(to, |r, now, fx| r.handle_coord_req(now, None, msg, fx))
                }
            }
            Kind::Reply { client, reply } => self.client_reply(client, reply),
            Kind::Tick { r } => {
                if self.alive[r as usize] {
                    self.on(r, |rep, now, fx| rep.tick(now, fx));
                    let t = self.now + 5_000_000;
                    self.at(t, Kind::Tick { r });
                }
            }
            Kind::Issue { client } => self.issue(client),
            Kind::Retry {
                client,
                idx,
                attempt,
            } => self.retry(client, idx, attempt),
            Kind::Crash { shard } => {
                let victim = self.leaders[shard as usize].or_else(|| {
                    (0..self.cfg.n)
                        .map(|i| (shard as usize * self.cfg.n + i) as ReplicaId)
                        .find(|r| self.replicas[*r as usize].is_leader())
                });
                if let Some(v) = victim {
                    let live = (0..self.cfg.n)
                        .filter(|i| self.alive[shard as usize * self.cfg.n + i])
                        .count();
                    // Never below a majority: the protocol promises nothing then.
                    if live > self.cfg.n / 2 + 1 {
                        self.crash(v);
                    }
                }
            }
            Kind::Outage { shard } => {
                let n = self.cfg.n;
                for i in 0..n {
                    let r = (shard as usize * n + i) as ReplicaId;
                    if self.alive[r as usize] {
                        self.crash(r);
                    }
                }
            }
            Kind::Restart { r } => self.restart(r),
            Kind::Isolate { shard, heal_after } => {
                let n = self.cfg.n;
                let members = (0..n).map(|i| shard as usize * n + i);
                let victim = members
                    .clone()
                    .find(|r| self.alive[*r] && !self.cut[*r] && self.replicas[*r].is_leader());
                let up = members.filter(|r| self.alive[*r] && !self.cut[*r]).count();
                if let Some(v) = victim.filter(|_| up > n / 2 + 1) {
                    self.cut[v] = true;
                    self.crashed.push((self.now, v as ReplicaId));
                    let t = self.now + heal_after;
                    self.at(t, Kind::Heal { r: v as ReplicaId });
                }
            }
            Kind::Heal { r } => self.cut[r as usize] = false,
            Kind::Master => {
                self.master();
                let t = self.now + 20_000_000;
                self.at(t, Kind::Master);
            }
        }
    }

    /// The master's job: publish leaders, replace dead ones.
    fn master(&mut self) {
        let n = self.cfg.n;
        for sh in 0..self.cfg.shards {
            let members = (0..n).map(|i| (sh * n + i) as ReplicaId);
            // A deposed replica cannot lead its shard: the master sees it lost it.
            let up = |r: &ReplicaId| {
                self.alive[*r as usize] && !self.cut[*r as usize] && !self.deposed[*r as usize]
            };
            // The live, reachable replica claiming leadership with the highest ballot.
            let claimed = members
                .clone()
                .filter(|r| up(r) && self.replicas[*r as usize].is_leader())
                .max_by_key(|r| self.replicas[*r as usize].promised());
            self.leaders[sh] = claimed;
            if !self.cfg.oracle {
                continue;
            }
            if claimed.is_some() {
                self.asked[sh] = None;
                continue;
            }
            let waited = self.asked[sh]
                .is_some_and(|(a, t)| up(&a) && self.now.saturating_sub(t) < 300_000_000);
            if waited {
                continue;
            }
            let best = members
                .filter(up)
                .max_by_key(|r| (self.replicas[*r as usize].commit_index(), Reverse(*r)));
            if let Some(b) = best {
                self.asked[sh] = Some((b, self.now));
                self.on(b, |r, now, fx| r.handle_be_leader(now, fx));
            }
        }
        if !self.cfg.oracle {
            return;
        }
        let leaders = self.leaders.clone();
        for r in 0..self.replicas.len() {
            if self.alive[r] && !self.cut[r] {
                self.replicas[r].set_shard_leaders(&leaders);
            }
        }
    }

    fn leader_of(&self, shard: u8) -> ReplicaId {
        self.leaders[shard as usize].unwrap_or((shard as usize * self.cfg.n) as ReplicaId)
    }

    /// Starts a client's next application request.
    fn issue(&mut self, c: usize) {
        if self.clients[c].done >= self.cfg.requests || self.now > self.cfg.max_time_ns {
            return;
        }
        let fanout = if let Some(sc) = self.cfg.scripts.get(c) {
            if self.clients[c].done > 0 {
                return;
            }
            sc.ops.len()
        } else if self.cfg.random_fanout {
            self.rng.gen_range(1..=self.cfg.fanout)
        } else {
            self.cfg.fanout
        };
        let cl = &mut self.clients[c];
        cl.started = self.now;
        cl.remaining = fanout;
        cl.complete = true;
        self.issue_ops(c);
    }

    /// Issues the request's next operations: all of them, chained, or one
    /// (single dispatch).
    fn issue_ops(&mut self, c: usize) {
        let count = if self.cfg.single_dispatch {
            1
        } else {
            self.clients[c].remaining
        };
        self.clients[c].remaining -= count;
        self.clients[c].delivered = 0;
        let mut prev: Option<Pred> = None;
        for _ in 0..count {
            let scripted = self
                .cfg
                .scripts
                .get(c)
                .and_then(|sc| sc.ops.get(self.clients[c].current.len()).cloned());
            let key = match &scripted {
                Some((_, k)) => k.clone(),
                None => format!("k{}", self.rng.gen_range(0..self.cfg.keys)),
            };
            let shard = shard_of(key.as_bytes(), self.cfg.shards);
            let cl = &mut self.clients[c];
            cl.seq += 1;
            let seq = cl.seq;
            let ss = cl.shard_seq.entry(shard).or_insert(0);
            let shard_seq = *ss;
            *ss += 1;
            let id = c as u64 + 1;
            let write = match &scripted {
                Some((w, _)) => *w,
                None => self.rng.gen_range(0..100) < self.cfg.write_pct,
            };
            let cmd = if write {
                Command::put(
                    id,
                    seq,
                    Bytes::from(key),
                    Bytes::from(format!("{id}.{seq}")),
                )
            } else {
                Command::get(id, seq, Bytes::from(key))
            };
            let rec = OpRec {
                cmd,
                shard,
                shard_seq,
                pred: prev,
                invoked: self.now,
                answer: None,
                given_up: false,
            };
            let lost = prev.is_some()
                && self.cfg.lose_per_mille > 0
                && self.rng.gen_range(0..1000) < self.cfg.lose_per_mille;
            prev = Some(Pred { seq, shard });
            self.clients[c].current.push(rec);
            let idx = self.clients[c].current.len() - 1;
            let first = if lost {
                self.now + self.cfg.late_ns
            } else {
                self.send_op(c, idx);
                self.now + self.cfg.client_retry_ns
            };
            self.at(
                first,
                Kind::Retry {
                    client: c,
                    idx,
                    attempt: 1,
                },
            );
        }
    }

    fn send_op(&mut self, c: usize, idx: usize) {
        let op = &self.clients[c].current[idx];
        let msg = MdlPropose {
            cmd: op.cmd.clone(),
            shard_seq: op.shard_seq,
            pred: op.pred,
        };
        let to = self.leader_of(op.shard);
        let cr = op.pred.map(|p| {
            (
                self.leader_of(p.shard),
                CoordReq {
                    pred: OpId {
                        client: op.cmd.client,
                        seq: p.seq,
                    },
                    succ: OpId::of(&op.cmd),
                    succ_shard: op.shard,
                },
            )
        });
        let extra = |s: u8| {
            self.cfg
                .scripts
                .get(c)
                .and_then(|sc| sc.shard_delay_ns.get(s as usize).copied())
                .unwrap_or(0)
        };
        let coord_extra = |s: u8| {
            self.cfg
                .scripts
                .get(c)
                .and_then(|sc| sc.coord_delay_ns.get(s as usize).copied())
                .unwrap_or(0)
        };
        let op_extra = extra(op.shard);
        let cr_extra = op.pred.map_or(0, |p| extra(p.shard) + coord_extra(p.shard));
        let d = self.delay() + op_extra;
        self.at(self.now + d, Kind::Propose { to, client: c, msg });
        if let Some((to, msg)) = cr {
            let d = self.delay() + cr_extra;
            self.at(self.now + d, Kind::Coord { to, msg });
        }
    }

    fn retry(&mut self, c: usize, idx: usize, attempt: u32) {
        let Some(op) = self.clients[c].current.get(idx) else {
            return;
        };
        if op.answer.is_some() || op.given_up {
            return;
        }
        if self.now.saturating_sub(op.invoked) >= self.cfg.client_give_up_ns {
            self.clients[c].current[idx].given_up = true;
            return self.deliver(c);
        }
        self.send_op(c, idx);
        let t = self.now + self.cfg.client_retry_ns;
        self.at(
            t,
            Kind::Retry {
                client: c,
                idx,
                attempt: attempt + 1,
            },
        );
    }

    fn client_reply(&mut self, c: usize, r: ProposeReply) {
        let cl = &mut self.clients[c];
        let Some(idx) = cl.current.iter().position(|o| o.cmd.seq == r.seq) else {
            return;
        };
        if cl.current[idx].answer.is_some() || cl.current[idx].given_up {
            return;
        }
        match r.status {
            ReplyStatus::Ok | ReplyStatus::Failed | ReplyStatus::Stale | ReplyStatus::TooLarge => {
                cl.current[idx].answer = Some((self.now, r.status, r.outcome));
                self.deliver(c);
            }
            // Retried on the client's timer, at the leader known then.
            ReplyStatus::NotLeader | ReplyStatus::Unavailable => {}
        }
    }

    /// Delivers answers in issue order; when all are in, records them and
    /// goes on with the request (single dispatch) or the next request.
    fn deliver(&mut self, c: usize) {
        let now = self.now;
        let cl = &mut self.clients[c];
        while cl.delivered < cl.current.len() {
            let o = &cl.current[cl.delivered];
            if o.answer.is_none() && !o.given_up {
                break;
            }
            cl.delivered += 1;
        }
        if cl.delivered < cl.current.len() {
            return;
        }
        self.record_ops(c);
        if self.clients[c].remaining > 0 {
            return self.issue_ops(c);
        }
        let cl = &mut self.clients[c];
        cl.done += 1;
        if cl.complete {
            self.latencies.push(now - cl.started);
        }
        let think = self.rng.gen_range(0..2_000_000);
        self.at(now + think, Kind::Issue { client: c });
    }

    /// Moves the delivered operations into the history.
    fn record_ops(&mut self, c: usize) {
        let cl = &mut self.clients[c];
        let ops = std::mem::take(&mut cl.current);
        // Answers are delivered in issue order: each at the latest answer so far.
        let mut delivered = 0;
        for o in &ops {
            if let Some((t, ..)) = o.answer {
                delivered = delivered.max(t);
            }
            let rec = match &o.answer {
                Some((_, ReplyStatus::Ok, out)) => {
                    Record::of(&o.cmd, o.invoked, Some((delivered, out)), Outcome::Ok)
                }
                Some((_, ReplyStatus::Failed, _)) => Record::of(
                    &o.cmd,
                    o.invoked,
                    Some((delivered, &CmdOutcome::default())),
                    Outcome::Fail,
                ),
                _ => {
                    cl.complete = false;
                    Record::of(&o.cmd, o.invoked, None, Outcome::Unknown)
                }
            };
            self.history.push(rec.with_pred(o.pred.map(|p| p.seq)));
        }
    }

    fn settle(&mut self, until: u64) {
        while let Some(Reverse((t, _, id))) = self.queue.pop() {
            if t > until {
                break;
            }
            self.now = t;
            if let Some(k) = self.events.remove(&id) {
                if matches!(k, Kind::Issue { .. }) {
                    continue;
                }
                self.handle(k);
            }
        }
    }

    fn finish(mut self) -> SimReport {
        if std::env::var("MDLIN_DUMP").is_ok() {
            for (i, r) in self.replicas.iter().enumerate() {
                let live = if self.alive[i] { "live" } else { "dead" };
                println!("replica {i} ({live}) commit {}:", r.commit_index());
                for (slot, s) in r.log().iter().enumerate() {
                    println!("  {slot} {:?} b{} {:?}", s.state, s.ballot, s.entry);
                }
            }
        }
        for c in 0..self.clients.len() {
            if !self.clients[c].current.is_empty() {
                for o in self.clients[c].current.iter_mut() {
                    if o.answer.is_none() {
                        o.given_up = true;
                    }
                }
                self.record_ops(c);
            }
        }
        let n = self.cfg.n;
        let logs = (0..self.cfg.shards)
            .map(|sh| {
                (0..n)
                    .map(|i| {
                        self.replicas[sh * n + i]
                            .exec_order()
                            .iter()
                            .map(|o| (o.client, o.seq))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let timestamps = (0..self.cfg.shards)
            .map(|sh| {
                (0..n)
                    .map(|i| self.replicas[sh * n + i].exec_timestamps().to_vec())
                    .collect()
            })
            .collect();
        // A deposed leader never learns it was replaced: what it holds is not stuck.
        let leaders = (0..self.replicas.len())
            .filter(|r| self.alive[*r] && !self.deposed[*r] && self.replicas[*r].is_leader());
        let stuck = leaders.clone().map(|r| self.replicas[r].in_flight()).sum();
        let stuck_detail = leaders
            .filter(|r| self.replicas[*r].in_flight() > 0)
            .map(|r| self.replicas[r].describe_in_flight())
            .collect::<Vec<_>>()
            .join("; ");
        SimReport {
            history: self.history,
            logs,
            timestamps,
            request_latency_ns: self.latencies,
            messages: self.messages,
            end_ns: self.now,
            stuck,
            stuck_detail,
            crashed: self.crashed,
            restarts: self.restarts,
            leaders: (0..self.cfg.shards)
                .map(|sh| {
                    (0..self.cfg.n)
                        .map(|i| sh * self.cfg.n + i)
                        .filter(|r| self.alive[*r] && self.replicas[*r].is_serving())
                        .max_by_key(|r| self.replicas[*r].promised())
                        .map(|r| r as ReplicaId)
                })
                .collect(),
            violation: self.violation,
        }
    }
}

/// The command kinds the workload draws (for docs and tests).
pub const OPS: [Op; 2] = [Op::Put, Op::Get];

/// The randomized mix of the chaos runs (tests and `bench sim --protocol
/// mdlin`), for `seed`: thrifty replicas for every third seed, fanout up to 8, jittery links losing `drop_per_mille`,
/// sometimes stalled chains, and one leader crash (every third scripted at a
/// coordination reply) or, for every fourth seed, a leader cut off for a while
/// and then back (a stale leader), sometimes two shards' at once. Even seeds run fast
/// mode, odd ones safe mode. Half the seeds restart crashed replicas on
/// their durable journals (some also crash a whole shard at once).
pub fn chaos(seed: u64, shards: usize, n: usize, crashes: bool, drop_per_mille: u32) -> SimConfig {
    let mut cfg = SimConfig::new(seed);
    cfg.mode = if seed.is_multiple_of(2) {
        CoordMode::Fast
    } else {
        CoordMode::Safe
    };
    cfg.shards = shards;
    cfg.n = n;
    cfg.thrifty = seed % 3 == 2;
    cfg.fanout = 8;
    cfg.keys = 5;
    cfg.requests = 12;
    cfg.drop_per_mille = drop_per_mille;
    cfg.jitter_ns = 2_000_000;
    cfg.lose_per_mille = if seed.is_multiple_of(5) { 50 } else { 0 };
    if !crashes {
        return cfg;
    }
    let sh = (seed % shards as u64) as u8;
    if seed % 4 == 1 {
        // A stale leader instead of a dead one: cut off, then back.
        cfg.isolations.push(Isolate {
            at: 25_000_000 + (seed % 50) * 1_000_000,
            shard: sh,
            heal_after: 150_000_000 + (seed % 7) * 50_000_000,
        });
    } else if seed.is_multiple_of(3) {
        cfg.crash_on_coord.push(CrashOnCoord {
            shard: sh,
            reply_escapes: seed.is_multiple_of(2),
            after: 30_000_000,
        });
    } else {
        cfg.crashes.push(Crash {
            at: 25_000_000 + (seed % 100) * 1_000_000,
            shard: sh,
        });
    }
    if seed.is_multiple_of(7) && shards > 1 {
        cfg.crashes.push(Crash {
            at: 40_000_000,
            shard: (sh + 1) % shards as u8,
        });
    }
    // Half the seeds restart crashed replicas on their durable journals, and
    // one in eight of those crashes a whole shard at once too.
    if seed % 8 >= 4 {
        cfg.restart_after_ns = Some(100_000_000 + (seed % 5) * 100_000_000);
        if seed % 64 >= 56 {
            cfg.outages.push(Crash {
                at: 60_000_000 + (seed % 40) * 1_000_000,
                shard: (sh + 1) % shards as u8,
            });
        }
    }
    cfg
}

/// Checks a run: the agreement invariant checked after every event, the
/// white-box checks over every replica's executed order (exact), the
/// black-box MDL search over the history (which must decide: giving up on
/// a history this small counts as a failure), and that no operation is left
/// stuck at a live leader. The error says which failed.
pub fn verify(r: &SimReport) -> Result<(), String> {
    if let Some(v) = &r.violation {
        return Err(v.clone());
    }
    let wb = checker::mdl_log::check_logs(&r.history, &r.logs);
    if wb.verdict != checker::Verdict::Ok {
        return Err(format!("white-box check: {:?}", wb.violation));
    }
    let bb = checker::mdl::check_mdl(&r.history, &checker::linear::Options::default());
    match bb.verdict {
        // The searches never call a history vacuous (HistoryStats::judge does).
        checker::Verdict::Ok | checker::Verdict::Vacuous => {}
        checker::Verdict::Violation => {
            return Err(format!("black-box MDL check: {:?}", bb.violation))
        }
        // These runs are small: a search that gives up is a failure too.
        checker::Verdict::Undecided => {
            return Err("black-box MDL check: undecided (the search gave up)".into())
        }
    }
    if r.stuck > 0 {
        return Err(format!(
            "{} operations stuck at a leader: {}",
            r.stuck, r.stuck_detail
        ));
    }
    Ok(())
}

/// Checks the timestamp rule on the executed journals: timestamps strictly
/// increase along each shard's executed order, and every operation that
/// executed has a larger timestamp than its chain predecessor (when that
/// executed too). Ordering every executed operation by timestamp is the
/// witness order of the protocol's safety argument; a chain edge that goes
/// down in timestamp means some leader coordinated the successor with a
/// timestamp its predecessor's shard did not keep. Stricter than MDL: a run
/// can break it and still have some other order that satisfies MDL.
pub fn check_timestamps(r: &SimReport) -> Result<(), String> {
    let mut ts: HashMap<(u64, u64), u64> = HashMap::new();
    for (sh, (logs, stamps)) in r.logs.iter().zip(&r.timestamps).enumerate() {
        // The longest executed order of the shard (the others are prefixes of it).
        let Some((log, stamps)) = logs.iter().zip(stamps).max_by_key(|(l, _)| l.len()) else {
            continue;
        };
        let mut last: Option<u64> = None;
        for (op, t) in log.iter().zip(stamps) {
            if last.is_some_and(|l| *t <= l) {
                return Err(format!(
                    "shard {sh}: {op:?} executed with timestamp {t}, not above the previous {last:?}"
                ));
            }
            last = Some(*t);
            ts.insert(*op, *t);
        }
    }
    for h in &r.history {
        let Some(p) = h.pred else { continue };
        if let (Some(t), Some(pt)) = (ts.get(&(h.client, h.seq)), ts.get(&(h.client, p))) {
            if t <= pt {
                return Err(format!(
                    "operation ({}, {}) executed with timestamp {t}, not above its chain \
                     predecessor ({}, {p})'s {pt}",
                    h.client, h.seq, h.client
                ));
            }
        }
    }
    Ok(())
}
