//! Property tests of the EPaxos wire messages and durable entries: every
//! message, framed through `EpaxosMsg`, decodes (as the rpc table decodes it,
//! by its code) back to itself; every strict prefix of a body is rejected;
//! random, truncated and mutated bytes never make a decoder panic, nor the
//! durable log parser, nor the snapshot and state-machine image decoders.

use bytes::{Bytes, BytesMut};
use epaxos::messages::*;
use genericsmr::snapshot::{Compacted, Snapshot, SnapshotChunk, SnapshotRequest};
use genericsmr::state::StateMachine;
use genericsmr::testkit::*;
use genericsmr::wire::{
    decode_body, frame_bytes, parse_header, Marshal, Message, Reader, WireError, DEFAULT_MAX_FRAME,
    FRAME_HEADER_LEN,
};
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

/// Every variant of `EpaxosMsg`, with arbitrary fields.
fn msg_s() -> impl Strategy<Value = EpaxosMsg> {
    let a = (name_s(), cmds_s(), any::<u64>(), deps_s());
    let reply = (name_s(), any::<bool>(), any::<u64>());
    prop_oneof![
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
            }),
        (reply.clone(), any::<u64>(), deps_s()).prop_map(
            |(((leader, instance, ballot), ok, promised), seq, deps)| {
                EpaxosMsg::PreAcceptReply(PreAcceptReply {
                    leader,
                    instance,
                    ballot,
                    ok,
                    promised,
                    seq,
                    deps,
                })
            }
        ),
        name_s().prop_map(
            |(leader, instance, ballot)| EpaxosMsg::PreAcceptOk(PreAcceptOk {
                leader,
                instance,
                ballot
            })
        ),
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
            }),
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
            }),
        a.clone()
            .prop_map(|((leader, instance, _), cmds, seq, deps)| {
                EpaxosMsg::Commit(Commit {
                    leader,
                    instance,
                    cmds,
                    seq,
                    deps,
                })
            }),
        (name_s(), any::<u64>(), deps_s()).prop_map(|((leader, instance, ballot), seq, deps)| {
            EpaxosMsg::CommitShort(CommitShort {
                leader,
                instance,
                ballot,
                seq,
                deps,
            })
        }),
        name_s().prop_map(|(leader, instance, ballot)| EpaxosMsg::Prepare(Prepare {
            leader,
            instance,
            ballot
        })),
        (reply.clone(), record_s()).prop_map(|(((leader, instance, ballot), ok, promised), r)| {
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
        }),
        (any::<u64>(), deps_s(), deps_s(), deps_s()).prop_map(
            |(next, executed, everywhere, forgotten)| EpaxosMsg::Progress(Progress {
                next,
                executed,
                everywhere,
                forgotten,
            })
        ),
        a.prop_map(|((leader, instance, ballot), cmds, seq, deps)| {
            EpaxosMsg::TryPreAccept(TryPreAccept {
                leader,
                instance,
                ballot,
                cmds,
                seq,
                deps,
            })
        }),
        (reply, any::<bool>()).prop_map(|(((leader, instance, ballot), ok, promised), refutes)| {
            EpaxosMsg::TryPreAcceptReply(TryPreAcceptReply {
                leader,
                instance,
                ballot,
                ok,
                promised,
                refutes,
            })
        }),
        any::<u64>().prop_map(|what| EpaxosMsg::Compacted(Compacted { what })),
        any::<u64>().prop_map(|nonce| EpaxosMsg::SnapshotRequest(SnapshotRequest { nonce })),
        snapshot_chunk_s().prop_map(EpaxosMsg::SnapshotChunk),
    ]
}

// ---------------------------------------------------------------------------
// Decoding by code, as the rpc table does (one registered type per code)
// ---------------------------------------------------------------------------

fn as_msg<M: Message>(body: Bytes, wrap: fn(M) -> EpaxosMsg) -> Result<EpaxosMsg, WireError> {
    decode_body::<M>(body).map(wrap)
}

/// Decodes a body by its frame code; `None` for a code EPaxos does not use.
fn decode(code: u8, body: Bytes) -> Option<Result<EpaxosMsg, WireError>> {
    use EpaxosMsg as E;
    Some(match code {
        c if c == PreAccept::CODE => as_msg(body, E::PreAccept),
        c if c == PreAcceptReply::CODE => as_msg(body, E::PreAcceptReply),
        c if c == PreAcceptOk::CODE => as_msg(body, E::PreAcceptOk),
        c if c == Accept::CODE => as_msg(body, E::Accept),
        c if c == AcceptReply::CODE => as_msg(body, E::AcceptReply),
        c if c == Commit::CODE => as_msg(body, E::Commit),
        c if c == CommitShort::CODE => as_msg(body, E::CommitShort),
        c if c == Prepare::CODE => as_msg(body, E::Prepare),
        c if c == PrepareReply::CODE => as_msg(body, E::PrepareReply),
        c if c == Progress::CODE => as_msg(body, E::Progress),
        c if c == TryPreAccept::CODE => as_msg(body, E::TryPreAccept),
        c if c == TryPreAcceptReply::CODE => as_msg(body, E::TryPreAcceptReply),
        c if c == Compacted::CODE => as_msg(body, E::Compacted),
        c if c == SnapshotRequest::CODE => as_msg(body, E::SnapshotRequest),
        c if c == SnapshotChunk::CODE => as_msg(body, E::SnapshotChunk),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

fn entry_bytes(e: &Entry) -> Bytes {
    let mut b = BytesMut::new();
    e.marshal(&mut b);
    b.freeze()
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A framed message has its type's code and length, and decodes by that
    /// code back to itself; its strict prefixes are rejected.
    #[test]
    fn every_message_roundtrips(m in msg_s()) {
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

    /// A mutated body decodes to something or fails, under any code, without panicking.
    #[test]
    fn mutated_messages_never_panic(m in msg_s(), flips in flips_s(), code in any::<u8>()) {
        let frame = frame_bytes(&m);
        let body = mutate(&frame[FRAME_HEADER_LEN..], &flips);
        for (c, _) in CODES {
            let _ = decode(c, body.clone());
        }
        let _ = decode(code, body);
        // The whole mutated frame through the header parser too.
        let _ = parse_header(&mutate(&frame, &flips), DEFAULT_MAX_FRAME);
    }

    /// Random bodies never make a decoder panic; what decodes is canonical.
    #[test]
    fn random_bodies_never_panic(data in proptest::collection::vec(
        prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(4u8), any::<u8>()], 0..160)) {
        arbitrary_body::<PreAccept>(&data);
        arbitrary_body::<PreAcceptReply>(&data);
        arbitrary_body::<PreAcceptOk>(&data);
        arbitrary_body::<Accept>(&data);
        arbitrary_body::<AcceptReply>(&data);
        arbitrary_body::<Commit>(&data);
        arbitrary_body::<CommitShort>(&data);
        arbitrary_body::<Prepare>(&data);
        arbitrary_body::<PrepareReply>(&data);
        arbitrary_body::<Progress>(&data);
        arbitrary_body::<TryPreAccept>(&data);
        arbitrary_body::<TryPreAcceptReply>(&data);
        arbitrary_body::<Compacted>(&data);
        arbitrary_body::<SnapshotRequest>(&data);
        arbitrary_body::<SnapshotChunk>(&data);
        arbitrary_body::<Record>(&data);
        arbitrary_body::<Entry>(&data);
    }

    /// Each kind of durable entry (instance record, everywhere vector,
    /// snapshot) decodes back to itself, and its strict prefixes are rejected.
    #[test]
    fn durable_entries_roundtrip(e in entry_s()) {
        let body = entry_bytes(&e);
        prop_assert_eq!(&decode_body::<Entry>(body.clone()).unwrap(), &e);
        check_truncations::<Entry>(&body);
        if let Entry::Instance(r) = &e {
            // The borrowing encoder replicas persist with writes the same bytes.
            let mut b = BytesMut::new();
            Entry::instance(r).marshal(&mut b);
            prop_assert_eq!(&b[..], &body[..]);
        }
    }

    /// A durable log of entries parses back to them; a torn tail loses only
    /// the last; mutated logs and the entries they yield never panic.
    #[test]
    fn durable_logs_parse_back(es in proptest::collection::vec(entry_s(), 0..6), flips in flips_s()) {
        let mut out = BytesMut::new();
        for e in &es {
            genericsmr::durable::frame_record(e, &mut out);
        }
        let back: Vec<Entry> = genericsmr::durable::parse_records(&out)
            .unwrap()
            .into_iter()
            .map(|p| decode_body::<Entry>(p).unwrap())
            .collect();
        prop_assert_eq!(&back, &es);
        if !out.is_empty() {
            let torn = genericsmr::durable::parse_records(&out[..out.len() - 1]).unwrap();
            prop_assert_eq!(torn.len(), es.len() - 1);
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

/// The table of codes lists each code once, starting at EPaxos's base.
#[test]
fn codes_table_is_consistent() {
    let mut codes: Vec<u8> = CODES.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes[0], genericsmr::messages::codes::EPAXOS_BASE);
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), CODES.len(), "duplicate epaxos codes");
}
