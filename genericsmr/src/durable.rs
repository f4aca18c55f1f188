//! An append-only, checksummed record log with an fsync policy and replay.
//!
//! Record layout: `u32 LE payload length | u32 LE CRC-32 of the payload | payload`.
//! On open the whole file is replayed: a record cut short at the end of the file
//! (a torn write from a crash) is truncated away; a record whose checksum fails
//! anywhere else is corruption and opening fails, naming the file and offset.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use byteorder::{ByteOrder, LittleEndian};
use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::Marshal;

/// Largest record accepted on replay; anything claiming more is damage.
pub const MAX_RECORD: usize = 256 << 20;

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
}

/// What replay found.
#[derive(Debug, Default)]
pub struct Replay {
    /// The intact records, in order.
    pub records: Vec<Bytes>,
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

/// Appends one framed record holding `rec` to `out` (for building batches).
pub fn frame_record<R: Marshal + ?Sized>(rec: &R, out: &mut BytesMut) {
    let start = out.len();
    out.put_u64_le(0);
    rec.marshal(out);
    let len = out.len() - start - 8;
    let crc = crc32fast::hash(&out[start + 8..]);
    LittleEndian::write_u32(&mut out[start..start + 4], len as u32);
    LittleEndian::write_u32(&mut out[start + 4..start + 8], crc);
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
        let (replay, good_len) = scan(&data, path)?;
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
                while off + 8 <= pending.len() && res.is_ok() {
                    let len = LittleEndian::read_u32(&pending[off..off + 4]) as usize;
                    res = self.write(&pending[off..off + 8 + len], true);
                    off += 8 + len;
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

    fn write(&mut self, data: &[u8], sync: bool) -> Result<(), DurableError> {
        let io = |source| DurableError::Io {
            path: self.path.clone(),
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
/// them); the simulator keeps a replica's "disk" this way.
pub fn parse_records(data: &[u8]) -> Result<Vec<Bytes>, DurableError> {
    let (replay, _) = scan(data, Path::new("<memory>"))?;
    Ok(replay.records)
}

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
        if rest.len() < 8 {
            break; // torn header
        }
        let len = LittleEndian::read_u32(&rest[0..4]) as usize;
        let crc = LittleEndian::read_u32(&rest[4..8]);
        if len == 0 {
            // We never write empty records. File systems can leave a zero-filled
            // tail after a crash: that is a torn tail; anything else is damage.
            if rest.iter().all(|b| *b == 0) {
                break;
            }
            return Err(corrupt(off, "empty record followed by data".into()));
        }
        if len > MAX_RECORD {
            // We never write such a record, and tearing cuts bytes but never changes them.
            return Err(corrupt(
                off,
                format!("record length {len} exceeds the maximum {MAX_RECORD}"),
            ));
        }
        if rest.len() < 8 + len {
            break; // torn body
        }
        let payload = &rest[8..8 + len];
        if crc32fast::hash(payload) != crc {
            if off + 8 + len == data.len() {
                break; // the last record was torn mid-write
            }
            return Err(corrupt(off, "checksum mismatch".into()));
        }
        records.push(Bytes::copy_from_slice(payload));
        off += 8 + len;
    }
    Ok((
        Replay {
            records,
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
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[16 + 8] ^= 0xff; // payload of the second record (each is 8 + 8 bytes)
        std::fs::write(&p, &bytes).unwrap();
        let err = DurableLog::open(&p, SyncPolicy::Off)
            .unwrap_err()
            .to_string();
        assert!(err.contains("offset 16"), "{err}");
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
