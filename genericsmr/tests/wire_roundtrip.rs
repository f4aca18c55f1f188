//! Property tests of the wire format: every shared message, `Command` and
//! `Outcome` survive encode/decode unchanged, frames carry the right header,
//! arbitrary bytes never make a decoder panic, and every strict prefix of a valid
//! body is rejected as truncated.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use genericsmr::command::{Command, Op, Outcome};
use genericsmr::effects::Reply;
use genericsmr::messages::*;
use genericsmr::testkit::{arbitrary_body, bytes_s, check_truncations, command_s};
use genericsmr::wire::{
    decode_body, frame_bytes, parse_header, Frame, Marshal, Message, Unmarshal, WireError,
    DEFAULT_MAX_FRAME, FRAME_HEADER_LEN,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

fn outcome_s() -> impl Strategy<Value = Outcome> {
    (proptest::option::of(bytes_s()), any::<bool>())
        .prop_map(|(value, flag)| Outcome { value, flag })
}

fn status_s() -> impl Strategy<Value = ReplyStatus> {
    prop_oneof![
        Just(ReplyStatus::Ok),
        Just(ReplyStatus::NotLeader),
        Just(ReplyStatus::Unavailable),
        Just(ReplyStatus::Stale),
        Just(ReplyStatus::TooLarge),
        Just(ReplyStatus::Failed)
    ]
}

fn propose_s() -> impl Strategy<Value = Propose> {
    command_s().prop_map(|cmd| Propose { cmd })
}

fn propose_reply_s() -> impl Strategy<Value = ProposeReply> {
    (
        any::<u64>(),
        any::<u64>(),
        status_s(),
        any::<Option<u8>>(),
        outcome_s(),
    )
        .prop_map(|(client, seq, status, leader, outcome)| ProposeReply {
            client,
            seq,
            status,
            leader,
            outcome,
        })
}

fn status_reply_s() -> impl Strategy<Value = StatusReply> {
    (
        (
            any::<u64>(),
            any::<u8>(),
            any::<u8>(),
            any::<u64>(),
            any::<Option<u8>>(),
        ),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (nonce, replica, role, ballot, leader),
                (commit_index, executed, log_len, applied, duplicates),
                (digest_hi, digest_lo, catchup_fetched, replayed, keys),
            )| StatusReply {
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
                keys,
            },
        )
}

fn log_reply_s() -> impl Strategy<Value = LogReply> {
    let digest = (any::<u64>(), any::<bool>(), any::<u64>()).prop_map(|(slot, committed, hash)| {
        SlotDigest {
            slot,
            committed,
            hash,
        }
    });
    (any::<u64>(), proptest::collection::vec(digest, 0..12))
        .prop_map(|(nonce, slots)| LogReply { nonce, slots })
}

fn string_s() -> impl Strategy<Value = String> {
    // Arbitrary Unicode, including multi-byte characters.
    any::<String>()
}

fn replica_addr_s() -> impl Strategy<Value = ReplicaAddr> {
    (
        any::<u8>(),
        string_s(),
        any::<u16>(),
        any::<u16>(),
        any::<bool>(),
    )
        .prop_map(|(id, host, peer_port, client_port, alive)| ReplicaAddr {
            id,
            host,
            peer_port,
            client_port,
            alive,
        })
}

fn register_s() -> impl Strategy<Value = Register> {
    (
        any::<Option<u8>>(),
        string_s(),
        any::<u16>(),
        any::<u16>(),
        string_s(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(
            |(id, host, peer_port, client_port, protocol, shard, reply_after_exec)| Register {
                id,
                host,
                peer_port,
                client_port,
                protocol,
                shard,
                reply_after_exec,
            },
        )
}

fn register_reply_s() -> impl Strategy<Value = RegisterReply> {
    (
        any::<bool>(),
        string_s(),
        any::<u8>(),
        any::<bool>(),
        proptest::collection::vec(replica_addr_s(), 0..6),
        any::<Option<u8>>(),
        any::<u8>(),
        leaders_s(),
    )
        .prop_map(
            |(ok, error, id, rejoin, replicas, leader, shards, leaders)| RegisterReply {
                ok,
                error,
                id,
                rejoin,
                replicas,
                leader,
                shards,
                leaders,
            },
        )
}

fn leaders_s() -> impl Strategy<Value = Vec<Option<u8>>> {
    proptest::collection::vec(any::<Option<u8>>(), 0..8)
}

fn pong_s() -> impl Strategy<Value = Pong> {
    (
        any::<u64>(),
        any::<u8>(),
        any::<u64>(),
        any::<bool>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(nonce, replica, ballot, leader, commit_index, recovering)| Pong {
                nonce,
                replica,
                ballot,
                leader,
                commit_index,
                recovering,
            },
        )
}

fn cluster_info_s() -> impl Strategy<Value = ClusterInfo> {
    (
        any::<u64>(),
        any::<u8>(),
        any::<bool>(),
        any::<Option<u8>>(),
        proptest::collection::vec(replica_addr_s(), 0..6),
        any::<u8>(),
        leaders_s(),
        string_s(),
        any::<bool>(),
    )
        .prop_map(
            |(
                nonce,
                n,
                complete,
                leader,
                replicas,
                shards,
                leaders,
                protocol,
                reply_after_exec,
            )| {
                ClusterInfo {
                    nonce,
                    n,
                    complete,
                    leader,
                    replicas,
                    shards,
                    leaders,
                    protocol,
                    reply_after_exec,
                }
            },
        )
}

fn log_request_s() -> impl Strategy<Value = LogRequest> {
    (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(nonce, from, count)| LogRequest {
        nonce,
        from,
        count,
    })
}

fn peer_hello_s() -> impl Strategy<Value = PeerHello> {
    (any::<u8>(), any::<u8>()).prop_map(|(replica, n)| PeerHello { replica, n })
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// Encodes `m` as a frame, checks the header, decodes the body and compares.
/// Returns the body for further checks.
fn check_frame<M>(m: &M) -> Bytes
where
    M: Message + PartialEq + Debug,
{
    let frame = frame_bytes(m);
    assert!(frame.len() >= FRAME_HEADER_LEN);
    assert_eq!(frame[0], M::CODE, "code byte of {}", M::NAME);
    let len = u32::from_le_bytes(frame[1..5].try_into().unwrap()) as usize;
    assert_eq!(
        len,
        frame.len() - FRAME_HEADER_LEN,
        "length field of {}",
        M::NAME
    );
    assert_eq!(
        parse_header(&frame, DEFAULT_MAX_FRAME),
        Ok(Some((M::CODE, len)))
    );
    let body = frame.slice(FRAME_HEADER_LEN..);
    let back = decode_body::<M>(body.clone()).unwrap_or_else(|e| panic!("{}: {e}", M::NAME));
    assert_eq!(&back, m);
    // The body alone, marshalled directly, is the same bytes.
    let mut direct = BytesMut::new();
    m.marshal(&mut direct);
    assert_eq!(&direct[..], &body[..]);
    body
}

fn roundtrip<M>(m: &M)
where
    M: Message + PartialEq + Debug,
{
    let body = check_frame(m);
    check_truncations::<M>(&body);
}

/// A value that is not a [`Message`]: marshal, decode, compare, truncate.
fn roundtrip_plain<T>(v: &T)
where
    T: Marshal + Unmarshal + PartialEq + Debug,
{
    let mut b = BytesMut::new();
    v.marshal(&mut b);
    let body = b.freeze();
    assert_eq!(&decode_body::<T>(body.clone()).unwrap(), v);
    check_truncations::<T>(&body);
}

/// Random bytes, biased towards plausible prefixes (small lengths, 0/1 flags).
fn noise_s() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(2u8), any::<u8>()],
            0..200
        ),
    ]
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn command_roundtrip(c in command_s()) {
        roundtrip_plain(&c);
    }

    #[test]
    fn outcome_roundtrip(o in outcome_s()) {
        roundtrip_plain(&o);
    }

    #[test]
    fn propose_roundtrip(m in propose_s()) {
        roundtrip(&m);
    }

    #[test]
    fn propose_reply_roundtrip(m in propose_reply_s()) {
        roundtrip(&m);
        // The client/master reply enum frames exactly like the message it wraps.
        prop_assert_eq!(frame_bytes(&Reply::Propose(m.clone())), frame_bytes(&m));
    }

    #[test]
    fn status_request_roundtrip(nonce in any::<u64>()) {
        roundtrip(&StatusRequest { nonce });
    }

    #[test]
    fn status_reply_roundtrip(m in status_reply_s()) {
        roundtrip(&m);
        prop_assert_eq!(m.digest(), ((m.digest_hi as u128) << 64) | m.digest_lo as u128);
        prop_assert_eq!(frame_bytes(&Reply::Status(m.clone())), frame_bytes(&m));
    }

    #[test]
    fn log_request_roundtrip(m in log_request_s()) {
        roundtrip(&m);
    }

    #[test]
    fn log_reply_roundtrip(m in log_reply_s()) {
        roundtrip(&m);
        prop_assert_eq!(frame_bytes(&Reply::Log(m.clone())), frame_bytes(&m));
    }

    #[test]
    fn register_roundtrip(m in register_s()) {
        roundtrip(&m);
    }

    #[test]
    fn register_reply_roundtrip(m in register_reply_s()) {
        roundtrip(&m);
    }

    #[test]
    fn replica_addr_roundtrip(m in replica_addr_s()) {
        roundtrip_plain(&m);
    }

    #[test]
    fn ping_roundtrip(nonce in any::<u64>(), leaders in leaders_s()) {
        roundtrip(&Ping { nonce, leaders });
    }

    #[test]
    fn fault_request_roundtrip(
        nonce in any::<u64>(), kind in any::<u8>(), peers in any::<u64>(), code in any::<u8>(),
        delay_us in any::<u64>(), jitter_us in any::<u64>(), drop_ppm in any::<u32>(), dup_ppm in any::<u32>()
    ) {
        roundtrip(&genericsmr::messages::FaultRequest { nonce, kind, peers, code, delay_us, jitter_us, drop_ppm, dup_ppm });
    }

    #[test]
    fn fault_reply_roundtrip(nonce in any::<u64>(), ok in any::<bool>(), error in ".{0,40}", crashed in any::<bool>(), active in any::<bool>()) {
        roundtrip(&genericsmr::messages::FaultReply { nonce, ok, error, crashed, active });
    }

    #[test]
    fn pong_roundtrip(m in pong_s()) {
        roundtrip(&m);
        prop_assert_eq!(frame_bytes(&Reply::Pong(m.clone())), frame_bytes(&m));
    }

    #[test]
    fn be_leader_roundtrip(nonce in any::<u64>()) {
        roundtrip(&BeLeader { nonce });
    }

    #[test]
    fn get_cluster_roundtrip(nonce in any::<u64>()) {
        roundtrip(&GetCluster { nonce });
    }

    #[test]
    fn cluster_info_roundtrip(m in cluster_info_s()) {
        roundtrip(&m);
    }

    #[test]
    fn peer_hello_roundtrip(m in peer_hello_s()) {
        roundtrip(&m);
    }

    #[test]
    fn random_bodies_never_panic(data in noise_s()) {
        arbitrary_body::<Command>(&data);
        arbitrary_body::<Outcome>(&data);
        arbitrary_body::<Propose>(&data);
        arbitrary_body::<ProposeReply>(&data);
        arbitrary_body::<StatusReply>(&data);
        arbitrary_body::<LogReply>(&data);
        arbitrary_body::<Register>(&data);
        arbitrary_body::<RegisterReply>(&data);
        arbitrary_body::<ClusterInfo>(&data);
        arbitrary_body::<Pong>(&data);
        arbitrary_body::<Ping>(&data);
        arbitrary_body::<PeerHello>(&data);
    }

    /// Random mutations of a valid encoding: decoding never panics.
    #[test]
    fn mutated_bodies_never_panic(
        m in register_reply_s(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut b = BytesMut::new();
        m.marshal(&mut b);
        let mut v = b.to_vec();
        for (i, x) in flips {
            let at = i.index(v.len());
            v[at] = x;
        }
        arbitrary_body::<RegisterReply>(&v);
    }
}

// ---------------------------------------------------------------------------
// Fixed cases
// ---------------------------------------------------------------------------

#[test]
fn codes_are_distinct() {
    let codes = [
        Propose::CODE,
        ProposeReply::CODE,
        StatusRequest::CODE,
        StatusReply::CODE,
        LogRequest::CODE,
        LogReply::CODE,
        genericsmr::messages::FaultRequest::CODE,
        genericsmr::messages::FaultReply::CODE,
        Register::CODE,
        RegisterReply::CODE,
        Ping::CODE,
        Pong::CODE,
        BeLeader::CODE,
        GetCluster::CODE,
        ClusterInfo::CODE,
        PeerHello::CODE,
    ];
    let mut sorted = codes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), codes.len(), "duplicate type codes: {codes:?}");
    assert!(codes.iter().all(|c| *c < codes::PAXOS_BASE));
}

#[test]
fn every_op_and_status_roundtrips_and_unknown_values_are_invalid() {
    for op in [Op::Noop, Op::Put, Op::Get, Op::Delete, Op::Cas] {
        roundtrip_plain(&op);
        assert_eq!(Op::try_from(op as u8), Ok(op));
    }
    for v in 5..=u8::MAX {
        assert!(matches!(
            decode_body::<Op>(Bytes::from(vec![v])),
            Err(WireError::Invalid { .. })
        ));
    }
    for s in [
        ReplyStatus::Ok,
        ReplyStatus::NotLeader,
        ReplyStatus::Unavailable,
        ReplyStatus::Stale,
        ReplyStatus::TooLarge,
        ReplyStatus::Failed,
    ] {
        roundtrip_plain(&s);
    }
    for v in 6..=u8::MAX {
        assert!(matches!(
            decode_body::<ReplyStatus>(Bytes::from(vec![v])),
            Err(WireError::Invalid { .. })
        ));
    }
}

#[test]
fn command_constructors_roundtrip() {
    for c in [
        Command::noop(),
        Command::put(1, 2, "k", "v"),
        Command::get(3, 4, "k"),
        Command::delete(5, 6, "k"),
        Command::cas(7, 8, "k", None, "v"),
        Command::cas(9, 10, "k", Some(Bytes::from_static(b"")), "v"),
    ] {
        roundtrip_plain(&c);
    }
    // `None` and `Some(empty)` are different expectations and must stay different.
    let a = Command::cas(1, 1, "k", None, "v");
    let b = Command::cas(1, 1, "k", Some(Bytes::new()), "v");
    let (mut ea, mut eb) = (BytesMut::new(), BytesMut::new());
    a.marshal(&mut ea);
    b.marshal(&mut eb);
    assert_ne!(ea, eb);
}

#[test]
fn invalid_utf8_string_is_rejected() {
    let good = Register {
        id: Some(1),
        host: "h".into(),
        peer_port: 1,
        client_port: 2,
        protocol: "paxos".into(),
        shard: 0,
        reply_after_exec: false,
    };
    let mut b = BytesMut::new();
    good.marshal(&mut b);
    let mut v = b.to_vec();
    // id flag + id, then the host: u32 len (1) + 'h' at offset 2 + 4.
    assert_eq!(v[6], b'h');
    v[6] = 0xff;
    assert!(matches!(
        decode_body::<Register>(Bytes::from(v)),
        Err(WireError::Invalid { .. })
    ));
}

#[test]
fn hostile_lengths_are_truncation_errors() {
    // A LogReply announcing u32::MAX slots in a tiny body.
    let mut body = 7u64.to_le_bytes().to_vec();
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_body::<LogReply>(Bytes::from(body)),
        Err(WireError::Truncated { .. })
    ));
    // A Propose whose key announces more bytes than the body holds.
    let mut b = BytesMut::new();
    Propose {
        cmd: Command::put(1, 1, "key", "value"),
    }
    .marshal(&mut b);
    let mut v = b.to_vec();
    // client, seq, acked_below (24) + op (1): the key length follows.
    v[25..29].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_body::<Propose>(Bytes::from(v)),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn frame_of_enum_matches_inner_frame_layout() {
    let m = ProposeReply {
        client: 1,
        seq: 2,
        status: ReplyStatus::NotLeader,
        leader: Some(3),
        outcome: Outcome {
            value: Some(Bytes::from_static(b"x")),
            flag: true,
        },
    };
    let mut out = BytesMut::new();
    Reply::Propose(m.clone()).encode_frame(&mut out);
    // Two frames appended back to back stay separable by their headers.
    Reply::Status(StatusReply::default()).encode_frame(&mut out);
    let (code, len) = parse_header(&out, DEFAULT_MAX_FRAME).unwrap().unwrap();
    assert_eq!(code, ProposeReply::CODE);
    let first = out.split_to(FRAME_HEADER_LEN + len).freeze();
    assert_eq!(
        decode_body::<ProposeReply>(first.slice(FRAME_HEADER_LEN..)).unwrap(),
        m
    );
    let (code, len) = parse_header(&out, DEFAULT_MAX_FRAME).unwrap().unwrap();
    assert_eq!(code, StatusReply::CODE);
    let second = out.freeze();
    assert_eq!(second.len(), FRAME_HEADER_LEN + len);
    assert_eq!(
        decode_body::<StatusReply>(second.slice(FRAME_HEADER_LEN..)).unwrap(),
        StatusReply::default()
    );
}
