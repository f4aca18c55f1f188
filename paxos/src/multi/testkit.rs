//! Property-test strategies for what every protocol on the shared log
//! encodes alike (feature `testkit`, enabled only as a dev-dependency, so no
//! binary links proptest): the shared Multi-Paxos messages as a protocol's
//! enum wraps them ([`SharedMessages`]), slot reports and the durable
//! records, each generic over a strategy for the slot value (a batch of
//! commands in Multi-Paxos, a journal entry in MDLin). A protocol's codec
//! test adds its own messages and hands the lot to
//! `genericsmr::testkit::check_codec` and `check_records`.

use std::fmt::Debug;

use genericsmr::testkit::{bytes_s, snapshot_messages_s};
use proptest::prelude::*;

use crate::log::Record;
use crate::multi::messages::{Accept, Commit, PrepareReply, SharedMessages, SlotReport};

/// Arbitrary slot reports holding values drawn from `value`.
pub fn slot_report_s<V: Debug>(
    value: impl Strategy<Value = V> + Clone,
) -> impl Strategy<Value = SlotReport<V>> + Clone {
    (any::<u64>(), any::<u64>(), any::<bool>(), value).prop_map(
        |(slot, ballot, committed, cmds)| SlotReport {
            slot,
            ballot,
            committed,
            cmds,
        },
    )
}

/// Up to four slot reports (a promise's or a catch-up's list).
pub fn slot_reports_s<V: Debug>(
    value: impl Strategy<Value = V> + Clone,
) -> impl Strategy<Value = Vec<SlotReport<V>>> + Clone {
    proptest::collection::vec(slot_report_s(value), 0..5)
}

/// One strategy per message every protocol on the shared log exchanges
/// (Prepare, PrepareReply, Accept, AcceptReply, Commit, CommitShort,
/// CatchupRequest, then the snapshot messages), wrapped in the protocol's
/// enum `M`, with slot values drawn from `value`.
pub fn shared_messages_s<M>(
    value: impl Strategy<Value = M::Value> + Clone + 'static,
) -> Vec<BoxedStrategy<M>>
where
    M: SharedMessages + Debug + 'static,
    M::Value: Debug + Clone + 'static,
{
    let u = any::<u64>;
    let mut all = vec![
        (u(), u())
            .prop_map(|(ballot, from_slot)| M::prepare(ballot, from_slot))
            .boxed(),
        (u(), any::<bool>(), u(), u(), slot_reports_s(value.clone()))
            .prop_map(|(ballot, ok, promised, commit_index, slots)| {
                M::prepare_reply(PrepareReply {
                    ballot,
                    ok,
                    promised,
                    commit_index,
                    slots,
                })
            })
            .boxed(),
        (u(), u(), value.clone())
            .prop_map(|(ballot, slot, cmds)| M::accept(Accept { ballot, slot, cmds }))
            .boxed(),
        (u(), u(), any::<bool>(), u())
            .prop_map(|(ballot, slot, ok, promised)| M::accept_reply(ballot, slot, ok, promised))
            .boxed(),
        (u(), u(), value)
            .prop_map(|(ballot, slot, cmds)| M::commit(Commit { ballot, slot, cmds }))
            .boxed(),
        (u(), u())
            .prop_map(|(ballot, up_to)| M::commit_short(ballot, up_to))
            .boxed(),
        (u(), any::<u32>())
            .prop_map(|(from_slot, max)| M::catchup_request(from_slot, max))
            .boxed(),
    ];
    let (compacted, request, chunk) = M::snapshot_variants();
    all.extend(snapshot_messages_s(compacted, request, chunk));
    all
}

/// One strategy per kind of durable record of the shared log, with values
/// drawn from `value`.
pub fn records_s<V: Debug + Clone + 'static>(
    value: impl Strategy<Value = V> + Clone + 'static,
) -> Vec<BoxedStrategy<Record<V>>> {
    let u = any::<u64>;
    vec![
        u().prop_map(|ballot| Record::Promise { ballot }).boxed(),
        (u(), u(), value.clone())
            .prop_map(|(slot, ballot, cmds)| Record::Accepted { slot, ballot, cmds })
            .boxed(),
        u().prop_map(|slot| Record::CommitMark { slot }).boxed(),
        (u(), value)
            .prop_map(|(slot, cmds)| Record::Chosen { slot, cmds })
            .boxed(),
        bytes_s().prop_map(Record::Snapshot).boxed(),
    ]
}
