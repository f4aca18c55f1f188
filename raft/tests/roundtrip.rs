//! Property tests of the Raft wire messages and durable records: every
//! message survives encode/decode unchanged with the right frame header,
//! `RaftMsg` frames exactly like the message it wraps, strict prefixes are
//! refused, random bytes never make a decoder panic (and what decodes is
//! canonical), and hostile counts are refused before allocation.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use genericsmr::testkit::*;
use genericsmr::wire::{
    decode_body, frame_bytes, parse_header, Message, WireError, DEFAULT_MAX_FRAME, FRAME_HEADER_LEN,
};
use proptest::prelude::*;
use raft::messages::*;
use raft::Record;

fn entry_s() -> impl Strategy<Value = Entry> {
    (any::<u64>(), cmds_s()).prop_map(|(term, cmds)| Entry { term, cmds })
}

fn request_vote_s() -> impl Strategy<Value = RequestVote> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(term, last_index, last_term, pre_vote, transfer)| RequestVote {
                term,
                last_index,
                last_term,
                pre_vote,
                transfer,
            },
        )
}

fn request_vote_reply_s() -> impl Strategy<Value = RequestVoteReply> {
    (any::<u64>(), any::<bool>(), any::<bool>()).prop_map(|(term, granted, pre_vote)| {
        RequestVoteReply {
            term,
            granted,
            pre_vote,
        }
    })
}

fn append_entries_s() -> impl Strategy<Value = AppendEntries> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(entry_s(), 0..4),
    )
        .prop_map(
            |(term, prev_index, prev_term, commit, entries)| AppendEntries {
                term,
                prev_index,
                prev_term,
                commit,
                entries,
            },
        )
}

fn append_entries_reply_s() -> impl Strategy<Value = AppendEntriesReply> {
    (
        any::<u64>(),
        any::<bool>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(term, success, index, hint_index, hint_term)| AppendEntriesReply {
                term,
                success,
                index,
                hint_index,
                hint_term,
            },
        )
}

fn record_s() -> impl Strategy<Value = Record> {
    prop_oneof![
        (any::<u64>(), proptest::option::of(any::<u8>()))
            .prop_map(|(term, vote)| Record::HardState { term, vote }),
        (any::<u64>(), any::<u64>(), cmds_s()).prop_map(|(index, term, cmds)| Record::Entry {
            index,
            term,
            cmds
        }),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| Record::Snapshot(Bytes::from(b))),
        any::<u64>().prop_map(|after| Record::Truncate { after }),
    ]
}

/// Frames `m` alone and as the `RaftMsg` variant `wrapped`; checks header,
/// body and truncation.
fn roundtrip<M>(m: &M, wrapped: RaftMsg)
where
    M: Message + PartialEq + Debug,
{
    let frame = frame_bytes(m);
    assert_eq!(frame[0], M::CODE, "code of {}", M::NAME);
    assert!(
        (0x90..=0xaf).contains(&M::CODE),
        "{} outside the raft code range",
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
        "RaftMsg frames {} differently",
        M::NAME
    );
    check_truncations::<M>(&body);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_vote_roundtrip(m in request_vote_s()) {
        roundtrip(&m, RaftMsg::RequestVote(m.clone()));
    }

    #[test]
    fn request_vote_reply_roundtrip(m in request_vote_reply_s()) {
        roundtrip(&m, RaftMsg::RequestVoteReply(m.clone()));
    }

    #[test]
    fn append_entries_roundtrip(m in append_entries_s()) {
        roundtrip(&m, RaftMsg::AppendEntries(m.clone()));
    }

    #[test]
    fn append_entries_reply_roundtrip(m in append_entries_reply_s()) {
        roundtrip(&m, RaftMsg::AppendEntriesReply(m.clone()));
    }

    #[test]
    fn timeout_now_and_hand_over_roundtrip(term in any::<u64>()) {
        let m = TimeoutNow { term };
        roundtrip(&m, RaftMsg::TimeoutNow(m.clone()));
        let m = HandOver { term };
        roundtrip(&m, RaftMsg::HandOver(m.clone()));
    }

    #[test]
    fn entry_roundtrip(e in entry_s()) {
        let body = encoded(&e);
        prop_assert_eq!(&decode_body::<Entry>(body.clone()).unwrap(), &e);
        check_truncations::<Entry>(&body);
    }

    #[test]
    fn record_roundtrip(r in record_s()) {
        let body = encoded(&r);
        prop_assert_eq!(&decode_body::<Record>(body.clone()).unwrap(), &r);
        check_truncations::<Record>(&body);
    }

    #[test]
    fn records_survive_the_durable_framing(recs in proptest::collection::vec(record_s(), 0..8)) {
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
    }

    #[test]
    fn random_bodies_never_panic(data in proptest::collection::vec(
        prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(3u8), any::<u8>()], 0..160)) {
        arbitrary_body::<RequestVote>(&data);
        arbitrary_body::<RequestVoteReply>(&data);
        arbitrary_body::<AppendEntries>(&data);
        arbitrary_body::<AppendEntriesReply>(&data);
        arbitrary_body::<TimeoutNow>(&data);
        arbitrary_body::<HandOver>(&data);
        arbitrary_body::<Entry>(&data);
        arbitrary_body::<Record>(&data);
    }

    #[test]
    fn damaged_valid_bodies_never_panic(m in append_entries_s(), flips in flips_s()) {
        arbitrary_body::<AppendEntries>(&mutate(&encoded(&m), &flips));
    }
}

#[test]
fn codes_table_is_consistent() {
    let mut codes: Vec<u8> = CODES.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes[0], RAFT_BASE);
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), CODES.len(), "duplicate raft codes");
    let samples = [
        RaftMsg::RequestVote(RequestVote {
            term: 1,
            last_index: 0,
            last_term: 0,
            pre_vote: true,
            transfer: false,
        }),
        RaftMsg::RequestVoteReply(RequestVoteReply {
            term: 1,
            granted: true,
            pre_vote: true,
        }),
        RaftMsg::AppendEntries(AppendEntries {
            term: 1,
            prev_index: 0,
            prev_term: 0,
            commit: 0,
            entries: vec![],
        }),
        RaftMsg::AppendEntriesReply(AppendEntriesReply {
            term: 1,
            success: true,
            index: 0,
            hint_index: 0,
            hint_term: 0,
        }),
        RaftMsg::TimeoutNow(TimeoutNow { term: 1 }),
        RaftMsg::HandOver(HandOver { term: 1 }),
    ];
    for (m, (code, name)) in samples.iter().zip(CODES.iter()) {
        assert_eq!(frame_bytes(m)[0], *code, "{name}");
        assert!(format!("{m:?}").starts_with(name), "{m:?} vs {name}");
    }
}

#[test]
fn unknown_record_kind_is_invalid() {
    for kind in [0u8, 5, 0xff] {
        let mut body = vec![kind];
        body.extend_from_slice(&[0; 16]);
        assert!(matches!(
            decode_body::<Record>(Bytes::from(body)),
            Err(WireError::Invalid { .. })
        ));
    }
}

#[test]
fn hostile_entry_count_is_rejected_before_allocation() {
    // An AppendEntries announcing u32::MAX entries in a body of a few bytes.
    let mut body = Vec::new();
    for v in [7u64, 3, 1, 0] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_body::<AppendEntries>(Bytes::from(body)),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn a_replay_with_a_hole_or_garbage_is_an_error_naming_the_record() {
    use genericsmr::protocol::Boot;
    let entry = |index| {
        encoded(&Record::Entry {
            index,
            term: 1,
            cmds: vec![],
        })
    };
    let boot = |recs: Vec<Bytes>| {
        raft::Replica::boot_with(raft::Config::new(0, 3), Boot::Durable(recs), 0)
    };
    assert!(boot(vec![entry(1), entry(2)]).is_ok());
    let e = boot(vec![entry(1), entry(3)]).unwrap_err().to_string();
    assert!(e.contains("record 1") && e.contains("entry 3"), "{e}");
    let e = boot(vec![entry(1), Bytes::from_static(&[9, 9])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("record 1"), "{e}");
}

/// A crash between the two steps of a compaction leaves the new snapshot
/// (here at index 7, term 2) before the old log, which rewrote entries 6
/// and 7 in term 2 after holding 5..=8 of term 1: entry 8 of the abandoned
/// branch must not survive the replay behind the snapshot.
#[test]
fn an_old_log_replayed_after_a_newer_snapshot_keeps_no_abandoned_entry() {
    use genericsmr::protocol::Boot;
    use genericsmr::snapshot::Snapshot;
    use genericsmr::state::StateMachine;
    let mut state = BytesMut::new();
    StateMachine::default().encode_image(&mut state);
    let mut point = BytesMut::new();
    for v in [7u64, 2] {
        point.extend_from_slice(&v.to_le_bytes());
    }
    let snap = Snapshot {
        state: state.freeze(),
        protocol: point.freeze(),
    };
    let entry = |index, term| {
        encoded(&Record::Entry {
            index,
            term,
            cmds: vec![],
        })
    };
    let mut recs = vec![encoded(&Record::Snapshot(snap.to_bytes()))];
    recs.extend([entry(5, 1), entry(6, 1), entry(7, 1), entry(8, 1)]);
    recs.extend([entry(6, 2), entry(7, 2)]);
    let r =
        raft::Replica::boot_with(raft::Config::new(0, 3), Boot::Durable(recs), 0).expect("replays");
    assert_eq!((r.log_base(), r.last_index()), (7, 7));
    // And entries after the snapshot do follow it.
    let mut recs = vec![encoded(&Record::Snapshot(snap.to_bytes()))];
    recs.extend([entry(8, 2), entry(9, 3)]);
    let r =
        raft::Replica::boot_with(raft::Config::new(0, 3), Boot::Durable(recs), 0).expect("replays");
    assert_eq!(r.last_index(), 9);
    assert_eq!(r.entry(9).map(|e| e.term), Some(3));
    // A snapshot installed over a log it did not match (entry 7 of term 1
    // there): the old log ends with the truncation written before the
    // compaction, so entry 8 of that log does not come back.
    let mut recs = vec![encoded(&Record::Snapshot(snap.to_bytes()))];
    recs.extend([entry(6, 1), entry(7, 1), entry(8, 1)]);
    recs.push(encoded(&Record::Truncate { after: 7 }));
    let r =
        raft::Replica::boot_with(raft::Config::new(0, 3), Boot::Durable(recs), 0).expect("replays");
    assert_eq!((r.log_base(), r.last_index()), (7, 7));
}
