//! The master's network side: one task per connection, a liveness loop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use genericsmr::messages::{codes, GetCluster, Pong, Register, Relay, RELAYED_REPLIES};
use genericsmr::transport::{read_frame, ConnError, ConnOutbox};
use genericsmr::wire::{decode_body, WireError, DEFAULT_MAX_FRAME};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, error, info, warn};

use crate::registry::{Registry, RegistryConfig};
use crate::relay::Relays;
use crate::state::State;

/// Settings of the master.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Replicas per shard.
    pub n: usize,
    /// Number of shards (1: an unsharded group).
    pub shards: usize,
    /// How often replicas are pinged.
    pub ping_interval: Duration,
    /// Pongs older than this mean the replica is down.
    pub liveness_timeout: Duration,
    /// Leave failover to Multi-Paxos replicas' own elections (see
    /// [`crate::RegistryConfig::replicas_elect`]).
    pub replicas_elect: bool,
    /// The state file (`--state`), rewritten on every membership change.
    pub state_file: Option<PathBuf>,
    /// The membership read from the state file at start, if it existed.
    pub restored: Option<State>,
}

/// Rewrites the state file if the membership changed since it was last
/// written. A failed write is logged and tried again at the next change or
/// tick: the replicas keep working without it; only a restart of the master
/// would miss the change.
fn persist(reg: &Registry, file: Option<&Path>, saved: &AtomicU64) {
    let Some(path) = file else { return };
    let v = reg.version();
    if saved.load(Ordering::Relaxed) == v {
        return;
    }
    match reg.state().save(path) {
        Ok(()) => {
            saved.store(v, Ordering::Relaxed);
            debug!(path = %path.display(), version = v, "state file written");
        }
        Err(e) => error!(error = %e, "cannot write the state file"),
    }
}

/// Serves the master protocol on `listener` until the process ends.
pub async fn serve(listener: TcpListener, cfg: MasterConfig) -> std::io::Result<()> {
    let rcfg = RegistryConfig {
        n: cfg.n,
        shards: cfg.shards,
        liveness_timeout: cfg.liveness_timeout,
        election_grace: cfg.liveness_timeout * 3,
        replicas_elect: cfg.replicas_elect,
    };
    let registry = match &cfg.restored {
        Some(st) => {
            info!(
                known = st.replicas.len(),
                "membership restored from the state file; waiting for a majority of every shard to re-register"
            );
            Registry::restore(rcfg, st)
        }
        None => Registry::new(rcfg),
    };
    // What the file holds now: nothing to rewrite until the membership changes.
    let saved = Arc::new(AtomicU64::new(registry.version()));
    let reg = Arc::new(Mutex::new(registry));
    let file: Option<Arc<Path>> = cfg.state_file.as_deref().map(Arc::from);
    let relays = Arc::new(Mutex::new(Relays::default()));
    let (r2, rl2, f2, s2) = (reg.clone(), relays.clone(), file.clone(), saved.clone());
    let every = cfg.ping_interval;
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(every);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            let mut r = r2.lock();
            r.tick();
            persist(&r, f2.as_deref(), &s2);
            drop(r);
            rl2.lock().expire(std::time::Instant::now());
        }
    });
    let ids = Arc::new(AtomicU64::new(1));
    loop {
        let (s, addr) = listener.accept().await?;
        let link = ids.fetch_add(1, Ordering::Relaxed);
        let (reg, relays) = (reg.clone(), relays.clone());
        let (file, saved) = (file.clone(), saved.clone());
        tokio::spawn(async move {
            let persist = |r: &Registry| persist(r, file.as_deref(), &saved);
            if let Err(e) = serve_conn(&reg, &relays, s, link, &persist).await {
                warn!(%addr, error = %e, "dropping connection");
            }
            let mut r = reg.lock();
            if let Some(id) = r.link_closed(link) {
                relays.lock().replica_gone(id);
            }
            // A lost leader link is the fastest failure signal: re-check leadership now.
            r.tick();
        });
    }
}

async fn serve_conn(
    reg: &Mutex<Registry>,
    relays: &Mutex<Relays>,
    s: TcpStream,
    link: u64,
    persist: &(dyn Fn(&Registry) + Sync),
) -> Result<(), ConnError> {
    let _ = s.set_nodelay(true);
    let (mut rd, mut wr) = s.into_split();
    let out = Arc::new(ConnOutbox::new(true, 16 << 20));
    let w = out.clone();
    let writer = tokio::spawn(async move { w.run_writer(&mut wr).await });
    let mut buf = BytesMut::new();
    let res = async {
        while let Some((code, body)) = read_frame(&mut rd, &mut buf, DEFAULT_MAX_FRAME).await? {
            match code {
                codes::REGISTER => {
                    let req: Register = decode_body(body)?;
                    debug!(link, ?req, "register");
                    let mut r = reg.lock();
                    let replies = r.register(link, out.clone(), req);
                    // Recorded before anyone is answered: a replica told its id
                    // finds it again after a master restart.
                    persist(&r);
                    drop(r);
                    for (o, r) in replies {
                        o.push(&r);
                    }
                }
                codes::PONG => {
                    let p: Pong = decode_body(body)?;
                    reg.lock().pong(link, p);
                }
                codes::GET_CLUSTER => {
                    let g: GetCluster = decode_body(body)?;
                    let info = reg.lock().cluster_info(g.nonce);
                    out.push(&info);
                }
                codes::RELAY => {
                    let r: Relay = decode_body(body)?;
                    let to = reg.lock().link_of(r.replica);
                    relays.lock().forward(&out, r, to);
                }
                c if RELAYED_REPLIES.contains(&c) => relays.lock().answer(c, &body),
                other => return Err(ConnError::Wire(WireError::UnknownType(other))),
            }
        }
        Ok(())
    }
    .await;
    out.close();
    let _ = writer.await;
    res
}
