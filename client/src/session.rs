//! The client session: leader discovery, retries and timeouts.
//!
//! On a sharded deployment (the master reports more than one shard) the
//! session keeps one route per shard and sends each command to the leader of
//! the shard that owns its key ([`genericsmr::shard::shard_of`]); leaders are
//! learned, and re-learned after a refusal or a time-out, shard by shard.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use genericsmr::command::{ClientId, Command, Outcome};
use genericsmr::messages::{Next, Propose, ReplicaAddr, ReplyStatus};
use genericsmr::transport::ConnError;
use genericsmr::ReplicaId;
use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::debug;

use crate::admin;
use crate::conn::Conn;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered in time. For a command this means it may or may not have
    /// taken effect.
    #[error("timed out after {after:?} waiting for {what}; it may or may not have taken effect (is a majority of the replicas up?)")]
    Timeout {
        /// How long the call waited.
        after: Duration,
        /// What it waited for.
        what: String,
    },
    /// A TCP connection could not be made.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The replicas no longer know this command's outcome: its sequence number
    /// is below what the session acknowledged (a reused client id, or a retry
    /// of a command given up on long ago). It may or may not have taken effect.
    #[error("command {seq} is older than this session's acknowledged results; its outcome is no longer known (do not reuse client ids)")]
    Stale {
        /// The command's sequence number.
        seq: u64,
    },
    /// The replicas refuse commands this large (see the server's `--max-command`).
    #[error("the command is larger than the replicas accept (server flag --max-command); it was not applied")]
    TooLarge,
    /// MDLin: the operation failed and will never take effect (a predecessor
    /// in its chain failed, or its coordination timed out).
    #[error("operation {seq} failed: an earlier operation it was chained to failed or its coordination timed out; it was not applied")]
    Failed {
        /// The failed command's sequence number.
        seq: u64,
    },
    /// Neither a master nor a replica list was given.
    #[error("no replicas known: give a master address or a replica list")]
    NoReplicas,
    /// A connection failed or carried something unexpected.
    #[error("connection error: {0}")]
    Conn(#[from] ConnError),
    /// Anything else the other side did wrong.
    #[error("{0}")]
    Protocol(String),
}

/// How a [`Client`] finds replicas and how patient it is.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of the master, if any.
    pub master: Option<String>,
    /// Client addresses of the replicas, used when there is no master.
    pub replicas: Vec<String>,
    /// How long one command may take in total, retries included.
    pub timeout: Duration,
    /// How long to wait for one attempt before retrying elsewhere.
    pub attempt_timeout: Duration,
    /// The session id; random when `None`.
    pub client_id: Option<ClientId>,
}

impl ClientConfig {
    /// A configuration that finds the group through the master at `addr`.
    pub fn with_master(addr: impl Into<String>) -> Self {
        ClientConfig {
            master: Some(addr.into()),
            replicas: Vec::new(),
            timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_millis(1000),
            client_id: None,
        }
    }

    /// A configuration that tries the given replica client addresses directly.
    pub fn with_replicas(addrs: Vec<String>) -> Self {
        ClientConfig {
            master: None,
            replicas: addrs,
            ..Self::with_master("")
        }
    }
}

/// How to reach one shard's leader.
struct Route {
    /// The shard this route serves.
    shard: usize,
    /// Global id of the shard's first replica: replicas name leaders (in
    /// replies and status) by their id inside the shard, which this turns
    /// into a global id.
    base: ReplicaId,
    replicas: Vec<String>,
    /// The (global) replica id behind each address, where known. Through the
    /// master the list is ordered by id; a user's `--replicas` list is in any
    /// order, and leader hints name ids, so ids are learned from each
    /// replica's status.
    ids: Vec<Option<ReplicaId>>,
    /// Position in `replicas` of the replica to try first.
    leader: Option<usize>,
    conn: Option<Arc<Conn>>,
    next_try: usize,
}

impl Route {
    /// The position of replica `id` in the list, if known.
    fn position(&self, id: ReplicaId) -> Option<usize> {
        self.ids.iter().position(|i| *i == Some(id))
    }

    /// Learns the ids of the replicas whose id is unknown (those that answer).
    async fn learn_ids(&mut self) {
        let mut asks = tokio::task::JoinSet::new();
        for i in (0..self.replicas.len()).filter(|i| self.ids[*i].is_none()) {
            let addr = self.replicas[i].clone();
            asks.spawn(async move { (i, admin::status(&addr, Duration::from_millis(300)).await) });
        }
        while let Some(Ok((i, answer))) = asks.join_next().await {
            if let Ok(s) = answer {
                self.ids[i] = Some(self.base.saturating_add(s.replica));
            }
        }
    }
}

/// Sequence numbers of a session.
struct Seqs {
    next: u64,
    /// Sent and not answered: in flight, or given up on. A command given up on
    /// may still be applied, and a retry must find its result, so the session
    /// never tells the replicas to forget it.
    outstanding: BTreeSet<u64>,
}

/// At most this many unanswered sequence numbers are remembered; older ones are
/// forgotten (then a late retry of such a command is answered `Stale`).
const MAX_UNANSWERED: usize = 4096;

/// Keeps a sequence number outstanding until its command is answered.
struct Pending<'a> {
    inner: &'a Inner,
    seq: u64,
    answered: bool,
}

impl<'a> Pending<'a> {
    /// Registers `seq` (if it is not already).
    fn new(inner: &'a Inner, seq: u64) -> Self {
        inner.seqs.lock().outstanding.insert(seq);
        Pending {
            inner,
            seq,
            answered: false,
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut s = self.inner.seqs.lock();
        if self.answered {
            s.outstanding.remove(&self.seq);
        }
        while s.outstanding.len() > MAX_UNANSWERED {
            s.outstanding.pop_first();
        }
    }
}

struct Inner {
    cfg: ClientConfig,
    id: ClientId,
    /// Next sequence number and the ones not yet answered, under one lock so
    /// that `acked_below` can never pass a number that is handed out but not
    /// yet registered.
    seqs: Mutex<Seqs>,
    /// One route per shard (one in all without a master or on an unsharded group).
    routes: Vec<tokio::sync::Mutex<Route>>,
}

/// A client session. Cheap to clone; clones share the session (and its id).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Creates a session; with a master, fetches the replica list (and, on a
    /// sharded deployment, the shard count and each shard's leader) first.
    pub async fn connect(cfg: ClientConfig) -> Result<Client, ClientError> {
        let empty = |shard: usize, base: ReplicaId| Route {
            shard,
            base,
            replicas: Vec::new(),
            ids: Vec::new(),
            leader: None,
            conn: None,
            next_try: 0,
        };
        let mut routes = Vec::new();
        if let Some(m) = &cfg.master {
            let info = admin::cluster(m, cfg.timeout.min(Duration::from_secs(2))).await?;
            for s in 0..info.shard_count() {
                let base = genericsmr::shard::global_id(s, 0, info.n as usize);
                let mut route = empty(s, base);
                route.set_from_master(&info);
                routes.push(route);
            }
        } else {
            let mut route = Route {
                replicas: cfg.replicas.clone(),
                ids: vec![None; cfg.replicas.len()],
                ..empty(0, 0)
            };
            route.learn_ids().await;
            if route.replicas.is_empty() {
                return Err(ClientError::NoReplicas);
            }
            routes.push(route);
        }
        let id = cfg.client_id.unwrap_or_else(|| rand::random::<u64>() | 1);
        Ok(Client {
            inner: Arc::new(Inner {
                cfg,
                id,
                seqs: Mutex::new(Seqs {
                    next: 1,
                    outstanding: BTreeSet::new(),
                }),
                routes: routes.into_iter().map(tokio::sync::Mutex::new).collect(),
            }),
        })
    }

    /// This session's client id.
    pub fn id(&self) -> ClientId {
        self.inner.id
    }

    /// Number of shards of the deployment (1 unless the master reports more).
    pub fn shards(&self) -> usize {
        self.inner.routes.len()
    }

    /// The shard that owns `key`.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        genericsmr::shard::shard_of(key, self.shards() as u32) as usize
    }

    /// Sets `key` to `value`.
    pub async fn put(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<Outcome, ClientError> {
        self.execute(Command::put(self.id(), 0, key, value)).await
    }

    /// Reads `key`.
    pub async fn get(&self, key: impl Into<Bytes>) -> Result<Option<Bytes>, ClientError> {
        Ok(self.execute(Command::get(self.id(), 0, key)).await?.value)
    }

    /// Removes `key`; true if it existed (when replies wait for execution).
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<Outcome, ClientError> {
        self.execute(Command::delete(self.id(), 0, key)).await
    }

    /// Sets `key` to `value` if it holds `expected` (`None`: absent). Returns whether
    /// it swapped and the value found.
    pub async fn cas(
        &self,
        key: impl Into<Bytes>,
        expected: Option<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<Outcome, ClientError> {
        self.execute(Command::cas(self.id(), 0, key, expected, value))
            .await
    }

    /// Runs a command under this session: assigns the next sequence number and
    /// retries until it succeeds or the timeout passes.
    pub async fn execute(&self, cmd: Command) -> Result<Outcome, ClientError> {
        self.submit(self.prepare(cmd)).await
    }

    /// Gives `cmd` this session's id and the next sequence number, without
    /// sending it. Submit it with [`Client::submit`], as often as needed: until
    /// it is answered, the session never lets the replicas forget its result.
    pub fn prepare(&self, mut cmd: Command) -> Command {
        cmd.client = self.id();
        // Allocated and registered in one step: no other call can acknowledge it meanwhile.
        let mut s = self.inner.seqs.lock();
        cmd.seq = s.next;
        s.next += 1;
        s.outstanding.insert(cmd.seq);
        cmd
    }

    /// Sends a command exactly as given (its client id and sequence number are
    /// kept) to the leader of the shard that owns its key, retrying until it
    /// succeeds or the timeout passes. Used to retry a command by hand;
    /// replicas apply it at most once.
    pub async fn submit(&self, mut cmd: Command) -> Result<Outcome, ClientError> {
        let shard = self.shard_of(&cmd.key);
        // While this command is in flight, no command of this session may tell
        // the replicas that its result can be forgotten; the guard also cleans up
        // when the caller drops this future.
        let mut pending = (cmd.client == self.id()).then(|| Pending::new(&self.inner, cmd.seq));
        let deadline = Instant::now() + self.inner.cfg.timeout;
        let mut backoff = Duration::from_millis(5);
        loop {
            cmd.acked_below = self.acked_below(cmd.client).min(cmd.seq);
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout {
                    after: self.inner.cfg.timeout,
                    what: format!("{} of command {}", cmd.op.name(), cmd.seq),
                });
            }
            let conn = match self.conn(shard, deadline).await {
                Ok(c) => c,
                Err(e) => {
                    debug!(error = %e, "no connection yet");
                    tokio::time::sleep(backoff.min(deadline - now)).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                    continue;
                }
            };
            let rx = conn.send(&Propose { cmd: cmd.clone() });
            let wait = self
                .inner
                .cfg
                .attempt_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            match tokio::time::timeout(wait, rx).await {
                Ok(Ok(r)) => match r.status {
                    ReplyStatus::Ok => {
                        if let Some(p) = &mut pending {
                            p.answered = true;
                        }
                        return Ok(r.outcome);
                    }
                    ReplyStatus::Stale | ReplyStatus::TooLarge | ReplyStatus::Failed => {
                        if let Some(p) = &mut pending {
                            p.answered = true;
                        }
                        return Err(match r.status {
                            ReplyStatus::Stale => ClientError::Stale { seq: cmd.seq },
                            ReplyStatus::Failed => ClientError::Failed { seq: cmd.seq },
                            _ => ClientError::TooLarge,
                        });
                    }
                    ReplyStatus::NotLeader | ReplyStatus::Unavailable => {
                        debug!(shard, replica = conn.target, hint = ?r.leader, "redirected");
                        self.reroute(shard, &conn, r.leader).await;
                        if matches!(r.next(), Next::Redirect { back_off: true, .. }) {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_millis(200));
                        }
                    }
                },
                Ok(Err(_)) => {
                    // The connection died: the replica may be down.
                    self.reroute(shard, &conn, None).await;
                }
                Err(_) => {
                    conn.forget(cmd.seq);
                    debug!(
                        shard,
                        replica = conn.target,
                        seq = cmd.seq,
                        "attempt timed out"
                    );
                    self.reroute(shard, &conn, None).await;
                }
            }
        }
    }

    /// Every sequence number of this session below the result has been answered.
    fn acked_below(&self, client: ClientId) -> u64 {
        if client != self.id() {
            return 0;
        }
        let s = self.inner.seqs.lock();
        // Never past `next`: numbers above it (chosen by hand for `submit`) say
        // nothing about the ones below them.
        s.outstanding
            .first()
            .copied()
            .map_or(s.next, |o| o.min(s.next))
    }

    /// Every shard's current leader as (global id, client address), indexed by
    /// shard (`None`: the master knows no leader for that shard right now).
    /// Needs a master; without one, the one group's leader.
    pub async fn leaders(&self) -> Result<Vec<Option<(ReplicaId, String)>>, ClientError> {
        let Some(m) = &self.inner.cfg.master else {
            return Ok(vec![Some(self.leader().await?)]);
        };
        let t = self.inner.cfg.attempt_timeout.max(Duration::from_secs(2));
        let info = admin::cluster(m, t).await?;
        Ok((0..info.shard_count())
            .map(|s| {
                let l = info.leader_of(s)?;
                let a = info.replicas.iter().find(|r| r.id == l)?.client_addr();
                Some((l, a))
            })
            .collect())
    }

    /// The current leader (of shard 0, on a sharded deployment) as (id, client
    /// address), asking the master if there is one.
    pub async fn leader(&self) -> Result<(ReplicaId, String), ClientError> {
        let t = self.inner.cfg.attempt_timeout.max(Duration::from_secs(2));
        if let Some(m) = &self.inner.cfg.master {
            let info = admin::cluster(m, t).await?;
            let l = info.leader.ok_or_else(|| {
                ClientError::Protocol("the master knows no leader right now".into())
            })?;
            let a = info
                .replicas
                .iter()
                .find(|r| r.id == l)
                .map(|r| r.client_addr())
                .unwrap_or_default();
            return Ok((l, a));
        }
        let replicas = self.inner.routes[0].lock().await.replicas.clone();
        for a in &replicas {
            if let Ok(s) = admin::status(a, t).await {
                if s.role == genericsmr::messages::role::LEADER {
                    return Ok((s.replica, a.clone()));
                }
            }
        }
        Err(ClientError::Protocol(
            "no replica reports being the leader".into(),
        ))
    }

    /// The configuration this session was made with.
    pub(crate) fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// The open connection to `shard`'s leader, if there is one and nobody is
    /// (re)connecting it right now; never waits. Lets a caller send at once,
    /// in its own order, on a warm connection.
    pub(crate) fn conn_now(&self, shard: usize) -> Option<Arc<Conn>> {
        let r = self.inner.routes.get(shard)?.try_lock().ok()?;
        r.conn.as_ref().filter(|c| c.is_open()).cloned()
    }

    /// After an attempt on `conn` went unanswered: asks the master who leads
    /// `shard` now and keeps `conn` only if it still leads; otherwise (or
    /// without a master, or when the master does not answer) drops it, as
    /// [`Client::reroute`] does, so the next attempt goes to the current leader.
    pub(crate) async fn relearn(&self, shard: usize, conn: &Arc<Conn>) {
        let info = match &self.inner.cfg.master {
            Some(m) => admin::cluster(m, Duration::from_millis(500)).await.ok(),
            None => None,
        };
        if let Some(info) = info {
            let mut r = self.inner.routes[shard].lock().await;
            r.set_from_master(&info);
            if r.leader == Some(conn.target) {
                return;
            }
            if r.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                r.conn = None;
                conn.close();
            }
            if r.leader.is_none() {
                r.next_try = conn.target + 1;
            }
            return;
        }
        self.reroute(shard, conn, None).await
    }

    /// A connection to `shard`'s leader (or the next replica to try),
    /// asking the master first when no leader is known.
    pub(crate) async fn conn(
        &self,
        shard: usize,
        deadline: Instant,
    ) -> Result<Arc<Conn>, ClientError> {
        let mut r = self.inner.routes[shard].lock().await;
        if let Some(c) = &r.conn {
            if c.is_open() {
                return Ok(c.clone());
            }
            r.conn = None;
        }
        if r.leader.is_none() {
            if let Some(m) = &self.inner.cfg.master {
                if let Ok(info) = admin::cluster(m, Duration::from_millis(500)).await {
                    r.set_from_master(&info);
                }
            }
        }
        if r.replicas.is_empty() {
            return Err(ClientError::NoReplicas);
        }
        let target = r
            .leader
            .filter(|l| *l < r.replicas.len())
            .unwrap_or(r.next_try % r.replicas.len());
        let addr = r.replicas[target].clone();
        let t = Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now()));
        let c = tokio::time::timeout(t, Conn::open(target, &addr))
            .await
            .map_err(|_| ClientError::Timeout {
                after: t,
                what: format!("connection to {addr}"),
            })
            .and_then(|r| {
                r.map_err(|e| ClientError::Connect {
                    addr: addr.clone(),
                    source: e,
                })
            });
        match c {
            Ok(c) => {
                r.conn = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                r.leader = None;
                r.next_try = target + 1;
                Err(e)
            }
        }
    }

    /// Drops `conn` and aims at `hint` (a replica of `shard`, named by its id
    /// inside the shard) or the next replica for the next attempt.
    pub(crate) async fn reroute(&self, shard: usize, conn: &Arc<Conn>, hint: Option<ReplicaId>) {
        let mut r = self.inner.routes[shard].lock().await;
        if r.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            r.conn = None;
            conn.close();
        }
        let hint = hint.map(|h| r.base.saturating_add(h));
        if hint.is_some_and(|h| r.position(h).is_none()) {
            r.learn_ids().await;
        }
        match hint
            .and_then(|h| r.position(h))
            .filter(|h| *h != conn.target)
        {
            Some(h) => r.leader = Some(h),
            None => {
                r.leader = None;
                r.next_try = conn.target + 1;
            }
        }
    }
}

impl Route {
    /// Takes this shard's replica list and leader from the master.
    fn set_from_master(&mut self, info: &genericsmr::messages::ClusterInfo) {
        let mut v: Vec<&ReplicaAddr> = info
            .replicas
            .iter()
            .filter(|r| info.shard_count() == 1 || info.shard_of_replica(r.id) == self.shard)
            .collect();
        v.sort_by_key(|r| r.id);
        self.replicas = v.iter().map(|r| r.client_addr()).collect();
        self.ids = v.iter().map(|r| Some(r.id)).collect();
        self.leader = info.leader_of(self.shard).and_then(|l| self.position(l));
    }
}
