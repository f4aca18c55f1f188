//! The Mencius codec: one sample of every message and durable records,
//! with arbitrary fields, through the shared checks of `genericsmr::testkit`
//! (decoding by code as the runtime does, strict prefixes refused, damaged
//! and random bodies never a panic); its code range; hostile counts.

use bytes::Bytes;
use genericsmr::testkit::*;
use genericsmr::wire::{decode_body, WireError};
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

/// One strategy per Mencius message.
fn messages() -> Vec<BoxedStrategy<MenciusMsg>> {
    let u = any::<u64>;
    let mut all = vec![
        (u(), u(), cmds_s(), u(), u())
            .prop_map(|(ballot, slot, cmds, skip_from, skip_to)| {
                MenciusMsg::Accept(Accept {
                    ballot,
                    slot,
                    cmds,
                    skip_from,
                    skip_to,
                })
            })
            .boxed(),
        (u(), u(), any::<bool>(), u(), u(), u())
            .prop_map(|(ballot, slot, ok, promised, skip_from, skip_to)| {
                MenciusMsg::AcceptReply(AcceptReply {
                    ballot,
                    slot,
                    ok,
                    promised,
                    skip_from,
                    skip_to,
                })
            })
            .boxed(),
        (u(), u())
            .prop_map(|(ballot, slot)| MenciusMsg::Commit(Commit { ballot, slot }))
            .boxed(),
        (u(), u(), u())
            .prop_map(|(from, to, commit_index)| {
                MenciusMsg::Skip(Skip {
                    from,
                    to,
                    commit_index,
                })
            })
            .boxed(),
        (u(), any::<u8>(), u(), u())
            .prop_map(|(ballot, owner, from, to)| {
                MenciusMsg::Prepare(Prepare {
                    ballot,
                    owner,
                    from,
                    to,
                })
            })
            .boxed(),
        (
            u(),
            any::<bool>(),
            u(),
            u(),
            proptest::collection::vec(report_s(), 0..4),
        )
            .prop_map(|(ballot, ok, promised, commit_index, slots)| {
                MenciusMsg::PrepareReply(PrepareReply {
                    ballot,
                    ok,
                    promised,
                    commit_index,
                    slots,
                })
            })
            .boxed(),
        revoke_s().prop_map(MenciusMsg::Revoke).boxed(),
        (u(), any::<bool>(), u())
            .prop_map(|(ballot, ok, promised)| {
                MenciusMsg::RevokeReply(RevokeReply {
                    ballot,
                    ok,
                    promised,
                })
            })
            .boxed(),
        (u(), any::<u32>())
            .prop_map(|(from_slot, max)| {
                MenciusMsg::CatchupRequest(CatchupRequest { from_slot, max })
            })
            .boxed(),
        (u(), proptest::collection::vec(chosen_s(), 0..4))
            .prop_map(|(commit_index, slots)| {
                MenciusMsg::CatchupReply(CatchupReply {
                    commit_index,
                    slots,
                })
            })
            .boxed(),
    ];
    // The snapshot messages every protocol shares.
    use MenciusMsg as M;
    let shared = snapshot_messages_s(M::Compacted, M::SnapshotRequest, M::SnapshotChunk);
    all.extend(shared);
    all
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_roundtrips(ms in messages()) {
        check_codec::<mencius::Replica>(&ms);
    }

    #[test]
    fn every_record_roundtrips(rs in proptest::collection::vec(record_s(), 1..8)) {
        check_records(&rs);
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
