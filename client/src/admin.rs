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

/// A connection to `addr`, with the error saying which address failed.
async fn connect(addr: &str) -> Result<TcpStream, ClientError> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| ClientError::Connect {
            addr: addr.to_string(),
            source: e,
        })?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Sends `req` to `addr` and waits for one reply of type `R`.
pub async fn request<Q: Message, R: Message>(
    addr: &str,
    req: &Q,
    timeout: Duration,
) -> Result<R, ClientError> {
    let work = async {
        let mut s = connect(addr).await?;
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

/// Sets or clears a fault on the replica at `addr` (it must run with `--control`).
pub async fn fault(
    addr: &str,
    req: &genericsmr::messages::FaultRequest,
    timeout: Duration,
) -> Result<genericsmr::messages::FaultReply, ClientError> {
    let r: genericsmr::messages::FaultReply = request(addr, req, timeout).await?;
    if !r.ok {
        return Err(ClientError::Protocol(format!(
            "{addr} refused the fault request: {}",
            r.error
        )));
    }
    Ok(r)
}

/// Asks the replica at `addr` to take over leadership (SetLeader; it must run
/// with `--control`), then waits until it reports leading.
pub async fn set_leader(addr: &str, timeout: Duration) -> Result<StatusReply, ClientError> {
    let work = async {
        let mut s = connect(addr).await?;
        write_frame(&mut s, &genericsmr::messages::BeLeader { nonce: 1 })
            .await
            .map_err(ConnError::Io)?;
        loop {
            let st = status(addr, Duration::from_secs(1)).await?;
            if st.role == genericsmr::messages::role::LEADER {
                return Ok(st);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ClientError::Timeout { after: timeout, what: format!("{addr} to become leader (is it started with --control, and can it reach a majority?)") })?
}

/// The type code of a message name (`prepare`, `accept`, ... or `0x32`), for faults.
pub fn message_code(name: &str) -> Option<u8> {
    if let Some(hex) = name.strip_prefix("0x") {
        return u8::from_str_radix(hex, 16).ok();
    }
    let lower = name.to_ascii_lowercase().replace(['-', '_'], "");
    paxos::messages::CODES
        .iter()
        .find(|(_, n)| n.to_ascii_lowercase() == lower)
        .map(|(c, _)| *c)
}
