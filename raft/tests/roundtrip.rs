//! The Raft codec: one sample of every message, entries and durable
//! records, with arbitrary fields, through the shared checks of
//! `genericsmr::testkit` (decoding by code as the runtime does, strict
//! prefixes refused, damaged and random bodies never a panic); hostile
//! counts refused before allocation; and replays of damaged or odd logs.

use bytes::{Bytes, BytesMut};
use genericsmr::testkit::*;
use genericsmr::wire::{decode_body, WireError};
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

/// One strategy per Raft message.
fn messages() -> Vec<BoxedStrategy<RaftMsg>> {
    let mut all = vec![
        request_vote_s().prop_map(RaftMsg::RequestVote).boxed(),
        request_vote_reply_s()
            .prop_map(RaftMsg::RequestVoteReply)
            .boxed(),
        append_entries_s().prop_map(RaftMsg::AppendEntries).boxed(),
        append_entries_reply_s()
            .prop_map(RaftMsg::AppendEntriesReply)
            .boxed(),
        any::<u64>()
            .prop_map(|term| RaftMsg::TimeoutNow(TimeoutNow { term }))
            .boxed(),
        any::<u64>()
            .prop_map(|term| RaftMsg::HandOver(HandOver { term }))
            .boxed(),
    ];
    // The snapshot messages every protocol shares.
    use RaftMsg as M;
    let shared = snapshot_messages_s(M::Compacted, M::SnapshotRequest, M::SnapshotChunk);
    all.extend(shared);
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_message_roundtrips(ms in messages()) {
        check_codec::<raft::Replica>(&ms);
    }

    #[test]
    fn entries_and_records_roundtrip(
        es in proptest::collection::vec(entry_s(), 1..4),
        rs in proptest::collection::vec(record_s(), 1..8),
    ) {
        check_records(&es);
        check_records(&rs);
    }
}

#[test]
fn codes_start_at_the_raft_base() {
    assert_eq!(CODES[0].0, RAFT_BASE);
    for (code, name) in CODES {
        // Beside the shared snapshot messages.
        assert!(
            (0x90..=0xaf).contains(&code) || (0x21..=0x23).contains(&code),
            "{name} outside the raft code range"
        );
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
