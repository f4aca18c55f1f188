//! Property-test strategies and codec checks that every protocol crate's
//! tests share (feature `testkit`, enabled only as a dev-dependency, so no
//! binary links proptest): arbitrary commands, byte strings and mutations,
//! and the checks that a body's strict prefixes are refused and that
//! whatever decodes from arbitrary bytes encodes back to them.
//!
//! A protocol's codec test is two lists handed to two calls:
//! [`check_codec`] with one sample of every message it registers (decoded by
//! code through the rpc table, as the runtime decodes them), and
//! [`check_records`] with samples of its durable records and other encoded
//! values, each run on many drawn samples by [`drawn`].

use std::collections::BTreeSet;
use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

use crate::command::{Command, Op};
use crate::protocol::{Protocol, Registrar};
use crate::rpc_table::{class, RpcTable, Source};
use crate::runtime::Inbound;
use crate::wire::{
    decode_body, frame_bytes, parse_header, Frame, Marshal, Unmarshal, WireError,
    DEFAULT_MAX_FRAME, FRAME_HEADER_LEN,
};

/// Short arbitrary byte strings (keys, values).
pub fn bytes_s() -> impl Strategy<Value = Bytes> + Clone {
    proptest::collection::vec(any::<u8>(), 0..32).prop_map(Bytes::from)
}

/// Arbitrary snapshot chunks (every protocol that forgets sends them).
pub fn snapshot_chunk_s() -> impl Strategy<Value = crate::snapshot::SnapshotChunk> + Clone {
    (
        (any::<u64>(), any::<u64>()),
        (any::<u64>(), any::<u64>()),
        bytes_s(),
    )
        .prop_map(|((nonce, total), (offset, checksum), data)| {
            crate::snapshot::SnapshotChunk {
                nonce,
                total,
                offset,
                checksum,
                data,
            }
        })
}

/// Strategies for the shared snapshot messages of [`crate::snapshot`], as a
/// protocol wraps them, for its list of samples (see [`check_codec`]).
pub fn snapshot_messages_s<M: Debug + 'static>(
    compacted: fn(crate::snapshot::Compacted) -> M,
    request: fn(crate::snapshot::SnapshotRequest) -> M,
    chunk: fn(crate::snapshot::SnapshotChunk) -> M,
) -> Vec<BoxedStrategy<M>> {
    vec![
        any::<u64>()
            .prop_map(move |what| compacted(crate::snapshot::Compacted { what }))
            .boxed(),
        any::<u64>()
            .prop_map(move |nonce| request(crate::snapshot::SnapshotRequest { nonce }))
            .boxed(),
        snapshot_chunk_s().prop_map(chunk).boxed(),
    ]
}

/// Arbitrary commands, every operation and field.
pub fn command_s() -> impl Strategy<Value = Command> + Clone {
    let op = prop_oneof![
        Just(Op::Noop),
        Just(Op::Put),
        Just(Op::Get),
        Just(Op::Delete),
        Just(Op::Cas)
    ];
    (
        (any::<u64>(), any::<u64>(), any::<u64>()),
        op,
        bytes_s(),
        bytes_s(),
        proptest::option::of(bytes_s()),
    )
        .prop_map(
            |((client, seq, acked_below), op, key, value, expected)| Command {
                client,
                seq,
                acked_below,
                op,
                key,
                value,
                expected,
            },
        )
}

/// Batches of up to three commands.
pub fn cmds_s() -> impl Strategy<Value = Vec<Command>> + Clone {
    proptest::collection::vec(command_s(), 0..4)
}

/// One to three (position, xor) flips for [`mutate`].
pub fn flips_s() -> impl Strategy<Value = Vec<(usize, u8)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)
}

/// `data` with each flip applied at its position modulo the length (a zero
/// xor flips the lowest bit, so every flip changes a byte).
pub fn mutate(data: &[u8], flips: &[(usize, u8)]) -> Bytes {
    let mut v = data.to_vec();
    if !v.is_empty() {
        let n = v.len();
        for (at, x) in flips {
            v[at % n] ^= (*x).max(1);
        }
    }
    Bytes::from(v)
}

/// The encoding of `v`.
pub fn encoded<T: Marshal + ?Sized>(v: &T) -> Bytes {
    let mut b = BytesMut::new();
    v.marshal(&mut b);
    b.freeze()
}

/// Every strict prefix of `body` is refused as truncated, and one byte more
/// as trailing.
pub fn check_truncations<T: Unmarshal + Debug>(body: &Bytes) {
    for cut in 0..body.len() {
        match decode_body::<T>(body.slice(..cut)) {
            Err(WireError::Truncated { .. }) => {}
            other => panic!("prefix of {cut}/{} bytes decoded as {other:?}", body.len()),
        }
    }
    let mut longer = BytesMut::from(&body[..]);
    longer.extend_from_slice(&[0]);
    assert_eq!(
        decode_body::<T>(longer.freeze()).unwrap_err(),
        WireError::Trailing(1)
    );
}

/// Whatever decodes from arbitrary bytes encodes back to exactly those bytes
/// (decoding is canonical), and nothing panics on the way.
pub fn arbitrary_body<T: Marshal + Unmarshal>(data: &[u8]) {
    if let Ok(v) = decode_body::<T>(Bytes::copy_from_slice(data)) {
        let mut again = BytesMut::new();
        v.marshal(&mut again);
        assert_eq!(&again[..], data, "decoding is not canonical");
    }
}

/// Decodes message bodies by type code exactly as the runtime does: through
/// an rpc table filled by a protocol's `register`.
pub struct Decoder<M> {
    table: RpcTable,
    rx: crossbeam_channel::Receiver<(Source, Inbound<M>)>,
}

impl<M: Send + 'static> Decoder<M> {
    /// A decoder for the messages `register` registers (a protocol's
    /// [`Protocol::register`]).
    pub fn new(register: fn(&mut Registrar<'_, M>)) -> Self {
        let mut table = RpcTable::new();
        let (tx, rx) = crossbeam_channel::unbounded();
        register(&mut Registrar {
            table: &mut table,
            peer: tx.clone(),
            client: tx,
        });
        Decoder { table, rx }
    }

    /// What `body` decodes to under `code`; `None` for a code that is not
    /// registered.
    pub fn decode(&self, code: u8, body: Bytes) -> Option<Result<M, WireError>> {
        self.table.name(code)?;
        let every = class::CLIENT | class::PEER | class::MASTER;
        Some(
            self.table
                .dispatch(every, Source::Peer(0), code, body)
                .map(|()| match self.rx.try_recv() {
                    Ok((_, Inbound::Msg(m))) => m,
                    _ => panic!("code {code:#04x} decoded but delivered nothing"),
                }),
        )
    }
}

/// Checks protocol `P`'s codec on `samples`, which must hold at least one
/// message of every type in `P::CODES`. Each sample frames with a code of
/// that table, under the name of its variant or of the struct the variant
/// wraps; decodes by that code
/// (through the rpc table, as the runtime does) back to itself; every strict
/// prefix of its body is refused as truncated and one byte more as
/// trailing; and damaged copies of its body, and random bodies, decoded
/// under every code, give an error or a message that encodes back to
/// exactly those bytes, never a panic. Panics naming the message and the
/// check that failed.
pub fn check_codec<P: Protocol>(samples: &[P::Msg])
where
    P::Msg: PartialEq,
{
    check_messages(P::CODES, P::register, samples)
}

/// [`check_codec`] for the messages `register` registers, whose codes and
/// names are `codes`.
pub fn check_messages<M>(
    codes: &[(u8, &'static str)],
    register: fn(&mut Registrar<'_, M>),
    samples: &[M],
) where
    M: Frame + PartialEq + Debug + Send + 'static,
{
    let d = Decoder::new(register);
    let mut seen = BTreeSet::new();
    for m in samples {
        let frame = frame_bytes(m);
        let (code, len) = match parse_header(&frame, DEFAULT_MAX_FRAME) {
            Ok(Some(h)) => h,
            other => panic!("{m:?} frames with a bad header: {other:?}"),
        };
        assert_eq!(len, frame.len() - FRAME_HEADER_LEN, "length of {m:?}");
        let Some((_, name)) = codes.iter().find(|(c, _)| *c == code) else {
            panic!("{m:?} frames under code {code:#04x}, which is not in CODES");
        };
        // The variant, or the struct it wraps, is named like the code.
        let shown = format!("{m:?}");
        assert!(
            shown.starts_with(name)
                || shown
                    .split_once('(')
                    .is_some_and(|(_, inner)| inner.starts_with(name)),
            "{m:?} frames under the code of {name}"
        );
        let body = frame.slice(FRAME_HEADER_LEN..);
        match d.decode(code, body.clone()) {
            Some(Ok(back)) => assert!(
                back == *m,
                "{name} does not decode back to itself:\n sent {m:?}\n  got {back:?}"
            ),
            other => panic!("{name} does not decode: {other:?}"),
        }
        for cut in 0..body.len() {
            match d.decode(code, body.slice(..cut)) {
                Some(Err(WireError::Truncated { .. })) => {}
                other => panic!(
                    "a prefix of {cut} of the {} bytes of {name} decoded as {other:?}",
                    body.len()
                ),
            }
        }
        let mut longer = BytesMut::from(&body[..]);
        longer.extend_from_slice(&[0]);
        match d.decode(code, longer.freeze()) {
            Some(Err(WireError::Trailing(1))) => {}
            other => panic!("{name} with one byte more decoded as {other:?}"),
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(xxhash_rust::xxh3::xxh3_64(&body));
        for _ in 0..8 {
            any_bytes(codes, &d, &damaged(&mut rng, &body));
            any_bytes(codes, &d, &random_body(&mut rng));
        }
        seen.insert(code);
    }
    for (code, name) in codes {
        assert!(
            seen.contains(code),
            "no sample of {name} (code {code:#04x}): give one of every message"
        );
    }
}

/// Checks the encoding of values that are not messages (durable records,
/// log entries, parts of messages): each decodes back to itself, every
/// strict prefix is refused as truncated and one byte more as trailing,
/// damaged copies give an error or a value that encodes back to exactly
/// those bytes, and the values written as durable records parse back in
/// order (a torn last record is dropped, the others survive).
pub fn check_records<T: Marshal + Unmarshal + PartialEq + Debug>(samples: &[T]) {
    let mut log = BytesMut::new();
    for v in samples {
        let body = encoded(v);
        match decode_body::<T>(body.clone()) {
            Ok(back) => assert!(
                back == *v,
                "does not decode back to itself:\n sent {v:?}\n  got {back:?}"
            ),
            Err(e) => panic!("{v:?} does not decode: {e}"),
        }
        check_truncations::<T>(&body);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(xxhash_rust::xxh3::xxh3_64(&body));
        for _ in 0..8 {
            arbitrary_body::<T>(&damaged(&mut rng, &body));
        }
        crate::durable::frame_record(v, &mut log);
    }
    let back: Vec<T> = crate::durable::parse_records(&log)
        .expect("the records parse")
        .into_iter()
        .map(|b| decode_body::<T>(b).expect("a parsed record decodes"))
        .collect();
    assert!(back == samples, "records do not parse back in order");
    if !log.is_empty() {
        let torn = crate::durable::parse_records(&log[..log.len() - 1]).expect("a torn tail");
        assert_eq!(torn.len(), samples.len() - 1, "a torn last record");
    }
}

/// How many values [`drawn`] checks: many shapes of every message's
/// fields, in a fraction of a second.
pub const CASES: u32 = 256;

/// Runs `check` (one of the checks above) on [`CASES`] values drawn from
/// `strategy` (a list of strategies draws one value of each, so every
/// message or record kind is checked in every case); a failing value is
/// shrunk to a smallest one, which the panic shows.
pub fn drawn<S: Strategy>(strategy: S, check: impl Fn(S::Value)) {
    let cfg = ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(cfg);
    if let Err(e) = runner.run(&strategy, |v| {
        check(v);
        Ok(())
    }) {
        panic!("{e}");
    }
}

/// `body` decoded under every code of `codes`: an error, or a message that
/// encodes back to exactly `body` under that code; never a panic.
fn any_bytes<M: Frame + Debug + Send + 'static>(
    codes: &[(u8, &'static str)],
    d: &Decoder<M>,
    body: &[u8],
) {
    for (code, name) in codes {
        if let Some(Ok(m)) = d.decode(*code, Bytes::copy_from_slice(body)) {
            let again = frame_bytes(&m);
            assert!(
                again[0] == *code && &again[FRAME_HEADER_LEN..] == body,
                "{name} decoded {body:?} to {m:?}, which encodes differently (not canonical)"
            );
        }
    }
}

/// `body` with one to three bytes changed.
fn damaged(rng: &mut impl Rng, body: &[u8]) -> Bytes {
    let flips: Vec<(usize, u8)> = (0..rng.gen_range(1..4)).map(|_| rng.gen()).collect();
    mutate(body, &flips)
}

/// Up to 160 random bytes, mostly small values (counts, flags, kinds).
fn random_body(rng: &mut impl Rng) -> Bytes {
    let len = rng.gen_range(0..160);
    (0..len)
        .map(|_| match rng.gen_range(0..5) {
            0..=3 => rng.gen_range(0..8),
            _ => rng.gen(),
        })
        .collect::<Vec<u8>>()
        .into()
}

#[cfg(test)]
mod tests {
    //! The checks fail on broken codecs: toy messages whose decoder drops a
    //! field or panics on some values, a missing sample, a value that leaves
    //! bytes unread.

    use super::*;
    use crate::wire::{Message, Reader};

    /// How the toy's decoder is broken.
    static BROKEN: std::sync::Mutex<Option<&'static str>> = std::sync::Mutex::new(None);

    fn broken() -> Option<&'static str> {
        *BROKEN.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Pair {
        a: u64,
        b: u64,
    }

    impl Marshal for Pair {
        fn marshal(&self, buf: &mut BytesMut) {
            self.a.marshal(buf);
            self.b.marshal(buf);
        }
    }

    impl Unmarshal for Pair {
        fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
            let a = r.u64("a")?;
            let b = match broken() {
                Some("drops b") => {
                    r.u64("b")?;
                    0
                }
                Some("panics") => {
                    let b = r.u64("b")?;
                    assert!(b != 7, "b is 7");
                    b
                }
                _ => r.u64("b")?,
            };
            Ok(Pair { a, b })
        }
    }

    impl Message for Pair {
        const CODE: u8 = 0xf0;
        const NAME: &'static str = "Pair";
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Lone {
        a: u64,
    }
    crate::wire_struct!(Lone { a } = 0xf1);

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum ToyMsg {
        Pair(Pair),
        Lone(Lone),
    }

    impl Frame for ToyMsg {
        fn encode_frame(&self, out: &mut BytesMut) {
            match self {
                ToyMsg::Pair(m) => m.encode_frame(out),
                ToyMsg::Lone(m) => m.encode_frame(out),
            }
        }
    }

    const CODES: [(u8, &str); 2] = [(Pair::CODE, Pair::NAME), (Lone::CODE, Lone::NAME)];

    fn register(r: &mut Registrar<'_, ToyMsg>) {
        r.peer(ToyMsg::Pair);
        r.peer(ToyMsg::Lone);
    }

    fn samples() -> Vec<ToyMsg> {
        vec![
            ToyMsg::Pair(Pair { a: 1, b: 7 }),
            ToyMsg::Lone(Lone { a: 3 }),
        ]
    }

    /// The panic message of `check_messages` on `samples` with the decoder
    /// broken as `how` (`None`: it passed).
    fn failure(how: Option<&'static str>, samples: &[ToyMsg]) -> Option<String> {
        let mut b = BROKEN.lock().unwrap_or_else(|e| e.into_inner());
        *b = how;
        drop(b);
        let r = std::panic::catch_unwind(|| check_messages(&CODES, register, samples));
        *BROKEN.lock().unwrap_or_else(|e| e.into_inner()) = None;
        r.err().map(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    }

    #[test]
    fn check_codec_passes_a_sound_codec_and_fails_broken_ones() {
        // One test, so the broken decoder is set for one check at a time.
        assert_eq!(failure(None, &samples()), None);
        let e = failure(Some("drops b"), &samples()).expect("a dropped field fails");
        assert!(e.contains("Pair does not decode back to itself"), "{e}");
        let e = failure(Some("panics"), &samples()).expect("a panicking decoder fails");
        assert!(e.contains("b is 7"), "{e}");
        let e = failure(None, &samples()[..1]).expect("a missing sample fails");
        assert!(e.contains("no sample of Lone"), "{e}");
    }

    #[test]
    fn check_records_fails_a_value_that_does_not_roundtrip() {
        check_records(&[Lone { a: 1 }, Lone { a: u64::MAX }]);
        let r = std::panic::catch_unwind(|| {
            // A value whose encoding carries a trailing byte it never reads.
            #[derive(Debug, PartialEq)]
            struct Sloppy(u64);
            impl Marshal for Sloppy {
                fn marshal(&self, buf: &mut BytesMut) {
                    self.0.marshal(buf);
                    0u8.marshal(buf);
                }
            }
            impl Unmarshal for Sloppy {
                fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
                    Ok(Sloppy(r.u64("v")?))
                }
            }
            check_records(&[Sloppy(5)]);
        });
        assert!(r.is_err(), "a value that leaves bytes unread fails");
    }

    /// Every case runs; a check that fails for some drawn values fails the
    /// run, and the panic shows a shrunk failing value (the smallest, 1000).
    #[test]
    fn drawn_fails_and_shows_a_failing_value() {
        let runs = std::sync::atomic::AtomicU32::new(0);
        drawn(0u64..1000, |v| {
            runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            assert!(v < 1000)
        });
        assert_eq!(runs.into_inner(), CASES, "every case runs");
        let r = std::panic::catch_unwind(|| drawn(0u64..1_000_000, |v| assert!(v < 1000)));
        let e = r.expect_err("a failing check fails the run");
        let e = e.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(e.contains("1000"), "{e}");
    }
}
