//! Every server setting Multi-Paxos reads lands in its configuration: a
//! setting missing from its `Knobs` would be ignored without a word. The
//! group settings (`GroupConfig`) are MDLin's too.

use genericsmr::protocol::Settings;
use paxos::Config;

#[test]
fn every_setting_lands_in_the_config() {
    let s = Settings {
        thrifty: true,
        batch: true,
        batch_max: Some(7),
        reply_after_exec: true,
        max_command: Some(11),
        max_frame: Some(4000),
        gc_horizon: Some(64),
        compact_bytes: Some(13),
        snapshot_ratio: Some(17),
        window: Some(19),
        snapshot_chunk: Some(23),
        snapshot_timeout_ns: Some(29),
        max_gaps: Some(31),
        max_far: Some(47),
        dedup_ring: Some(53),
        election_timeout_ns: Some(37),
        hint_quiet_ns: Some(41),
        pipeline: Some(43),
        ..Settings::new(1, 3)
    };
    let c = Config::from_settings(&s).expect("valid settings");
    assert!(c.group.thrifty && c.batch && c.reply_after_exec);
    assert_eq!(c.batch_max, 7);
    assert_eq!(c.max_command_bytes, 11);
    // A batch closes at a quarter of the frame bound.
    assert_eq!(c.max_batch_bytes, 1000);
    // The horizon is both what is kept and how often compaction runs.
    let (g, k) = (&c.group, &c.group.compaction);
    assert_eq!((k.keep_executed, k.compact_every), (64, 64));
    assert_eq!((k.compact_bytes, k.snapshot_ratio), (13, 17));
    assert_eq!(g.slot_window, 19);
    assert_eq!((g.transfer.chunk_bytes, g.transfer.timeout_ns), (23, 29));
    assert_eq!((g.dedup.max_gaps, g.dedup.max_far), (31, 47));
    assert_eq!(g.dedup.ring, 53);
    assert_eq!((g.election_timeout_ns, g.hint_quiet_ns), (37, 41));
    assert_eq!(g.pipeline, 43);
    // A pipeline of none is one slot.
    let one = Settings {
        pipeline: Some(0),
        ..Settings::new(1, 3)
    };
    let one = Config::from_settings(&one).expect("valid settings");
    assert_eq!(one.group.pipeline, 1);

    // Settings left unset keep the defaults of `Config::new`.
    let quiet = Config::from_settings(&Settings::new(1, 3)).expect("defaults");
    let new = Config::new(1, 3);
    assert_eq!(format!("{quiet:?}"), format!("{new:?}"));
}
