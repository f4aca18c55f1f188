//! The Multi-Paxos codec: one sample of every message, with arbitrary
//! fields, and samples of every durable record (what every protocol on the
//! shared log has comes from `paxos::multi::testkit`), through the shared
//! checks of `genericsmr::testkit` (decoding by code as the runtime does,
//! strict prefixes refused, damaged and random bodies never a panic); and
//! what only this protocol has (its code range, ballots, hostile counts).

use bytes::Bytes;
use genericsmr::testkit::*;
use genericsmr::wire::{decode_body, WireError};
use paxos::messages::*;
use paxos::multi::testkit::*;
use paxos::Replica;
use proptest::prelude::*;

/// One strategy per Multi-Paxos message: the ones every protocol on the
/// shared log has, with batches of commands as values, then its own.
fn messages() -> Vec<BoxedStrategy<PaxosMsg>> {
    let u = any::<u64>;
    let chosen = (u(), cmds_s()).prop_map(|(slot, cmds)| ChosenSlot { slot, cmds });
    let mut all = shared_messages_s::<PaxosMsg>(cmds_s());
    all.extend([
        (u(), proptest::collection::vec(chosen, 0..5))
            .prop_map(|(commit_index, slots)| {
                PaxosMsg::CatchupReply(CatchupReply {
                    commit_index,
                    slots,
                })
            })
            .boxed(),
        u().prop_map(|nonce| PaxosMsg::RecoveryQuery(RecoveryQuery { nonce }))
            .boxed(),
        (u(), u(), u(), u())
            .prop_map(|(nonce, promised, log_end, commit_index)| {
                PaxosMsg::RecoveryInfo(RecoveryInfo {
                    nonce,
                    promised,
                    log_end,
                    commit_index,
                })
            })
            .boxed(),
    ]);
    all
}

#[test]
fn every_message_roundtrips() {
    drawn(messages(), |ms| check_codec::<Replica>(&ms));
}

#[test]
fn every_record_roundtrips() {
    drawn(records_s(cmds_s()), |rs| check_records(&rs));
}

#[test]
fn codes_are_in_the_paxos_range() {
    assert_eq!(CODES[0].0, genericsmr::messages::codes::PAXOS_BASE);
    for (code, name) in CODES {
        // Beside the shared snapshot messages.
        assert!(
            (0x30..=0x4f).contains(&code) || (0x21..=0x23).contains(&code),
            "{name} outside the paxos code range"
        );
    }
}

#[test]
fn ballots_are_unique_and_ordered() {
    for round in [0u64, 1, 2, 1000, (1 << 56) - 1] {
        for id in [0u8, 1, 2, 63, 255] {
            let b = ballot::make(round, id);
            assert_eq!(ballot::owner(b), id);
            assert_eq!(ballot::round(b), round);
            if round < 1000 {
                assert!(ballot::make(round + 1, 0) > b);
            }
        }
    }
    assert!(ballot::make(1, 0) < ballot::make(1, 1));
    assert!(ballot::make(1, 255) < ballot::make(2, 0));
}

#[test]
fn unknown_record_kind_is_invalid() {
    for kind in [0u8, 6, 0xff] {
        let mut body = vec![kind];
        body.extend_from_slice(&[0; 16]);
        assert!(matches!(
            decode_body::<Record>(Bytes::from(body)),
            Err(WireError::Invalid { .. })
        ));
    }
}

#[test]
fn hostile_command_count_is_rejected_before_allocation() {
    // An Accept announcing u32::MAX commands in a body of a few bytes.
    let mut body = Vec::new();
    body.extend_from_slice(&7u64.to_le_bytes());
    body.extend_from_slice(&3u64.to_le_bytes());
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_body::<Accept>(Bytes::from(body)),
        Err(WireError::Truncated { .. })
    ));
}
