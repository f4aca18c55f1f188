//! Messages every protocol shares: the client protocol, the master protocol and
//! the peer handshake. Protocol crates define their own peer messages with codes
//! from their own range (see [`codes`]).

use bytes::{BufMut, BytesMut};

use crate::command::{Command, Outcome};
use crate::wire::{Marshal, Reader, Unmarshal, WireError};
use crate::ReplicaId;

/// Type-code ranges, so that protocols never collide.
pub mod codes {
    /// Client <-> replica messages: 0x01..=0x0f.
    pub const PROPOSE: u8 = 0x01;
    /// Reply to a proposal.
    pub const PROPOSE_REPLY: u8 = 0x02;
    /// Ask a replica for its status.
    pub const STATUS_REQUEST: u8 = 0x03;
    /// A replica's status.
    pub const STATUS_REPLY: u8 = 0x04;
    /// Ask a replica for digests of log slots.
    pub const LOG_REQUEST: u8 = 0x05;
    /// Digests of log slots.
    pub const LOG_REPLY: u8 = 0x06;
    /// Set or clear a fault (servers started with `--control`).
    pub const FAULT_REQUEST: u8 = 0x07;
    /// The answer to a fault request.
    pub const FAULT_REPLY: u8 = 0x08;
    /// Master protocol: 0x10..=0x1f.
    pub const REGISTER: u8 = 0x10;
    /// Reply to a registration.
    pub const REGISTER_REPLY: u8 = 0x11;
    /// Liveness probe from the master.
    pub const PING: u8 = 0x12;
    /// Answer to a liveness probe.
    pub const PONG: u8 = 0x13;
    /// The master asks a replica to take over leadership.
    pub const BE_LEADER: u8 = 0x14;
    /// Ask the master for the cluster layout.
    pub const GET_CLUSTER: u8 = 0x15;
    /// The cluster layout.
    pub const CLUSTER_INFO: u8 = 0x16;
    /// A control request carried by the master to one replica, and back.
    pub const RELAY: u8 = 0x17;
    /// The master could not relay a control request.
    pub const RELAY_ERROR: u8 = 0x18;
    /// First frame on every replica-to-replica connection.
    pub const PEER_HELLO: u8 = 0x20;
    /// A peer asked about something compacted here (see [`crate::snapshot`]).
    pub const COMPACTED: u8 = 0x21;
    /// Ask a peer for its snapshot.
    pub const SNAPSHOT_REQUEST: u8 = 0x22;
    /// One chunk of a snapshot.
    pub const SNAPSHOT_CHUNK: u8 = 0x23;
    /// Multi-Paxos messages: 0x30..=0x4f.
    pub const PAXOS_BASE: u8 = 0x30;
    /// EPaxos messages: 0x50..=0x6f.
    pub const EPAXOS_BASE: u8 = 0x50;
    /// MDLin messages: 0x70..=0x8f.
    pub const MDLIN_BASE: u8 = 0x70;
}

/// How a replica answered a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ReplyStatus {
    /// The command was committed (and executed, if its outcome is needed).
    Ok = 0,
    /// This replica is not the leader; `leader` in the reply is a hint.
    NotLeader = 1,
    /// The replica cannot serve now (recovering, or shutting down); try another.
    Unavailable = 2,
    /// The command's sequence number is below what its client acknowledged and
    /// its result is forgotten: it was not applied now, and whether it was
    /// applied before is no longer known. Only a client that breaks the
    /// `acked_below` rule (or reuses a client id) sees this.
    Stale = 3,
    /// The command is larger than the replica accepts (see `--max-command`).
    TooLarge = 4,
    /// MDLin only: the operation failed and never takes effect, because an
    /// operation it was chained to failed or its coordination timed out. The
    /// failure is replicated before this is sent, so a retry gets it again.
    Failed = 5,
}

/// What a client does with the reply to a proposal: every client of the
/// workspace (the client library, the bench's drivers) decides it here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The command took effect: take its outcome.
    Done,
    /// Send it again elsewhere: to `hint` if the reply names a replica.
    /// `back_off`: wait a little first (no hint, or the replica is busy),
    /// so that a group without a leader is not flooded with retries.
    Redirect {
        /// The replica the reply names, if any.
        hint: Option<ReplicaId>,
        /// Whether to wait before the retry.
        back_off: bool,
    },
    /// Refused outright (too large, or failed): certainly not applied.
    NotApplied,
    /// Whether it was applied is no longer known (a stale sequence number).
    Unknown,
}

impl ProposeReply {
    /// What a client does with this reply.
    pub fn next(&self) -> Next {
        match self.status {
            ReplyStatus::Ok => Next::Done,
            ReplyStatus::NotLeader | ReplyStatus::Unavailable => Next::Redirect {
                hint: self.leader,
                back_off: self.leader.is_none() || self.status == ReplyStatus::Unavailable,
            },
            ReplyStatus::TooLarge | ReplyStatus::Failed => Next::NotApplied,
            ReplyStatus::Stale => Next::Unknown,
        }
    }
}

impl Marshal for ReplyStatus {
    fn marshal(&self, buf: &mut BytesMut) {
        buf.put_u8(*self as u8)
    }
}
impl Unmarshal for ReplyStatus {
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        match r.u8("reply status")? {
            0 => Ok(ReplyStatus::Ok),
            1 => Ok(ReplyStatus::NotLeader),
            2 => Ok(ReplyStatus::Unavailable),
            3 => Ok(ReplyStatus::Stale),
            4 => Ok(ReplyStatus::TooLarge),
            5 => Ok(ReplyStatus::Failed),
            v => Err(WireError::Invalid {
                what: "reply status",
                value: v as u64,
            }),
        }
    }
}

/// Client -> replica: please order and execute this command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propose {
    /// The command, carrying the client's (id, seq) that makes retries idempotent.
    pub cmd: Command,
}
crate::wire_struct!(Propose { cmd } = codes::PROPOSE);

/// Replica -> client: the answer to one [`Propose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposeReply {
    /// Echo of the command's client id.
    pub client: u64,
    /// Echo of the command's sequence number: how the client matches replies.
    pub seq: u64,
    /// Whether the command took effect, or why not.
    pub status: ReplyStatus,
    /// The replica this one believes leads, when known (for rerouting).
    pub leader: Option<ReplicaId>,
    /// The command's result (meaningful when `status` is `Ok`).
    pub outcome: Outcome,
}
crate::wire_struct!(
    ProposeReply {
        client,
        seq,
        status,
        leader,
        outcome
    } = codes::PROPOSE_REPLY
);

/// Client -> replica: report your internal state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRequest {
    /// Echoed in the reply.
    pub nonce: u64,
}
crate::wire_struct!(StatusRequest { nonce } = codes::STATUS_REQUEST);

/// Role codes used in [`StatusReply::role`].
pub mod role {
    /// Follows a leader.
    pub const FOLLOWER: u8 = 0;
    /// Running phase 1 to become leader.
    pub const CANDIDATE: u8 = 1;
    /// Leading.
    pub const LEADER: u8 = 2;
    /// Restarted without durable state and catching up before it may vote.
    pub const RECOVERING: u8 = 3;
}

/// Replica -> client: a snapshot of the replica's state, for tests and operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusReply {
    /// Echo of the request's nonce.
    pub nonce: u64,
    /// This replica's id.
    pub replica: ReplicaId,
    /// One of the [`role`] codes.
    pub role: u8,
    /// The highest ballot this replica has promised.
    pub ballot: u64,
    /// The replica this one believes leads.
    pub leader: Option<ReplicaId>,
    /// Every slot below this index is committed here.
    pub commit_index: u64,
    /// Every slot below this index is executed here.
    pub executed: u64,
    /// Slots this replica holds (any status).
    pub log_len: u64,
    /// Commands applied to the store (duplicates and no-ops excluded).
    pub applied: u64,
    /// Commands skipped as duplicates of an executed (client, seq).
    pub duplicates: u64,
    /// Upper 64 bits of the state digest.
    pub digest_hi: u64,
    /// Lower 64 bits of the state digest.
    pub digest_lo: u64,
    /// Committed slots this replica fetched from peers through catch-up.
    pub catchup_fetched: u64,
    /// Log records replayed from the durable log at start.
    pub replayed: u64,
    /// Keys in the store.
    pub keys: u64,
}
crate::wire_struct!(
    StatusReply {
        nonce,
        replica,
        role,
        ballot,
        leader,
        commit_index,
        executed,
        log_len,
        applied,
        duplicates,
        digest_hi,
        digest_lo,
        catchup_fetched,
        replayed,
        keys
    } = codes::STATUS_REPLY
);

impl StatusReply {
    /// The full 128-bit state digest.
    pub fn digest(&self) -> u128 {
        ((self.digest_hi as u128) << 64) | self.digest_lo as u128
    }
}

/// Client -> replica: digests of log slots `from .. from + count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    /// Echoed in the reply.
    pub nonce: u64,
    /// First slot wanted.
    pub from: u64,
    /// How many slots (the replica may return fewer).
    pub count: u32,
}
crate::wire_struct!(LogRequest { nonce, from, count } = codes::LOG_REQUEST);

impl LogRequest {
    /// Most slots described by one reply, whatever `count` asks.
    pub const MAX_SLOTS: u32 = 65_536;

    /// The end (exclusive) of the slots this request covers: `count` from
    /// `from`, at most [`LogRequest::MAX_SLOTS`].
    pub fn end(&self) -> u64 {
        self.from
            .saturating_add(self.count.min(Self::MAX_SLOTS) as u64)
    }

    /// The reply describing `slots` (in slot order, from `from` or later),
    /// those past [`LogRequest::end`] left out.
    pub fn answer(&self, slots: impl IntoIterator<Item = SlotDigest>) -> LogReply {
        let end = self.end();
        LogReply {
            nonce: self.nonce,
            slots: slots.into_iter().take_while(|d| d.slot < end).collect(),
        }
    }
}

/// The digest of one log slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotDigest {
    /// The slot.
    pub slot: u64,
    /// Whether the slot is committed on this replica (else only accepted).
    pub committed: bool,
    /// 64-bit hash of the slot's commands; equal hashes mean equal values.
    pub hash: u64,
}
crate::wire_struct!(SlotDigest {
    slot,
    committed,
    hash
});

/// Replica -> client: slot digests, in slot order; empty slots are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReply {
    /// Echo of the request's nonce.
    pub nonce: u64,
    /// The slots found.
    pub slots: Vec<SlotDigest>,
}
crate::wire_struct!(LogReply { nonce, slots } = codes::LOG_REPLY);

/// Where a replica listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaAddr {
    /// The replica's global id (shard `id / n`; its index in an unsharded group).
    pub id: ReplicaId,
    /// Host name or IP address.
    pub host: String,
    /// Port for replica-to-replica traffic.
    pub peer_port: u16,
    /// Port for clients.
    pub client_port: u16,
    /// Whether the master currently hears from it.
    pub alive: bool,
}
crate::wire_struct!(ReplicaAddr {
    id,
    host,
    peer_port,
    client_port,
    alive
});

impl ReplicaAddr {
    /// `host:client_port`.
    pub fn client_addr(&self) -> String {
        format!("{}:{}", self.host, self.client_port)
    }
    /// `host:peer_port`.
    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.host, self.peer_port)
    }
}

/// Replica -> master: join the group (or rejoin under `id` after a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// The id wanted; `None` lets the master assign one (or find it by address).
    pub id: Option<ReplicaId>,
    /// Host the replica listens on.
    pub host: String,
    /// Its peer port.
    pub peer_port: u16,
    /// Its client port.
    pub client_port: u16,
    /// Name of the protocol it runs, so mismatched groups are refused.
    pub protocol: String,
    /// The shard the replica belongs to (0 in an unsharded deployment). A
    /// wanted `id` must lie in this shard.
    pub shard: u8,
    /// Whether it answers every command after executing it
    /// (`--reply-after-exec`), so clients can learn from the master whether a
    /// put's or delete's outcome carries the replaced value.
    pub reply_after_exec: bool,
}
crate::wire_struct!(
    Register {
        id,
        host,
        peer_port,
        client_port,
        protocol,
        shard,
        reply_after_exec
    } = codes::REGISTER
);

/// Master -> replica: the outcome of [`Register`], sent once the group is
/// complete (for a master restarted with `--state`: once a majority of every
/// shard has re-registered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterReply {
    /// Whether registration succeeded.
    pub ok: bool,
    /// Why not, when `ok` is false.
    pub error: String,
    /// The global id assigned.
    pub id: ReplicaId,
    /// True when this id had registered before: the replica is restarting.
    pub rejoin: bool,
    /// Every replica of the deployment (all shards), indexed by global id.
    pub replicas: Vec<ReplicaAddr>,
    /// The current leader of shard 0, if one is known.
    pub leader: Option<ReplicaId>,
    /// Number of shards; each has `replicas.len() / shards` replicas.
    pub shards: u8,
    /// The current leader of each shard (global ids), indexed by shard.
    pub leaders: Vec<Option<ReplicaId>>,
}
crate::wire_struct!(
    RegisterReply {
        ok,
        error,
        id,
        rejoin,
        replicas,
        leader,
        shards,
        leaders
    } = codes::REGISTER_REPLY
);

/// Master -> replica: are you alive? Also tells every replica who leads each shard.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ping {
    /// Echoed in the [`Pong`].
    pub nonce: u64,
    /// The master's current leader of each shard (global ids), indexed by shard.
    pub leaders: Vec<Option<ReplicaId>>,
}
crate::wire_struct!(Ping { nonce, leaders } = codes::PING);

/// Replica -> master: alive, and this is how up to date I am.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pong {
    /// Echo of the ping's nonce.
    pub nonce: u64,
    /// The replica answering (a protocol core may give its id inside its
    /// shard; the master goes by the link the pong arrived on).
    pub replica: ReplicaId,
    /// Its current ballot.
    pub ballot: u64,
    /// Whether it is an active leader.
    pub leader: bool,
    /// Its commit index (the master prefers the most up-to-date replica as new leader).
    pub commit_index: u64,
    /// Whether it is still recovering and must not lead.
    pub recovering: bool,
}
crate::wire_struct!(
    Pong {
        nonce,
        replica,
        ballot,
        leader,
        commit_index,
        recovering
    } = codes::PONG
);

impl Pong {
    /// The answer to a ping, from the replica's status: its id, ballot and
    /// commit index, whether it leads, whether it is still recovering.
    pub fn of(s: &StatusReply) -> Pong {
        Pong {
            nonce: s.nonce,
            replica: s.replica,
            ballot: s.ballot,
            leader: s.role == role::LEADER,
            commit_index: s.commit_index,
            recovering: s.role == role::RECOVERING,
        }
    }
}

/// Master -> replica: take over leadership (run phase 1 with a higher ballot).
/// With [`BeLeader::HINT`] set in the nonce, sent by the master itself over its
/// link, it is only a hint (see [`BeLeader::is_hint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeLeader {
    /// Identifies the request in logs; the [`BeLeader::HINT`] bit marks a hint.
    pub nonce: u64,
}

impl BeLeader {
    /// Nonce bit of the master's failover hint: "I lost sight of your leader".
    /// A replica that elects its own leaders campaigns on it only once its
    /// leader has been silent for a short while itself, so a hint never
    /// deposes a leader the replica still hears. Relayed operator requests
    /// (set-leader) use small nonces and always move leadership.
    pub const HINT: u64 = 1 << 63;

    /// Whether this request is the master's hint rather than an order.
    pub fn is_hint(&self) -> bool {
        self.nonce & Self::HINT != 0
    }
}
crate::wire_struct!(BeLeader { nonce } = codes::BE_LEADER);

/// Anyone -> master: describe the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetCluster {
    /// Echoed in the reply.
    pub nonce: u64,
}
crate::wire_struct!(GetCluster { nonce } = codes::GET_CLUSTER);

/// Master -> anyone: the replicas and the leader of each shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Echo of the request's nonce.
    pub nonce: u64,
    /// Replicas per shard (the group size the master was started with).
    pub n: u8,
    /// Whether all `shards * n` replicas have registered (for a master
    /// restarted with `--state`: are known from its file, and a majority of
    /// every shard has re-registered; `alive` tells which are up).
    pub complete: bool,
    /// The leader of shard 0, if known.
    pub leader: Option<ReplicaId>,
    /// Registered replicas, by global id.
    pub replicas: Vec<ReplicaAddr>,
    /// Number of shards (1: an unsharded deployment).
    pub shards: u8,
    /// The leader of each shard (global ids), indexed by shard.
    pub leaders: Vec<Option<ReplicaId>>,
    /// The protocol the replicas run (`paxos`, `epaxos`, `mdlin`; empty
    /// before any registered): tells a client whether to send to the leader
    /// or to any replica (EPaxos replicas all report themselves as leader).
    pub protocol: String,
    /// Whether every registered replica answers after execution
    /// (`--reply-after-exec`): only then does a put's or delete's outcome
    /// carry the replaced value and the delete flag.
    pub reply_after_exec: bool,
}
crate::wire_struct!(
    ClusterInfo {
        nonce,
        n,
        complete,
        leader,
        replicas,
        shards,
        leaders,
        protocol,
        reply_after_exec
    } = codes::CLUSTER_INFO
);

impl ClusterInfo {
    /// The shard count, never 0.
    pub fn shard_count(&self) -> usize {
        (self.shards as usize).max(1)
    }

    /// The leader of shard `s` (shard 0's also from `leader`).
    pub fn leader_of(&self, s: usize) -> Option<ReplicaId> {
        match self.leaders.get(s) {
            Some(l) => *l,
            None if s == 0 => self.leader,
            None => None,
        }
    }

    /// The shard of the replica with global id `g`.
    pub fn shard_of_replica(&self, g: ReplicaId) -> usize {
        crate::shard::shard_of_replica(g, self.n as usize)
    }
}

/// Control requests the master relays (every one starts with a `u64` nonce,
/// which the master swaps for its own while the request is in flight).
pub const RELAYABLE: [u8; 4] = [
    codes::STATUS_REQUEST,
    codes::LOG_REQUEST,
    codes::FAULT_REQUEST,
    codes::BE_LEADER,
];

/// Replies the master carries back to the client that asked.
pub const RELAYED_REPLIES: [u8; 4] = [
    codes::STATUS_REPLY,
    codes::LOG_REPLY,
    codes::FAULT_REPLY,
    codes::RELAY_ERROR,
];

/// Client -> master -> replica: one control request for replica `replica`, so an
/// operator needs only the master's address. The replica treats the inner frame
/// as if it came from a client (the `--control` rule included) and answers on
/// its master link; the master forwards the answer unchanged but for its nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// The replica the request is for.
    pub replica: ReplicaId,
    /// The inner frame's type code, one of [`RELAYABLE`].
    pub code: u8,
    /// The inner frame's body.
    pub body: bytes::Bytes,
}
crate::wire_struct!(
    Relay {
        replica,
        code,
        body
    } = codes::RELAY
);

/// Master -> client: a [`Relay`] could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayError {
    /// The nonce of the request that failed.
    pub nonce: u64,
    /// Why, and what to do.
    pub error: String,
}
crate::wire_struct!(RelayError { nonce, error } = codes::RELAY_ERROR);

/// Replica -> replica: first frame on a peer connection, naming the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHello {
    /// The dialing replica's id.
    pub replica: ReplicaId,
    /// Its group size, checked against ours.
    pub n: u8,
}
crate::wire_struct!(PeerHello { replica, n } = codes::PEER_HELLO);

#[cfg(test)]
mod tests {

    #[test]
    fn every_status_says_what_a_client_does_next() {
        let r = |status, leader| ProposeReply {
            client: 1,
            seq: 1,
            status,
            leader,
            outcome: Default::default(),
        };
        assert_eq!(r(ReplyStatus::Ok, Some(0)).next(), Next::Done);
        assert_eq!(
            r(ReplyStatus::NotLeader, Some(2)).next(),
            Next::Redirect {
                hint: Some(2),
                back_off: false
            }
        );
        assert_eq!(
            r(ReplyStatus::NotLeader, None).next(),
            Next::Redirect {
                hint: None,
                back_off: true
            }
        );
        assert_eq!(
            r(ReplyStatus::Unavailable, Some(1)).next(),
            Next::Redirect {
                hint: Some(1),
                back_off: true
            }
        );
        assert_eq!(r(ReplyStatus::TooLarge, None).next(), Next::NotApplied);
        assert_eq!(r(ReplyStatus::Failed, None).next(), Next::NotApplied);
        assert_eq!(r(ReplyStatus::Stale, None).next(), Next::Unknown);
    }

    use super::*;
    use crate::wire::frame_bytes;

    /// The worked example in docs/wire.md.
    #[test]
    fn documented_propose_example() {
        let f = frame_bytes(&Propose {
            cmd: Command::put(7, 1, "k", "v"),
        });
        let expected: Vec<u8> = [
            &[0x01, 0x24, 0, 0, 0][..],
            &[7, 0, 0, 0, 0, 0, 0, 0],
            &[1, 0, 0, 0, 0, 0, 0, 0],
            &[0; 8],
            &[1],
            &[1, 0, 0, 0, b'k'],
            &[1, 0, 0, 0, b'v'],
            &[0],
        ]
        .concat();
        assert_eq!(&f[..], &expected[..]);
    }
}

/// Kinds of [`FaultRequest`].
pub mod fault {
    /// Drop everything received and sent, keep the state (a hung process).
    pub const CRASH: u8 = 1;
    /// Undo a crash.
    pub const RESTORE: u8 = 2;
    /// Cut the links to and from `peers`.
    pub const PARTITION: u8 = 3;
    /// Cut only the links from this replica to `peers`.
    pub const PARTITION_ONE_WAY: u8 = 4;
    /// Undo every partition.
    pub const HEAL: u8 = 5;
    /// Set delay, jitter, loss and duplication on the links to `peers`.
    pub const LINK: u8 = 6;
    /// Hold back the next message of type `code` to each of `peers`.
    pub const HOLD: u8 = 7;
    /// Send what is held for `peers`, and stop holding.
    pub const RELEASE: u8 = 8;
    /// Delay messages of type `code` (0: every type) received here by `delay_us`;
    /// `u64::MAX` drops them, 0 clears the rule.
    pub const PHASE: u8 = 9;
    /// Clear every fault.
    pub const CLEAR: u8 = 10;
    /// Change nothing; report.
    pub const QUERY: u8 = 11;
}

/// Client -> replica: set or clear a fault on this replica. Accepted only by
/// servers started with `--control`; handled by the transport itself, so a
/// "crashed" replica still obeys `RESTORE`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultRequest {
    /// Echoed in the reply.
    pub nonce: u64,
    /// One of the [`fault`] kinds.
    pub kind: u8,
    /// Peers concerned, as a bit set (bit i = replica i).
    pub peers: u64,
    /// Message type code, for `HOLD` and `PHASE` (0 with `PHASE`: every type).
    pub code: u8,
    /// Delay in microseconds (`LINK`, `PHASE`).
    pub delay_us: u64,
    /// Extra random delay up to this many microseconds (`LINK`).
    pub jitter_us: u64,
    /// Loss probability in parts per million (`LINK`).
    pub drop_ppm: u32,
    /// Duplication probability in parts per million (`LINK`).
    pub dup_ppm: u32,
}
crate::wire_struct!(
    FaultRequest {
        nonce,
        kind,
        peers,
        code,
        delay_us,
        jitter_us,
        drop_ppm,
        dup_ppm
    } = codes::FAULT_REQUEST
);

/// Replica -> client: the outcome of a [`FaultRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultReply {
    /// Echo of the request's nonce.
    pub nonce: u64,
    /// Whether the request was applied.
    pub ok: bool,
    /// Why not.
    pub error: String,
    /// Whether the replica now plays crashed.
    pub crashed: bool,
    /// Whether any fault is set.
    pub active: bool,
}
crate::wire_struct!(
    FaultReply {
        nonce,
        ok,
        error,
        crashed,
        active
    } = codes::FAULT_REPLY
);
