//! Property-test strategies and codec checks that every protocol crate's
//! tests share (feature `testkit`, enabled only as a dev-dependency, so no
//! binary links proptest): arbitrary commands, byte strings and mutations,
//! and the checks that a body's strict prefixes are refused and that
//! whatever decodes from arbitrary bytes encodes back to them.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::command::{Command, Op};
use crate::wire::{decode_body, Marshal, Unmarshal, WireError};

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
