//! The load drivers: closed loop, open loop (Poisson arrivals, latency from the
//! intended send time) and flood.
//!
//! Each client is one task with one connection. Replies are matched by sequence
//! number in that task, which then encodes the next request straight into the
//! connection's coalescing outbox: no task, lock or channel per operation, so
//! the generator stays far below the replicas' cost per operation.
//!
//! On a sharded deployment, or with requests of several operations
//! (`fanout`), each client runs the driver in [`crate::multi`] instead: one
//! connection per shard, operations routed by key.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use genericsmr::command::Command;
use genericsmr::messages::{codes, Next, Propose, ProposeReply};
use genericsmr::transport::{read_frame, ConnOutbox};
use genericsmr::wire::{decode_body, DEFAULT_MAX_FRAME};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::history::{Outcome, Record};
use crate::route::Route;
use crate::stall::{Heard, Stall};
use crate::stats::ClientStats;
use crate::workload::{Generator, Mix};

/// How load is offered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Mode {
    /// Each client keeps `window` requests outstanding.
    Closed {
        /// Requests in flight per client.
        window: usize,
    },
    /// Poisson arrivals at `rate` operations per second in total.
    Open {
        /// Total offered load, operations per second.
        rate: f64,
        /// Most requests one client keeps in flight (`--max-in-flight`);
        /// arrivals due while it is full wait, see [`OPEN_WINDOW`].
        #[serde(default = "open_window")]
        max_in_flight: usize,
        /// Longest an arrival waits for room in the client's window before
        /// it is shed: never sent, counted apart (`--max-wait-ms`, see
        /// [`OPEN_MAX_WAIT_MS`]; at most the operation timeout; 0: never shed).
        #[serde(default = "open_max_wait")]
        max_wait_ms: u64,
    },
    /// `total` requests as fast as the connections take them, counting completions.
    Flood {
        /// Requests in all.
        total: u64,
    },
}

/// One experiment's load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    /// How load is offered.
    pub mode: Mode,
    /// Number of client sessions.
    pub clients: usize,
    /// How long load is offered (ignored by flood).
    pub duration_s: f64,
    /// Seconds at the start left out of the statistics.
    pub warmup_s: f64,
    /// Seconds at the end left out of the statistics.
    pub cooldown_s: f64,
    /// Command mix.
    pub mix: Mix,
    /// Seed of every random choice.
    pub seed: u64,
    /// Resend an unanswered request (same id) after this many milliseconds.
    pub attempt_timeout_ms: u64,
    /// Give up on a request after this many milliseconds (counted as timed out).
    pub op_timeout_ms: u64,
    /// Emulated distance between clients and replicas (`bench local --wan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wan: Option<WanClients>,
    /// Each client sends to its own replica (the nearest with a WAN, else its
    /// index modulo the group) instead of the leader; on failure, to the next.
    #[serde(default)]
    pub spread: bool,
    /// Operations per application request, issued one at a time (operation
    /// i+1 is sent when operation i is answered), each with its own key and
    /// type. The mode's window, rate and total count requests.
    #[serde(default = "one")]
    pub fanout: usize,
    /// Issue a request's operations all at once, chained (each names the one
    /// before as its predecessor), and deliver them in issue order: MDLin's
    /// multi-dispatch. Without it they go one at a time.
    #[serde(default)]
    pub multi_dispatch: bool,
}

fn one() -> usize {
    1
}

fn open_window() -> usize {
    OPEN_WINDOW
}

fn open_max_wait() -> u64 {
    OPEN_MAX_WAIT_MS
}

#[cfg(test)]
impl Spec {
    /// One client in `mode` for a second, the default mix, one-second
    /// timeouts: a starting point for tests.
    pub(crate) fn sample(mode: Mode) -> Spec {
        Spec {
            mode,
            clients: 1,
            duration_s: 1.0,
            warmup_s: 0.0,
            cooldown_s: 0.0,
            mix: crate::workload::Mix::default(),
            seed: 1,
            attempt_timeout_ms: 1000,
            op_timeout_ms: 1000,
            wan: None,
            spread: false,
            fanout: 1,
            multi_dispatch: false,
        }
    }
}

/// Where clients sit in an emulated wide-area deployment: client `c` is at
/// site `c % sites.len()`, and each message between it and replica `r` is
/// held for `one_way_ms[site][r]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WanClients {
    /// Names of the sites clients occupy.
    pub sites: Vec<String>,
    /// One-way delay from each client site to each replica, milliseconds.
    pub one_way_ms: Vec<Vec<f64>>,
    /// Round-trip times between replicas, milliseconds (for latency models).
    pub replica_rtt_ms: Vec<Vec<f64>>,
}

impl WanClients {
    /// The site of client `c`.
    pub fn site_of(&self, c: usize) -> usize {
        c % self.sites.len()
    }

    /// Multi-Paxos's latency model for clients at `site` with `leader` of `n`
    /// replicas, in milliseconds: the round trip to the leader plus the
    /// leader's round trip to its nearest majority.
    pub fn paxos_model_ms(&self, site: usize, leader: usize, n: usize) -> f64 {
        self.paxos_model_in(site, leader, 0..n)
    }

    /// [`WanClients::paxos_model_ms`] for a group made of replicas `members`
    /// (one shard of a sharded deployment; global ids).
    pub fn paxos_model_in(
        &self,
        site: usize,
        leader: usize,
        members: std::ops::Range<usize>,
    ) -> f64 {
        let n = members.len();
        let mut rtts: Vec<f64> = members
            .filter(|j| *j != leader)
            .map(|j| self.replica_rtt_ms[leader][j])
            .collect();
        rtts.sort_by(f64::total_cmp);
        let quorum = if n / 2 == 0 { 0.0 } else { rtts[n / 2 - 1] };
        2.0 * self.one_way_ms[site][leader] + quorum
    }

    /// EPaxos's latency model for clients at `site` sending to their nearest
    /// replica at 0% conflicts, in milliseconds: the round trip to it plus its
    /// round trip to the nearest fast quorum (`F + floor((F+1)/2)` replicas,
    /// itself included).
    pub fn epaxos_model_ms(&self, site: usize, n: usize) -> f64 {
        self.epaxos_model_in(site, 0..n)
    }

    /// [`WanClients::epaxos_model_ms`] for a group made of replicas `members`
    /// (one shard of a sharded deployment; global ids).
    pub fn epaxos_model_in(&self, site: usize, members: std::ops::Range<usize>) -> f64 {
        let n = members.len().max(1);
        let r = self.nearest_in(site, members.clone());
        let f = (n - 1) / 2;
        let fast = (f + f.div_ceil(2)).max(1);
        let mut rtts: Vec<f64> = members
            .filter(|j| *j != r)
            .map(|j| self.replica_rtt_ms[r][j])
            .collect();
        rtts.sort_by(f64::total_cmp);
        let quorum = if fast < 2 { 0.0 } else { rtts[fast - 2] };
        2.0 * self.one_way_ms[site][r] + quorum
    }

    /// The replica nearest to client `c` (lowest id on a tie).
    pub fn nearest(&self, c: usize, n: usize) -> usize {
        self.nearest_in(c, 0..n)
    }

    /// The replica nearest to client `c` among `replicas` (lowest id on a tie;
    /// the first of them when none is placed).
    pub fn nearest_in(&self, c: usize, replicas: std::ops::Range<usize>) -> usize {
        let row = &self.one_way_ms[self.site_of(c)];
        let first = replicas.start;
        replicas
            .filter(|r| *r < row.len())
            .min_by(|a, b| row[*a].total_cmp(&row[*b]).then(a.cmp(b)))
            .unwrap_or(first)
    }

    pub(crate) fn delay_ns(&self, client: usize, replica: usize) -> u64 {
        let row = &self.one_way_ms[self.site_of(client)];
        (row.get(replica).copied().unwrap_or(0.0) * 1e6) as u64
    }
}

impl Spec {
    pub(crate) fn window_ns(&self) -> (u64, u64) {
        let from = (self.warmup_s * 1e9) as u64;
        let to = match self.mode {
            Mode::Flood { .. } => u64::MAX,
            _ => ((self.duration_s - self.cooldown_s).max(self.warmup_s) * 1e9) as u64,
        };
        (from, to)
    }
}

/// What a run produced.
pub struct RunOutput {
    /// Per-client measurements.
    pub clients: Vec<ClientStats>,
    /// Every operation, when a history was asked for.
    pub history: Vec<Record>,
    /// Wall-clock length of the run, seconds.
    pub elapsed_s: f64,
}

impl RunOutput {
    /// Waits for every client task and merges what they measured: `parts`
    /// takes a finished client apart into its stats and its history (if one
    /// was kept). The history comes out in invocation order.
    pub(crate) async fn gather<C>(
        tasks: Vec<tokio::task::JoinHandle<anyhow::Result<C>>>,
        start: Instant,
        parts: impl Fn(C) -> (ClientStats, Option<Vec<Record>>),
    ) -> anyhow::Result<RunOutput> {
        let mut clients = Vec::new();
        let mut history = Vec::new();
        for t in tasks {
            let (stats, h) = parts(t.await??);
            history.extend(h.into_iter().flatten());
            clients.push(stats);
        }
        history.sort_by_key(|r| r.invoke_ns);
        Ok(RunOutput {
            clients,
            history,
            elapsed_s: start.elapsed().as_secs_f64(),
        })
    }
}

/// Live counters for the progress display.
#[derive(Default)]
pub struct Progress {
    /// Operations answered so far.
    pub done: AtomicU64,
    /// Operations timed out or failed so far.
    pub errors: AtomicU64,
    /// Set to stop the run early (Ctrl-C).
    pub stop: AtomicBool,
}

struct Pending {
    cmd: Command,
    invoke_ns: u64,
    sent_ns: u64,
}

struct Client {
    id: u64,
    next_seq: u64,
    gen: Generator,
    pending: crate::window::SeqWindow<Pending>,
    stats: ClientStats,
    history: Option<Vec<Record>>,
    /// When requests start.
    pacer: Pacer,
    /// Index of the client in the run (its site, with a WAN).
    index: usize,
    /// With `spread`: how many replicas past its own the client has moved on to.
    shift: usize,
    /// Emulated one-way delay to the current replica (0: none).
    delay_ns: u64,
    /// Requests held for the emulated delay: (due, frame).
    outq: std::collections::VecDeque<(u64, bytes::Bytes)>,
    /// Replies held for the emulated delay: (due, reply).
    inq: std::collections::VecDeque<(u64, ProposeReply)>,
}

impl Client {
    /// Sends now, or after the emulated delay.
    fn send(&mut self, out: &ConnOutbox, p: &Propose, now_ns: u64) {
        if self.delay_ns == 0 {
            out.push(p);
        } else {
            self.outq
                .push_back((now_ns + self.delay_ns, genericsmr::wire::frame_bytes(p)));
        }
    }

    /// Sends request `seq` again, with its original id (applied at most
    /// once), if it is still outstanding.
    fn resend(&mut self, out: &ConnOutbox, seq: u64, now_ns: u64) {
        let Some(p) = self.pending.get_mut(seq) else {
            return;
        };
        p.sent_ns = now_ns;
        p.cmd.acked_below = 0;
        let p = Propose { cmd: p.cmd.clone() };
        self.send(out, &p, now_ns);
    }

    /// Sends the held requests that are due.
    fn release_due(&mut self, out: &ConnOutbox, now_ns: u64) {
        while self.outq.front().is_some_and(|(due, _)| *due <= now_ns) {
            if let Some((_, f)) = self.outq.pop_front() {
                out.push_raw(&f);
            }
        }
    }

    /// When the next held message is due.
    fn next_held_ns(&self) -> Option<u64> {
        let a = self.outq.front().map(|x| x.0);
        let b = self.inq.front().map(|x| x.0);
        a.into_iter().chain(b).min()
    }

    /// Lowest sequence number still outstanding (all below are answered).
    fn acked_below(&self) -> u64 {
        self.pending.first().unwrap_or(self.next_seq)
    }

    fn done(&self, spec: &Spec, t: u64, end_ns: u64) -> bool {
        self.pending.is_empty() && self.pacer.spent(spec, t, end_ns)
    }

    fn issue(&mut self, out: &ConnOutbox, invoke_ns: u64, now_ns: u64) {
        let mut cmd = self.gen.next_command(self.id, self.next_seq);
        cmd.acked_below = self.acked_below();
        self.next_seq += 1;
        self.send(out, &Propose { cmd: cmd.clone() }, now_ns);
        self.pending.insert(
            cmd.seq,
            Pending {
                cmd,
                invoke_ns,
                sent_ns: now_ns,
            },
        );
    }

    fn finish(
        &mut self,
        seq: u64,
        now_ns: u64,
        reply: Option<&ProposeReply>,
        outcome: Outcome,
    ) -> bool {
        let Some(p) = self.pending.remove(seq) else {
            self.stats.duplicates += 1;
            return false;
        };
        match outcome {
            Outcome::Ok => self
                .stats
                .record_ok(now_ns, now_ns.saturating_sub(p.invoke_ns)),
            Outcome::Fail => self.stats.record_failed(now_ns),
            Outcome::Unknown => self.stats.record_timeout(now_ns),
        }
        if let Some(h) = &mut self.history {
            let end = reply.map(|r| (now_ns, &r.outcome));
            h.push(Record::of(&p.cmd, p.invoke_ns, end, outcome));
        }
        true
    }
}

/// Runs the load of `spec` against the group (or sharded deployment) reached
/// through `route`.
pub async fn run(
    spec: &Spec,
    route: Arc<Route>,
    history: bool,
    progress: Arc<Progress>,
) -> anyhow::Result<RunOutput> {
    anyhow::ensure!(spec.clients > 0, "at least one client is needed");
    anyhow::ensure!(spec.fanout > 0, "a request needs at least one operation");
    spec.mix.validate()?;
    if spec.fanout > 1 || route.shards() > 1 || spec.multi_dispatch {
        return crate::multi::run(spec, route, history, progress).await;
    }
    let start = Instant::now();
    let (from, to) = spec.window_ns();
    let mut tasks = Vec::new();
    // Client ids are fresh for every run (the seed fixes the operations, not
    // the ids): a second run against the same replicas with reused ids and
    // sequence numbers would get the first run's remembered results.
    let run_nonce: u64 = rand::random();
    for i in 0..spec.clients {
        let c = Client {
            id: client_id(run_nonce, i),
            next_seq: 1,
            gen: Generator::new(&spec.mix, spec.seed, i as u64, spec.clients),
            pending: Default::default(),
            stats: ClientStats::new(from, to),
            history: history.then(Vec::new),
            pacer: Pacer::new(spec, i)?,
            index: i,
            shift: 0,
            delay_ns: 0,
            outq: Default::default(),
            inq: Default::default(),
        };
        let (spec, route, progress) = (spec.clone(), route.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            drive(c, &spec, &route, &progress, start).await
        }));
    }
    RunOutput::gather(tasks, start, |c| (c.stats, c.history)).await
}

/// The session id of client `i` of a run.
pub(crate) fn client_id(run_nonce: u64, i: usize) -> u64 {
    (run_nonce ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1
}

/// Arrivals of an open-loop client.
pub(crate) type Arrivals = Option<(SmallRng, Exp<f64>)>;

/// When a client starts its requests, whatever the driver: the next
/// open-loop arrival and its process, the requests of a flood left to start.
pub(crate) struct Pacer {
    next_due_ns: u64,
    arrivals: Arrivals,
    left: u64,
    /// Open loop: most requests in flight before arrivals wait.
    cap: usize,
    /// Open loop: arrivals that waited longer than this are shed (0: none).
    max_wait_ns: u64,
    /// Arrivals shed since [`Pacer::take_shed`] last looked.
    shed: u64,
}

impl Pacer {
    /// The pace of client `i` of `spec`.
    pub(crate) fn new(spec: &Spec, i: usize) -> anyhow::Result<Pacer> {
        let (next_due_ns, arrivals, left) = match spec.mode {
            Mode::Open {
                rate,
                max_in_flight,
                ..
            } => {
                anyhow::ensure!(rate > 0.0, "the open-loop rate must be positive");
                anyhow::ensure!(max_in_flight > 0, "--max-in-flight must be at least 1");
                let per_client = rate / spec.clients as f64;
                let mut rng = SmallRng::seed_from_u64(spec.seed ^ (i as u64) << 32);
                let exp =
                    Exp::new(per_client / 1e9).map_err(|e| anyhow::anyhow!("bad rate: {e}"))?;
                let first = exp.sample(&mut rng) as u64;
                (first, Some((rng, exp)), 0)
            }
            Mode::Flood { total } => {
                let left = total / spec.clients as u64
                    + u64::from((i as u64) < total % spec.clients as u64);
                (0, None, left)
            }
            Mode::Closed { .. } => (0, None, 0),
        };
        let (cap, max_wait_ns) = match spec.mode {
            Mode::Open {
                max_in_flight,
                max_wait_ms,
                ..
            } => {
                // Past the operation timeout an arrival is given up on
                // anyway: sending it then only makes work nobody awaits.
                let wait = match max_wait_ms {
                    0 => 0,
                    w => w.min(spec.op_timeout_ms.max(1)),
                };
                (max_in_flight, wait.saturating_mul(1_000_000))
            }
            _ => (usize::MAX, 0),
        };
        Ok(Pacer {
            next_due_ns,
            arrivals,
            left,
            cap,
            max_wait_ns,
            shed: 0,
        })
    }

    /// The (intended) start time of the next request to start now, with
    /// `in_flight` requests outstanding: a due open-loop arrival (latency counts
    /// from it, so queueing cannot hide), a flood refill (bounded), a free
    /// slot of the closed-loop window; none when nothing is due. Open-loop
    /// arrivals that waited for room longer than the mode's `max_wait_ms`
    /// are skipped and counted (see [`Pacer::take_shed`]).
    pub(crate) fn next(
        &mut self,
        spec: &Spec,
        in_flight: usize,
        t: u64,
        end_ns: u64,
    ) -> Option<u64> {
        match spec.mode {
            Mode::Open { .. } => loop {
                if self.next_due_ns > t || self.next_due_ns >= end_ns || in_flight >= self.cap {
                    return None;
                }
                let due = self.next_due_ns;
                let (rng, exp) = self.arrivals.as_mut()?;
                self.next_due_ns += exp.sample(rng).max(1.0) as u64;
                if self.max_wait_ns > 0 && t - due > self.max_wait_ns {
                    self.shed += 1;
                    continue;
                }
                return Some(due);
            },
            Mode::Flood { .. } => (self.left > 0 && in_flight < FLOOD_WINDOW).then(|| {
                self.left -= 1;
                t
            }),
            Mode::Closed { window } => (in_flight < window && t < end_ns).then_some(t),
        }
    }

    /// How many open-loop arrivals were shed since the last call.
    pub(crate) fn take_shed(&mut self) -> u64 {
        std::mem::take(&mut self.shed)
    }

    /// Whether the mode wants nothing more started (a flood that is spent;
    /// other modes end with their duration).
    pub(crate) fn spent(&self, spec: &Spec, t: u64, end_ns: u64) -> bool {
        match spec.mode {
            Mode::Flood { .. } => self.left == 0,
            _ => t >= end_ns,
        }
    }

    /// When the next open-loop arrival is due (none in other modes, past
    /// the end, or while `in_flight` fills the client's window: a reply
    /// wakes the client then).
    pub(crate) fn open_due(&self, spec: &Spec, in_flight: usize, end_ns: u64) -> Option<u64> {
        match spec.mode {
            Mode::Open { .. } if self.next_due_ns < end_ns && in_flight < self.cap => {
                Some(self.next_due_ns)
            }
            _ => None,
        }
    }
}

/// How long the end of a run waits for outstanding answers.
pub(crate) const DRAIN: Duration = Duration::from_secs(2);

async fn drive(
    mut c: Client,
    spec: &Spec,
    route: &Route,
    progress: &Progress,
    start: Instant,
) -> anyhow::Result<Client> {
    let now = || start.elapsed().as_nanos() as u64;
    let end_ns = match spec.mode {
        Mode::Flood { .. } => u64::MAX,
        _ => (spec.duration_s * 1e9) as u64,
    };
    let attempt_ns = spec.attempt_timeout_ms * 1_000_000;
    let op_ns = spec.op_timeout_ms * 1_000_000;
    'connect: loop {
        if progress.stop.load(Ordering::Relaxed) || c.done(spec, now(), end_ns) {
            break;
        }
        let home = (spec.spread && !route.is_empty()).then(|| {
            let n = route.len();
            let own = spec
                .wan
                .as_ref()
                .map_or(c.index % n, |w| w.nearest(c.index, n));
            (own + c.shift) % n
        });
        let target = match home {
            Some(h) => Some(h),
            None => route.target().await,
        };
        let Some(target) = target else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            expire(&mut c, now(), op_ns, progress);
            continue;
        };
        let Some(addr) = route.addr(target) else {
            continue;
        };
        let stream =
            match tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(&addr)).await
            {
                Ok(Ok(s)) => s,
                _ => {
                    if spec.spread {
                        c.shift += 1;
                    }
                    route.redirect(target, None);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    expire(&mut c, now(), op_ns, progress);
                    continue;
                }
            };
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let out = Arc::new(ConnOutbox::new(true, 64 << 20));
        let o = out.clone();
        let writer = tokio::spawn(async move { o.run_writer(&mut wr).await });
        let t = now();
        c.delay_ns = spec.wan.as_ref().map_or(0, |w| w.delay_ns(c.index, target));
        c.outq.clear(); // meant for the old connection; everything pending is resent below
                        // Everything still outstanding is resent with its original id: applied at most once.
        for seq in c.pending.keys() {
            c.resend(&out, seq, t);
        }
        let mut heard = Heard::opened(t);
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason: Option<Option<u8>> = 'events: loop {
            let t = now();
            c.release_due(&out, t);
            while c.inq.front().is_some_and(|(due, _)| *due <= t) {
                let Some((_, r)) = c.inq.pop_front() else {
                    break;
                };
                if let Some(why) = on_reply(&mut c, r, spec, progress, t, end_ns) {
                    break 'events why;
                }
            }
            feed(&mut c, spec, &out, now(), end_ns, &progress.stop);
            let open_due = c.pacer.open_due(spec, c.pending.len(), end_ns);
            let due = open_due
                .into_iter()
                .chain(c.next_held_ns())
                .min()
                .map(|ns| start + Duration::from_nanos(ns));
            let sleep = async {
                match due {
                    Some(d) => precise_sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                f = read_frame(&mut rd, &mut buf, DEFAULT_MAX_FRAME) => {
                    let (code, body) = match f {
                        Ok(Some(f)) => f,
                        _ => break Some(None), // connection lost
                    };
                    if code != codes::PROPOSE_REPLY {
                        continue;
                    }
                    let Ok(r) = decode_body::<ProposeReply>(body) else { break Some(None) };
                    heard.heard_ns = now();
                    if c.delay_ns > 0 {
                        c.inq.push_back((now() + c.delay_ns, r)); // still travelling
                    } else if let Some(why) = on_reply(&mut c, r, spec, progress, now(), end_ns) {
                        break why;
                    }
                }
                _ = sleep => {}
                _ = tick.tick() => {
                    let t = now();
                    expire(&mut c, t, op_ns, progress);
                    let oldest = c.acked_below();
                    match heard.stall(c.pending.get(oldest).map(|p| p.sent_ns), t, attempt_ns) {
                        Stall::Wait => {}
                        Stall::Resend => c.resend(&out, oldest, t),
                        // Unanswered and silent: try the (possibly new) leader.
                        Stall::Reconnect => break Some(None),
                    }
                    if progress.stop.load(Ordering::Relaxed) || c.done(spec, t, end_ns) {
                        break None;
                    }
                    if t >= end_ns.saturating_add(DRAIN.as_nanos() as u64) {
                        for seq in c.pending.keys() {
                            c.finish(seq, t, None, Outcome::Unknown);
                        }
                        break None;
                    }
                }
            }
        };
        out.close();
        let _ = writer.await;
        match reason {
            None => break 'connect,
            Some(_) if spec.spread => c.shift += 1,
            Some(hint) => {
                route.redirect(target, hint);
                if hint.is_none() {
                    let _ = route.refresh().await;
                }
            }
        }
    }
    let t = now();
    for seq in c.pending.keys() {
        c.finish(seq, t, None, Outcome::Unknown);
    }
    Ok(c)
}

/// Acts on one reply; `Some(reason)` ends the connection (`None` inside: the
/// run is over; a hint: reroute).
fn on_reply(
    c: &mut Client,
    r: ProposeReply,
    spec: &Spec,
    progress: &Progress,
    t: u64,
    end_ns: u64,
) -> Option<Option<Option<u8>>> {
    match r.next() {
        Next::Done => {
            if c.finish(r.seq, t, Some(&r), Outcome::Ok) {
                progress.done.fetch_add(1, Ordering::Relaxed);
            }
            if c.done(spec, t, end_ns) {
                return Some(None);
            }
        }
        Next::Redirect { hint, .. } => return Some(Some(hint)),
        Next::NotApplied => {
            c.finish(r.seq, t, None, Outcome::Fail);
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        // The driver never causes this.
        Next::Unknown => {
            c.finish(r.seq, t, None, Outcome::Unknown);
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    None
}

/// Issues what the mode wants issued now: due open-loop arrivals, flood refills.
fn feed(c: &mut Client, spec: &Spec, out: &ConnOutbox, t: u64, end_ns: u64, stop: &AtomicBool) {
    if stop.load(Ordering::Relaxed) {
        return;
    }
    while let Some(at) = c.pacer.next(spec, c.pending.len(), t, end_ns) {
        c.issue(out, at, t);
    }
    c.stats.record_shed(t, c.pacer.take_shed());
}

/// Most requests one flood client keeps in flight.
pub(crate) const FLOOD_WINDOW: usize = 4096;

/// Most requests one open-loop client keeps in flight by default
/// (`--max-in-flight`). Arrivals due while it
/// is full wait (nothing is built for them) and go out as replies make room,
/// still timed from when they were due, so queueing shows in the latency.
/// Without it a load above capacity made the generator hold every request
/// it had started (14 GB after three minutes at 150,000 requests/s offered
/// to MDLin) and resend all of them on every reconnection.
pub const OPEN_WINDOW: usize = 16_384;

/// Longest an open-loop arrival waits for room in its client's window by
/// default (`--max-wait-ms`) before it is shed: never sent, and counted as
/// shed. Without it, a load above capacity left the client with a backlog of
/// arrivals that only grew, each sent later than the one before: once they
/// were sent older than the operation timeout, every one was given up on
/// soon after it went out, and the replicas spent all their time on answers
/// nobody waited for (MDLin at 150,000 requests/s offered: answers fell to
/// none after the first minute while the leader stayed busy). Shedding keeps
/// what is sent young enough to be answered, so the run measures what the
/// replicas can serve, and the shed count what they could not.
pub const OPEN_MAX_WAIT_MS: u64 = 2_000;

/// Gives up on requests older than the operation timeout. Requests are issued
/// in sequence order, so only the oldest few need looking at.
fn expire(c: &mut Client, t: u64, op_ns: u64, progress: &Progress) {
    loop {
        let low = c.acked_below();
        match c.pending.get(low) {
            Some(p) if t.saturating_sub(p.invoke_ns) > op_ns => {
                c.finish(low, t, None, Outcome::Unknown);
                progress.errors.fetch_add(1, Ordering::Relaxed);
            }
            _ => return,
        }
    }
}

/// Waits until `t` to within tens of microseconds. Tokio's timer rounds up to
/// the next millisecond, which would add up to a millisecond to every
/// emulated client leg (`--client-delay`, `--wan`) and so favour protocols
/// with fewer client round trips; the coarse timer covers all but the last
/// two milliseconds and a blocking sleep the rest.
pub(crate) async fn precise_sleep_until(t: Instant) {
    let margin = Duration::from_millis(2);
    if t > Instant::now() + margin {
        tokio::time::sleep_until((t - margin).into()).await;
    }
    let left = t.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(left)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open-loop client whose window is full starts nothing and asks to
    /// be woken by nothing but a reply; arrivals due meanwhile go out once
    /// there is room, each still timed from when it was due.
    #[test]
    fn an_open_loop_client_waits_while_its_window_is_full() {
        let spec = Spec {
            duration_s: 10.0,
            ..Spec::sample(Mode::Open {
                rate: 1e6,
                max_in_flight: 64,
                max_wait_ms: 0,
            })
        };
        let end = 10_000_000_000;
        let mut p = Pacer::new(&spec, 0).expect("an open-loop pace");
        // A millisecond of arrivals at a million a second: about a thousand due.
        let t = 1_000_000;
        assert!(
            p.next(&spec, 64, t, end).is_none(),
            "a full window starts nothing"
        );
        assert!(p.open_due(&spec, 64, end).is_none(), "nor sets a timer");
        let mut started = Vec::new();
        while let Some(at) = p.next(&spec, 63, t, end) {
            started.push(at);
        }
        assert!(
            started.len() > 500,
            "the arrivals held back all go out: {}",
            started.len()
        );
        assert!(started.windows(2).all(|w| w[0] <= w[1]) && started[0] < t / 2);
        assert!(p.open_due(&spec, 0, end).is_some_and(|d| d > t));
    }

    /// Arrivals that waited for room longer than `max_wait_ms` are shed
    /// (never started, counted once), and the young ones still go out, each
    /// timed from when it was due.
    #[test]
    fn an_open_loop_client_sheds_arrivals_that_waited_too_long() {
        let spec = Spec {
            duration_s: 10.0,
            ..Spec::sample(Mode::Open {
                rate: 100_000.0,
                max_in_flight: 64,
                max_wait_ms: 100,
            })
        };
        let end = 10_000_000_000;
        let mut p = Pacer::new(&spec, 0).expect("an open-loop pace");
        // The window stayed full for a second: about 100,000 arrivals due.
        let t = 1_000_000_000;
        let mut started = Vec::new();
        while let Some(at) = p.next(&spec, 0, t, end) {
            started.push(at);
        }
        let shed = p.take_shed();
        assert!(
            started.iter().all(|at| t - at <= 100_000_000),
            "nothing older than the wait bound is started"
        );
        assert!(
            (8_000..12_000).contains(&started.len()),
            "the last 100 ms of arrivals go out: {}",
            started.len()
        );
        assert!(
            (85_000..95_000).contains(&shed),
            "the first 900 ms of arrivals are shed: {shed}"
        );
        assert_eq!(p.take_shed(), 0, "each shed arrival is counted once");
        // An operation timeout below the bound lowers it: an arrival older
        // than that is given up on anyway.
        let short = Spec {
            op_timeout_ms: 20,
            ..spec
        };
        let mut p = Pacer::new(&short, 0).expect("an open-loop pace");
        let mut oldest = 0;
        while let Some(at) = p.next(&short, 0, t, end) {
            oldest = oldest.max(t - at);
        }
        assert!(oldest <= 20_000_000, "sent {oldest} ns after it was due");
    }
}
