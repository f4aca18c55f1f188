//! The shared settings MDLin reads land in its configuration (a setting
//! missing from its `Knobs` would be ignored without a word), and those it
//! has not are refused or ignored as documented.

use genericsmr::protocol::Settings;
use mdlin::Config;

#[test]
fn shared_settings_land_in_the_config() {
    let on = Settings {
        thrifty: true,
        record_commits: true,
        window: Some(19),
        gc_horizon: Some(64),
        compact_bytes: Some(13),
        snapshot_ratio: Some(17),
        snapshot_chunk: Some(23),
        snapshot_timeout_ns: Some(29),
        election_timeout_ns: Some(37),
        hint_quiet_ns: Some(41),
        // A pipeline of none is one slot.
        pipeline: Some(0),
        shards: 2,
        ..Settings::new(4, 3)
    };
    let c = Config::from_settings(&on).expect("valid settings");
    assert!(c.thrifty && c.record_order);
    assert_eq!(c.shards, 2);
    assert_eq!(c.slot_window, 19);
    let k = c.compaction;
    assert_eq!((k.keep_executed, k.compact_every), (64, 64));
    assert_eq!((k.compact_bytes, k.snapshot_ratio), (13, 17));
    assert_eq!((c.transfer.chunk_bytes, c.transfer.timeout_ns), (23, 29));
    assert_eq!((c.election_timeout_ns, c.hint_quiet_ns), (37, 41));
    assert_eq!(c.pipeline, 1);

    let quiet = Config::from_settings(&Settings::new(4, 3)).expect("defaults");
    assert_eq!(format!("{quiet:?}"), format!("{:?}", Config::new(4, 3, 1)));
    let broken = Settings {
        broken: Some("anything".into()),
        ..Settings::new(0, 3)
    };
    assert!(
        Config::from_settings(&broken).is_err(),
        "no broken variants"
    );
}
