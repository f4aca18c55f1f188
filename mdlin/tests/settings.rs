//! The settings MDLin reads land in its configuration (a setting missing
//! from its `Knobs` would be ignored without a word), and those it has not
//! are refused or ignored as documented. The Multi-Paxos settings it shares
//! are read by `GroupConfig::from_settings`, tested in the paxos crate; this
//! checks that MDLin takes them from there.

use genericsmr::protocol::Settings;
use mdlin::Config;
use paxos::multi::config::GroupConfig;

#[test]
fn shared_settings_land_in_the_config() {
    let on = Settings {
        thrifty: true,
        record_commits: true,
        window: Some(19),
        gc_horizon: Some(64),
        pipeline: Some(43),
        max_far: Some(47),
        shards: 2,
        ..Settings::new(4, 3)
    };
    let c = Config::from_settings(&on).expect("valid settings");
    assert!(c.record_order);
    assert_eq!(c.shards, 2);
    let group = GroupConfig::from_settings(4, 3, &on);
    assert_eq!(format!("{:?}", c.group), format!("{group:?}"));
    assert!(c.group.thrifty && c.group.slot_window == 19 && c.group.pipeline == 43);
    // The dedup bounds reach the state machine.
    assert_eq!(mdlin::Replica::new(c).state().limits().max_far, 47);

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
