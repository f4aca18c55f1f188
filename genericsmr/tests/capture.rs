//! A snapshot captured for a compaction (a copy of the state, encoded
//! later off the event loop) writes exactly the bytes the snapshot taken
//! at once would, and its size is known exactly without encoding it; the
//! store's byte count follows every kind of command.

use bytes::{Bytes, BytesMut};
use genericsmr::command::{Command, Op};
use genericsmr::effects::Effects;
use genericsmr::snapshot::{Capture, Snapshot, Source};
use genericsmr::state::StateMachine;
use genericsmr::wire::Marshal;
use proptest::prelude::*;

/// Commands from a few clients on a few keys, so that keys are
/// overwritten, deleted and swapped, and results are kept and dropped.
fn command_s() -> impl Strategy<Value = Command> {
    let op = prop_oneof![
        Just(Op::Put),
        Just(Op::Get),
        Just(Op::Delete),
        Just(Op::Cas)
    ];
    (
        0u64..3,
        0u64..40,
        0u64..40,
        op,
        0u8..6,
        proptest::collection::vec(any::<u8>(), 0..50),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..50)),
    )
        .prop_map(
            |(client, seq, acked_below, op, key, value, expected)| Command {
                client,
                seq,
                acked_below,
                op,
                key: Bytes::from(format!("key-{key}")),
                value: Bytes::from(value),
                expected: expected.map(Bytes::from),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn a_capture_writes_what_the_snapshot_would(
        cmds in proptest::collection::vec(command_s(), 0..120),
        part in any::<u64>(),
    ) {
        let mut sm = StateMachine::default();
        for c in &cmds {
            sm.execute(c);
        }
        let capture = Capture::of(&sm, &part);
        let before = Snapshot::of(&sm, &part);
        let mut want = BytesMut::new();
        before.to_bytes().marshal(&mut want);
        // Later commands change the state, not the capture.
        let later = Command { client: 9, seq: 1, acked_below: 0, op: Op::Put,
            key: Bytes::from_static(b"later"), value: Bytes::from_static(b"v"), expected: None };
        let mut sm_later = sm.clone();
        sm_later.execute(&later);
        prop_assert!(Snapshot::of(&sm_later, &part) != before);
        let mut got = BytesMut::new();
        capture.write_bytes_field(&mut got);
        prop_assert_eq!(&got[..], &want[..]);
        // Its size is known without encoding it, and so is the base
        // record's a compaction writes from it.
        prop_assert_eq!(capture.len(), before.to_bytes().len());
        for source in [Source::Captured(Box::new(capture.clone())), Source::Installed(before.to_bytes())] {
            let mut fx = Effects::<()>::default();
            source.compact(9, &mut fx);
            let (_, base) = fx.take_disk().compaction.expect("a compaction");
            let said = base.len();
            prop_assert_eq!(said, base.framed().len());
        }
        // The byte count is what the keys and values hold.
        let image = Snapshot::of(&sm, &part).state_machine(&sm).expect("decodes");
        prop_assert_eq!(image.kv().bytes(), sm.kv().bytes());
        let mut rebuilt = StateMachine::default();
        for c in &cmds {
            rebuilt.execute(c);
        }
        prop_assert_eq!(rebuilt.kv().bytes(), sm.kv().bytes());
    }
}

/// The byte count after overwrites with longer and shorter values, a
/// swap, and a delete, counted by hand.
#[test]
fn the_store_counts_its_bytes() {
    let mut sm = StateMachine::default();
    let mut seq = 0;
    let mut run =
        |sm: &mut StateMachine, op: Op, key: &str, value: &str, expected: Option<&str>| {
            seq += 1;
            sm.execute(&Command {
                client: 1,
                seq,
                acked_below: 0,
                op,
                key: Bytes::copy_from_slice(key.as_bytes()),
                value: Bytes::copy_from_slice(value.as_bytes()),
                expected: expected.map(|e| Bytes::copy_from_slice(e.as_bytes())),
            });
        };
    run(&mut sm, Op::Put, "ab", "0123456789", None);
    assert_eq!(sm.kv().bytes(), 12);
    run(&mut sm, Op::Put, "ab", &"x".repeat(40), None);
    assert_eq!(sm.kv().bytes(), 42);
    run(&mut sm, Op::Put, "c", "y", None);
    assert_eq!(sm.kv().bytes(), 44);
    run(&mut sm, Op::Cas, "c", "zzz", Some("y"));
    assert_eq!(sm.kv().bytes(), 46);
    run(&mut sm, Op::Cas, "c", "no", Some("wrong"));
    assert_eq!(sm.kv().bytes(), 46);
    run(&mut sm, Op::Delete, "ab", "", None);
    assert_eq!(sm.kv().bytes(), 4);
    run(&mut sm, Op::Delete, "missing", "", None);
    assert_eq!(sm.kv().bytes(), 4);
}
