//! The MDLin codec: one sample of every message (the client's `MdlPropose`
//! and every peer message), journal entries, slot reports and durable
//! records, with arbitrary fields (what every protocol on the shared log has
//! comes from `paxos::multi::testkit`), through the shared checks of
//! `genericsmr::testkit` (decoding by code as the runtime does, strict
//! prefixes refused, damaged and random bodies never a panic).

use genericsmr::testkit::*;
use mdlin::messages::*;
use paxos::multi::testkit::*;
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

fn op_id_s() -> impl Strategy<Value = OpId> + Clone {
    (any::<u64>(), any::<u64>()).prop_map(|(client, seq)| OpId { client, seq })
}

fn pred_s() -> impl Strategy<Value = Option<Pred>> + Clone {
    proptest::option::of((any::<u64>(), any::<u8>()).prop_map(|(seq, shard)| Pred { seq, shard }))
}

/// Every kind of journal entry.
fn entry_s() -> impl Strategy<Value = Entry> + Clone {
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

fn propose_s() -> impl Strategy<Value = MdlPropose> {
    (command_s(), any::<u64>(), pred_s()).prop_map(|(cmd, shard_seq, pred)| MdlPropose {
        cmd,
        shard_seq,
        pred,
    })
}

/// One strategy per MDLin message: the client's proposal, the messages
/// every protocol on the shared log has (journal entries as values), and
/// its own peer messages.
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
        (u(), proptest::collection::vec(op_id_s(), 0..6), u())
            .prop_map(|(nonce, ops, ballot)| {
                MdlMsg::SuccTsRequest(SuccTsRequest { nonce, ops, ballot })
            })
            .boxed(),
        (u(), any::<u8>(), proptest::collection::vec(u(), 0..6))
            .prop_map(|(nonce, shard, ts)| MdlMsg::SuccTsReply(SuccTsReply { nonce, shard, ts }))
            .boxed(),
        slot_reports_s(entry_s())
            .prop_map(|slots| MdlMsg::CatchupReply(CatchupReply { slots }))
            .boxed(),
    ];
    all.extend(shared_messages_s::<MdlMsg>(entry_s()));
    all
}

/// Journal entries and slot reports (values inside messages and records).
fn reports() -> Vec<BoxedStrategy<SlotReport>> {
    (0..6).map(|_| slot_report_s(entry_s()).boxed()).collect()
}

#[test]
fn every_message_roundtrips() {
    drawn(messages(), |ms| check_codec::<mdlin::Replica>(&ms));
}

/// Journal entries alone, in slot reports, and in durable records.
#[test]
fn journal_entries_and_records_roundtrip() {
    drawn((reports(), records_s(entry_s())), |(ss, rs)| {
        check_records(&ss.iter().map(|s| s.cmds.clone()).collect::<Vec<Entry>>());
        check_records(&ss);
        check_records(&rs);
    });
}

/// The table of codes starts at MDLin's base (the rpc table refuses a code
/// listed twice, and `check_codec` a message outside the table).
#[test]
fn codes_start_at_the_mdlin_base() {
    assert_eq!(CODES[0].0, genericsmr::messages::codes::MDLIN_BASE);
}
