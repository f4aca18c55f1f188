//! The load driver for sharded deployments and for requests of several
//! operations (`--fanout F`).
//!
//! Each client is one task with one connection per shard it has used, opened
//! to that shard's leader (or, with `spread`, to its own replica of the
//! shard). A reader task per connection hands replies to the client task over
//! a channel. Each operation draws its key and type from the workload and
//! goes to the shard that owns the key ([`genericsmr::shard::shard_of`]).
//!
//! An application request is `fanout` operations issued one at a time:
//! operation i+1 is sent when operation i is answered. The mode's window,
//! arrival rate and flood total count requests. A request whose operation
//! fails or is given up on ends there (its later operations are not sent) and
//! counts as failed or timed out. Operation latency runs from an operation's
//! send to its answer (for a request's first operation in the open loop, from
//! the intended send time); request latency from the request's (intended)
//! start to its last operation's answer.
//!
//! With `multi_dispatch` (MDLin), a request's operations are issued at once,
//! chained: operation i names operation i-1 (and its shard) as predecessor,
//! goes to its shard's leader as an `MdlPropose` with the client's next
//! per-shard number, and a `CoordReq` goes to the predecessor's shard leader.
//! Answers are delivered in issue order: an operation's return time in the
//! history is the latest answer among it and the operations before it, and
//! the request ends when every operation is answered.
//!
//! Everything about one shard's connection works as in [`crate::driver`]:
//! an unanswered operation is resent to the shard's (possibly new) leader
//! with its original (client id, seq) after the attempt timeout, a refusal
//! moves to the leader the replica names, and an operation is given up on
//! after the operation timeout.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use genericsmr::command::Command;
use genericsmr::messages::{codes, Next, Propose, ProposeReply};
use genericsmr::transport::{read_frame, ConnOutbox};
use genericsmr::wire::{decode_body, DEFAULT_MAX_FRAME};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use mdlin::messages::{CoordReq, MdlPropose, OpId, Pred};

use crate::driver::{client_id, Mode, Pacer, Progress, RunOutput, Spec, DRAIN};
use crate::history::{Outcome, Record};
use crate::route::Route;
use crate::stall::{Heard, Stall};
use crate::stats::ClientStats;
use crate::workload::Generator;

/// One operation in flight.
struct Op {
    cmd: Command,
    shard: usize,
    /// Multi-dispatch: the per-shard admission number and the predecessor (seq, shard).
    shard_seq: u64,
    pred: Option<(u64, usize)>,
    /// The request it belongs to.
    request: u64,
    /// When it was issued (latency and history count from here).
    invoke_ns: u64,
    /// When it was last sent.
    sent_ns: u64,
}

/// One application request in progress.
struct Request {
    invoke_ns: u64,
    /// Operations still to issue after the one in flight.
    left: usize,
    /// Multi-dispatch: operations not answered yet.
    pending: usize,
    /// Multi-dispatch: answered operations, delivered when all are in.
    done: Vec<Answered>,
}

/// An answered operation of a multi-dispatch request.
struct Answered {
    op: Op,
    at_ns: u64,
    outcome: Outcome,
    result: genericsmr::command::Outcome,
}

/// A connection to one shard's replica.
struct ShardConn {
    out: Arc<ConnOutbox>,
    target: usize,
    epoch: u64,
    delay_ns: u64,
    reader: tokio::task::JoinHandle<()>,
    /// When it opened, last brought a reply and last resent a request
    /// alone (see [`crate::stall`]).
    heard: Heard,
}

impl ShardConn {
    fn close(&self) {
        self.out.close();
        self.reader.abort();
    }
}

/// What the reader tasks report.
enum Event {
    Reply {
        shard: usize,
        epoch: u64,
        reply: ProposeReply,
    },
    Lost {
        shard: usize,
        epoch: u64,
    },
}

struct Client {
    id: u64,
    index: usize,
    fanout: usize,
    multi: bool,
    /// Multi-dispatch: the next admission number per shard.
    shard_seqs: Vec<u64>,
    next_seq: u64,
    low: u64,
    gen: Generator,
    ops: HashMap<u64, Op>,
    requests: HashMap<u64, Request>,
    next_request: u64,
    stats: ClientStats,
    history: Option<Vec<Record>>,
    pacer: Pacer,
    conns: Vec<Option<ShardConn>>,
    /// Per shard: operations outstanding.
    outstanding: Vec<usize>,
    /// Per shard: not before this time is a connection tried again.
    retry_at: Vec<u64>,
    /// Per shard, with `spread`: how many replicas past its own the client moved on.
    shift: Vec<usize>,
    /// Per shard: requests held for the emulated delay (due, epoch, frame).
    outq: Vec<VecDeque<(u64, u64, Bytes)>>,
    /// Per shard: replies held for the emulated delay (due, reply).
    inq: Vec<VecDeque<(u64, ProposeReply)>>,
    epochs: u64,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
}

/// Runs the load of `spec` with one connection per shard per client.
pub(crate) async fn run(
    spec: &Spec,
    route: Arc<Route>,
    history: bool,
    progress: Arc<Progress>,
) -> anyhow::Result<RunOutput> {
    let start = Instant::now();
    let (from, to) = spec.window_ns();
    let shards = route.shards();
    let run_nonce: u64 = rand::random();
    let mut tasks = Vec::new();
    for i in 0..spec.clients {
        let mut stats = ClientStats::new(from, to);
        if spec.fanout > 1 {
            stats = stats.with_op_histogram();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let c = Client {
            id: client_id(run_nonce, i),
            index: i,
            fanout: spec.fanout.max(1),
            multi: spec.multi_dispatch,
            shard_seqs: vec![0; shards],
            next_seq: 1,
            low: 1,
            gen: Generator::new(&spec.mix, spec.seed, i as u64, spec.clients),
            ops: HashMap::new(),
            requests: HashMap::new(),
            next_request: 0,
            stats,
            history: history.then(Vec::new),
            pacer: Pacer::new(spec, i)?,
            conns: (0..shards).map(|_| None).collect(),
            outstanding: vec![0; shards],
            retry_at: vec![0; shards],
            shift: vec![0; shards],
            outq: (0..shards).map(|_| VecDeque::new()).collect(),
            inq: (0..shards).map(|_| VecDeque::new()).collect(),
            epochs: 0,
            tx,
            rx,
        };
        let (spec, route, progress) = (spec.clone(), route.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            drive(c, &spec, &route, &progress, start).await
        }));
    }
    RunOutput::gather(tasks, start, |c| (c.stats, c.history)).await
}

impl Client {
    /// Lowest sequence number still outstanding (all below are answered).
    fn acked_below(&mut self) -> u64 {
        while self.low < self.next_seq && !self.ops.contains_key(&self.low) {
            self.low += 1;
        }
        self.low
    }

    fn done(&self, spec: &Spec, t: u64, end_ns: u64) -> bool {
        self.requests.is_empty() && self.pacer.spent(spec, t, end_ns)
    }

    /// Sends a frame to shard `s` now, or after the emulated delay.
    fn send(&mut self, s: usize, frame: Bytes, now_ns: u64) {
        let Some(c) = &self.conns[s] else { return };
        if c.delay_ns == 0 {
            c.out.push_raw(&frame);
        } else {
            self.outq[s].push_back((now_ns + c.delay_ns, c.epoch, frame));
        }
    }

    /// Sends the held requests that are due (to the connection they were meant for).
    fn release_due(&mut self, now_ns: u64) {
        for s in 0..self.conns.len() {
            while self.outq[s]
                .front()
                .is_some_and(|(due, _, _)| *due <= now_ns)
            {
                let Some((_, epoch, f)) = self.outq[s].pop_front() else {
                    break;
                };
                if let Some(c) = self.conns[s].as_ref().filter(|c| c.epoch == epoch) {
                    c.out.push_raw(&f);
                }
            }
        }
    }

    /// When the next held message is due.
    fn next_held_ns(&self) -> Option<u64> {
        let out = self.outq.iter().filter_map(|q| q.front().map(|x| x.0));
        let inq = self.inq.iter().filter_map(|q| q.front().map(|x| x.0));
        out.chain(inq).min()
    }

    /// Starts a request at `invoke_ns`: its first operation goes out now, or
    /// with multi-dispatch all of them, chained.
    fn start_request(&mut self, route: &Route, invoke_ns: u64, now_ns: u64) {
        let r = self.next_request;
        self.next_request += 1;
        self.gen.begin_request();
        let (left, pending) = if self.multi {
            (0, self.fanout)
        } else {
            (self.fanout - 1, 1)
        };
        self.requests.insert(
            r,
            Request {
                invoke_ns,
                left,
                pending,
                done: Vec::new(),
            },
        );
        let mut pred = None;
        for _ in 0..pending {
            pred = Some(self.issue(route, r, invoke_ns, now_ns, pred));
        }
    }

    /// Issues an operation of request `request` (chained to `pred` with
    /// multi-dispatch); returns its (seq, shard).
    fn issue(
        &mut self,
        route: &Route,
        request: u64,
        invoke_ns: u64,
        now_ns: u64,
        pred: Option<(u64, usize)>,
    ) -> (u64, usize) {
        let mut cmd = self.gen.next_command(self.id, self.next_seq);
        cmd.acked_below = self.acked_below();
        self.next_seq += 1;
        let shard = route.shard_of(&cmd.key);
        self.outstanding[shard] += 1;
        let shard_seq = if self.multi {
            self.shard_seqs[shard] += 1;
            self.shard_seqs[shard] - 1
        } else {
            0
        };
        let op = Op {
            cmd,
            shard,
            shard_seq,
            pred,
            request,
            invoke_ns,
            sent_ns: now_ns,
        };
        self.send_op(&op, now_ns, None);
        let id = (op.cmd.seq, shard);
        self.ops.insert(op.cmd.seq, op);
        id
    }

    /// Sends an operation (and with multi-dispatch its coordination request)
    /// over the connections that are open; `only` limits it to one shard's.
    fn send_op(&mut self, op: &Op, now_ns: u64, only: Option<usize>) {
        let to = |s: usize| only.is_none_or(|o| o == s);
        if !self.multi {
            if to(op.shard) && self.conns[op.shard].is_some() {
                let f = genericsmr::wire::frame_bytes(&Propose {
                    cmd: op.cmd.clone(),
                });
                self.send(op.shard, f, now_ns);
            }
            return;
        }
        if to(op.shard) && self.conns[op.shard].is_some() {
            let f = genericsmr::wire::frame_bytes(&MdlPropose {
                cmd: op.cmd.clone(),
                shard_seq: op.shard_seq,
                pred: op.pred.map(|(seq, shard)| Pred {
                    seq,
                    shard: shard as u8,
                }),
            });
            self.send(op.shard, f, now_ns);
        }
        if let Some((seq, ps)) = op.pred {
            if to(ps) && self.conns[ps].is_some() {
                let f = genericsmr::wire::frame_bytes(&CoordReq {
                    pred: OpId {
                        client: self.id,
                        seq,
                    },
                    succ: OpId::of(&op.cmd),
                    succ_shard: op.shard as u8,
                });
                self.send(ps, f, now_ns);
            }
        }
    }

    /// Ends operation `seq`; continues or ends its request. Returns false for
    /// an operation no longer outstanding.
    fn finish(
        &mut self,
        route: &Route,
        seq: u64,
        now_ns: u64,
        reply: Option<&ProposeReply>,
        outcome: Outcome,
    ) -> bool {
        let Some(op) = self.ops.remove(&seq) else {
            self.stats.duplicates += 1;
            return false;
        };
        self.outstanding[op.shard] -= 1;
        match outcome {
            Outcome::Ok => self
                .stats
                .record_op_ok(now_ns, now_ns.saturating_sub(op.invoke_ns)),
            Outcome::Fail => self.stats.record_op_failed(now_ns),
            Outcome::Unknown => self.stats.record_op_timeout(now_ns),
        }
        if self.multi {
            let request = op.request;
            let Some(req) = self.requests.get_mut(&request) else {
                return true;
            };
            req.pending -= 1;
            req.done.push(Answered {
                op,
                at_ns: now_ns,
                outcome,
                result: reply.map(|r| r.outcome.clone()).unwrap_or_default(),
            });
            if req.pending == 0 {
                self.deliver(request);
            }
            return true;
        }
        if let Some(h) = &mut self.history {
            let end = reply.map(|r| (now_ns, &r.outcome));
            h.push(Record::of(&op.cmd, op.invoke_ns, end, outcome));
        }
        let Some(req) = self.requests.get_mut(&op.request) else {
            return true;
        };
        if outcome == Outcome::Ok && req.left > 0 {
            req.left -= 1;
            self.issue(route, op.request, now_ns, now_ns, None);
            return true;
        }
        let invoke = req.invoke_ns;
        self.requests.remove(&op.request);
        match outcome {
            Outcome::Ok => self
                .stats
                .record_request_ok(now_ns, now_ns.saturating_sub(invoke)),
            Outcome::Fail => self.stats.record_request_failed(now_ns),
            Outcome::Unknown => self.stats.record_request_timeout(now_ns),
        }
        true
    }

    /// Multi-dispatch: every operation of `request` is answered; deliver them
    /// in issue order and end the request.
    fn deliver(&mut self, request: u64) {
        let Some(mut req) = self.requests.remove(&request) else {
            return;
        };
        req.done.sort_by_key(|a| a.op.cmd.seq);
        // When the request ended: its last answer or give-up. A request
        // whose operations were all given up on has no delivery time, and
        // was once counted at time 0, outside every window: never.
        let ended = req.done.iter().map(|a| a.at_ns).max().unwrap_or(0);
        let mut delivered = 0;
        let mut end = Outcome::Ok;
        for a in &req.done {
            if a.outcome != Outcome::Unknown {
                delivered = delivered.max(a.at_ns);
            }
            end = match (end, a.outcome) {
                (Outcome::Unknown, _) | (_, Outcome::Unknown) => Outcome::Unknown,
                (Outcome::Fail, _) | (_, Outcome::Fail) => Outcome::Fail,
                _ => Outcome::Ok,
            };
            if let Some(h) = &mut self.history {
                let answered = (a.outcome != Outcome::Unknown).then_some((delivered, &a.result));
                let rec = Record::of(&a.op.cmd, a.op.invoke_ns, answered, a.outcome);
                h.push(rec.with_pred(a.op.pred.map(|(seq, _)| seq)));
            }
        }
        match end {
            Outcome::Ok => self
                .stats
                .record_request_ok(delivered, delivered.saturating_sub(req.invoke_ns)),
            Outcome::Fail => self.stats.record_request_failed(ended),
            Outcome::Unknown => self.stats.record_request_timeout(ended),
        }
    }

    /// Closes shard `s`'s connection (pending operations wait for the next one).
    fn drop_conn(&mut self, s: usize) -> Option<usize> {
        let c = self.conns[s].take()?;
        c.close();
        self.outq[s].clear();
        Some(c.target)
    }
}

/// The replica of shard `s` client `c` sends to now.
async fn target(c: &Client, s: usize, spec: &Spec, route: &Route) -> Option<usize> {
    if !spec.spread {
        return route.target_of(s).await;
    }
    let members = route.members(s);
    let n = members.len().max(1);
    let own = spec.wan.as_ref().map_or(members.start + c.index % n, |w| {
        w.nearest_in(c.index, members.clone())
    });
    Some(members.start + (own - members.start + c.shift[s]) % n)
}

/// Opens a connection to shard `s` and resends its pending operations.
async fn connect(c: &mut Client, s: usize, spec: &Spec, route: &Route, now_ns: u64) {
    let Some(target) = target(c, s, spec, route).await else {
        c.retry_at[s] = now_ns + 20_000_000;
        return;
    };
    let Some(addr) = route.addr(target) else {
        c.retry_at[s] = now_ns + 20_000_000;
        return;
    };
    let stream =
        match tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(&addr)).await {
            Ok(Ok(st)) => st,
            _ => {
                if spec.spread {
                    c.shift[s] += 1;
                }
                route.redirect(target, None);
                c.retry_at[s] = now_ns + 20_000_000;
                return;
            }
        };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let out = Arc::new(ConnOutbox::new(true, 64 << 20));
    let o = out.clone();
    tokio::spawn(async move { o.run_writer(&mut wr).await });
    c.epochs += 1;
    let epoch = c.epochs;
    let tx = c.tx.clone();
    let reader = tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        while let Ok(Some((code, body))) = read_frame(&mut rd, &mut buf, DEFAULT_MAX_FRAME).await {
            if code != codes::PROPOSE_REPLY {
                continue;
            }
            let Ok(reply) = decode_body::<ProposeReply>(body) else {
                break;
            };
            if tx
                .send(Event::Reply {
                    shard: s,
                    epoch,
                    reply,
                })
                .is_err()
            {
                return;
            }
        }
        let _ = tx.send(Event::Lost { shard: s, epoch });
    });
    c.conns[s] = Some(ShardConn {
        out,
        target,
        epoch,
        delay_ns: spec.wan.as_ref().map_or(0, |w| w.delay_ns(c.index, target)),
        reader,
        heard: Heard::opened(now_ns),
    });
    // Everything outstanding for the shard is resent with its original id
    // (applied at most once), with the coordination requests it serves.
    let mut seqs: Vec<u64> = c
        .ops
        .values()
        .filter(|op| op.shard == s || op.pred.is_some_and(|(_, ps)| ps == s))
        .map(|op| op.cmd.seq)
        .collect();
    seqs.sort_unstable();
    for seq in seqs {
        let Some(mut op) = c.ops.remove(&seq) else {
            continue;
        };
        if op.shard == s {
            op.sent_ns = now_ns;
            op.cmd.acked_below = 0;
        }
        c.send_op(&op, now_ns, Some(s));
        c.ops.insert(seq, op);
    }
}

/// Drops shard `s`'s connection and aims at `hint` (or asks the master anew).
async fn reroute(c: &mut Client, s: usize, hint: Option<u8>, spec: &Spec, route: &Route) {
    let Some(target) = c.drop_conn(s) else { return };
    if spec.spread {
        c.shift[s] += 1;
        return;
    }
    route.redirect(target, hint);
    if hint.is_none() {
        let _ = route.refresh().await;
    }
}

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
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let t = now();
        if progress.stop.load(Ordering::Relaxed) || c.done(spec, t, end_ns) {
            break;
        }
        if t >= end_ns.saturating_add(DRAIN.as_nanos() as u64) {
            let seqs: Vec<u64> = c.ops.keys().copied().collect();
            for seq in seqs {
                c.finish(route, seq, t, None, Outcome::Unknown);
            }
            break;
        }
        c.release_due(t);
        for s in 0..c.inq.len() {
            while c.inq[s].front().is_some_and(|(due, _)| *due <= t) {
                let Some((_, r)) = c.inq[s].pop_front() else {
                    break;
                };
                on_reply(&mut c, s, r, spec, route, progress, t).await;
            }
        }
        feed(&mut c, spec, route, now(), end_ns);
        // Shards with work and no connection get one.
        for s in 0..c.conns.len() {
            let t = now();
            if c.outstanding[s] > 0 && c.conns[s].is_none() && c.retry_at[s] <= t {
                connect(&mut c, s, spec, route, t).await;
            }
        }
        let open_due = c.pacer.open_due(spec, c.requests.len(), end_ns);
        let due = open_due
            .into_iter()
            .chain(c.next_held_ns())
            .min()
            .map(|ns| start + Duration::from_nanos(ns));
        let sleep = async {
            match due {
                Some(d) => crate::driver::precise_sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            ev = c.rx.recv() => match ev {
                Some(Event::Reply { shard, epoch, reply }) => {
                    let delay = c.conns[shard]
                        .as_ref()
                        .filter(|x| x.epoch == epoch)
                        .map_or(0, |x| x.delay_ns);
                    let current = c.conns[shard].as_ref().is_some_and(|x| x.epoch == epoch);
                    if let Some(x) = c.conns[shard].as_mut().filter(|x| x.epoch == epoch) {
                        x.heard.heard_ns = now();
                    }
                    let refusal = matches!(reply.next(), Next::Redirect { .. });
                    if refusal && !current {
                        // A refusal on a connection already given up: nothing to act on.
                    } else if delay > 0 {
                        c.inq[shard].push_back((now() + delay, reply)); // still travelling
                    } else {
                        on_reply(&mut c, shard, reply, spec, route, progress, now()).await;
                    }
                }
                Some(Event::Lost { shard, epoch })
                    if c.conns[shard].as_ref().is_some_and(|x| x.epoch == epoch) =>
                {
                    reroute(&mut c, shard, None, spec, route).await;
                }
                Some(Event::Lost { .. }) | None => {}
            },
            _ = sleep => {}
            _ = tick.tick() => {
                let t = now();
                expire(&mut c, route, t, op_ns, progress);
                // Per shard, the operation that has waited longest since it
                // was sent: resent alone while the connection still brings
                // replies, or the shard's (possibly new) leader tried once
                // the connection is silent too.
                let mut oldest: Vec<Option<(u64, u64)>> = vec![None; c.conns.len()];
                for op in c.ops.values() {
                    let o = &mut oldest[op.shard];
                    if o.is_none_or(|(sent, _)| op.sent_ns < sent) {
                        *o = Some((op.sent_ns, op.cmd.seq));
                    }
                }
                for (s, o) in oldest.into_iter().enumerate() {
                    let Some(conn) = c.conns[s].as_mut() else {
                        continue;
                    };
                    match conn.heard.stall(o.map(|(sent, _)| sent), t, attempt_ns) {
                        Stall::Wait => {}
                        Stall::Resend => {
                            if let Some(mut op) = o.and_then(|(_, seq)| c.ops.remove(&seq)) {
                                op.sent_ns = t;
                                op.cmd.acked_below = 0;
                                c.send_op(&op, t, None);
                                c.ops.insert(op.cmd.seq, op);
                            }
                        }
                        Stall::Reconnect => reroute(&mut c, s, None, spec, route).await,
                    }
                }
            }
        }
    }
    for s in 0..c.conns.len() {
        c.drop_conn(s);
    }
    let t = now();
    let seqs: Vec<u64> = c.ops.keys().copied().collect();
    for seq in seqs {
        c.finish(route, seq, t, None, Outcome::Unknown);
    }
    Ok(c)
}

/// Acts on one reply from shard `s`.
async fn on_reply(
    c: &mut Client,
    s: usize,
    r: ProposeReply,
    spec: &Spec,
    route: &Route,
    progress: &Progress,
    t: u64,
) {
    match r.next() {
        Next::Done => {
            if c.finish(route, r.seq, t, Some(&r), Outcome::Ok) {
                progress.done.fetch_add(1, Ordering::Relaxed);
            }
        }
        Next::Redirect { hint, .. } => {
            reroute(c, s, hint, spec, route).await;
        }
        // Refused outright, or failed (MDLin): certainly not applied.
        Next::NotApplied => {
            c.finish(route, r.seq, t, None, Outcome::Fail);
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        // Its outcome is no longer known (the driver never causes this).
        Next::Unknown => {
            c.finish(route, r.seq, t, None, Outcome::Unknown);
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts what the mode wants started now (see [`Pacer::next`]).
fn feed(c: &mut Client, spec: &Spec, route: &Route, t: u64, end_ns: u64) {
    while let Some(at) = c.pacer.next(spec, c.requests.len(), t, end_ns) {
        c.start_request(route, at, t);
    }
    c.stats.record_shed(t, c.pacer.take_shed());
}

/// Gives up on operations older than the operation timeout. Operations are
/// issued in sequence order, so only the oldest few need looking at.
fn expire(c: &mut Client, route: &Route, t: u64, op_ns: u64, progress: &Progress) {
    loop {
        let low = c.acked_below();
        match c.ops.get(&low) {
            Some(op) if t.saturating_sub(op.invoke_ns) > op_ns => {
                c.finish(route, low, t, None, Outcome::Unknown);
                progress.errors.fetch_add(1, Ordering::Relaxed);
            }
            _ => return,
        }
    }
}
