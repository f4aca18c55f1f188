//! The settings most protocols read alike, each read once: a protocol's
//! `from_settings` names where its configuration keeps each of them
//! ([`Knobs`]) and [`Settings::apply`] sets them, so what a setting means
//! (the frame bound split for batches, the horizon setting both what is kept
//! and how often compaction runs, a threshold left unset keeping the
//! protocol's default) is written here and not in every protocol.

use crate::protocol::Settings;
use crate::snapshot::TransferConfig;

/// Where a protocol's configuration keeps each shared setting, for
/// [`Settings::apply`]: a field that is `Some` is set from its setting when
/// the setting is given (a flag always); one left `None` names a setting the
/// protocol does not have, which it then ignores.
#[derive(Debug, Default)]
pub struct Knobs<'a> {
    /// `--thrifty`: phase-2 messages to a bare majority only.
    pub thrifty: Option<&'a mut bool>,
    /// `--batch`: proposals that arrive together go into one slot.
    pub batch: Option<&'a mut bool>,
    /// Most commands in one batch.
    pub batch_max: Option<&'a mut usize>,
    /// Writes answered after execution rather than at commit.
    pub reply_after_exec: Option<&'a mut bool>,
    /// Keep a record of every commit (the simulator's checks).
    pub record_commits: Option<&'a mut bool>,
    /// Largest command accepted from a client, bytes.
    pub max_command_bytes: Option<&'a mut usize>,
    /// Bytes at which a batch (or a message of several entries) closes: a
    /// quarter of the frame limit, so that it and its framing fit a frame.
    pub batch_bytes: Option<&'a mut usize>,
    /// The dedup table's bounds: gaps in a client's executed sequence
    /// numbers (`--max-gaps`) and results kept past its ring (`--max-far`).
    pub dedup: Option<&'a mut crate::state::Limits>,
    /// How long a leader (or a slot's owner) may stay silent before a peer
    /// acts on it, ns.
    pub election_timeout_ns: Option<&'a mut u64>,
    /// How long a leader must be silent before the master's hint makes a
    /// follower campaign, ns.
    pub hint_quiet_ns: Option<&'a mut u64>,
    /// How far a slot or instance number may run ahead of what is executed.
    pub window: Option<&'a mut u64>,
    /// Most commands a leader has proposed and not yet seen chosen (EPaxos:
    /// executed) before it stops taking client requests (at least one).
    pub pipeline: Option<&'a mut u64>,
    /// Executed slots or instances kept for peers catching up one by one
    /// (`--gc-horizon`).
    pub keep_executed: Option<&'a mut u64>,
    /// How many executed slots or instances between compactions: the
    /// horizon too, so that short simulated runs compact many times.
    pub compact_every: Option<&'a mut u64>,
    /// Bytes of executed commands held before a compaction.
    pub compact_bytes: Option<&'a mut usize>,
    /// Percentage of the last snapshot's bytes executed before a durable
    /// compaction writes the next one.
    pub snapshot_ratio: Option<&'a mut u32>,
    /// Snapshot transfer: chunk size and retry timeout.
    pub transfer: Option<&'a mut TransferConfig>,
}

/// Sets `field`, if the protocol has it, to `v`, if given.
fn set<T>(field: Option<&mut T>, v: Option<T>) {
    if let (Some(f), Some(v)) = (field, v) {
        *f = v;
    }
}

impl Settings {
    /// Sets the fields `k` names from these settings (see [`Knobs`]);
    /// every other field keeps the protocol's default.
    pub fn apply(&self, k: Knobs<'_>) {
        set(k.thrifty, Some(self.thrifty));
        set(k.batch, Some(self.batch));
        set(k.reply_after_exec, Some(self.reply_after_exec));
        set(k.record_commits, Some(self.record_commits));
        set(k.batch_max, self.batch_max);
        set(k.max_command_bytes, self.max_command);
        set(k.batch_bytes, self.max_frame.map(|f| f / 4));
        if let Some(d) = k.dedup {
            set(Some(&mut d.max_gaps), self.max_gaps);
            set(Some(&mut d.max_far), self.max_far);
            set(Some(&mut d.ring), self.dedup_ring.map(|r| r.max(1)));
        }
        set(k.election_timeout_ns, self.election_timeout_ns);
        set(k.hint_quiet_ns, self.hint_quiet_ns);
        set(k.window, self.window);
        set(k.pipeline, self.pipeline.map(|v| v.max(1)));
        set(k.keep_executed, self.gc_horizon);
        set(k.compact_every, self.gc_horizon);
        set(k.compact_bytes, self.compact_bytes);
        set(k.snapshot_ratio, self.snapshot_ratio);
        if let Some(t) = k.transfer {
            *t = t.with_settings(self);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting lands in the field named for it, a threshold left
    /// unset keeps the default, and a field not named is left alone.
    #[test]
    fn settings_land_where_named() {
        let s = Settings {
            thrifty: true,
            record_commits: true,
            batch_max: Some(7),
            max_frame: Some(4000),
            gc_horizon: Some(64),
            snapshot_timeout_ns: Some(9),
            dedup_ring: Some(0),
            max_far: Some(11),
            ..Settings::new(0, 3)
        };
        let (mut thrifty, mut record, mut batch, mut batch_max) = (false, false, false, 1usize);
        let (mut batch_bytes, mut keep, mut every, mut hint) = (1usize, 1u64, 1u64, 5u64);
        let mut transfer = TransferConfig::default();
        let mut dedup = crate::state::Limits::default();
        s.apply(Knobs {
            thrifty: Some(&mut thrifty),
            record_commits: Some(&mut record),
            batch: Some(&mut batch),
            batch_max: Some(&mut batch_max),
            batch_bytes: Some(&mut batch_bytes),
            keep_executed: Some(&mut keep),
            compact_every: Some(&mut every),
            hint_quiet_ns: Some(&mut hint),
            transfer: Some(&mut transfer),
            dedup: Some(&mut dedup),
            ..Knobs::default()
        });
        assert!(thrifty && record && !batch);
        assert_eq!((batch_max, batch_bytes, keep, every), (7, 1000, 64, 64));
        assert_eq!(hint, 5, "an unset threshold keeps the default");
        assert_eq!(transfer.timeout_ns, 9);
        assert_eq!(transfer.chunk_bytes, TransferConfig::default().chunk_bytes);
        // A ring of none holds one number.
        assert_eq!((dedup.ring, dedup.max_far), (1, 11));
        assert_eq!(dedup.max_gaps, crate::state::Limits::default().max_gaps);
    }
}
