//! The multi-dispatch (MDL) client for MDLin deployments (`server --protocol mdlin`).
//!
//! An [`MdlClient`] lets one session keep many operations in flight, across
//! shards, without waiting for one before issuing the next, and still get
//! multi-dispatch linearizability: operations take effect in the order they
//! were issued (see `docs/mdlin.md`).
//!
//! - [`MdlClient::issue`] (and [`put`](MdlClient::put), [`get`](MdlClient::get),
//!   [`delete`](MdlClient::delete), [`cas`](MdlClient::cas)) returns at once
//!   with an [`MdlFuture`]. Issue order is call order. Each operation gets the
//!   session's next sequence number (its issue index), the next `shard_seq` of
//!   its key's shard (contiguous from 0 per shard), and as its predecessor
//!   (`pred`) the most recently issued operation that has not been delivered
//!   yet. It is sent as an `MdlPropose` to its shard's leader and, when it has
//!   a predecessor, a `CoordReq` goes to the *predecessor's* shard leader.
//! - Results are **delivered in issue order**: a future resolves only once
//!   every earlier-issued operation's future has resolved, with the outcome,
//!   [`ClientError::Failed`] (the operation never takes effect: a predecessor
//!   failed or its coordination timed out), or [`ClientError::Timeout`]
//!   (outcome unknown). An operation is delivered whether or not anyone polls
//!   its future, so dropping a future only discards its result.
//! - [`MdlClient::barrier`] waits until everything issued so far is
//!   delivered. Call it before anything the outside world can observe (a
//!   reply to a user, a message to another system). MDL promises only the
//!   *order* in which the operations take effect, not that an outstanding one
//!   has taken effect: until the operations in flight are delivered, any of
//!   them may still fail, and then every later one in its chain fails too.
//!   Acting on an outstanding operation's expected effect could show the world
//!   an order the system then does not honour.
//! - Retries: an operation not answered within the attempt timeout is sent
//!   again, with the same sequence number and `shard_seq` (and its
//!   `CoordReq`), to its shard's current leader as the master names it; a
//!   `NotLeader` or `Unavailable` reply reroutes within the shard. After the
//!   operation timeout it is delivered as [`ClientError::Timeout`]. Such an
//!   operation keeps its `shard_seq`, so the client sends it again ahead of
//!   later operations on its shard (leaders admit a client's operations in
//!   `shard_seq` order and would otherwise wait for it forever).
//!
//! Connections, leader discovery and rerouting are those of [`Client`]. The
//! single-dispatch [`Client`] works against MDLin servers unchanged: they take
//! its plain `Propose` as a chain head (one round, like Multi-Paxos). Do not
//! use a [`Client`] and an [`MdlClient`] with the same client id.
//!
//! ```no_run
//! # async fn demo() -> Result<(), client::ClientError> {
//! use client::{ClientConfig, MdlClient};
//!
//! let c = MdlClient::connect(ClientConfig::with_master("127.0.0.1:7087")).await?;
//! // Three operations in flight at once, possibly on three shards.
//! let a = c.put("alice", "10");
//! let b = c.put("bob", "20");
//! let r = c.get("alice");
//! a.await?;
//! b.await?;
//! assert_eq!(r.await?.value.as_deref(), Some(&b"10"[..]));
//! // Before telling anyone about it: every issued operation has taken effect.
//! c.barrier().await;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use genericsmr::command::{ClientId, Command, Outcome};
use genericsmr::messages::{Next, ProposeReply, ReplyStatus};
use mdlin::messages::{CoordReq, MdlPropose, OpId};
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::debug;

pub use mdlin::messages::Pred;

use crate::conn::Conn;
use crate::session::{Client, ClientConfig, ClientError};

/// At most this many operations given up on (timed out) are remembered; see
/// [`Chain::give_up`].
const MAX_GIVEN_UP: usize = 4096;

/// What [`MdlClient::issue`] assigned to an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issued {
    /// The session's issue index (the command's `seq`), from 1.
    pub seq: u64,
    /// The shard of the operation's key.
    pub shard: u8,
    /// The operation's number among this session's operations on `shard`,
    /// contiguous from 0.
    pub shard_seq: u64,
    /// The chain predecessor: the most recently issued operation that was not
    /// yet delivered when this one was issued (`None`: a chain head).
    pub pred: Option<Pred>,
}

/// What an operation's future yields.
type Delivery = Result<Outcome, ClientError>;

/// One issued operation that is not delivered yet.
struct Slot {
    tx: oneshot::Sender<Delivery>,
    /// Its result, once known (it waits here for earlier operations).
    result: Option<Delivery>,
}

/// The session's issue-order bookkeeping, without any I/O: numbering,
/// predecessors, and delivery in issue order.
struct Chain {
    /// The next issue index.
    next_seq: u64,
    /// The next `shard_seq` of each shard.
    shard_seqs: Vec<u64>,
    /// Every operation below this issue index has been delivered.
    delivered_below: u64,
    /// The most recently issued operation.
    last: Option<Pred>,
    /// The undelivered operations, from `delivered_below` on.
    slots: VecDeque<Slot>,
    /// Operations given up on that their shard's leader may not have admitted
    /// yet, by (shard, shard_seq): sent again ahead of later ones there.
    resend: BTreeMap<(u8, u64), MdlPropose>,
    /// Issue indexes of operations given up on (bounded): never acknowledged
    /// to the replicas, as [`Client`] does, since they may still be applied.
    given_up: BTreeMap<u64, (u8, u64)>,
}

impl Chain {
    fn new(shards: usize) -> Chain {
        Chain {
            next_seq: 1,
            shard_seqs: vec![0; shards],
            delivered_below: 1,
            last: None,
            slots: VecDeque::new(),
            resend: BTreeMap::new(),
            given_up: BTreeMap::new(),
        }
    }

    /// Numbers a new operation on `shard` and names its predecessor.
    fn issue(&mut self, shard: u8) -> (Issued, oneshot::Receiver<Delivery>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let counter = &mut self.shard_seqs[shard as usize];
        let shard_seq = *counter;
        *counter += 1;
        // Delivery follows issue order, so the undelivered operations are
        // exactly those from `delivered_below` on: the last one issued is the
        // most recent outstanding one, if it is outstanding at all.
        let pred = self.last.filter(|p| p.seq >= self.delivered_below);
        self.last = Some(Pred { seq, shard });
        let (tx, rx) = oneshot::channel();
        self.slots.push_back(Slot { tx, result: None });
        let issued = Issued {
            seq,
            shard,
            shard_seq,
            pred,
        };
        (issued, rx)
    }

    /// Records operation `seq`'s result and delivers every operation whose
    /// earlier operations are all delivered; returns the new `delivered_below`.
    fn complete(&mut self, seq: u64, result: Delivery) -> u64 {
        let slot = seq
            .checked_sub(self.delivered_below)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.slots.get_mut(i));
        if let Some(slot) = slot {
            slot.result.get_or_insert(result);
        }
        while self.slots.front().is_some_and(|s| s.result.is_some()) {
            if let Some(Slot {
                tx,
                result: Some(r),
            }) = self.slots.pop_front()
            {
                // A dropped future only discards its result.
                let _ = tx.send(r);
            }
            self.delivered_below += 1;
        }
        self.delivered_below
    }

    /// What the replicas may forget: every operation below this one was answered.
    fn acked_below(&self) -> u64 {
        self.given_up
            .keys()
            .next()
            .map_or(self.delivered_below, |g| (*g).min(self.delivered_below))
    }

    /// Operation `p` timed out: its leader may never have admitted it, and
    /// admits the session's later operations on that shard only after it, so
    /// it is sent again ahead of them until one of them is answered.
    fn give_up(&mut self, shard: u8, p: MdlPropose) {
        self.given_up.insert(p.cmd.seq, (shard, p.shard_seq));
        self.resend.insert((shard, p.shard_seq), p);
        while self.given_up.len() > MAX_GIVEN_UP {
            if let Some((_, key)) = self.given_up.pop_first() {
                self.resend.remove(&key);
            }
        }
    }

    /// `shard`'s leader answered the operation numbered `shard_seq` there, so
    /// it admitted every earlier one: none needs sending again.
    fn admitted(&mut self, shard: u8, shard_seq: u64) {
        let below: Vec<(u8, u64)> = self
            .resend
            .range((shard, 0)..(shard, shard_seq))
            .map(|(k, _)| *k)
            .collect();
        for k in below {
            self.resend.remove(&k);
        }
    }

    /// Operations given up on that must go to `shard` before `shard_seq`.
    fn resend_before(&self, shard: u8, shard_seq: u64) -> impl Iterator<Item = &MdlPropose> {
        self.resend
            .range((shard, 0)..(shard, shard_seq))
            .map(|(_, p)| p)
    }
}

/// Sends `p` on `conn`, preceded by the operations given up on that its
/// shard's leader must admit first; yields the reply.
fn send_propose(
    ch: &Chain,
    shard: u8,
    conn: &Conn,
    p: &MdlPropose,
) -> oneshot::Receiver<ProposeReply> {
    for g in ch.resend_before(shard, p.shard_seq) {
        conn.push(g);
    }
    conn.send_for(p.cmd.seq, p)
}

/// The eventual result of one operation issued by an [`MdlClient`]: resolves
/// in issue order (after every earlier operation's future), to the outcome,
/// [`ClientError::Failed`], or [`ClientError::Timeout`] (outcome unknown).
#[must_use = "the result of an operation can only be read through its future (it is delivered either way)"]
pub struct MdlFuture {
    issued: Issued,
    rx: oneshot::Receiver<Delivery>,
}

impl MdlFuture {
    /// The operation's issue index, shard, `shard_seq` and predecessor.
    pub fn issued(&self) -> Issued {
        self.issued
    }

    /// The operation's issue index (its command's `seq`).
    pub fn seq(&self) -> u64 {
        self.issued.seq
    }
}

impl Future for MdlFuture {
    type Output = Result<Outcome, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let seq = self.issued.seq;
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(ClientError::Protocol(format!(
                    "the client stopped (its Tokio runtime shut down) before operation {seq} was answered; it may or may not have taken effect"
                )))
            })
        })
    }
}

struct Inner {
    /// Connections, leader discovery and rerouting; its own numbering is unused.
    client: Client,
    /// Where the per-operation tasks run (the runtime `connect` ran on).
    rt: tokio::runtime::Handle,
    chain: Mutex<Chain>,
    /// `Chain::delivered_below`, for [`MdlClient::barrier`].
    delivered: watch::Sender<u64>,
}

/// A multi-dispatch session: many operations in flight at once, across
/// shards, taking effect and delivered in issue order. Cheap to clone; clones
/// share the session, its numbering and its issue order.
#[derive(Clone)]
pub struct MdlClient {
    inner: Arc<Inner>,
}

impl MdlClient {
    /// Creates a session: with a master, learns the shards and each shard's
    /// leader from it, as [`Client::connect`] does. Must run inside a Tokio
    /// runtime; the session's operations run on that runtime.
    pub async fn connect(cfg: ClientConfig) -> Result<MdlClient, ClientError> {
        let client = Client::connect(cfg).await?;
        if client.shards() > usize::from(u8::MAX) + 1 {
            return Err(ClientError::Protocol(format!(
                "the master reports {} shards; MDLin supports at most 256",
                client.shards()
            )));
        }
        let chain = Chain::new(client.shards());
        let (delivered, _) = watch::channel(chain.delivered_below);
        Ok(MdlClient {
            inner: Arc::new(Inner {
                client,
                rt: tokio::runtime::Handle::current(),
                chain: Mutex::new(chain),
                delivered,
            }),
        })
    }

    /// This session's client id.
    pub fn id(&self) -> ClientId {
        self.inner.client.id()
    }

    /// Number of shards of the deployment.
    pub fn shards(&self) -> usize {
        self.inner.client.shards()
    }

    /// The shard that owns `key`.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        self.inner.client.shard_of(key)
    }

    /// Issues a write of `value` to `key`.
    pub fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> MdlFuture {
        self.issue(Command::put(0, 0, key, value))
    }

    /// Issues a read of `key`; the value is the outcome's `value`.
    pub fn get(&self, key: impl Into<Bytes>) -> MdlFuture {
        self.issue(Command::get(0, 0, key))
    }

    /// Issues a removal of `key`.
    pub fn delete(&self, key: impl Into<Bytes>) -> MdlFuture {
        self.issue(Command::delete(0, 0, key))
    }

    /// Issues a compare-and-swap: `key` becomes `value` if it holds `expected`
    /// (`None`: absent); the outcome's `flag` says whether it swapped.
    pub fn cas(
        &self,
        key: impl Into<Bytes>,
        expected: Option<Bytes>,
        value: impl Into<Bytes>,
    ) -> MdlFuture {
        self.issue(Command::cas(0, 0, key, expected, value))
    }

    /// Issues `cmd` (its client id, `seq` and `acked_below` are replaced) and
    /// sends it at once; returns its future. It takes effect after every
    /// operation issued before it, if those take effect.
    pub fn issue(&self, mut cmd: Command) -> MdlFuture {
        let inner = &self.inner;
        let shard = u8::try_from(self.shard_of(&cmd.key)).unwrap_or(u8::MAX);
        let deadline = Instant::now() + inner.client.config().timeout;
        cmd.client = self.id();
        let mut ch = inner.chain.lock();
        let (issued, rx) = ch.issue(shard);
        cmd.seq = issued.seq;
        cmd.acked_below = ch.acked_below().min(cmd.seq);
        let p = MdlPropose {
            cmd,
            shard_seq: issued.shard_seq,
            pred: issued.pred,
        };
        // On warm connections, send now, under the lock: operations then
        // reach each leader in issue order and need no buffering there.
        let first = inner.client.conn_now(shard.into()).map(|c| {
            let rx = send_propose(&ch, shard, &c, &p);
            (c, rx)
        });
        let coord_sent = match issued.pred {
            None => true,
            Some(pred) => inner
                .client
                .conn_now(pred.shard.into())
                .is_some_and(|c| c.push(&coord_req(&p, pred, shard))),
        };
        drop(ch);
        let task = inner.clone();
        inner.rt.spawn(async move {
            let seq = p.cmd.seq;
            let mut p = p;
            let result = task.run(&mut p, shard, first, !coord_sent, deadline).await;
            let mut ch = task.chain.lock();
            match &result {
                Err(ClientError::Timeout { .. }) => ch.give_up(shard, p),
                _ => ch.admitted(shard, p.shard_seq),
            }
            let d = ch.complete(seq, result);
            task.delivered.send_replace(d);
        });
        MdlFuture { issued, rx }
    }

    /// Waits until every operation issued before this call is delivered
    /// (answered, failed or timed out, in issue order). Call it before any
    /// externally visible action: MDL guarantees the order in which operations
    /// take effect, but an outstanding operation may still fail, and with it
    /// every later operation of its chain.
    pub async fn barrier(&self) {
        let target = self.inner.chain.lock().next_seq;
        let mut rx = self.inner.delivered.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = rx.wait_for(|d| *d >= target).await;
    }

    /// How many issued operations are not delivered yet.
    pub fn outstanding(&self) -> u64 {
        let ch = self.inner.chain.lock();
        ch.next_seq - ch.delivered_below
    }
}

/// The coordination request for `p`, whose predecessor is `pred`.
fn coord_req(p: &MdlPropose, pred: Pred, shard: u8) -> CoordReq {
    CoordReq {
        pred: OpId {
            client: p.cmd.client,
            seq: pred.seq,
        },
        succ: OpId::of(&p.cmd),
        succ_shard: shard,
    }
}

impl Inner {
    /// Drives one operation until it is answered, fails, or times out.
    /// `first` is an attempt already sent; `coord_due`: its `CoordReq` was not.
    async fn run(
        &self,
        p: &mut MdlPropose,
        shard: u8,
        mut first: Option<(Arc<Conn>, oneshot::Receiver<ProposeReply>)>,
        mut coord_due: bool,
        deadline: Instant,
    ) -> Delivery {
        let cfg = self.client.config();
        let seq = p.cmd.seq;
        let s = usize::from(shard);
        let mut backoff = Duration::from_millis(5);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout {
                    after: cfg.timeout,
                    what: format!("{} of operation {seq}", p.cmd.op.name()),
                });
            }
            let (conn, rx) = match first.take() {
                Some(sent) => sent,
                None => match self.client.conn(s, deadline).await {
                    Ok(c) => {
                        let ch = self.chain.lock();
                        p.cmd.acked_below = ch.acked_below().min(seq);
                        let rx = send_propose(&ch, shard, &c, p);
                        drop(ch);
                        coord_due = true;
                        (c, rx)
                    }
                    Err(e) => {
                        debug!(shard, error = %e, "no connection yet");
                        tokio::time::sleep(backoff.min(deadline - now)).await;
                        backoff = (backoff * 2).min(Duration::from_millis(200));
                        continue;
                    }
                },
            };
            if coord_due {
                self.send_coord(p, shard, deadline).await;
                coord_due = false;
            }
            let wait = cfg
                .attempt_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            match tokio::time::timeout(wait, rx).await {
                Ok(Ok(r)) => match r.status {
                    ReplyStatus::Ok => return Ok(r.outcome),
                    ReplyStatus::Failed => return Err(ClientError::Failed { seq }),
                    ReplyStatus::Stale => return Err(ClientError::Stale { seq }),
                    ReplyStatus::TooLarge => return Err(ClientError::TooLarge),
                    ReplyStatus::NotLeader | ReplyStatus::Unavailable => {
                        debug!(shard, replica = conn.target, hint = ?r.leader, status = ?r.status, "redirected");
                        self.client.reroute(s, &conn, r.leader).await;
                        if matches!(r.next(), Next::Redirect { back_off: true, .. }) {
                            let left = deadline.saturating_duration_since(Instant::now());
                            tokio::time::sleep(backoff.min(left)).await;
                            backoff = (backoff * 2).min(Duration::from_millis(200));
                        }
                    }
                },
                // The connection died: the replica may be down.
                Ok(Err(_)) => self.client.reroute(s, &conn, None).await,
                Err(_) => {
                    conn.forget(seq);
                    debug!(shard, replica = conn.target, seq, "attempt timed out");
                    self.client.relearn(s, &conn).await;
                }
            }
        }
    }

    /// Sends `p`'s coordination request to its predecessor's shard leader, if
    /// it has a predecessor. Best effort: the operation's own leader also asks
    /// the predecessor's leader again while the operation waits.
    async fn send_coord(&self, p: &MdlPropose, shard: u8, deadline: Instant) {
        let Some(pred) = p.pred else { return };
        match self.client.conn(pred.shard.into(), deadline).await {
            Ok(c) => {
                if !c.push(&coord_req(p, pred, shard)) {
                    debug!(
                        pred_shard = pred.shard,
                        "coordination request not sent: connection closed"
                    );
                }
            }
            Err(e) => debug!(pred_shard = pred.shard, error = %e, "coordination request not sent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: &str) -> Delivery {
        Ok(Outcome {
            value: Some(Bytes::from(v.to_string())),
            ..Outcome::default()
        })
    }

    /// Predecessors name the last undelivered operation with its shard,
    /// `shard_seq` counts per shard from 0, and results are delivered in issue
    /// order whatever order they complete in.
    #[test]
    fn numbering_predecessors_and_issue_order_delivery() {
        let mut ch = Chain::new(3);
        let shards = [0u8, 1, 0, 2];
        let mut futs: Vec<_> = shards.iter().map(|s| ch.issue(*s)).collect();
        let issued: Vec<Issued> = futs.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            issued.iter().map(|i| i.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(
            issued.iter().map(|i| i.shard_seq).collect::<Vec<_>>(),
            [0, 0, 1, 0]
        );
        assert_eq!(issued[0].pred, None);
        assert_eq!(issued[1].pred, Some(Pred { seq: 1, shard: 0 }));
        assert_eq!(issued[2].pred, Some(Pred { seq: 2, shard: 1 }));
        assert_eq!(issued[3].pred, Some(Pred { seq: 3, shard: 0 }));

        // 3 and 2 complete first: nothing can be delivered before 1.
        assert_eq!(ch.complete(3, ok("c")), 1);
        assert_eq!(ch.complete(2, Err(ClientError::Failed { seq: 2 })), 1);
        for (_, rx) in &mut futs {
            assert!(rx.try_recv().is_err(), "nothing delivered before op 1");
        }
        assert_eq!(ch.complete(1, ok("a")), 4);
        let got: Vec<String> = futs[..3]
            .iter_mut()
            .map(|(_, rx)| match rx.try_recv() {
                Ok(Ok(o)) => String::from_utf8_lossy(&o.value.unwrap_or_default()).into(),
                Ok(Err(e)) => format!("error: {e}"),
                Err(_) => "undelivered".into(),
            })
            .collect();
        assert_eq!(got[0], "a");
        assert!(got[1].starts_with("error: operation 2 failed"), "{got:?}");
        assert_eq!(got[2], "c");
        assert!(futs[3].1.try_recv().is_err(), "op 4 is still outstanding");

        // Op 4 is still outstanding: the next operation chains to it.
        let (i5, _rx5) = ch.issue(1);
        assert_eq!(i5.pred, Some(Pred { seq: 4, shard: 2 }));
        assert_eq!(i5.shard_seq, 1);
        assert_eq!(ch.complete(5, ok("e")), 4, "5 waits for 4");
        assert_eq!(ch.complete(4, ok("d")), 6);
        assert_eq!(ch.acked_below(), 6);
        // Nothing outstanding: a chain head.
        let (i6, _rx6) = ch.issue(0);
        assert_eq!((i6.seq, i6.shard_seq, i6.pred), (6, 2, None));
        // A late or duplicate completion changes nothing.
        assert_eq!(ch.complete(2, ok("late")), 6);
    }

    /// An operation given up on holds back `acked_below` and is sent again
    /// ahead of later operations on its shard until one of those is answered.
    #[test]
    fn given_up_operations_are_resent_until_a_later_one_is_answered() {
        let mut ch = Chain::new(2);
        let (a, _ra) = ch.issue(1);
        let (b, _rb) = ch.issue(1);
        let cmd = Command::put(7, a.seq, "k", "v");
        let p = MdlPropose {
            cmd,
            shard_seq: a.shard_seq,
            pred: a.pred,
        };
        ch.give_up(1, p);
        ch.complete(a.seq, Err(ClientError::Protocol("timed out".into())));
        assert_eq!(ch.acked_below(), a.seq, "never acknowledged");
        let before: Vec<u64> = ch
            .resend_before(1, b.shard_seq)
            .map(|p| p.cmd.seq)
            .collect();
        assert_eq!(before, [a.seq]);
        assert_eq!(ch.resend_before(0, 5).count(), 0, "other shards unaffected");
        assert_eq!(ch.resend_before(1, a.shard_seq).count(), 0);
        ch.admitted(1, b.shard_seq);
        assert_eq!(ch.resend_before(1, u64::MAX).count(), 0);
        assert_eq!(ch.acked_below(), a.seq);
    }
}
