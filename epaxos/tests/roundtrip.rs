//! The EPaxos codec: one sample of every message and durable entries, with
//! arbitrary fields, through the shared checks of `genericsmr::testkit`
//! (decoding by code as the runtime does, strict prefixes refused, damaged
//! and random bodies never a panic); and damaged durable logs, snapshots and
//! state-machine images never a panic either.

use bytes::{Bytes, BytesMut};
use epaxos::messages::*;
use genericsmr::snapshot::Snapshot;
use genericsmr::state::StateMachine;
use genericsmr::testkit::*;
use genericsmr::wire::{decode_body, Reader};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

fn deps_s() -> impl Strategy<Value = Vec<u64>> + Clone {
    proptest::collection::vec(any::<u64>(), 0..8)
}

/// (leader, instance, ballot): the name every instance message carries.
fn name_s() -> impl Strategy<Value = (u8, u64, u64)> + Clone {
    (any::<u8>(), any::<u64>(), any::<u64>())
}

fn record_s() -> impl Strategy<Value = Record> {
    (
        name_s(),
        any::<u64>(),
        any::<u8>(),
        any::<bool>(),
        cmds_s(),
        any::<u64>(),
        deps_s(),
    )
        .prop_map(
            |((leader, instance, ballot), vballot, status, unchanged, cmds, seq, deps)| Record {
                leader,
                instance,
                ballot,
                vballot,
                status,
                unchanged,
                cmds,
                seq,
                deps,
            },
        )
}

fn entry_s() -> impl Strategy<Value = Entry> {
    prop_oneof![
        record_s().prop_map(Entry::Instance),
        deps_s().prop_map(Entry::Everywhere),
        bytes_s().prop_map(Entry::Snapshot),
    ]
}

/// One strategy per EPaxos message.
fn messages() -> Vec<BoxedStrategy<EpaxosMsg>> {
    let a = (name_s(), cmds_s(), any::<u64>(), deps_s());
    let reply = (name_s(), any::<bool>(), any::<u64>());
    let mut all = vec![
        a.clone()
            .prop_map(|((leader, instance, ballot), cmds, seq, deps)| {
                EpaxosMsg::PreAccept(PreAccept {
                    leader,
                    instance,
                    ballot,
                    cmds,
                    seq,
                    deps,
                })
            })
            .boxed(),
        (reply.clone(), any::<u64>(), deps_s())
            .prop_map(|(((leader, instance, ballot), ok, promised), seq, deps)| {
                EpaxosMsg::PreAcceptReply(PreAcceptReply {
                    leader,
                    instance,
                    ballot,
                    ok,
                    promised,
                    seq,
                    deps,
                })
            })
            .boxed(),
        name_s()
            .prop_map(|(leader, instance, ballot)| {
                EpaxosMsg::PreAcceptOk(PreAcceptOk {
                    leader,
                    instance,
                    ballot,
                })
            })
            .boxed(),
        a.clone()
            .prop_map(|((leader, instance, ballot), cmds, seq, deps)| {
                EpaxosMsg::Accept(Accept {
                    leader,
                    instance,
                    ballot,
                    cmds,
                    seq,
                    deps,
                })
            })
            .boxed(),
        reply
            .clone()
            .prop_map(|((leader, instance, ballot), ok, promised)| {
                EpaxosMsg::AcceptReply(AcceptReply {
                    leader,
                    instance,
                    ballot,
                    ok,
                    promised,
                })
            })
            .boxed(),
        a.clone()
            .prop_map(|((leader, instance, _), cmds, seq, deps)| {
                EpaxosMsg::Commit(Commit {
                    leader,
                    instance,
                    cmds,
                    seq,
                    deps,
                })
            })
            .boxed(),
        (name_s(), any::<u64>(), deps_s())
            .prop_map(|((leader, instance, ballot), seq, deps)| {
                EpaxosMsg::CommitShort(CommitShort {
                    leader,
                    instance,
                    ballot,
                    seq,
                    deps,
                })
            })
            .boxed(),
        name_s()
            .prop_map(|(leader, instance, ballot)| {
                EpaxosMsg::Prepare(Prepare {
                    leader,
                    instance,
                    ballot,
                })
            })
            .boxed(),
        (reply.clone(), record_s())
            .prop_map(|(((leader, instance, ballot), ok, promised), r)| {
                EpaxosMsg::PrepareReply(PrepareReply {
                    leader,
                    instance,
                    ballot,
                    ok,
                    promised,
                    status: r.status,
                    vballot: r.vballot,
                    unchanged: r.unchanged,
                    cmds: r.cmds,
                    seq: r.seq,
                    deps: r.deps,
                })
            })
            .boxed(),
        (any::<u64>(), deps_s(), deps_s(), deps_s())
            .prop_map(|(next, executed, everywhere, forgotten)| {
                EpaxosMsg::Progress(Progress {
                    next,
                    executed,
                    everywhere,
                    forgotten,
                })
            })
            .boxed(),
        a.prop_map(|((leader, instance, ballot), cmds, seq, deps)| {
            EpaxosMsg::TryPreAccept(TryPreAccept {
                leader,
                instance,
                ballot,
                cmds,
                seq,
                deps,
            })
        })
        .boxed(),
        (reply, any::<bool>())
            .prop_map(|(((leader, instance, ballot), ok, promised), refutes)| {
                EpaxosMsg::TryPreAcceptReply(TryPreAcceptReply {
                    leader,
                    instance,
                    ballot,
                    ok,
                    promised,
                    refutes,
                })
            })
            .boxed(),
    ];
    // The snapshot messages every protocol shares.
    use EpaxosMsg as M;
    let shared = snapshot_messages_s(M::Compacted, M::SnapshotRequest, M::SnapshotChunk);
    all.extend(shared);
    all
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_message_roundtrips(ms in messages()) {
        check_codec::<epaxos::Replica>(&ms);
    }

    /// Each kind of durable entry (instance record, everywhere vector,
    /// snapshot) decodes back to itself and parses back from a durable log;
    /// strict prefixes are refused, and damaged ones never panic.
    #[test]
    fn durable_entries_roundtrip(es in proptest::collection::vec(entry_s(), 1..6)) {
        check_records(&es);
        for e in &es {
            if let Entry::Instance(r) = e {
                // The borrowing encoder replicas persist with writes the same bytes.
                prop_assert_eq!(encoded(&Entry::instance(r)), encoded(e));
            }
        }
    }

    /// Mutated durable logs and the entries they yield never panic.
    #[test]
    fn mutated_logs_never_panic(es in proptest::collection::vec(entry_s(), 0..6), flips in flips_s()) {
        let mut out = BytesMut::new();
        for e in &es {
            genericsmr::durable::frame_record(e, &mut out);
        }
        if let Ok(recs) = genericsmr::durable::parse_records(&mutate(&out, &flips)) {
            for r in recs {
                let _ = decode_body::<Entry>(r);
            }
        }
    }

    /// Random bytes as a durable log, a snapshot or a state-machine image
    /// never make the parsers panic.
    #[test]
    fn random_logs_and_images_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(recs) = genericsmr::durable::parse_records(&data) {
            for r in recs {
                let _ = decode_body::<Entry>(r);
            }
        }
        let _ = Snapshot::from_bytes(Bytes::copy_from_slice(&data));
        let _ = StateMachine::default().decode_image(&mut Reader::new(Bytes::copy_from_slice(&data)));
    }

    /// A real state-machine image, mutated, never makes the image or
    /// snapshot decoders panic.
    #[test]
    fn mutated_images_never_panic(cmds in cmds_s(), flips in flips_s()) {
        let mut sm = StateMachine::default();
        for c in &cmds {
            sm.execute(c);
        }
        let mut img = BytesMut::new();
        sm.encode_image(&mut img);
        let img = img.freeze();
        let back = sm.decode_image(&mut Reader::new(img.clone())).unwrap();
        prop_assert_eq!(back.digest(), sm.digest());
        let bad = mutate(&img, &flips);
        let _ = sm.decode_image(&mut Reader::new(bad.clone()));
        let _ = Snapshot::from_bytes(bad);
    }
}

/// The table of codes starts at EPaxos's base (the rpc table refuses a code
/// listed twice, and `check_codec` a message outside the table).
#[test]
fn codes_start_at_the_epaxos_base() {
    assert_eq!(CODES[0].0, genericsmr::messages::codes::EPAXOS_BASE);
}
