//! TCP transport: a full mesh between replicas, a client listener, and the link
//! to the master.
//!
//! Each ordered pair of replicas uses one connection dialed by the sender: replica
//! `i` writes to `j` on the connection `i` dialed, and reads what `j` sends on the
//! connection `j` dialed. That keeps reconnection one-sided: only the dialer
//! retries, with exponential backoff. Every connection has a reader task that
//! decodes frames through the [`RpcTable`] and a [`ConnOutbox`] writer that
//! coalesces. Malformed input closes that connection only, with a logged reason.

pub mod faults;
mod frame_io;
mod writer;

pub use frame_io::{read_frame, write_frame, ConnError};
pub use writer::ConnOutbox;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn, Instrument};

use crate::messages::{codes, FaultReply, FaultRequest, PeerHello, Relay, RelayError, RELAYABLE};
use crate::rpc_table::{class, RpcTable, Source};
use crate::wire::{decode_body, Frame, DEFAULT_MAX_FRAME};
use crate::{ConnId, ReplicaId};
use faults::{Faults, Phase, Verdict};

/// Settings of a replica's transport.
///
/// The mesh is any list of peers, indexed by mesh id: one shard's replicas
/// with local ids (Multi-Paxos and EPaxos in a sharded deployment), or every
/// replica of the deployment with global ids.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// This replica's id in the mesh.
    pub me: ReplicaId,
    /// `host:peer_port` of every replica of the mesh, indexed by mesh id (our
    /// own entry is unused).
    pub peers: Vec<String>,
    /// Global id of mesh member 0 (0 unless the mesh is one shard of a
    /// sharded deployment, then the shard's first global id): fault requests
    /// name peers by global id, bit `id_offset + i` meaning mesh member `i`,
    /// and logs show global ids.
    pub id_offset: u8,
    /// Largest frame body accepted.
    pub max_frame: usize,
    /// Bytes queued for one connection beyond which frames are dropped.
    pub high_water: usize,
    /// Accept fault and leadership requests from clients (`server --control`).
    pub control: bool,
    /// Most client requests queued for the core before client connections
    /// stop being read (backpressure, see [`crate::gate`]); 0: no bound.
    pub client_queue: usize,
}

/// The default bound of the client lane: two of the runtime's bursts, so the
/// core always finds a whole burst waiting while clients are held back.
pub const DEFAULT_CLIENT_QUEUE: usize = 2 * crate::runtime::BURST;

impl TransportConfig {
    /// Defaults for a group with the given peer addresses.
    pub fn new(me: ReplicaId, peers: Vec<String>) -> Self {
        TransportConfig {
            me,
            peers,
            id_offset: 0,
            max_frame: DEFAULT_MAX_FRAME,
            high_water: 64 << 20,
            control: false,
            client_queue: DEFAULT_CLIENT_QUEUE,
        }
    }
}

struct Inner {
    cfg: TransportConfig,
    table: Arc<RpcTable>,
    peers: Vec<Arc<ConnOutbox>>,
    conns: RwLock<HashMap<ConnId, Arc<ConnOutbox>>>,
    next_conn: AtomicU64,
    rt: tokio::runtime::Handle,
    faults: Arc<Faults>,
    /// Frames held back by link delays, released by their own thread.
    delayed: std::sync::OnceLock<Arc<Delayer>>,
}

/// Handle used by the protocol runtime to send; cheap to clone.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl Transport {
    /// Starts dialing every peer and serving both listeners on `rt`.
    pub fn start(
        rt: &tokio::runtime::Handle,
        cfg: TransportConfig,
        table: Arc<RpcTable>,
        peer_listener: TcpListener,
        client_listener: TcpListener,
    ) -> Transport {
        let n = cfg.peers.len();
        let me = cfg.me;
        let global = cfg.me as usize + cfg.id_offset as usize;
        let high_water = cfg.high_water;
        let inner = Arc::new(Inner {
            cfg,
            table,
            peers: (0..n)
                .map(|_| Arc::new(ConnOutbox::new(false, high_water)))
                .collect(),
            conns: RwLock::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            rt: rt.clone(),
            faults: Arc::new(Faults::with_seed(me as u64 + 1)),
            delayed: std::sync::OnceLock::new(),
        });
        let span = tracing::info_span!(parent: None, "replica", id = global);
        for j in 0..n {
            if j as ReplicaId != me {
                rt.spawn(dial_peer(inner.clone(), j as ReplicaId).instrument(span.clone()));
            }
        }
        rt.spawn(accept_peers(inner.clone(), peer_listener).instrument(span.clone()));
        rt.spawn(accept_clients(inner.clone(), client_listener).instrument(span));
        Transport { inner }
    }

    /// This replica's id in the mesh.
    pub fn me(&self) -> ReplicaId {
        self.inner.cfg.me
    }

    /// This replica's global id (its mesh id plus the mesh's id offset).
    pub fn global_id(&self) -> usize {
        self.inner.cfg.me as usize + self.inner.cfg.id_offset as usize
    }

    /// Global id of mesh member 0.
    pub fn id_offset(&self) -> u8 {
        self.inner.cfg.id_offset
    }

    /// Group size.
    pub fn n(&self) -> usize {
        self.inner.peers.len()
    }

    /// Queues a message to a peer; dropped (returns false) while it is unreachable.
    pub fn send_peer<F: Frame + ?Sized>(&self, to: ReplicaId, msg: &F) -> bool {
        if self.inner.faults.active() {
            return self.send_peer_raw(to, &crate::wire::frame_bytes(msg));
        }
        self.inner
            .peers
            .get(to as usize)
            .is_some_and(|o| o.push(msg))
    }

    /// Queues one already-encoded frame to a peer.
    pub fn send_peer_raw(&self, to: ReplicaId, frame: &[u8]) -> bool {
        let Some(out) = self.inner.peers.get(to as usize) else {
            return false;
        };
        if !self.inner.faults.active() || frame.is_empty() {
            return out.push_raw(frame);
        }
        let bytes = Bytes::copy_from_slice(frame);
        match self.inner.faults.outbound(to, frame[0], &bytes) {
            Verdict::Send => out.push_raw(frame),
            Verdict::Drop => false,
            Verdict::Held => true,
            Verdict::Later(delays) => {
                for d in delays {
                    self.delay_to(to, d, bytes.clone());
                }
                true
            }
        }
    }

    /// The fault layer of this replica.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.inner.faults
    }

    /// Sends what the fault layer held for `peer`.
    pub fn release(&self, peer: ReplicaId) {
        release(&self.inner, peer)
    }

    /// Delivers `frame` to `peer` after `delay`.
    fn delay_to(&self, peer: ReplicaId, delay: std::time::Duration, frame: Bytes) {
        let d = self
            .inner
            .delayed
            .get_or_init(|| Delayer::start(self.inner.peers.clone()));
        d.push(std::time::Instant::now() + delay, peer, frame);
    }

    /// Queues a message on a client (or master) connection; false if it is gone.
    pub fn send_conn<F: Frame + ?Sized>(&self, conn: ConnId, msg: &F) -> bool {
        if self.inner.faults.crashed() {
            return false;
        }
        let c = self.inner.conns.read().get(&conn).cloned();
        c.is_some_and(|o| o.push(msg))
    }

    /// Queues already-encoded frames on a client (or master) connection.
    pub fn send_conn_raw(&self, conn: ConnId, frames: &[u8]) -> bool {
        if self.inner.faults.crashed() {
            return false;
        }
        let c = self.inner.conns.read().get(&conn).cloned();
        c.is_some_and(|o| o.push_raw(frames))
    }

    /// Serves an already-connected stream (the master link) like a client
    /// connection whose frames must be of `classes`. Returns its id and a signal
    /// that fires when the connection ends.
    pub fn attach(
        &self,
        stream: TcpStream,
        already_read: BytesMut,
        classes: u8,
    ) -> (ConnId, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let inner = self.inner.clone();
        let span = tracing::info_span!(parent: None, "replica", id = self.global_id());
        self.inner.rt.spawn(
            async move {
                serve_conn(inner, stream, id, classes, already_read).await;
                let _ = tx.send(());
            }
            .instrument(span),
        );
        (id, rx)
    }
}

async fn dial_peer(inner: Arc<Inner>, j: ReplicaId) {
    let out = inner.peers[j as usize].clone();
    let addr = inner.cfg.peers[j as usize].clone();
    let hello = PeerHello {
        replica: inner.cfg.me,
        n: inner.peers.len() as u8,
    };
    let mut backoff = Duration::from_millis(10);
    loop {
        match TcpStream::connect(&addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                let (mut rd, mut wr) = s.into_split();
                if write_frame(&mut wr, &hello).await.is_ok() {
                    info!(peer = j, %addr, "connected to peer");
                    backoff = Duration::from_millis(10);
                    out.open();
                    // The connection is write-only; a read returning means the peer went away.
                    let mut probe = [0u8; 1];
                    let res = tokio::select! {
                        r = out.run_writer(&mut wr) => r.err().map(|e| e.to_string()),
                        _ = tokio::io::AsyncReadExt::read(&mut rd, &mut probe) => Some("closed by peer".into()),
                    };
                    out.close();
                    info!(
                        peer = j,
                        reason = res.as_deref().unwrap_or("closed"),
                        "peer connection lost"
                    );
                }
            }
            Err(e) => debug!(peer = j, %addr, error = %e, "peer not reachable yet"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

async fn accept_peers(inner: Arc<Inner>, l: TcpListener) {
    loop {
        match l.accept().await {
            Ok((s, addr)) => {
                tokio::spawn(serve_peer(inner.clone(), s, addr).in_current_span());
            }
            Err(e) => {
                warn!(error = %e, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_peer(inner: Arc<Inner>, s: TcpStream, addr: SocketAddr) {
    let _ = s.set_nodelay(true);
    let (mut rd, _wr) = s.into_split();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let max = inner.cfg.max_frame;
    let n = inner.peers.len();
    let me = inner.cfg.me;
    let hello = async {
        let first =
            tokio::time::timeout(Duration::from_secs(5), read_frame(&mut rd, &mut buf, max))
                .await
                .map_err(|_| ConnError::Handshake("no hello within 5 s".into()))??;
        let (code, body) =
            first.ok_or_else(|| ConnError::Handshake("closed before hello".into()))?;
        if code != codes::PEER_HELLO {
            return Err(ConnError::Handshake(format!(
                "first frame has code {code:#04x}, not a peer hello"
            )));
        }
        let h: PeerHello = decode_body(body)?;
        if h.n as usize != n || h.replica as usize >= n || h.replica == me {
            return Err(ConnError::Handshake(format!(
                "hello from replica {} of a group of {} does not fit replica {me} of {n}",
                h.replica, h.n
            )));
        }
        Ok(h.replica)
    };
    let from = match hello.await {
        Ok(r) => r,
        Err(e) => {
            warn!(%addr, error = %e, "dropping peer connection");
            return;
        }
    };
    debug!(peer = from, "peer connection accepted");
    let res = read_loop(
        &inner,
        &mut rd,
        &mut buf,
        max,
        class::PEER,
        Source::Peer(from),
        None,
    )
    .await;
    if let Err(e) = res {
        warn!(peer = from, %addr, error = %e, "dropping peer connection");
    }
}

async fn accept_clients(inner: Arc<Inner>, l: TcpListener) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
                let buf = BytesMut::with_capacity(16 * 1024);
                tokio::spawn(
                    serve_conn(inner.clone(), s, id, class::CLIENT, buf).in_current_span(),
                );
            }
            Err(e) => {
                warn!(error = %e, "client accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_conn(inner: Arc<Inner>, s: TcpStream, id: ConnId, classes: u8, mut buf: BytesMut) {
    let _ = s.set_nodelay(true);
    let addr = s.peer_addr().ok();
    let (mut rd, mut wr) = s.into_split();
    let out = Arc::new(ConnOutbox::new(true, inner.cfg.high_water));
    inner.conns.write().insert(id, out.clone());
    let w = out.clone();
    let writer = tokio::spawn(async move { w.run_writer(&mut wr).await });
    let res = read_loop(
        &inner,
        &mut rd,
        &mut buf,
        inner.cfg.max_frame,
        classes,
        Source::Conn(id),
        Some(&out),
    )
    .await;
    if let Err(e) = res {
        warn!(conn = id, addr = ?addr, error = %e, "dropping connection");
    }
    inner.conns.write().remove(&id);
    out.close();
    let _ = writer.await;
}

/// Reads frames and dispatches them through the rpc table, passing each past
/// the fault layer; fault requests on a client connection (`reply_to`) are
/// handled here, so a "crashed" replica still obeys them.
#[allow(clippy::too_many_arguments)]
async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    inner: &Arc<Inner>,
    rd: &mut R,
    buf: &mut BytesMut,
    max: usize,
    on: u8,
    src: Source,
    reply_to: Option<&Arc<ConnOutbox>>,
) -> Result<(), ConnError> {
    loop {
        if on == class::CLIENT {
            if let Some(gate) = inner.table.client_gate() {
                gate.room(inner.cfg.client_queue).await;
            }
        }
        let Some((code, body)) = read_frame(rd, buf, max).await? else {
            break;
        };
        if code == codes::RELAY && on == class::MASTER {
            relayed(inner, src, reply_to, body)?;
            continue;
        }
        handle_frame(inner, on, src, reply_to, code, body)?;
    }
    Ok(())
}

/// Passes one frame to the fault layer and the rpc table; fault requests on a
/// connection that can be answered (`reply_to`) are handled here.
fn handle_frame(
    inner: &Arc<Inner>,
    on: u8,
    src: Source,
    reply_to: Option<&Arc<ConnOutbox>>,
    code: u8,
    body: Bytes,
) -> Result<(), ConnError> {
    let from_peer = match src {
        Source::Peer(p) => Some(p),
        Source::Conn(_) => None,
    };
    if on == class::CLIENT && CONTROL_CODES.contains(&code) && !inner.cfg.control {
        return Err(ConnError::Handshake(format!(
            "message type {code:#04x} needs a server started with --control"
        )));
    }
    if code == codes::FAULT_REQUEST {
        if let Some(out) = reply_to.filter(|_| on == class::CLIENT) {
            let req: FaultRequest = decode_body(body)?;
            out.push(&apply_fault(inner, &req));
            return Ok(());
        }
    }
    match inner.faults.inbound(from_peer, code) {
        None => {}
        Some(d) if d.is_zero() => inner.table.dispatch(on, src, code, body)?,
        Some(d) => {
            let inner = inner.clone();
            inner.rt.clone().spawn(async move {
                tokio::time::sleep(d).await;
                let _ = inner.table.dispatch(on, src, code, body);
            });
        }
    }
    Ok(())
}

/// A control request relayed by the master: handled as if a client had sent it
/// on this connection. Its failure is answered or logged; it never costs the
/// master link, whose loss would look like a crash.
fn relayed(
    inner: &Arc<Inner>,
    src: Source,
    reply_to: Option<&Arc<ConnOutbox>>,
    body: Bytes,
) -> Result<(), ConnError> {
    let r: Relay = decode_body(body)?;
    let nonce = r.body.get(..8).map(|b| {
        let mut n = [0u8; 8];
        n.copy_from_slice(b);
        u64::from_le_bytes(n)
    });
    let res = if RELAYABLE.contains(&r.code) {
        handle_frame(inner, class::CLIENT, src, reply_to, r.code, r.body)
    } else {
        Err(ConnError::Handshake(format!(
            "message type {:#04x} cannot be relayed",
            r.code
        )))
    };
    if let Err(e) = res {
        warn!(code = r.code, error = %e, "refusing a relayed request");
        if let (Some(out), Some(nonce)) = (reply_to, nonce) {
            out.push(&RelayError {
                nonce,
                error: e.to_string(),
            });
        }
    }
    Ok(())
}

/// Codes a client may send only to a server started with `--control`.
const CONTROL_CODES: [u8; 2] = [codes::FAULT_REQUEST, codes::BE_LEADER];

fn release(inner: &Inner, peer: ReplicaId) {
    for f in inner.faults.release(peer) {
        if let Some(out) = inner.peers.get(peer as usize) {
            out.push_raw(&f);
        }
    }
}

/// Carries out a fault request and says how it went.
fn apply_fault(inner: &Arc<Inner>, r: &FaultRequest) -> FaultReply {
    use crate::messages::fault::*;
    use std::time::Duration;
    let f = &inner.faults;
    // Peers are named by global id; the fault layer counts mesh ids.
    let n = inner.peers.len();
    let in_mesh = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    let peers = r.peers.checked_shr(inner.cfg.id_offset as u32).unwrap_or(0)
        & in_mesh
        & !(1u64 << inner.cfg.me);
    let ppm = |x: u32| x as f64 / 1e6;
    let mut error = String::new();
    match r.kind {
        CRASH => f.set_crashed(true),
        RESTORE => f.set_crashed(false),
        PARTITION => f.partition(peers, false),
        PARTITION_ONE_WAY => f.partition(peers, true),
        HEAL => f.heal(),
        LINK => f.set_link(
            peers,
            Duration::from_micros(r.delay_us),
            Duration::from_micros(r.jitter_us),
            ppm(r.drop_ppm),
            ppm(r.dup_ppm),
        ),
        HOLD => (0..64u8)
            .filter(|p| peers >> p & 1 == 1)
            .for_each(|p| f.hold(p, r.code)),
        RELEASE => (0..64u8)
            .filter(|p| peers >> p & 1 == 1)
            .for_each(|p| release(inner, p)),
        PHASE => {
            let code = (r.code != 0).then_some(r.code);
            let phase = match r.delay_us {
                0 => None,
                u64::MAX => Some(Phase::Drop),
                us => Some(Phase::Delay(Duration::from_micros(us))),
            };
            f.set_phase(code, phase)
        }
        CLEAR => {
            for p in 0..inner.peers.len() as u8 {
                release(inner, p);
            }
            f.clear()
        }
        QUERY => {}
        k => error = format!("unknown fault kind {k}"),
    }
    tracing::info!(
        kind = r.kind,
        peers = r.peers,
        code = r.code,
        delay_us = r.delay_us,
        "fault request"
    );
    FaultReply {
        nonce: r.nonce,
        ok: error.is_empty(),
        error,
        crashed: f.crashed(),
        active: f.active(),
    }
}

/// Releases delayed frames when due. A thread of its own, not tokio timers:
/// those round every sleep up to the next millisecond, which would add up to a
/// millisecond per hop to an emulated link of one millisecond.
struct Delayer {
    queue: parking_lot::Mutex<std::collections::BinaryHeap<Delayed>>,
    wake: parking_lot::Condvar,
}

struct Delayed {
    due: std::time::Instant,
    seq: u64,
    peer: ReplicaId,
    frame: Bytes,
}

impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
/// Earliest first; equal times in the order queued (so a constant delay keeps a link's order).
impl Ord for Delayed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

impl Delayer {
    fn start(peers: Vec<Arc<ConnOutbox>>) -> Arc<Delayer> {
        let d = Arc::new(Delayer {
            queue: parking_lot::Mutex::new(Default::default()),
            wake: parking_lot::Condvar::new(),
        });
        let me = d.clone();
        std::thread::Builder::new()
            .name("link-delay".into())
            .spawn(move || loop {
                let mut q = me.queue.lock();
                match q.peek().map(|x| x.due) {
                    None => me.wake.wait(&mut q),
                    Some(due) if due > std::time::Instant::now() => {
                        me.wake.wait_until(&mut q, due);
                    }
                    Some(_) => {
                        if let Some(x) = q.pop() {
                            drop(q);
                            if let Some(out) = peers.get(x.peer as usize) {
                                out.push_raw(&x.frame);
                            }
                        }
                    }
                }
            })
            .expect("spawn the link-delay thread");
        d
    }

    fn push(&self, due: std::time::Instant, peer: ReplicaId, frame: Bytes) {
        let mut q = self.queue.lock();
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let earliest = q.peek().is_none_or(|x| due < x.due);
        q.push(Delayed {
            due,
            seq,
            peer,
            frame,
        });
        drop(q);
        if earliest {
            self.wake.notify_one();
        }
    }
}
