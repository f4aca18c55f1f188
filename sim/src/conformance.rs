//! The simulator's conformance suite: one list of scenarios that every
//! protocol's tests run (`sim::conformance_tests!(myproto::Replica);`).
//! A scenario says which protocols it applies to by their declared
//! capabilities, never by name; one that does not apply passes with a note.
//!
//! Every scenario runs [`seeds`] seeds (`SIM_SEEDS`, default 500; the
//! larger groups fewer), each a full run with the final checks of
//! [`crate::run`]: agreement after every event, convergence, and the
//! linearizability of the clients' history.

use genericsmr::protocol::{Caps, Protocol, Rejoin};

use crate::{run_seeds, seeds, Config, Seeds};

/// One scenario of the suite.
pub struct Scenario {
    /// Its name (the test's, and in failure messages).
    pub name: &'static str,
    /// Whether it applies to a protocol with these capabilities.
    pub applies: fn(&Caps) -> bool,
    /// The configuration of seed `s`.
    pub config: fn(u64) -> Config,
    /// Seeds it runs, out of [`seeds`] (a divisor: 1 runs all).
    pub divisor: u64,
    /// Snapshots must be installed somewhere over its seeds (by a protocol
    /// that takes them: [`Protocol::snapshot`] is `Some`).
    pub needs_snapshots: bool,
}

fn always(_: &Caps) -> bool {
    true
}

/// Every scenario.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "every fault",
            applies: always,
            config: Config::new,
            divisor: 1,
            needs_snapshots: false,
        },
        Scenario {
            name: "no disk",
            // Replicas restart with nothing: only a protocol that recovers
            // its promises from a majority can take that.
            applies: |c| c.rejoin == Rejoin::Recovers,
            config: |s| Config {
                durable: false,
                ..Config::new(s)
            },
            divisor: 1,
            needs_snapshots: false,
        },
        Scenario {
            name: "five replicas",
            applies: always,
            config: |s| Config {
                n: 5,
                ..Config::new(s)
            },
            divisor: 1,
            needs_snapshots: false,
        },
        Scenario {
            name: "seven replicas",
            applies: always,
            config: |s| Config {
                n: 7,
                ..Config::new(s)
            },
            divisor: 4,
            needs_snapshots: false,
        },
        Scenario {
            name: "one hot key",
            applies: always,
            config: |s| Config {
                keys: 1,
                ..Config::new(s)
            },
            divisor: 1,
            needs_snapshots: false,
        },
        Scenario {
            name: "no master",
            // Nobody asks anyone to lead: the replicas elect every leader
            // themselves, or need none.
            applies: |c| c.elects || c.leaderless,
            config: |s| Config {
                master: false,
                durable: s % 4 != 1,
                n: if s % 5 == 4 { 5 } else { 3 },
                ..Config::new(s)
            },
            divisor: 1,
            needs_snapshots: false,
        },
        Scenario {
            name: "lag past compaction",
            // A long outage with 32 entries kept: the replica that was down
            // must catch up by snapshot, in pieces of 97 bytes.
            applies: always,
            config: |s| {
                let mut c = Config::new(s);
                c.outage = true;
                c.durable = s % 2 == 0;
                c.tuning.gc_horizon = Some(32);
                c.tuning.chunk_bytes = Some(97);
                c
            },
            divisor: 8,
            needs_snapshots: true,
        },
        Scenario {
            name: "compaction by bytes",
            // Entry counts far off, 2 kB of commands or records between
            // compactions, and a long outage: the bytes alone make the
            // others compact past the replica that was down.
            applies: always,
            config: |s| {
                let mut c = Config::new(s);
                c.outage = true;
                c.durable = s % 2 == 0;
                c.tuning.gc_horizon = None;
                c.tuning.compact_bytes = Some(2048);
                c
            },
            divisor: 8,
            needs_snapshots: true,
        },
        Scenario {
            name: "a short pipeline",
            // A leader holds clients back after 1 to 3 commands proposed
            // and not chosen, through every fault: holding back must never
            // wedge it (it waits on peers and timers only) nor lose or
            // reorder what it holds.
            applies: always,
            config: |s| {
                let mut c = Config::new(s);
                c.tuning.pipeline = Some(1 + s % 3);
                c
            },
            divisor: 4,
            needs_snapshots: false,
        },
        Scenario {
            name: "two shards",
            // Every fault, over two groups: keys map to shards, the master
            // and the crashes work per shard, and a partition may cut
            // across both.
            applies: always,
            config: |s| Config {
                shards: 2,
                ..Config::new(s)
            },
            divisor: 4,
            needs_snapshots: false,
        },
        Scenario {
            name: "chained clients",
            // Multi-dispatch clients chaining operations across two or three
            // shards, under the chained chaos mix (crashes and cuts of shard
            // leaders, some as they first send to another shard, stalled
            // chains, up to 3% loss), judged by both MDL checkers.
            applies: |c| c.multi_dispatch,
            config: |seed| {
                let shards = 2 + (seed % 2) as usize;
                Config::chained_chaos(seed, shards, 3, true, (seed % 4) as f64 * 0.01)
            },
            divisor: 1,
            needs_snapshots: false,
        },
    ]
}

/// Seeds of "every fault" that [`replays`] runs twice each.
const REPLAY_SEEDS: u64 = 40;

/// `cfg` as protocol `P` can run it: a run without disks is only for
/// protocols that recover without their votes; one without a durable log
/// has no disk to keep.
fn fit<P: Protocol>(mut cfg: Config) -> Config {
    cfg.durable = match (P::CAPS.durable, P::CAPS.rejoin) {
        (false, _) => false,
        (true, Rejoin::Recovers) => cfg.durable,
        (true, _) => true,
    };
    cfg
}

/// Runs the first seeds of "every fault" twice each in one process and
/// requires the same run, event for event: a failing seed is only worth
/// reporting if the seed brings the failure back.
pub fn replays<P: Protocol>() {
    for seed in 0..REPLAY_SEEDS {
        let cfg = fit::<P>(Config::new(seed));
        let (a, b) = (crate::run::<P>(&cfg, true), crate::run::<P>(&cfg, true));
        if let Some(i) =
            (0..a.trace.len().max(b.trace.len())).find(|&i| a.trace.get(i) != b.trace.get(i))
        {
            panic!(
                "{}: seed {seed} ran differently twice; first difference at event {i}:\n  {:?}\n  {:?}",
                P::NAME,
                a.trace.get(i),
                b.trace.get(i)
            );
        }
        assert_eq!(
            (a.events, a.acked, a.history.len()),
            (b.events, b.acked, b.history.len()),
            "{}: seed {seed} ran differently twice",
            P::NAME
        );
        assert!(!a.trace.is_empty(), "{}: seed {seed}: no trace", P::NAME);
    }
}

/// Runs scenario `name` on protocol `P` and panics listing every failing
/// seed, with how to replay it.
pub fn check<P: Protocol>(name: &str) {
    let s = scenarios()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario called {name:?}"));
    if !(s.applies)(&P::CAPS) {
        println!("{}: {name}: not applicable", P::NAME);
        return;
    }
    let count = (seeds() / s.divisor).max(1);
    let Seeds {
        failed,
        acked,
        snapshots,
    } = run_seeds::<P>(count, |seed| fit::<P>((s.config)(seed)));
    assert!(
        failed.is_empty(),
        "{name}: failing seeds (replay with bench sim --protocol {} --seed N --trace, and the scenario's settings): {failed:#?}",
        P::NAME
    );
    assert!(
        acked > count * 20,
        "{name}: too little progress: {acked} operations acknowledged over {count} seeds"
    );
    // Only a protocol that takes snapshots must install them.
    let takes_snapshots = P::boot(
        &genericsmr::protocol::Settings::new(0, 3),
        genericsmr::protocol::Boot::Fresh,
        0,
        &mut genericsmr::effects::Effects::default(),
    )
    .ok()
    .and_then(|r| r.snapshot())
    .is_some();
    assert!(
        !(s.needs_snapshots && takes_snapshots) || snapshots > 0,
        "{name}: no replica installed a snapshot over {count} seeds"
    );
    println!(
        "{}: {name}: {count} seeds, {acked} operations acknowledged",
        P::NAME
    );
}

/// One `#[test]` per scenario of the suite, for protocol `$p`.
#[macro_export]
macro_rules! conformance_tests {
    ($p:ty) => {
        mod conformance {
            #[test]
            fn every_fault() {
                $crate::conformance::check::<$p>("every fault")
            }
            #[test]
            fn no_disk() {
                $crate::conformance::check::<$p>("no disk")
            }
            #[test]
            fn five_replicas() {
                $crate::conformance::check::<$p>("five replicas")
            }
            #[test]
            fn seven_replicas() {
                $crate::conformance::check::<$p>("seven replicas")
            }
            #[test]
            fn one_hot_key() {
                $crate::conformance::check::<$p>("one hot key")
            }
            #[test]
            fn no_master() {
                $crate::conformance::check::<$p>("no master")
            }
            #[test]
            fn lag_past_compaction() {
                $crate::conformance::check::<$p>("lag past compaction")
            }
            #[test]
            fn compaction_by_bytes() {
                $crate::conformance::check::<$p>("compaction by bytes")
            }
            #[test]
            fn a_short_pipeline() {
                $crate::conformance::check::<$p>("a short pipeline")
            }
            #[test]
            fn two_shards() {
                $crate::conformance::check::<$p>("two shards")
            }
            #[test]
            fn chained_clients() {
                $crate::conformance::check::<$p>("chained clients")
            }
            #[test]
            fn a_seed_replays_exactly() {
                $crate::conformance::replays::<$p>()
            }
            #[test]
            fn every_scenario_has_a_test() {
                assert_eq!($crate::conformance::scenarios().len(), 11);
            }
        }
    };
}
