//! Property tests of the Mencius wire messages and durable records: each
//! survives encode/decode unchanged under its own code, the `MenciusMsg`
//! enum frames exactly like the message it wraps, strict prefixes are
//! refused, and arbitrary bytes never make a decoder panic.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use genericsmr::testkit::*;
use genericsmr::wire::{
    decode_body, frame_bytes, parse_header, Marshal, Message, WireError, DEFAULT_MAX_FRAME,
    FRAME_HEADER_LEN,
};
use mencius::messages::*;
use proptest::prelude::*;

fn chosen_s() -> impl Strategy<Value = ChosenSlot> {
    (any::<u64>(), cmds_s()).prop_map(|(slot, cmds)| ChosenSlot { slot, cmds })
}

fn report_s() -> impl Strategy<Value = SlotReport> {
    (any::<u64>(), any::<u64>(), any::<bool>(), cmds_s()).prop_map(
        |(slot, ballot, committed, cmds)| SlotReport {
            slot,
            ballot,
            committed,
            cmds,
        },
    )
}

fn revoke_s() -> impl Strategy<Value = Revoke> {
    (
        (any::<u64>(), any::<u8>(), any::<u64>(), any::<u64>()),
        any::<bool>(),
        proptest::collection::vec(chosen_s(), 0..4),
    )
        .prop_map(|((ballot, owner, from, to), chosen, values)| Revoke {
            ballot,
            owner,
            from,
            to,
            chosen,
            values,
        })
}

/// Every message, as its enum variant.
fn msg_s() -> impl Strategy<Value = MenciusMsg> {
    let u = any::<u64>;
    prop_oneof![
        (u(), u(), cmds_s(), u(), u()).prop_map(|(ballot, slot, cmds, skip_from, skip_to)| {
            MenciusMsg::Accept(Accept {
                ballot,
                slot,
                cmds,
                skip_from,
                skip_to,
            })
        }),
        (u(), u(), any::<bool>(), u(), u(), u()).prop_map(
            |(ballot, slot, ok, promised, skip_from, skip_to)| {
                MenciusMsg::AcceptReply(AcceptReply {
                    ballot,
                    slot,
                    ok,
                    promised,
                    skip_from,
                    skip_to,
                })
            }
        ),
        (u(), u()).prop_map(|(ballot, slot)| MenciusMsg::Commit(Commit { ballot, slot })),
        (u(), u(), u()).prop_map(|(from, to, commit_index)| MenciusMsg::Skip(Skip {
            from,
            to,
            commit_index
        })),
        (u(), any::<u8>(), u(), u()).prop_map(|(ballot, owner, from, to)| {
            MenciusMsg::Prepare(Prepare {
                ballot,
                owner,
                from,
                to,
            })
        }),
        (
            u(),
            any::<bool>(),
            u(),
            u(),
            proptest::collection::vec(report_s(), 0..4)
        )
            .prop_map(|(ballot, ok, promised, commit_index, slots)| {
                MenciusMsg::PrepareReply(PrepareReply {
                    ballot,
                    ok,
                    promised,
                    commit_index,
                    slots,
                })
            }),
        revoke_s().prop_map(MenciusMsg::Revoke),
        (u(), any::<bool>(), u()).prop_map(|(ballot, ok, promised)| {
            MenciusMsg::RevokeReply(RevokeReply {
                ballot,
                ok,
                promised,
            })
        }),
        (u(), any::<u32>()).prop_map(|(from_slot, max)| {
            MenciusMsg::CatchupRequest(CatchupRequest { from_slot, max })
        }),
        (u(), proptest::collection::vec(chosen_s(), 0..4)).prop_map(|(commit_index, slots)| {
            MenciusMsg::CatchupReply(CatchupReply {
                commit_index,
                slots,
            })
        }),
        u().prop_map(|what| MenciusMsg::Compacted(Compacted { what })),
        u().prop_map(|nonce| MenciusMsg::SnapshotRequest(SnapshotRequest { nonce })),
        (u(), u(), u(), u(), bytes_s()).prop_map(|(nonce, total, offset, checksum, data)| {
            MenciusMsg::SnapshotChunk(SnapshotChunk {
                nonce,
                total,
                offset,
                checksum,
                data,
            })
        }),
    ]
}

fn record_s() -> impl Strategy<Value = Record> {
    let u = any::<u64>;
    prop_oneof![
        (any::<u8>(), u(), u(), u()).prop_map(|(owner, from, to, ballot)| Record::Promise {
            owner,
            from,
            to,
            ballot
        }),
        (u(), u(), cmds_s()).prop_map(|(slot, ballot, cmds)| Record::Accepted {
            slot,
            ballot,
            cmds
        }),
        (u(), u()).prop_map(|(slot, ballot)| Record::CommitMark { slot, ballot }),
        (u(), cmds_s()).prop_map(|(slot, cmds)| Record::Chosen { slot, cmds }),
        (any::<u8>(), u(), u()).prop_map(|(owner, from, to)| Record::Skip { owner, from, to }),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| Record::Snapshot(Bytes::from(b))),
        revoke_s().prop_map(Record::Revoked),
    ]
}

/// Decodes the body of `frame` as `M` and checks it equals `m`.
fn check_as<M: Message + PartialEq + Debug>(m: &M, frame: &Bytes) {
    assert_eq!(frame[0], M::CODE, "code of {}", M::NAME);
    let len = u32::from_le_bytes(frame[1..5].try_into().expect("4 bytes")) as usize;
    assert_eq!(len, frame.len() - FRAME_HEADER_LEN);
    assert_eq!(
        parse_header(frame, DEFAULT_MAX_FRAME),
        Ok(Some((M::CODE, len)))
    );
    let body = frame.slice(FRAME_HEADER_LEN..);
    assert_eq!(&decode_body::<M>(body.clone()).expect("decodes"), m);
    assert_eq!(frame_bytes(m), *frame, "the enum frames {} alike", M::NAME);
    check_truncations::<M>(&body);
}

fn roundtrip(m: &MenciusMsg) {
    let f = frame_bytes(m);
    match m {
        MenciusMsg::Accept(x) => check_as(x, &f),
        MenciusMsg::AcceptReply(x) => check_as(x, &f),
        MenciusMsg::Commit(x) => check_as(x, &f),
        MenciusMsg::Skip(x) => check_as(x, &f),
        MenciusMsg::Prepare(x) => check_as(x, &f),
        MenciusMsg::PrepareReply(x) => check_as(x, &f),
        MenciusMsg::Revoke(x) => check_as(x, &f),
        MenciusMsg::RevokeReply(x) => check_as(x, &f),
        MenciusMsg::CatchupRequest(x) => check_as(x, &f),
        MenciusMsg::CatchupReply(x) => check_as(x, &f),
        MenciusMsg::Compacted(x) => check_as(x, &f),
        MenciusMsg::SnapshotRequest(x) => check_as(x, &f),
        MenciusMsg::SnapshotChunk(x) => check_as(x, &f),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_roundtrips(m in msg_s()) {
        roundtrip(&m);
    }

    #[test]
    fn every_record_roundtrips(r in record_s()) {
        let mut b = BytesMut::new();
        r.marshal(&mut b);
        let body = b.freeze();
        prop_assert_eq!(&decode_body::<Record>(body.clone()).unwrap(), &r);
        check_truncations::<Record>(&body);
    }

    #[test]
    fn damaged_messages_never_panic(m in msg_s(), flips in flips_s()) {
        let f = frame_bytes(&m);
        let body = mutate(&f[FRAME_HEADER_LEN..], &flips);
        arbitrary_body::<Accept>(&body);
        arbitrary_body::<PrepareReply>(&body);
        arbitrary_body::<Revoke>(&body);
        arbitrary_body::<CatchupReply>(&body);
        arbitrary_body::<Record>(&body);
    }

    #[test]
    fn random_bodies_never_panic(data in proptest::collection::vec(
        prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(7u8), any::<u8>()], 0..160)) {
        arbitrary_body::<Accept>(&data);
        arbitrary_body::<AcceptReply>(&data);
        arbitrary_body::<Commit>(&data);
        arbitrary_body::<Skip>(&data);
        arbitrary_body::<Prepare>(&data);
        arbitrary_body::<PrepareReply>(&data);
        arbitrary_body::<Revoke>(&data);
        arbitrary_body::<RevokeReply>(&data);
        arbitrary_body::<CatchupRequest>(&data);
        arbitrary_body::<CatchupReply>(&data);
        arbitrary_body::<Record>(&data);
    }
}

#[test]
fn codes_are_mencius_own_and_unique() {
    let mut codes: Vec<u8> = CODES.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes[0], BASE);
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), CODES.len(), "duplicate codes");
    for (c, name) in CODES.iter() {
        assert!(
            (BASE..BASE + 16).contains(c) || (0x21..=0x23).contains(c),
            "{name}: {c:#04x}"
        );
    }
}

#[test]
fn unknown_record_kind_and_hostile_counts_are_refused() {
    for kind in [0u8, 8, 0xff] {
        let mut body = vec![kind];
        body.extend_from_slice(&[0; 16]);
        assert!(matches!(
            decode_body::<Record>(Bytes::from(body)),
            Err(WireError::Invalid { .. })
        ));
    }
    // An Accept announcing u32::MAX commands in a few bytes.
    let mut body = Vec::new();
    body.extend_from_slice(&0u64.to_le_bytes());
    body.extend_from_slice(&3u64.to_le_bytes());
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_body::<Accept>(Bytes::from(body)),
        Err(WireError::Truncated { .. })
    ));
}
