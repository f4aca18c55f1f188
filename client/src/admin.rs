//! One-shot queries to the master and to single replicas.

use std::time::Duration;

use bytes::BytesMut;
use genericsmr::messages::{
    ClusterInfo, GetCluster, LogReply, LogRequest, StatusReply, StatusRequest,
};
use genericsmr::transport::{read_frame, write_frame, ConnError};
use genericsmr::wire::{decode_body, Message, DEFAULT_MAX_FRAME};
use tokio::net::TcpStream;

use crate::ClientError;

/// Sends `req` to `addr` and waits for one reply of type `R`.
pub async fn request<Q: Message, R: Message>(
    addr: &str,
    req: &Q,
    timeout: Duration,
) -> Result<R, ClientError> {
    let work = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect {
                addr: addr.to_string(),
                source: e,
            })?;
        let _ = s.set_nodelay(true);
        write_frame(&mut s, req).await.map_err(ConnError::Io)?;
        let mut buf = BytesMut::new();
        loop {
            let (code, body) = read_frame(&mut s, &mut buf, DEFAULT_MAX_FRAME)
                .await?
                .ok_or_else(|| {
                    ClientError::Protocol(format!(
                        "{addr} closed the connection without answering; is that the right port (a replica's client port, or the master's)?"
                    ))
                })?;
            if code == R::CODE {
                return Ok(decode_body::<R>(body).map_err(ConnError::Wire)?);
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ClientError::Timeout {
            after: timeout,
            what: format!("{} from {addr}", R::NAME),
        })?
}

/// Asks the master for the replica list and the leader.
pub async fn cluster(master: &str, timeout: Duration) -> Result<ClusterInfo, ClientError> {
    request(master, &GetCluster { nonce: 1 }, timeout).await
}

/// Asks a replica (at its client address) for its status.
pub async fn status(addr: &str, timeout: Duration) -> Result<StatusReply, ClientError> {
    request(addr, &StatusRequest { nonce: 1 }, timeout).await
}

/// Asks a replica for digests of `count` log slots from `from`.
pub async fn log(
    addr: &str,
    from: u64,
    count: u32,
    timeout: Duration,
) -> Result<LogReply, ClientError> {
    request(
        addr,
        &LogRequest {
            nonce: 1,
            from,
            count,
        },
        timeout,
    )
    .await
}
