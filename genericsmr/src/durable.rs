//! An append-only, checksummed record log with an fsync policy and replay.
//!
//! Record layout (all integers little-endian):
//!
//! ```text
//! +-------------+-----------------+-------------------------+---------+
//! | len u32     | payload CRC u32 | header CRC u32          | payload |
//! |             | CRC-32(payload) | CRC-32(first 8 bytes)   | len B   |
//! +-------------+-----------------+-------------------------+---------+
//! ```
//!
//! The header carries its own checksum because the length decides where the
//! next record starts: a damaged length that is trusted makes every later
//! record look like a torn tail and be thrown away.
//!
//! On open the whole file is replayed ([`parse_records`] applies the same rules
//! to a buffer). A crash can cut the file anywhere inside its last record, and a
//! file system may leave a region it extended but never wrote reading as zeros.
//! So, reading record by record, the rest of the file is a *torn tail* (cut
//! away, and the file truncated to the last intact record) when:
//!
//! - fewer bytes than a header are left (a cut inside the last header);
//! - the header checksum fails and only zeros follow the header (a header cut
//!   short, then zero fill; or nothing but zero fill);
//! - the header checks out but the file ends before the payload does (a cut
//!   inside the last payload: the length is known good, so the cut is real);
//! - the payload checksum fails and only zeros, or nothing, follow the payload.
//!
//! Anything else is damage, not tearing: a header checksum failure or a payload
//! checksum failure with any non-zero byte after it (a later record exists, so
//! this one was written whole), or a checked length above [`MAX_RECORD`].
//! Opening then fails with [`DurableError::Corrupt`] naming the file and the
//! byte offset of the damaged record, and the file is left exactly as it was.
//! The rules never drop a record that has a non-zero byte after it, and every
//! written header has one (the CRC-32 of 8 zero bytes is not zero), so at most
//! the last record is lost to a crash.
//!
//! # Compaction
//!
//! A log that only grows is compacted with [`DurableLog::compact`]: the
//! protocol hands over one *base* record that stands for everything logged so
//! far (a snapshot: state machine image plus what the protocol needs) and the
//! records still needed after it (votes above the snapshot, the promise). The
//! base goes to the *snapshot file* next to the log ([`snapshot_path`]),
//! written to a temporary file, fsynced and renamed over the old one; then the
//! log is replaced the same way by a file holding only the records after the
//! base. On open ([`DurableLog::open`]) the base record, if a snapshot file
//! exists, is replayed first, then the log.
//!
//! A crash between the two renames leaves the new snapshot with the old log,
//! whose records then replay after a base that already covers some of them: a
//! protocol must ignore records about state its base record covers (a slot or
//! instance below the snapshot). The snapshot file is written whole or not at
//! all, so any damage in it is an error naming the file and offset
//! ([`DurableError::CorruptSnapshot`]), never a torn tail.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use byteorder::{ByteOrder, LittleEndian};
use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::Marshal;

/// Largest record accepted on replay; anything claiming more is damage.
pub const MAX_RECORD: usize = 256 << 20;

/// Bytes before each record's payload: length, payload CRC, header CRC.
pub const RECORD_HEADER_LEN: usize = 12;

/// The checksum of a header's first 8 bytes (length and payload CRC).
fn header_crc(len_and_payload_crc: &[u8]) -> u32 {
    crc32fast::hash(len_and_payload_crc)
}

/// When the log is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// After every record, before any reply that depends on it.
    Always,
    /// Once per batch of records handled together (group commit), before the
    /// replies of that batch.
    Batch,
    /// Never: survives a process crash (the OS holds the data), not a machine crash.
    Off,
}

impl FromStr for SyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(SyncPolicy::Always),
            "batch" => Ok(SyncPolicy::Batch),
            "off" => Ok(SyncPolicy::Off),
            _ => Err(format!(
                "unknown sync policy '{s}': use always, batch or off"
            )),
        }
    }
}

/// Errors of the durable log.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// The file could not be opened, read or written.
    #[error("durable log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A record in the middle of the file is damaged.
    #[error("durable log {path} is corrupt at byte offset {offset}: {why}; move the file away to start this replica empty")]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// The snapshot file (the base the log replays on) is damaged. It is
    /// written whole and renamed into place, so this is never a torn tail.
    #[error("snapshot file {path} is corrupt at byte offset {offset}: {why}; the log next to it cannot be replayed without it: move the whole data folder away to start this replica empty")]
    CorruptSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// Where the damage was found.
        offset: u64,
        /// What is wrong.
        why: String,
    },
}

/// What replay found.
#[derive(Debug, Default)]
pub struct Replay {
    /// The intact records, in order: the snapshot file's base record first
    /// (if the log was ever compacted), then the log's.
    pub records: Vec<Bytes>,
    /// Whether `records` starts with the base record of a snapshot file.
    pub from_snapshot: bool,
    /// Bytes cut from a torn tail (0 when the file ended cleanly).
    pub truncated_bytes: u64,
}

/// An open log, positioned at its end.
#[derive(Debug)]
pub struct DurableLog {
    file: File,
    path: PathBuf,
    policy: SyncPolicy,
    pending: BytesMut,
    /// Records go to the `.next` file ([`DurableLog::begin_compaction`]).
    compacting: bool,
}

/// Name of the file that records which replica a data folder belongs to.
pub const IDENTITY_FILE: &str = "identity";

/// The replica id recorded in `dir`, if any. A restarted replica must register
/// under the id its log was written by: the master hands out ids in
/// registration order, and another id would replay another replica's votes.
pub fn read_identity(dir: &Path) -> Result<Option<crate::ReplicaId>, DurableError> {
    let path = dir.join(IDENTITY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let id = s
                .lines()
                .find_map(|l| l.strip_prefix("replica="))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| DurableError::Corrupt {
                    path: path.clone(),
                    offset: 0,
                    why: "no 'replica=<id>' line".into(),
                })?;
            Ok(Some(id))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DurableError::Io { path, source }),
    }
}

/// Records in `dir` that it belongs to replica `id` (written and synced once).
pub fn write_identity(dir: &Path, id: crate::ReplicaId) -> Result<(), DurableError> {
    let path = dir.join(IDENTITY_FILE);
    let io = |source| DurableError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
    let mut f = File::create(&tmp).map_err(io)?;
    f.write_all(format!("replica={id}\n").as_bytes())
        .map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    sync_dir(dir).map_err(io)
}

/// Makes a file's creation or renaming in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// First bytes of a snapshot file (then one framed record).
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"SMRSNAP1";

/// The snapshot file of the log at `log`: the same name with the extension
/// `snap` (`paxos-replica-0.log` has `paxos-replica-0.snap`).
pub fn snapshot_path(log: &Path) -> PathBuf {
    log.with_extension("snap")
}

/// The file records go to while a compaction is under way (see
/// [`DurableLog::begin_compaction`]): the log's name with `.next` added.
pub fn next_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    log.with_file_name(name)
}

/// Fsyncs the folder holding `path` (a file created or renamed in it).
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// The temporary file `path` is written to before it is renamed into place.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `parts` to `path` atomically: a temporary file, fsynced, renamed
/// over `path`, then the folder fsynced.
fn write_atomically(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    let mut f = File::create(&tmp)?;
    for p in parts {
        f.write_all(p)?;
    }
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_parent(path)
}

/// Reads the snapshot file at `path`: its one base record, or `None` if there
/// is no such file. Any damage is an error naming the file and offset.
pub fn read_snapshot(path: &Path) -> Result<Option<Bytes>, DurableError> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DurableError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let bad = |offset: usize, why: &str| DurableError::CorruptSnapshot {
        path: path.to_path_buf(),
        offset: offset as u64,
        why: why.into(),
    };
    let m = SNAPSHOT_MAGIC.len();
    if data.len() < m || &data[..m] != SNAPSHOT_MAGIC {
        return Err(bad(0, "not a snapshot file (bad magic)"));
    }
    let rest = &data[m..];
    if rest.len() < RECORD_HEADER_LEN {
        return Err(bad(m, "cut inside the record header"));
    }
    let (header, body) = rest.split_at(RECORD_HEADER_LEN);
    if header_crc(&header[0..8]) != LittleEndian::read_u32(&header[8..12]) {
        return Err(bad(m, "record header checksum mismatch"));
    }
    let len = LittleEndian::read_u32(&header[0..4]) as usize;
    if body.len() < len {
        return Err(bad(m, "cut inside the record payload"));
    }
    if body.len() > len {
        return Err(bad(m + RECORD_HEADER_LEN + len, "bytes after the record"));
    }
    if crc32fast::hash(body) != LittleEndian::read_u32(&header[4..8]) {
        return Err(bad(m, "record payload checksum mismatch"));
    }
    Ok(Some(Bytes::copy_from_slice(body)))
}

/// Writes `base` (one record framed with [`frame_record`]) as the snapshot
/// file of the log at `log`, atomically: the first half of a compaction,
/// safe at any time, since a log replays after a newer base by skipping
/// what the base covers (see the [module documentation](self)). It touches
/// only the snapshot file, so it may run on a thread of its own while the
/// log goes on taking records.
pub fn write_snapshot(log: &Path, base: &[u8]) -> Result<(), DurableError> {
    let snap = snapshot_path(log);
    write_atomically(&snap, &[SNAPSHOT_MAGIC, base])
        .map_err(|source| DurableError::Io { path: snap, source })
}

/// Appends one framed record holding `rec` to `out` (for building batches);
/// the layout is in the [module documentation](self).
pub fn frame_record<R: Marshal + ?Sized>(rec: &R, out: &mut BytesMut) {
    frame_payload(out, |b| rec.marshal(b));
}

/// Appends one framed record whose payload `write` appends.
pub fn frame_payload(out: &mut BytesMut, write: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_bytes(0, RECORD_HEADER_LEN);
    write(out);
    let len = out.len() - start - RECORD_HEADER_LEN;
    let crc = crc32fast::hash(&out[start + RECORD_HEADER_LEN..]);
    let header = &mut out[start..start + RECORD_HEADER_LEN];
    LittleEndian::write_u32(&mut header[0..4], len as u32);
    LittleEndian::write_u32(&mut header[4..8], crc);
    let hcrc = header_crc(&header[0..8]);
    LittleEndian::write_u32(&mut header[8..12], hcrc);
}

impl DurableLog {
    /// Opens (creating if needed) the log at `path` and replays it.
    pub fn open(path: &Path, policy: SyncPolicy) -> Result<(DurableLog, Replay), DurableError> {
        let io = |source| DurableError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        if !existed {
            if let Some(dir) = path.parent() {
                sync_dir(dir).map_err(io)?;
            }
        }
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io)?;
        let (mut replay, mut good_len) = scan(&data, path)?;
        // A compaction was under way: its records follow the log's. The
        // two become one log again before anything is appended.
        let next = next_path(path);
        if next.exists() {
            let nio = |source| DurableError::Io {
                path: next.clone(),
                source,
            };
            let more = std::fs::read(&next).map_err(nio)?;
            let (tail, tail_len) = scan(&more, &next)?;
            data.truncate(good_len as usize);
            data.extend_from_slice(&more[..tail_len as usize]);
            write_atomically(path, &[&data]).map_err(io)?;
            std::fs::remove_file(&next).map_err(nio)?;
            sync_parent(path).map_err(io)?;
            replay.records.extend(tail.records);
            replay.truncated_bytes += tail.truncated_bytes;
            good_len = data.len() as u64;
            file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(path)
                .map_err(io)?;
        }
        if let Some(base) = read_snapshot(&snapshot_path(path))? {
            replay.records.insert(0, base);
            replay.from_snapshot = true;
        }
        if replay.truncated_bytes > 0 {
            tracing::warn!(path = %path.display(), bytes = replay.truncated_bytes, "truncating torn tail of durable log");
            file.set_len(good_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok((
            DurableLog {
                file,
                path: path.to_path_buf(),
                policy,
                pending: BytesMut::new(),
                compacting: false,
            },
            replay,
        ))
    }

    /// The configured policy.
    pub fn policy(&self) -> SyncPolicy {
        self.policy
    }

    /// Buffers one record; it reaches the file at the next [`DurableLog::commit`].
    pub fn append<R: Marshal + ?Sized>(&mut self, rec: &R) {
        frame_record(rec, &mut self.pending);
    }

    /// Buffers records already framed with [`frame_record`].
    pub fn append_framed(&mut self, framed: &[u8]) {
        self.pending.extend_from_slice(framed);
    }

    /// Writes everything buffered and syncs according to the policy. Call before
    /// sending any reply that depends on the records.
    pub fn commit(&mut self) -> Result<(), DurableError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let res = match self.policy {
            SyncPolicy::Always => {
                // Each record is written and synced on its own, in order.
                let mut off = 0;
                let mut res = Ok(());
                while off + RECORD_HEADER_LEN <= pending.len() && res.is_ok() {
                    // Framed by us just now, so the length is trusted; `min`
                    // keeps a bad caller-framed batch from panicking here.
                    let len = LittleEndian::read_u32(&pending[off..off + 4]) as usize;
                    let end = (off + RECORD_HEADER_LEN + len).min(pending.len());
                    res = self.write(&pending[off..end], true);
                    off = end;
                }
                res
            }
            SyncPolicy::Batch => self.write(&pending, true),
            SyncPolicy::Off => self.write(&pending, false),
        };
        self.pending = pending;
        self.pending.clear();
        res
    }

    /// Compacts the log in one call, the three steps [`crate::disk::Disk`]
    /// spreads over time: `tail` (framed records still needed after the
    /// base) starts the new file ([`DurableLog::begin_compaction`]), `base`
    /// (one record framed with [`frame_record`], standing for everything
    /// logged so far) becomes the snapshot file, and the new file replaces
    /// the log ([`DurableLog::finish_compaction`]). Records buffered with
    /// [`DurableLog::append`] are committed to the old log first. Every file
    /// is fsynced whatever the policy: compactions are rare, and a lost base
    /// would lose the log.
    pub fn compact(&mut self, base: &[u8], tail: &[u8]) -> Result<(), DurableError> {
        self.begin_compaction(tail)?;
        write_snapshot(&self.path, base)?;
        self.finish_compaction()?;
        tracing::debug!(
            path = %self.path.display(),
            snapshot_bytes = base.len(),
            log_bytes = tail.len(),
            "compacted the durable log"
        );
        Ok(())
    }

    /// Starts a compaction whose snapshot file is written elsewhere (on a
    /// thread of its own, [`write_snapshot`]): commits what is buffered to
    /// the log, then writes `tail` (framed records still needed after the
    /// base) to a new file ([`next_path`]), fsynced, where every record
    /// goes from now on. The log itself is left as it is, so a crash before
    /// the snapshot file is in place replays the log, then the new file:
    /// the tail restates what the log already holds. On open the two are
    /// joined again.
    pub fn begin_compaction(&mut self, tail: &[u8]) -> Result<(), DurableError> {
        self.commit()?;
        let next = next_path(&self.path);
        let io = |source| DurableError::Io {
            path: next.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(&next)
            .map_err(io)?;
        f.set_len(0).map_err(io)?;
        f.write_all(tail).map_err(io)?;
        f.sync_all().map_err(io)?;
        sync_parent(&next).map_err(io)?;
        self.file = f;
        self.compacting = true;
        Ok(())
    }

    /// Ends a compaction once its snapshot file is in place: the new file
    /// becomes the log (a rename, whatever its size), and records go on to
    /// it.
    pub fn finish_compaction(&mut self) -> Result<(), DurableError> {
        if !self.compacting {
            return Ok(());
        }
        self.commit()?;
        let io = |source| DurableError::Io {
            path: self.path.clone(),
            source,
        };
        std::fs::rename(next_path(&self.path), &self.path).map_err(io)?;
        sync_parent(&self.path).map_err(io)?;
        self.compacting = false;
        Ok(())
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, data: &[u8], sync: bool) -> Result<(), DurableError> {
        // During a compaction records go to the new file: name that one.
        let io = |source| DurableError::Io {
            path: if self.compacting {
                next_path(&self.path)
            } else {
                self.path.clone()
            },
            source,
        };
        self.file.write_all(data).map_err(io)?;
        if sync {
            self.file.sync_data().map_err(io)?;
        }
        Ok(())
    }
}

/// The records of a buffer of framed records (as [`frame_record`] writes
/// them), by the same rules as replay: a torn tail is ignored, damage is an
/// error. The simulator keeps a replica's "disk" this way.
pub fn parse_records(data: &[u8]) -> Result<Vec<Bytes>, DurableError> {
    let (replay, _) = scan(data, Path::new("<memory>"))?;
    Ok(replay.records)
}

/// Whether every byte of `data` is zero (what a file system shows in a region
/// it extended but did not write before a crash).
fn all_zero(data: &[u8]) -> bool {
    data.iter().all(|b| *b == 0)
}

/// Replays `data` by the rules of the module documentation; returns what was
/// found and the length of the intact prefix.
fn scan(data: &[u8], path: &Path) -> Result<(Replay, u64), DurableError> {
    let mut off = 0usize;
    let mut records = Vec::new();
    let corrupt = |offset: usize, why: String| DurableError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        why,
    };
    while off < data.len() {
        let rest = &data[off..];
        if rest.len() < RECORD_HEADER_LEN {
            break; // cut inside the last header
        }
        let (header, body) = rest.split_at(RECORD_HEADER_LEN);
        if header_crc(&header[0..8]) != LittleEndian::read_u32(&header[8..12]) {
            if all_zero(body) {
                break; // a header cut short, then zero fill
            }
            // The length cannot be trusted, so neither can the claim that this
            // is the end: bytes follow, so the header was written whole.
            return Err(corrupt(off, "record header checksum mismatch".into()));
        }
        let len = LittleEndian::read_u32(&header[0..4]) as usize;
        if len > MAX_RECORD {
            return Err(corrupt(
                off,
                format!("record length {len} exceeds the maximum {MAX_RECORD}"),
            ));
        }
        if body.len() < len {
            break; // the length checks out: cut inside the last payload
        }
        let (payload, after) = body.split_at(len);
        if crc32fast::hash(payload) != LittleEndian::read_u32(&header[4..8]) {
            if all_zero(after) {
                break; // the last payload did not fully land
            }
            return Err(corrupt(off, "record payload checksum mismatch".into()));
        }
        records.push(Bytes::copy_from_slice(payload));
        off += RECORD_HEADER_LEN + len;
    }
    Ok((
        Replay {
            records,
            from_snapshot: false,
            truncated_bytes: (data.len() - off) as u64,
        },
        off as u64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_three(path: &Path) {
        let (mut log, r) = DurableLog::open(path, SyncPolicy::Batch).unwrap();
        assert!(r.records.is_empty());
        for v in [1u64, 2, 3] {
            log.append(&v);
        }
        log.commit().unwrap();
    }

    #[test]
    fn replays_what_was_written() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        write_three(&p);
        let (_, r) = DurableLog::open(&p, SyncPolicy::Always).unwrap();
        assert_eq!(r.records.len(), 3);
        assert_eq!(r.records[2][0], 3);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        write_three(&p);
        let full = std::fs::metadata(&p).unwrap().len();
        for cut in 1..16 {
            let f = OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len(full - cut.min(15)).unwrap();
            let (mut log, r) = DurableLog::open(&p, SyncPolicy::Off).unwrap();
            assert_eq!(r.records.len(), 2, "cut {cut}");
            assert!(r.truncated_bytes > 0);
            log.append(&3u64);
            log.commit().unwrap();
            assert_eq!(std::fs::metadata(&p).unwrap().len(), full);
        }
    }

    #[test]
    fn corrupt_middle_record_names_file_and_offset() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        write_three(&p);
        let rec = record_len(&p);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[rec + RECORD_HEADER_LEN] ^= 0xff; // payload of the second record
        std::fs::write(&p, &bytes).unwrap();
        let err = DurableLog::open(&p, SyncPolicy::Off)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("offset {rec}")), "{err}");
        assert!(err.contains("payload checksum"), "{err}");
        assert!(err.contains(&p.display().to_string()), "{err}");
    }

    #[test]
    fn zero_filled_tail_is_truncated_and_identity_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        write_three(&p);
        let mut bytes = std::fs::read(&p).unwrap();
        let good = bytes.len();
        bytes.extend_from_slice(&[0u8; 4096]);
        std::fs::write(&p, &bytes).unwrap();
        let (_, r) = DurableLog::open(&p, SyncPolicy::Off).unwrap();
        assert_eq!(r.records.len(), 3);
        assert_eq!(r.truncated_bytes, 4096);
        assert_eq!(std::fs::metadata(&p).unwrap().len() as usize, good);
        assert_eq!(read_identity(d.path()).unwrap(), None);
        write_identity(d.path(), 4).unwrap();
        assert_eq!(read_identity(d.path()).unwrap(), Some(4));
    }

    /// Bytes of one of the equal-sized records `write_three` writes.
    fn record_len(path: &Path) -> usize {
        std::fs::read(path).unwrap().len() / 3
    }

    #[test]
    fn damaged_middle_length_is_corrupt_and_leaves_the_file_alone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        write_three(&p);
        let rec = record_len(&p);
        let mut bytes = std::fs::read(&p).unwrap();
        // Past the end of the file but under MAX_RECORD: it looks like a torn tail
        // to a reader that trusts the length.
        let claimed = (bytes.len() + 1000) as u32;
        assert!((claimed as usize) < MAX_RECORD);
        bytes[rec..rec + 4].copy_from_slice(&claimed.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        let err = DurableLog::open(&p, SyncPolicy::Off).unwrap_err();
        match &err {
            DurableError::Corrupt { path, offset, .. } => {
                assert_eq!(path, &p);
                assert_eq!(*offset, rec as u64);
            }
            other => panic!("expected Corrupt, got {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&format!("offset {rec}")), "{msg}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "the file was modified");
    }

    #[test]
    fn torn_tail_cut_in_header_or_payload_is_truncated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        write_three(&p);
        let rec = record_len(&p);
        let full = std::fs::read(&p).unwrap();
        // Every cut inside the last record: its payload (small cuts), then its header.
        for cut in 1..rec {
            std::fs::write(&p, &full[..full.len() - cut]).unwrap();
            let (_, r) = DurableLog::open(&p, SyncPolicy::Off).unwrap();
            assert_eq!(r.records.len(), 2, "cut {cut}");
            assert_eq!(r.truncated_bytes as usize, rec - cut, "cut {cut}");
            assert_eq!(std::fs::read(&p).unwrap(), full[..2 * rec], "cut {cut}");
        }
    }

    #[test]
    fn torn_tail_padded_with_zeros_is_truncated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        write_three(&p);
        let rec = record_len(&p);
        let full = std::fs::read(&p).unwrap();
        // A crash can leave the file longer than what landed, the rest reading as
        // zeros: the last record written up to `kept` bytes, then a page of zeros.
        for kept in 1..rec {
            let mut bytes = full[..2 * rec + kept].to_vec();
            bytes.extend_from_slice(&[0u8; 4096]);
            std::fs::write(&p, &bytes).unwrap();
            // The payload ends in zeros, so some cuts leave the record whole.
            let whole = bytes[2 * rec..3 * rec] == full[2 * rec..];
            let n = if whole { 3 } else { 2 };
            let (_, r) = DurableLog::open(&p, SyncPolicy::Off).unwrap();
            assert_eq!(r.records.len(), n, "kept {kept}");
            assert_eq!(std::fs::read(&p).unwrap(), full[..n * rec], "kept {kept}");
        }
    }

    #[test]
    fn damage_anywhere_in_a_middle_header_is_corrupt() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        write_three(&p);
        let rec = record_len(&p);
        let full = std::fs::read(&p).unwrap();
        // Any header byte of the second record (the first 8 bytes hold length
        // and checksum in every layout this log has had).
        for i in 0..8 {
            let mut bytes = full.clone();
            bytes[rec + i] ^= 0x01;
            std::fs::write(&p, &bytes).unwrap();
            match DurableLog::open(&p, SyncPolicy::Off) {
                Err(DurableError::Corrupt { offset, .. }) => {
                    assert_eq!(offset, rec as u64, "byte {i}")
                }
                Err(e) => panic!("byte {i}: expected Corrupt, got {e}"),
                Ok((_, r)) => panic!("byte {i}: opened with {} records", r.records.len()),
            }
            assert_eq!(std::fs::read(&p).unwrap(), bytes, "byte {i}");
        }
    }

    #[test]
    fn parse_records_agrees_with_replay() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        write_three(&p);
        let rec = record_len(&p);
        let full = std::fs::read(&p).unwrap();
        let recs = parse_records(&full).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(parse_records(&full[..full.len() - 1]).unwrap().len(), 2);
        let mut bad = full.clone();
        bad[rec..rec + 4].copy_from_slice(&((full.len() + 1000) as u32).to_le_bytes());
        assert!(matches!(
            parse_records(&bad),
            Err(DurableError::Corrupt { offset, .. }) if offset == rec as u64
        ));
    }

    /// A crash during a compaction leaves the log and the file begun for
    /// it (cut anywhere): open replays both, in order, and joins them.
    #[test]
    fn a_compaction_cut_short_is_joined_on_open() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("r.log");
        let (mut log, _) = DurableLog::open(&path, SyncPolicy::Always).unwrap();
        log.append(&Bytes::from_static(b"one"));
        log.begin_compaction(&{
            let mut t = BytesMut::new();
            frame_record(&Bytes::from_static(b"tail"), &mut t);
            t
        })
        .unwrap();
        log.append(&Bytes::from_static(b"two"));
        log.commit().unwrap();
        drop(log);
        // A torn record at the end of the new file.
        let mut f = OpenOptions::new()
            .append(true)
            .open(next_path(&path))
            .unwrap();
        f.write_all(&[7, 0, 0]).unwrap();
        drop(f);
        let names = |r: &Replay| -> Vec<Bytes> {
            r.records
                .iter()
                .map(|b| crate::wire::Reader::new(b.clone()).bytes("x").unwrap())
                .collect()
        };
        let (mut log, r) = DurableLog::open(&path, SyncPolicy::Always).unwrap();
        assert_eq!(
            names(&r),
            ["one", "tail", "two"].map(|s| Bytes::from_static(s.as_bytes()))
        );
        assert!(!next_path(&path).exists(), "joined into the log");
        log.append(&Bytes::from_static(b"three"));
        log.commit().unwrap();
        drop(log);
        let (_, r) = DurableLog::open(&path, SyncPolicy::Always).unwrap();
        assert_eq!(
            names(&r),
            ["one", "tail", "two", "three"].map(|s| Bytes::from_static(s.as_bytes()))
        );
    }

    #[test]
    fn compaction_replaces_the_log_and_replays_the_base_first() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.log");
        write_three(&p);
        let (mut log, _) = DurableLog::open(&p, SyncPolicy::Off).unwrap();
        log.append(&4u64);
        let mut base = BytesMut::new();
        frame_record(&777u64, &mut base);
        let mut tail = BytesMut::new();
        frame_record(&41u64, &mut tail);
        log.compact(&base, &tail).unwrap();
        log.append(&42u64);
        log.commit().unwrap();
        drop(log);
        assert!(!tmp_path(&p).exists() && !tmp_path(&snapshot_path(&p)).exists());
        let (_, r) = DurableLog::open(&p, SyncPolicy::Off).unwrap();
        assert!(r.from_snapshot);
        let got: Vec<u64> = r
            .records
            .iter()
            .map(|b| crate::wire::decode_body::<u64>(b.clone()).unwrap())
            .collect();
        assert_eq!(got, vec![777, 41, 42]);
        assert_eq!(
            std::fs::metadata(&p).unwrap().len() as usize,
            2 * tail.len()
        );
    }

    #[test]
    fn a_damaged_snapshot_file_is_an_error_naming_it_and_the_offset() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("y.log");
        let (mut log, _) = DurableLog::open(&p, SyncPolicy::Off).unwrap();
        let mut base = BytesMut::new();
        frame_record(&vec![9u8; 100], &mut base);
        log.compact(&base, &[]).unwrap();
        drop(log);
        let sp = snapshot_path(&p);
        let good = std::fs::read(&sp).unwrap();
        // A flipped payload byte, a cut, trailing bytes, a bad magic.
        let mut flipped = good.clone();
        flipped[40] ^= 1;
        let cases: Vec<(Vec<u8>, usize, &str)> = vec![
            (flipped, 8, "payload checksum"),
            (
                good[..good.len() - 3].to_vec(),
                8,
                "cut inside the record payload",
            ),
            ([&good[..], b"zz"].concat(), good.len(), "bytes after"),
            ([b"XX", &good[2..]].concat(), 0, "magic"),
        ];
        for (bytes, offset, why) in cases {
            std::fs::write(&sp, &bytes).unwrap();
            let err = DurableLog::open(&p, SyncPolicy::Off).unwrap_err();
            assert!(
                matches!(&err, DurableError::CorruptSnapshot { offset: o, .. } if *o == offset as u64),
                "{why}: {err}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&sp.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("offset {offset}")), "{msg}");
            assert!(msg.contains(why), "{msg}");
            assert_eq!(std::fs::read(&sp).unwrap(), bytes, "left alone");
        }
    }

    #[test]
    fn torn_last_record_with_bad_checksum_is_truncated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        write_three(&p);
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(&p, &bytes).unwrap();
        let (_, r) = DurableLog::open(&p, SyncPolicy::Off).unwrap();
        assert_eq!(r.records.len(), 2);
    }
}
