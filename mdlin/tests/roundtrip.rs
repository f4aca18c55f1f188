//! Property tests of the MDLin wire messages and journal entries: every
//! message (the client's `MdlPropose` and every `MdlMsg` variant), framed,
//! decodes by its code back to itself; every kind of journal `Entry` does
//! too; strict prefixes are rejected; and random, truncated or mutated bytes
//! never make a decoder panic.

use bytes::{Bytes, BytesMut};
use genericsmr::testkit::*;
use genericsmr::wire::{
    decode_body, frame_bytes, parse_header, Frame, Message, WireError, DEFAULT_MAX_FRAME,
    FRAME_HEADER_LEN,
};
use mdlin::messages::*;
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

fn op_id_s() -> impl Strategy<Value = OpId> {
    (any::<u64>(), any::<u64>()).prop_map(|(client, seq)| OpId { client, seq })
}

fn pred_s() -> impl Strategy<Value = Option<Pred>> {
    proptest::option::of((any::<u64>(), any::<u8>()).prop_map(|(seq, shard)| Pred { seq, shard }))
}

/// Every kind of journal entry.
fn entry_s() -> impl Strategy<Value = Entry> {
    prop_oneof![
        Just(Entry::Noop),
        (command_s(), any::<u64>(), pred_s()).prop_map(|(cmd, shard_seq, pred)| Entry::Pending {
            cmd,
            shard_seq,
            pred
        }),
        (op_id_s(), any::<u64>()).prop_map(|(op, ts)| Entry::Order { op, ts }),
        (command_s(), any::<u64>(), any::<u64>()).prop_map(|(cmd, shard_seq, ts)| Entry::Head {
            cmd,
            shard_seq,
            ts
        }),
        op_id_s().prop_map(|op| Entry::Fail { op }),
        (any::<u8>(), any::<u64>()).prop_map(|(shard, ballot)| Entry::Fence { shard, ballot }),
    ]
}

fn slot_report_s() -> impl Strategy<Value = SlotReport> {
    (any::<u64>(), any::<u64>(), any::<bool>(), entry_s()).prop_map(
        |(slot, ballot, committed, entry)| SlotReport {
            slot,
            ballot,
            committed,
            cmds: entry,
        },
    )
}

/// Every kind of durable record.
fn record_s() -> impl Strategy<Value = Record> {
    prop_oneof![
        any::<u64>().prop_map(|ballot| Record::Promise { ballot }),
        (any::<u64>(), any::<u64>(), entry_s())
            .prop_map(|(slot, ballot, cmds)| { Record::Accepted { slot, ballot, cmds } }),
        any::<u64>().prop_map(|slot| Record::CommitMark { slot }),
        (any::<u64>(), entry_s()).prop_map(|(slot, cmds)| Record::Chosen { slot, cmds }),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| Record::Snapshot(Bytes::from(b))),
    ]
}

fn slots_s() -> impl Strategy<Value = Vec<SlotReport>> {
    proptest::collection::vec(slot_report_s(), 0..4)
}

/// Every variant of `MdlMsg`, with arbitrary fields.
fn msg_s() -> impl Strategy<Value = MdlMsg> {
    let u = any::<u64>;
    prop_oneof![
        (op_id_s(), op_id_s(), any::<u8>()).prop_map(|(pred, succ, succ_shard)| {
            MdlMsg::CoordReq(CoordReq {
                pred,
                succ,
                succ_shard,
            })
        }),
        (op_id_s(), op_id_s(), any::<bool>(), u(), u()).prop_map(|(succ, pred, ok, ts, ballot)| {
            MdlMsg::CoordReply(CoordReply {
                succ,
                pred,
                ok,
                ts,
                ballot,
            })
        }),
        (u(), u(), entry_s()).prop_map(|(ballot, slot, entry)| MdlMsg::Accept(Accept {
            ballot,
            slot,
            cmds: entry
        })),
        (u(), u(), any::<bool>(), u()).prop_map(|(ballot, slot, ok, promised)| {
            MdlMsg::AcceptReply(AcceptReply {
                ballot,
                slot,
                ok,
                promised,
            })
        }),
        (u(), u(), entry_s()).prop_map(|(ballot, slot, entry)| MdlMsg::Commit(Commit {
            ballot,
            slot,
            cmds: entry
        })),
        (u(), u()).prop_map(|(ballot, up_to)| MdlMsg::CommitShort(CommitShort { ballot, up_to })),
        (u(), u()).prop_map(|(ballot, from_slot)| MdlMsg::Prepare(Prepare { ballot, from_slot })),
        (u(), any::<bool>(), u(), slots_s()).prop_map(|(ballot, ok, promised, slots)| {
            MdlMsg::PrepareReply(PrepareReply {
                ballot,
                ok,
                promised,
                commit_index: promised,
                slots,
            })
        }),
        (u(), proptest::collection::vec(op_id_s(), 0..6), u()).prop_map(|(nonce, ops, ballot)| {
            MdlMsg::SuccTsRequest(SuccTsRequest { nonce, ops, ballot })
        }),
        (u(), any::<u8>(), proptest::collection::vec(u(), 0..6))
            .prop_map(|(nonce, shard, ts)| MdlMsg::SuccTsReply(SuccTsReply { nonce, shard, ts })),
        (u(), any::<u32>()).prop_map(|(from_slot, max)| {
            MdlMsg::CatchupRequest(CatchupRequest { from_slot, max })
        }),
        slots_s().prop_map(|slots| MdlMsg::CatchupReply(CatchupReply { slots })),
        u().prop_map(|what| MdlMsg::Compacted(Compacted { what })),
        u().prop_map(|nonce| MdlMsg::SnapshotRequest(SnapshotRequest { nonce })),
        snapshot_chunk_s().prop_map(MdlMsg::SnapshotChunk),
    ]
}

fn propose_s() -> impl Strategy<Value = MdlPropose> {
    (command_s(), any::<u64>(), pred_s()).prop_map(|(cmd, shard_seq, pred)| MdlPropose {
        cmd,
        shard_seq,
        pred,
    })
}

// ---------------------------------------------------------------------------
// Decoding by code, as the rpc table does (one registered type per code)
// ---------------------------------------------------------------------------

fn as_msg<M: Message>(body: Bytes, wrap: fn(M) -> MdlMsg) -> Result<MdlMsg, WireError> {
    decode_body::<M>(body).map(wrap)
}

/// Decodes a peer message body by its frame code; `None` for a code that is
/// not an `MdlMsg` one.
fn decode(code: u8, body: Bytes) -> Option<Result<MdlMsg, WireError>> {
    use MdlMsg as M;
    Some(match code {
        c if c == CoordReq::CODE => as_msg(body, M::CoordReq),
        c if c == CoordReply::CODE => as_msg(body, M::CoordReply),
        c if c == Accept::CODE => as_msg(body, M::Accept),
        c if c == AcceptReply::CODE => as_msg(body, M::AcceptReply),
        c if c == Commit::CODE => as_msg(body, M::Commit),
        c if c == CommitShort::CODE => as_msg(body, M::CommitShort),
        c if c == Prepare::CODE => as_msg(body, M::Prepare),
        c if c == PrepareReply::CODE => as_msg(body, M::PrepareReply),
        c if c == SuccTsRequest::CODE => as_msg(body, M::SuccTsRequest),
        c if c == SuccTsReply::CODE => as_msg(body, M::SuccTsReply),
        c if c == CatchupRequest::CODE => as_msg(body, M::CatchupRequest),
        c if c == CatchupReply::CODE => as_msg(body, M::CatchupReply),
        c if c == Compacted::CODE => as_msg(body, M::Compacted),
        c if c == SnapshotRequest::CODE => as_msg(body, M::SnapshotRequest),
        c if c == SnapshotChunk::CODE => as_msg(body, M::SnapshotChunk),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A framed peer message has its type's code and length, and decodes by
    /// that code back to itself; its strict prefixes are rejected.
    #[test]
    fn every_peer_message_roundtrips(m in msg_s()) {
        let frame = frame_bytes(&m);
        let (code, len) = parse_header(&frame, DEFAULT_MAX_FRAME).unwrap().unwrap();
        prop_assert_eq!(len, frame.len() - FRAME_HEADER_LEN);
        let name = CODES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n);
        prop_assert!(name.is_some_and(|n| format!("{m:?}").starts_with(n)), "code {code:#x} for {m:?}");
        let body = frame.slice(FRAME_HEADER_LEN..);
        prop_assert_eq!(decode(code, body.clone()).unwrap().unwrap(), m.clone());
        for cut in 0..body.len() {
            let r = decode(code, body.slice(..cut)).unwrap();
            prop_assert!(matches!(r, Err(WireError::Truncated { .. })), "prefix {cut}: {r:?}");
        }
    }

    /// The client's proposal frames with its code and decodes back to itself.
    #[test]
    fn propose_roundtrips(m in propose_s()) {
        let mut frame = BytesMut::new();
        m.encode_frame(&mut frame);
        let frame = frame.freeze();
        prop_assert_eq!(frame[0], MdlPropose::CODE);
        let body = frame.slice(FRAME_HEADER_LEN..);
        prop_assert_eq!(&decode_body::<MdlPropose>(body.clone()).unwrap(), &m);
        check_truncations::<MdlPropose>(&body);
    }

    /// Every kind of journal entry, alone and in a slot report, decodes back
    /// to itself, and its strict prefixes are rejected.
    #[test]
    fn journal_entries_roundtrip(s in slot_report_s()) {
        let body = encoded(&s.cmds);
        prop_assert_eq!(&decode_body::<Entry>(body.clone()).unwrap(), &s.cmds);
        check_truncations::<Entry>(&body);
        let body = encoded(&s);
        prop_assert_eq!(&decode_body::<SlotReport>(body.clone()).unwrap(), &s);
        check_truncations::<SlotReport>(&body);
    }

    /// Every kind of durable record decodes back to itself; its strict
    /// prefixes are rejected, and mutated ones never make it panic.
    #[test]
    fn durable_records_roundtrip(rec in record_s(), flips in flips_s()) {
        let body = encoded(&rec);
        prop_assert_eq!(&decode_body::<Record>(body.clone()).unwrap(), &rec);
        check_truncations::<Record>(&body);
        let _ = decode_body::<Record>(mutate(&body, &flips));
    }

    /// A mutated body decodes to something or fails, under any code, without panicking.
    #[test]
    fn mutated_messages_never_panic(m in msg_s(), e in entry_s(), flips in flips_s(), code in any::<u8>()) {
        let frame = frame_bytes(&m);
        let body = mutate(&frame[FRAME_HEADER_LEN..], &flips);
        for (c, _) in CODES {
            let _ = decode(c, body.clone());
        }
        let _ = decode(code, body.clone());
        let _ = decode_body::<MdlPropose>(body);
        let _ = decode_body::<Entry>(mutate(&encoded(&e), &flips));
        let _ = parse_header(&mutate(&frame, &flips), DEFAULT_MAX_FRAME);
    }

    /// Random bodies never make a decoder panic; what decodes is canonical.
    #[test]
    fn random_bodies_never_panic(data in proptest::collection::vec(
        prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(5u8), any::<u8>()], 0..160)) {
        arbitrary_body::<MdlPropose>(&data);
        arbitrary_body::<CoordReq>(&data);
        arbitrary_body::<CoordReply>(&data);
        arbitrary_body::<Accept>(&data);
        arbitrary_body::<AcceptReply>(&data);
        arbitrary_body::<Commit>(&data);
        arbitrary_body::<CommitShort>(&data);
        arbitrary_body::<Prepare>(&data);
        arbitrary_body::<PrepareReply>(&data);
        arbitrary_body::<SuccTsRequest>(&data);
        arbitrary_body::<SuccTsReply>(&data);
        arbitrary_body::<CatchupRequest>(&data);
        arbitrary_body::<CatchupReply>(&data);
        arbitrary_body::<Entry>(&data);
        arbitrary_body::<SlotReport>(&data);
        arbitrary_body::<Record>(&data);
    }
}

/// The table of codes lists each code once, starting at MDLin's base.
#[test]
fn codes_table_is_consistent() {
    let mut codes: Vec<u8> = CODES.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes[0], genericsmr::messages::codes::MDLIN_BASE);
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), CODES.len(), "duplicate mdlin codes");
}
