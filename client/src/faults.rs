//! Fault commands, shared by the CLI (`client fault ...`) and by fault
//! schedules: a TOML file of time-ordered steps, each written as the words of a
//! `client fault` command (or `set-leader R`).
//!
//! ```toml
//! [[step]]
//! at = "1s"
//! do = "partition 0 1,2"
//! [[step]]
//! at = "3s"
//! do = "heal 0"
//! ```

use std::time::Duration;

use clap::{Parser, Subcommand};
use genericsmr::messages::{fault as k, FaultRequest};
use serde::Deserialize;

use crate::admin::{self, Target};

/// A fault command or schedule that cannot be carried out as written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadFault(pub String);

/// One fault to set or clear on one replica.
#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum FaultCmd {
    /// The replica drops everything it receives and sends, keeping its state.
    Crash {
        /// Replica id.
        replica: u8,
    },
    /// Undo a crash.
    Restore {
        /// Replica id.
        replica: u8,
    },
    /// Cut the replica's links to and from PEERS (comma-separated ids).
    Partition {
        /// Replica id.
        replica: u8,
        /// The replicas it no longer hears or reaches.
        #[arg(value_delimiter = ',')]
        peers: Vec<u8>,
        /// Cut only the replica's messages to PEERS.
        #[arg(long)]
        one_way: bool,
    },
    /// Undo the replica's partitions.
    Heal {
        /// Replica id.
        replica: u8,
    },
    /// Delay, jitter, loss and duplication on the replica's links to PEERS.
    Link {
        /// Replica id.
        replica: u8,
        /// The peers whose links change.
        #[arg(value_delimiter = ',')]
        peers: Vec<u8>,
        /// One-way delay in milliseconds.
        #[arg(long, default_value_t = 0.0)]
        delay_ms: f64,
        /// Extra random delay up to this many milliseconds (reorders).
        #[arg(long, default_value_t = 0.0)]
        jitter_ms: f64,
        /// Loss, in percent.
        #[arg(long, default_value_t = 0.0)]
        drop: f64,
        /// Duplication, in percent.
        #[arg(long, default_value_t = 0.0)]
        dup: f64,
    },
    /// Hold back the replica's next message of TYPE (e.g. accept, commit, 0x32) to PEER.
    Hold {
        /// Replica id.
        replica: u8,
        /// The peer whose next message is held.
        peer: u8,
        /// Message type name or code.
        r#type: String,
    },
    /// Send what the replica holds for PEER.
    Release {
        /// Replica id.
        replica: u8,
        /// The peer whose held messages go out.
        peer: u8,
    },
    /// Delay messages of TYPE (or `all`) that the replica receives: DELAY like 10s, or `drop`, or `clear`.
    Phase {
        /// Replica id.
        replica: u8,
        /// Message type name or code, or `all`.
        r#type: String,
        /// A delay (`500ms`, `10s`), `drop` or `clear`.
        delay: String,
    },
    /// Clear every fault on the replica.
    Clear {
        /// Replica id.
        replica: u8,
    },
}

fn bits(ids: &[u8]) -> u64 {
    ids.iter().fold(0, |b, i| b | 1u64 << i)
}

/// Parses `500us`, `20ms`, `1.5s` or a bare number of seconds.
pub fn parse_delay(d: &str) -> Result<Duration, BadFault> {
    let bad = || BadFault(format!("'{d}' is not a delay like 500ms or 10s"));
    let (num, unit) = d.split_at(d.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(d.len()));
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    let secs = match unit {
        "us" => v / 1e6,
        "ms" => v / 1e3,
        "s" | "" => v,
        _ => return Err(BadFault(format!("unknown unit in '{d}': use us, ms or s"))),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn code(t: &str) -> Result<u8, BadFault> {
    admin::message_code(t).ok_or_else(|| {
        BadFault(format!(
            "unknown message type '{t}': use a name such as accept or commit, or a code such as 0x32"
        ))
    })
}

impl FaultCmd {
    /// The replica the command is for.
    pub fn replica(&self) -> u8 {
        match self {
            FaultCmd::Crash { replica }
            | FaultCmd::Restore { replica }
            | FaultCmd::Partition { replica, .. }
            | FaultCmd::Heal { replica }
            | FaultCmd::Link { replica, .. }
            | FaultCmd::Hold { replica, .. }
            | FaultCmd::Release { replica, .. }
            | FaultCmd::Phase { replica, .. }
            | FaultCmd::Clear { replica } => *replica,
        }
    }

    /// The request that carries the command out.
    pub fn request(&self) -> Result<FaultRequest, BadFault> {
        let ms_to_us = |ms: f64| (ms * 1e3) as u64;
        let pct_to_ppm = |p: f64| (p * 1e4) as u32;
        let plain = |kind| FaultRequest {
            nonce: 1,
            kind,
            ..Default::default()
        };
        Ok(match self {
            FaultCmd::Crash { .. } => plain(k::CRASH),
            FaultCmd::Restore { .. } => plain(k::RESTORE),
            FaultCmd::Heal { .. } => plain(k::HEAL),
            FaultCmd::Clear { .. } => plain(k::CLEAR),
            FaultCmd::Partition { peers, one_way, .. } => FaultRequest {
                peers: bits(peers),
                ..plain(if *one_way {
                    k::PARTITION_ONE_WAY
                } else {
                    k::PARTITION
                })
            },
            FaultCmd::Link {
                peers,
                delay_ms,
                jitter_ms,
                drop,
                dup,
                ..
            } => FaultRequest {
                peers: bits(peers),
                delay_us: ms_to_us(*delay_ms),
                jitter_us: ms_to_us(*jitter_ms),
                drop_ppm: pct_to_ppm(*drop),
                dup_ppm: pct_to_ppm(*dup),
                ..plain(k::LINK)
            },
            FaultCmd::Hold { peer, r#type, .. } => FaultRequest {
                peers: bits(&[*peer]),
                code: code(r#type)?,
                ..plain(k::HOLD)
            },
            FaultCmd::Release { peer, .. } => FaultRequest {
                peers: bits(&[*peer]),
                ..plain(k::RELEASE)
            },
            FaultCmd::Phase { r#type, delay, .. } => FaultRequest {
                code: if r#type == "all" { 0 } else { code(r#type)? },
                delay_us: match delay.as_str() {
                    "drop" => u64::MAX,
                    "clear" => 0,
                    d => parse_delay(d)?.as_micros() as u64,
                },
                ..plain(k::PHASE)
            },
        })
    }
}

/// What one schedule step does.
#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum Action {
    /// Make a replica take over leadership.
    SetLeader {
        /// Replica id.
        replica: u8,
    },
    /// Any fault command.
    #[command(flatten)]
    Fault(FaultCmd),
}

#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
struct ActionLine {
    #[command(subcommand)]
    action: Action,
}

impl Action {
    /// Parses the words of a `client fault` command (`partition 0 1,2`) or `set-leader R`.
    pub fn parse(line: &str) -> Result<Action, BadFault> {
        ActionLine::try_parse_from(line.split_whitespace())
            .map(|l| l.action)
            .map_err(|e| BadFault(format!("'{line}': {}", e.kind())))
    }

    /// The replica the action is for.
    pub fn replica(&self) -> u8 {
        match self {
            Action::SetLeader { replica } => *replica,
            Action::Fault(f) => f.replica(),
        }
    }
}

/// One step of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// When, counted from the start of the schedule.
    pub at: Duration,
    /// The step as written.
    pub text: String,
    /// What it does.
    pub action: Action,
}

/// A time-ordered list of fault steps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schedule {
    /// The steps, in time order.
    pub steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    #[serde(default)]
    step: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: String,
    r#do: String,
}

impl Schedule {
    /// Parses a schedule; steps must be in time order.
    pub fn parse(text: &str) -> Result<Schedule, BadFault> {
        let raw: RawSchedule =
            toml::from_str(text).map_err(|e| BadFault(format!("fault schedule: {e}")))?;
        let mut steps = Vec::with_capacity(raw.step.len());
        for (i, s) in raw.step.into_iter().enumerate() {
            let at = parse_delay(&s.at).map_err(|e| BadFault(format!("step {}: {e}", i + 1)))?;
            if let Some(prev) = steps.last().map(|p: &Step| p.at) {
                if at < prev {
                    return Err(BadFault(format!(
                        "step {} (at {}) comes before the step above it; list steps in time order",
                        i + 1,
                        s.at
                    )));
                }
            }
            let action =
                Action::parse(&s.r#do).map_err(|e| BadFault(format!("step {}: {e}", i + 1)))?;
            if let Action::Fault(f) = &action {
                f.request()
                    .map_err(|e| BadFault(format!("step {}: {e}", i + 1)))?;
            }
            steps.push(Step {
                at,
                text: s.r#do,
                action,
            });
        }
        Ok(Schedule { steps })
    }

    /// Reads and parses a schedule file.
    pub fn load(path: &std::path::Path) -> Result<Schedule, BadFault> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            BadFault(format!(
                "cannot read the fault schedule {}: {e}",
                path.display()
            ))
        })?;
        Schedule::parse(&text)
    }

    /// The highest replica id any step names.
    pub fn max_replica(&self) -> Option<u8> {
        self.steps.iter().map(|s| s.action.replica()).max()
    }
}

/// What happened to one step when a schedule ran.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// When it was carried out, from the start of the schedule.
    pub at: Duration,
    /// The step as written.
    pub text: String,
    /// `None` on success, else why it failed.
    pub error: Option<String>,
}

/// Carries out one action on replica `to`.
pub async fn apply(
    action: &Action,
    to: Target,
    timeout: Duration,
) -> Result<(), crate::ClientError> {
    match action {
        Action::SetLeader { .. } => admin::set_leader(to, timeout).await.map(|_| ()),
        Action::Fault(f) => {
            let req = f
                .request()
                .map_err(|e| crate::ClientError::Protocol(e.to_string()))?;
            admin::fault(to, &req, timeout).await.map(|_| ())
        }
    }
}

/// Runs `schedule` from now, finding each replica with `target`; reports every
/// step to `each` as it completes. A failed step is reported and the schedule
/// goes on (a test bed is not stopped by one refused fault).
pub async fn run(
    schedule: &Schedule,
    target: impl Fn(u8) -> Target,
    mut each: impl FnMut(&StepOutcome),
) -> Vec<StepOutcome> {
    let start = tokio::time::Instant::now();
    let mut done = Vec::with_capacity(schedule.steps.len());
    for s in &schedule.steps {
        tokio::time::sleep_until(start + s.at).await;
        let r = apply(
            &s.action,
            target(s.action.replica()),
            Duration::from_secs(5),
        )
        .await;
        let o = StepOutcome {
            at: start.elapsed(),
            text: s.text.clone(),
            error: r.err().map(|e| e.to_string()),
        };
        each(&o);
        done.push(o);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_in_order_and_errors_name_the_step() {
        let s = Schedule::parse(
            "[[step]]\nat = \"500ms\"\ndo = \"partition 0 1,2 --one-way\"\n\
             [[step]]\nat = \"2s\"\ndo = \"set-leader 1\"\n\
             [[step]]\nat = \"2s\"\ndo = \"phase 2 accept 10s\"\n",
        )
        .unwrap();
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.steps[0].at, Duration::from_millis(500));
        assert_eq!(
            s.steps[0].action,
            Action::Fault(FaultCmd::Partition {
                replica: 0,
                peers: vec![1, 2],
                one_way: true
            })
        );
        assert_eq!(s.steps[1].action, Action::SetLeader { replica: 1 });
        let Action::Fault(f) = &s.steps[2].action else {
            panic!("phase step parsed as {:?}", s.steps[2].action)
        };
        assert_eq!(f.request().unwrap().delay_us, 10_000_000);
        assert_eq!(s.max_replica(), Some(2));

        let out_of_order =
            "[[step]]\nat = \"2s\"\ndo = \"heal 0\"\n[[step]]\nat = \"1s\"\ndo = \"heal 1\"\n";
        let e = Schedule::parse(out_of_order).unwrap_err().to_string();
        assert!(e.contains("step 2") && e.contains("time order"), "{e}");
        let e = Schedule::parse("[[step]]\nat = \"1s\"\ndo = \"explode 0\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("step 1") && e.contains("explode"), "{e}");
        let e = Schedule::parse("[[step]]\nat = \"1s\"\ndo = \"hold 0 1 nosuchtype\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nosuchtype"), "{e}");
        let e = Schedule::parse("[[step]]\nat = \"soon\"\ndo = \"heal 0\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("soon"), "{e}");
        assert!(Schedule::parse("[[step]]\nat = \"1s\"\n").is_err());
        assert!(Schedule::parse("").unwrap().steps.is_empty());
    }

    #[test]
    fn delays_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_delay("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_delay("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_delay("3").unwrap(), Duration::from_secs(3));
        assert!(parse_delay("-1s").is_err());
        assert!(parse_delay("1h").is_err());
    }
}
