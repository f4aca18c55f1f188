//! The replica's side of the master connection: registration, then a persistent
//! link over which the master pings and hands out leadership.
//!
//! After the first registration the stream is attached to the [`Transport`] as a
//! connection of class `MASTER`, so `Ping` and `BeLeader` reach the protocol core
//! through the rpc table like any other message, and the core's `Pong` proves the
//! core itself (not just the socket) is alive. When the link breaks, it
//! reconnects and re-registers under the same id.

use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tracing::{info, warn, Instrument};

use crate::messages::{codes, Register, RegisterReply};
use crate::rpc_table::class;
use crate::transport::{read_frame, write_frame, ConnError, Transport};
use crate::wire::{decode_body, DEFAULT_MAX_FRAME};

/// A registered connection to the master, with any bytes already read past the reply.
pub struct Link {
    stream: TcpStream,
    buf: BytesMut,
}

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The master could not be reached.
    #[error("cannot reach the master at {addr} ({source}); is `master` running there?")]
    Unreachable {
        /// Master address.
        addr: String,
        /// Last connection error.
        source: std::io::Error,
    },
    /// The connection broke or carried garbage.
    #[error("master connection failed: {0}")]
    Conn(#[from] ConnError),
    /// The master refused us.
    #[error("the master refused the registration: {0}")]
    Refused(String),
}

/// Connects to the master (retrying for up to `patience`), registers, and waits
/// for the reply, which the master sends once the whole group has registered.
pub async fn register(
    master: &str,
    req: &Register,
    patience: Duration,
) -> Result<(RegisterReply, Link), LinkError> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut backoff = Duration::from_millis(20);
    let mut stream = loop {
        match TcpStream::connect(master).await {
            Ok(s) => break s,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(LinkError::Unreachable {
                    addr: master.to_string(),
                    source: e,
                })
            }
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        }
    };
    let _ = stream.set_nodelay(true);
    write_frame(&mut stream, req).await.map_err(ConnError::Io)?;
    let mut buf = BytesMut::new();
    loop {
        let (code, body) = read_frame(&mut stream, &mut buf, DEFAULT_MAX_FRAME)
            .await?
            .ok_or_else(|| ConnError::Handshake("master closed the connection".into()))?;
        if code == codes::REGISTER_REPLY {
            let r: RegisterReply = decode_body(body).map_err(ConnError::Wire)?;
            if !r.ok {
                return Err(LinkError::Refused(r.error));
            }
            // Frames that came right behind the reply (a ping) stay in `buf`
            // for the connection's reader: dropping them would desync the stream.
            return Ok((r, Link { stream, buf }));
        }
        // Pings may arrive while we wait for the group; nothing answers them yet.
    }
}

/// Serves the registered link and keeps it up: on loss, re-registers with `req`
/// (which must name our id) and attaches the new stream.
pub fn keep_link(
    rt: &tokio::runtime::Handle,
    transport: Transport,
    master: String,
    req: Register,
    first: Link,
) {
    let span = tracing::info_span!(parent: None, "replica", id = transport.global_id());
    rt.spawn(
        async move {
            let mut link = first;
            loop {
                let (_, closed) = transport.attach(link.stream, link.buf, class::MASTER);
                let _ = closed.await;
                warn!("lost the master connection; reconnecting");
                link = loop {
                    match register(&master, &req, Duration::from_secs(3600)).await {
                        Ok((_, s)) => {
                            info!("re-registered with the master");
                            break s;
                        }
                        Err(e) => {
                            warn!(error = %e, "re-registration failed");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                };
            }
        }
        .instrument(span),
    );
}
