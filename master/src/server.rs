//! The master's network side: one task per connection, a liveness loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use genericsmr::messages::{codes, GetCluster, Pong, Register, Relay, RELAYED_REPLIES};
use genericsmr::transport::{read_frame, ConnError, ConnOutbox};
use genericsmr::wire::{decode_body, WireError, DEFAULT_MAX_FRAME};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::registry::{Registry, RegistryConfig};
use crate::relay::Relays;

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
}

/// Serves the master protocol on `listener` until the process ends.
pub async fn serve(listener: TcpListener, cfg: MasterConfig) -> std::io::Result<()> {
    let reg = Arc::new(Mutex::new(Registry::new(RegistryConfig {
        n: cfg.n,
        shards: cfg.shards,
        liveness_timeout: cfg.liveness_timeout,
        election_grace: cfg.liveness_timeout * 3,
        replicas_elect: cfg.replicas_elect,
    })));
    let relays = Arc::new(Mutex::new(Relays::default()));
    let (r2, rl2) = (reg.clone(), relays.clone());
    let every = cfg.ping_interval;
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(every);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            r2.lock().tick();
            rl2.lock().expire(std::time::Instant::now());
        }
    });
    let ids = Arc::new(AtomicU64::new(1));
    loop {
        let (s, addr) = listener.accept().await?;
        let link = ids.fetch_add(1, Ordering::Relaxed);
        let (reg, relays) = (reg.clone(), relays.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_conn(&reg, &relays, s, link).await {
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
                    let replies = reg.lock().register(link, out.clone(), req);
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
