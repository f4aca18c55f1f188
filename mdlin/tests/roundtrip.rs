//! The MDLin codec: one sample of every message (the client's `MdlPropose`
//! and every peer message), journal entries, slot reports and durable
//! records, with arbitrary fields, through the shared checks of
//! `genericsmr::testkit` (decoding by code as the runtime does, strict
//! prefixes refused, damaged and random bodies never a panic).

use bytes::Bytes;
use genericsmr::testkit::*;
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

fn propose_s() -> impl Strategy<Value = MdlPropose> {
    (command_s(), any::<u64>(), pred_s()).prop_map(|(cmd, shard_seq, pred)| MdlPropose {
        cmd,
        shard_seq,
        pred,
    })
}

/// One strategy per MDLin message: the client's proposal and every peer message.
fn messages() -> Vec<BoxedStrategy<MdlMsg>> {
    let u = any::<u64>;
    let mut all = vec![
        propose_s().prop_map(MdlMsg::Propose).boxed(),
        (op_id_s(), op_id_s(), any::<u8>())
            .prop_map(|(pred, succ, succ_shard)| {
                MdlMsg::CoordReq(CoordReq {
                    pred,
                    succ,
                    succ_shard,
                })
            })
            .boxed(),
        (op_id_s(), op_id_s(), any::<bool>(), u(), u())
            .prop_map(|(succ, pred, ok, ts, ballot)| {
                MdlMsg::CoordReply(CoordReply {
                    succ,
                    pred,
                    ok,
                    ts,
                    ballot,
                })
            })
            .boxed(),
        (u(), u(), entry_s())
            .prop_map(|(ballot, slot, entry)| {
                MdlMsg::Accept(Accept {
                    ballot,
                    slot,
                    cmds: entry,
                })
            })
            .boxed(),
        (u(), u(), any::<bool>(), u())
            .prop_map(|(ballot, slot, ok, promised)| {
                MdlMsg::AcceptReply(AcceptReply {
                    ballot,
                    slot,
                    ok,
                    promised,
                })
            })
            .boxed(),
        (u(), u(), entry_s())
            .prop_map(|(ballot, slot, entry)| {
                MdlMsg::Commit(Commit {
                    ballot,
                    slot,
                    cmds: entry,
                })
            })
            .boxed(),
        (u(), u())
            .prop_map(|(ballot, up_to)| MdlMsg::CommitShort(CommitShort { ballot, up_to }))
            .boxed(),
        (u(), u())
            .prop_map(|(ballot, from_slot)| MdlMsg::Prepare(Prepare { ballot, from_slot }))
            .boxed(),
        (u(), any::<bool>(), u(), u(), slots_s())
            .prop_map(|(ballot, ok, promised, commit_index, slots)| {
                MdlMsg::PrepareReply(PrepareReply {
                    ballot,
                    ok,
                    promised,
                    commit_index,
                    slots,
                })
            })
            .boxed(),
        (u(), proptest::collection::vec(op_id_s(), 0..6), u())
            .prop_map(|(nonce, ops, ballot)| {
                MdlMsg::SuccTsRequest(SuccTsRequest { nonce, ops, ballot })
            })
            .boxed(),
        (u(), any::<u8>(), proptest::collection::vec(u(), 0..6))
            .prop_map(|(nonce, shard, ts)| MdlMsg::SuccTsReply(SuccTsReply { nonce, shard, ts }))
            .boxed(),
        (u(), any::<u32>())
            .prop_map(|(from_slot, max)| MdlMsg::CatchupRequest(CatchupRequest { from_slot, max }))
            .boxed(),
        slots_s()
            .prop_map(|slots| MdlMsg::CatchupReply(CatchupReply { slots }))
            .boxed(),
    ];
    // The snapshot messages every protocol shares.
    use MdlMsg as M;
    let shared = snapshot_messages_s(M::Compacted, M::SnapshotRequest, M::SnapshotChunk);
    all.extend(shared);
    all
}

/// Journal entries and slot reports (values inside messages and records).
fn reports() -> Vec<BoxedStrategy<SlotReport>> {
    (0..6).map(|_| slot_report_s().boxed()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_message_roundtrips(ms in messages()) {
        check_codec::<mdlin::Replica>(&ms);
    }

    #[test]
    fn journal_entries_and_records_roundtrip(ss in reports(), rs in proptest::collection::vec(record_s(), 1..6)) {
        check_records(&ss.iter().map(|s| s.cmds.clone()).collect::<Vec<Entry>>());
        check_records(&ss);
        check_records(&rs);
    }
}

/// The table of codes starts at MDLin's base (the rpc table refuses a code
/// listed twice, and `check_codec` a message outside the table).
#[test]
fn codes_start_at_the_mdlin_base() {
    assert_eq!(CODES[0].0, genericsmr::messages::codes::MDLIN_BASE);
}
