//! Property tests of the Multi-Paxos wire messages and durable records: every
//! message survives encode/decode unchanged with the right frame header, the
//! `PaxosMsg` enum frames exactly like the message it wraps, random bytes never
//! make a decoder panic and strict prefixes of valid bodies are rejected.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use genericsmr::testkit::*;
use genericsmr::wire::{
    decode_body, frame_bytes, parse_header, Marshal, Message, WireError, DEFAULT_MAX_FRAME,
    FRAME_HEADER_LEN,
};
use paxos::messages::*;
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

fn prepare_s() -> impl Strategy<Value = Prepare> {
    (any::<u64>(), any::<u64>()).prop_map(|(ballot, from_slot)| Prepare { ballot, from_slot })
}

fn slot_report_s() -> impl Strategy<Value = SlotReport> {
    (any::<u64>(), any::<u64>(), any::<bool>(), cmds_s()).prop_map(
        |(slot, ballot, committed, cmds)| SlotReport {
            slot,
            ballot,
            committed,
            cmds,
        },
    )
}

fn prepare_reply_s() -> impl Strategy<Value = PrepareReply> {
    (
        any::<u64>(),
        any::<bool>(),
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(slot_report_s(), 0..5),
    )
        .prop_map(|(ballot, ok, promised, commit_index, slots)| PrepareReply {
            ballot,
            ok,
            promised,
            commit_index,
            slots,
        })
}

fn accept_s() -> impl Strategy<Value = Accept> {
    (any::<u64>(), any::<u64>(), cmds_s()).prop_map(|(ballot, slot, cmds)| Accept {
        ballot,
        slot,
        cmds,
    })
}

fn accept_reply_s() -> impl Strategy<Value = AcceptReply> {
    (any::<u64>(), any::<u64>(), any::<bool>(), any::<u64>()).prop_map(
        |(ballot, slot, ok, promised)| AcceptReply {
            ballot,
            slot,
            ok,
            promised,
        },
    )
}

fn commit_s() -> impl Strategy<Value = Commit> {
    (any::<u64>(), any::<u64>(), cmds_s()).prop_map(|(ballot, slot, cmds)| Commit {
        ballot,
        slot,
        cmds,
    })
}

fn commit_short_s() -> impl Strategy<Value = CommitShort> {
    (any::<u64>(), any::<u64>()).prop_map(|(ballot, up_to)| CommitShort { ballot, up_to })
}

fn catchup_request_s() -> impl Strategy<Value = CatchupRequest> {
    (any::<u64>(), any::<u32>()).prop_map(|(from_slot, max)| CatchupRequest { from_slot, max })
}

fn catchup_reply_s() -> impl Strategy<Value = CatchupReply> {
    let chosen = (any::<u64>(), cmds_s()).prop_map(|(slot, cmds)| ChosenSlot { slot, cmds });
    (any::<u64>(), proptest::collection::vec(chosen, 0..5)).prop_map(|(commit_index, slots)| {
        CatchupReply {
            commit_index,
            slots,
        }
    })
}

fn recovery_info_s() -> impl Strategy<Value = RecoveryInfo> {
    (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(nonce, promised, log_end, commit_index)| RecoveryInfo {
            nonce,
            promised,
            log_end,
            commit_index,
        },
    )
}

fn record_s() -> impl Strategy<Value = Record> {
    prop_oneof![
        any::<u64>().prop_map(|ballot| Record::Promise { ballot }),
        (any::<u64>(), any::<u64>(), cmds_s()).prop_map(|(slot, ballot, cmds)| Record::Accepted {
            slot,
            ballot,
            cmds
        }),
        any::<u64>().prop_map(|slot| Record::CommitMark { slot }),
        (any::<u64>(), cmds_s()).prop_map(|(slot, cmds)| Record::Chosen { slot, cmds }),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| Record::Snapshot(Bytes::from(b))),
    ]
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// Frames `m` alone and as the `PaxosMsg` variant `wrapped`; checks header, body and truncation.
fn roundtrip<M>(m: &M, wrapped: PaxosMsg)
where
    M: Message + PartialEq + Debug,
{
    let frame = frame_bytes(m);
    assert_eq!(frame[0], M::CODE, "code of {}", M::NAME);
    assert!(
        (0x30..=0x4f).contains(&M::CODE),
        "{} outside the paxos code range",
        M::NAME
    );
    let len = u32::from_le_bytes(frame[1..5].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - FRAME_HEADER_LEN);
    assert_eq!(
        parse_header(&frame, DEFAULT_MAX_FRAME),
        Ok(Some((M::CODE, len)))
    );
    let body = frame.slice(FRAME_HEADER_LEN..);
    assert_eq!(&decode_body::<M>(body.clone()).unwrap(), m);
    assert_eq!(
        frame_bytes(&wrapped),
        frame,
        "PaxosMsg frames {} differently",
        M::NAME
    );
    check_truncations::<M>(&body);
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prepare_roundtrip(m in prepare_s()) {
        roundtrip(&m, PaxosMsg::Prepare(m.clone()));
    }

    #[test]
    fn prepare_reply_roundtrip(m in prepare_reply_s()) {
        roundtrip(&m, PaxosMsg::PrepareReply(m.clone()));
    }

    #[test]
    fn accept_roundtrip(m in accept_s()) {
        roundtrip(&m, PaxosMsg::Accept(m.clone()));
    }

    #[test]
    fn accept_reply_roundtrip(m in accept_reply_s()) {
        roundtrip(&m, PaxosMsg::AcceptReply(m.clone()));
    }

    #[test]
    fn commit_roundtrip(m in commit_s()) {
        roundtrip(&m, PaxosMsg::Commit(m.clone()));
    }

    #[test]
    fn commit_short_roundtrip(m in commit_short_s()) {
        roundtrip(&m, PaxosMsg::CommitShort(m.clone()));
    }

    #[test]
    fn catchup_request_roundtrip(m in catchup_request_s()) {
        roundtrip(&m, PaxosMsg::CatchupRequest(m.clone()));
    }

    #[test]
    fn catchup_reply_roundtrip(m in catchup_reply_s()) {
        roundtrip(&m, PaxosMsg::CatchupReply(m.clone()));
    }

    #[test]
    fn recovery_query_roundtrip(nonce in any::<u64>()) {
        let m = RecoveryQuery { nonce };
        roundtrip(&m, PaxosMsg::RecoveryQuery(m.clone()));
    }

    #[test]
    fn recovery_info_roundtrip(m in recovery_info_s()) {
        roundtrip(&m, PaxosMsg::RecoveryInfo(m.clone()));
    }

    #[test]
    fn slot_report_and_chosen_slot_roundtrip(r in slot_report_s()) {
        let mut b = BytesMut::new();
        r.marshal(&mut b);
        let body = b.freeze();
        prop_assert_eq!(&decode_body::<SlotReport>(body.clone()).unwrap(), &r);
        check_truncations::<SlotReport>(&body);
        let c = ChosenSlot { slot: r.slot, cmds: r.cmds.clone() };
        let mut b = BytesMut::new();
        c.marshal(&mut b);
        let body = b.freeze();
        prop_assert_eq!(&decode_body::<ChosenSlot>(body.clone()).unwrap(), &c);
        check_truncations::<ChosenSlot>(&body);
    }

    #[test]
    fn record_roundtrip(r in record_s()) {
        let mut b = BytesMut::new();
        r.marshal(&mut b);
        let body = b.freeze();
        prop_assert_eq!(&decode_body::<Record>(body.clone()).unwrap(), &r);
        check_truncations::<Record>(&body);
    }

    #[test]
    fn records_survive_the_durable_framing(recs in proptest::collection::vec(record_s(), 0..8)) {
        // What Effects::persist writes, read back by the parser replay uses.
        let mut out = BytesMut::new();
        for r in &recs {
            genericsmr::durable::frame_record(r, &mut out);
        }
        let back: Vec<Record> = genericsmr::durable::parse_records(&out)
            .unwrap()
            .into_iter()
            .map(|p| decode_body::<Record>(p).unwrap())
            .collect();
        prop_assert_eq!(&back, &recs);
        if !out.is_empty() {
            // A cut last record is a torn tail: the others survive.
            let torn = genericsmr::durable::parse_records(&out[..out.len() - 1]).unwrap();
            prop_assert_eq!(torn.len(), recs.len() - 1);
        }
    }

    #[test]
    fn random_bodies_never_panic(data in proptest::collection::vec(
        prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(4u8), any::<u8>()], 0..160)) {
        arbitrary_body::<Prepare>(&data);
        arbitrary_body::<PrepareReply>(&data);
        arbitrary_body::<Accept>(&data);
        arbitrary_body::<AcceptReply>(&data);
        arbitrary_body::<Commit>(&data);
        arbitrary_body::<CommitShort>(&data);
        arbitrary_body::<CatchupRequest>(&data);
        arbitrary_body::<CatchupReply>(&data);
        arbitrary_body::<RecoveryQuery>(&data);
        arbitrary_body::<RecoveryInfo>(&data);
        arbitrary_body::<Record>(&data);
    }
}

// ---------------------------------------------------------------------------
// Fixed cases
// ---------------------------------------------------------------------------

#[test]
fn codes_table_is_consistent() {
    let mut codes: Vec<u8> = CODES.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes[0], genericsmr::messages::codes::PAXOS_BASE);
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), CODES.len(), "duplicate paxos codes");
    // Each variant of the enum uses the code the table lists for its name.
    let samples = [
        PaxosMsg::Prepare(Prepare {
            ballot: 1,
            from_slot: 2,
        }),
        PaxosMsg::PrepareReply(PrepareReply {
            ballot: 1,
            ok: true,
            promised: 1,
            commit_index: 0,
            slots: vec![],
        }),
        PaxosMsg::Accept(Accept {
            ballot: 1,
            slot: 0,
            cmds: vec![],
        }),
        PaxosMsg::AcceptReply(AcceptReply {
            ballot: 1,
            slot: 0,
            ok: true,
            promised: 1,
        }),
        PaxosMsg::Commit(Commit {
            ballot: 1,
            slot: 0,
            cmds: vec![],
        }),
        PaxosMsg::CommitShort(CommitShort {
            ballot: 1,
            up_to: 0,
        }),
        PaxosMsg::CatchupRequest(CatchupRequest {
            from_slot: 0,
            max: 1,
        }),
        PaxosMsg::CatchupReply(CatchupReply {
            commit_index: 0,
            slots: vec![],
        }),
        PaxosMsg::RecoveryQuery(RecoveryQuery { nonce: 0 }),
        PaxosMsg::RecoveryInfo(RecoveryInfo {
            nonce: 0,
            promised: 0,
            log_end: 0,
            commit_index: 0,
        }),
    ];
    for (m, (code, name)) in samples.iter().zip(CODES.iter()) {
        assert_eq!(frame_bytes(m)[0], *code, "{name}");
        assert!(format!("{m:?}").starts_with(name), "{m:?} vs {name}");
    }
}

#[test]
fn ballots_are_unique_and_ordered() {
    for round in [0u64, 1, 2, 1000, (1 << 56) - 1] {
        for id in [0u8, 1, 2, 63, 255] {
            let b = ballot::make(round, id);
            assert_eq!(ballot::owner(b), id);
            assert_eq!(ballot::round(b), round);
            if round < 1000 {
                assert!(ballot::make(round + 1, 0) > b);
            }
        }
    }
    assert!(ballot::make(1, 0) < ballot::make(1, 1));
    assert!(ballot::make(1, 255) < ballot::make(2, 0));
}

#[test]
fn unknown_record_kind_is_invalid() {
    for kind in [0u8, 6, 0xff] {
        let mut body = vec![kind];
        body.extend_from_slice(&[0; 16]);
        assert!(matches!(
            decode_body::<Record>(Bytes::from(body)),
            Err(WireError::Invalid { .. })
        ));
    }
}

#[test]
fn hostile_command_count_is_rejected_before_allocation() {
    // An Accept announcing u32::MAX commands in a body of a few bytes.
    let mut body = Vec::new();
    body.extend_from_slice(&7u64.to_le_bytes());
    body.extend_from_slice(&3u64.to_le_bytes());
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_body::<Accept>(Bytes::from(body)),
        Err(WireError::Truncated { .. })
    ));
}
