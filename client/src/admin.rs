//! One-shot queries to the master and to single replicas.

use std::time::Duration;

use bytes::BytesMut;
use genericsmr::messages::{
    codes, role, BeLeader, ClusterInfo, FaultReply, FaultRequest, GetCluster, LogReply, LogRequest,
    Relay, RelayError, StatusReply, StatusRequest,
};
use genericsmr::transport::{read_frame, write_frame, ConnError};
use genericsmr::wire::{decode_body, frame_bytes, Message, DEFAULT_MAX_FRAME};
use genericsmr::ReplicaId;
use tokio::io::AsyncWriteExt;
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

/// Where a control request goes: straight to a replica's client port, or
/// through the master, which relays it over the replica's master link (then an
/// operator needs only the master's address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A replica's client address.
    Direct(String),
    /// Replica `replica`, through the master at `master`.
    ViaMaster {
        /// The master's address.
        master: String,
        /// The replica's id.
        replica: ReplicaId,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Direct(a) => write!(f, "{a}"),
            Target::ViaMaster { master, replica } => {
                write!(f, "replica {replica} (through the master at {master})")
            }
        }
    }
}

impl From<&str> for Target {
    fn from(a: &str) -> Self {
        Target::Direct(a.to_string())
    }
}

impl From<&String> for Target {
    fn from(a: &String) -> Self {
        Target::Direct(a.clone())
    }
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
            if code == codes::RELAY_ERROR {
                let e: RelayError = decode_body(body).map_err(ConnError::Wire)?;
                return Err(ClientError::Protocol(e.error));
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

/// `req` wrapped for the master to relay to `replica`.
fn relay<Q: Message>(replica: ReplicaId, req: &Q) -> Relay {
    let mut body = BytesMut::new();
    req.marshal(&mut body);
    Relay {
        replica,
        code: Q::CODE,
        body: body.freeze(),
    }
}

/// Sends `req` to `to` and waits for one reply of type `R`.
pub async fn request_to<Q: Message, R: Message>(
    to: &Target,
    req: &Q,
    timeout: Duration,
) -> Result<R, ClientError> {
    match to {
        Target::Direct(addr) => request(addr, req, timeout).await,
        Target::ViaMaster { master, replica } => {
            request(master, &relay(*replica, req), timeout).await
        }
    }
}

/// Asks the master for the replica list and the leader.
pub async fn cluster(master: &str, timeout: Duration) -> Result<ClusterInfo, ClientError> {
    request(master, &GetCluster { nonce: 1 }, timeout).await
}

/// Asks a replica for its status.
pub async fn status(to: impl Into<Target>, timeout: Duration) -> Result<StatusReply, ClientError> {
    request_to(&to.into(), &StatusRequest { nonce: 1 }, timeout).await
}

/// Asks a replica for digests of `count` log slots from `from`.
pub async fn log(
    to: impl Into<Target>,
    from: u64,
    count: u32,
    timeout: Duration,
) -> Result<LogReply, ClientError> {
    let req = LogRequest {
        nonce: 1,
        from,
        count,
    };
    request_to(&to.into(), &req, timeout).await
}

/// Sets or clears a fault on a replica (it must run with `--control`).
pub async fn fault(
    to: impl Into<Target>,
    req: &FaultRequest,
    timeout: Duration,
) -> Result<FaultReply, ClientError> {
    let to = to.into();
    let r: FaultReply = request_to(&to, req, timeout).await?;
    if !r.ok {
        return Err(ClientError::Protocol(format!(
            "{to} refused the fault request: {}",
            r.error
        )));
    }
    Ok(r)
}

/// Asks a replica to take over leadership (SetLeader; it must run with
/// `--control`), then waits until it reports leading.
pub async fn set_leader(
    to: impl Into<Target>,
    timeout: Duration,
) -> Result<StatusReply, ClientError> {
    let to = to.into();
    let work = async {
        let req = BeLeader { nonce: 1 };
        let (addr, frame) = match &to {
            Target::Direct(a) => (a.as_str(), frame_bytes(&req)),
            Target::ViaMaster { master, replica } => {
                (master.as_str(), frame_bytes(&relay(*replica, &req)))
            }
        };
        let mut s = connect(addr).await?;
        s.write_all(&frame).await.map_err(ConnError::Io)?;
        loop {
            let st = status(to.clone(), Duration::from_secs(1)).await?;
            if st.role == role::LEADER {
                return Ok(st);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ClientError::Timeout { after: timeout, what: format!("{to} to become leader (is it started with --control, and can it reach a majority?)") })?
}

/// The type code of a message name, for faults: `accept`, `preaccept`, ...,
/// a code such as `0x32`, or a name qualified by its protocol
/// (`epaxos.accept`, `paxos.commit`, `mdlin.accept`). An unqualified name
/// several protocols share (`accept`, `commit`, `prepare`) means the default
/// protocol's (Multi-Paxos's).
pub fn message_code(name: &str) -> Option<u8> {
    if let Some(hex) = name.strip_prefix("0x") {
        return u8::from_str_radix(hex, 16).ok();
    }
    let lower = name.to_ascii_lowercase().replace(['-', '_'], "");
    let all = protocols::all();
    let (tables, bare): (Vec<&[(u8, &str)]>, &str) = match lower.split_once('.') {
        Some((p, m)) => match all.iter().find(|i| i.name == p) {
            Some(i) => (vec![i.codes], m),
            None => return None,
        },
        // The registry lists the default protocol first, so its names win.
        None => (all.iter().map(|i| i.codes).collect(), lower.as_str()),
    };
    tables
        .into_iter()
        .flatten()
        .find(|(_, n)| n.to_ascii_lowercase() == bare)
        .map(|(c, _)| *c)
}

#[cfg(test)]
mod tests {
    use super::message_code;

    #[test]
    fn message_names_resolve_per_protocol() {
        assert_eq!(message_code("accept"), Some(0x32));
        assert_eq!(message_code("paxos.accept"), Some(0x32));
        assert_eq!(message_code("epaxos.accept"), Some(0x53));
        assert_eq!(message_code("PreAccept"), Some(0x50));
        assert_eq!(message_code("try_pre_accept"), Some(0x5a));
        assert_eq!(message_code("0x55"), Some(0x55));
        assert_eq!(message_code("mdlin.accept"), Some(0x73));
        assert_eq!(message_code("CoordReply"), Some(0x72));
        assert_eq!(message_code("mdlin.nothing"), None);
        assert_eq!(message_code("nothing"), None);
    }
}
