//! The driver's disk: records made durable before anything that depends on
//! them is sent, and compactions that run on a thread of their own.
//!
//! A compaction has two halves (see [`crate::durable`]): the snapshot file,
//! as large as the state, and the new log, which holds only what the
//! snapshot does not cover. Building and writing the first inside the event
//! loop stalled a replica for hundreds of milliseconds under load, long
//! enough for the master and its peers to take it for dead. So [`Disk`]
//! hands the snapshot to a thread, writes the compaction's tail to a new
//! file and appends every later record there
//! ([`DurableLog::begin_compaction`]); once the snapshot file is in place,
//! the new file is renamed over the old log. Nothing large is written in the
//! loop, and nothing is copied. A crash at any point leaves files the
//! protocols already replay: the old snapshot, the old log, then the new
//! file (whose tail restates what the old log holds: the same votes and
//! promises again, which replay takes as it took the first ones); or the
//! new snapshot with the same two logs (records below the base are
//! skipped); or the new snapshot with the new log.

use std::fmt;

use bytes::BytesMut;
use crossbeam_channel::{bounded, Receiver, TryRecvError};

use crate::durable::{
    frame_payload, snapshot_path, write_snapshot, DurableError, DurableLog, RECORD_HEADER_LEN,
};

/// The base record of a compaction: it stands for every record before it.
pub enum Base {
    /// Already framed (with [`crate::durable::frame_record`]).
    Framed(BytesMut),
    /// Written later, off the event loop: the function appends the
    /// record's payload (of the given length), and framing is added
    /// around it.
    Later(Box<dyn FnOnce(&mut BytesMut) + Send>, usize),
}

impl fmt::Debug for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base::Framed(b) => write!(f, "Base::Framed({} bytes)", b.len()),
            Base::Later(_, len) => write!(f, "Base::Later({len} bytes)"),
        }
    }
}

impl Base {
    /// Appends the framed base record to `out`, writing it now if it was deferred.
    pub fn frame_into(self, out: &mut BytesMut) {
        match self {
            Base::Framed(b) => out.extend_from_slice(&b),
            Base::Later(write, _) => frame_payload(out, write),
        }
    }

    /// Bytes of the framed base record.
    pub fn len(&self) -> usize {
        match self {
            Base::Framed(b) => b.len(),
            Base::Later(_, len) => RECORD_HEADER_LEN + len,
        }
    }

    /// Whether the record is empty (never: it has its header).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The framed base record.
    pub fn framed(self) -> BytesMut {
        match self {
            Base::Framed(b) => b,
            later => {
                let mut out = BytesMut::new();
                later.frame_into(&mut out);
                out
            }
        }
    }
}

/// What the snapshot thread hands back: how the write went, and its buffer.
type Finished = (Result<(), DurableError>, BytesMut);

/// A compaction under way: the snapshot thread's answer, to come.
struct Running {
    done: Receiver<Finished>,
}

/// A durable log whose compactions run beside the event loop.
pub struct Disk {
    log: DurableLog,
    running: Option<Running>,
    /// The buffer a snapshot is built in, kept from one compaction to the
    /// next: a fresh one for each would map and unmap the snapshot's size
    /// every time, and the replica's memory would swing by as much.
    spare: BytesMut,
    /// Compactions finished (both halves).
    compactions: u64,
}

impl Disk {
    /// The disk of `log`.
    pub fn new(log: DurableLog) -> Self {
        Disk {
            log,
            running: None,
            spare: BytesMut::new(),
            compactions: 0,
        }
    }

    /// Whether a compaction is under way.
    pub fn compacting(&self) -> bool {
        self.running.is_some()
    }

    /// Compactions finished so far.
    pub fn compactions(&self) -> u64 {
        self.compactions
    }

    /// Makes `records` durable (by the log's policy); with a compaction
    /// `(at, base)`, `records[at..]` start the new log and `base` goes to
    /// the snapshot file. Returns once the records are durable, never waiting
    /// for a snapshot unless a second compaction comes before the first
    /// is done (a replica installing a peer's snapshot meanwhile).
    pub fn write(
        &mut self,
        records: &[u8],
        compaction: Option<(usize, Base)>,
    ) -> Result<(), DurableError> {
        self.poll(false)?;
        let Some((at, base)) = compaction else {
            if !records.is_empty() {
                self.append(records)?;
            }
            return Ok(());
        };
        if self.running.is_some() {
            self.poll(true)?;
        }
        let at = at.min(records.len());
        self.log.append_framed(&records[..at]);
        self.log.begin_compaction(&records[at..])?;
        self.start(base)
    }

    /// Waits for a compaction under way to finish (tests, and shutdown).
    pub fn settle(&mut self) -> Result<(), DurableError> {
        self.poll(true)
    }

    fn append(&mut self, records: &[u8]) -> Result<(), DurableError> {
        self.log.append_framed(records);
        self.log.commit()
    }

    /// Hands `base` to a thread that writes the snapshot file.
    fn start(&mut self, base: Base) -> Result<(), DurableError> {
        let (tx, done) = bounded(1);
        let mut buf = std::mem::take(&mut self.spare);
        // Grown to the size needed and an eighth more, once: growing it as
        // it fills would double it, and the replica's memory would step up
        // by the whole buffer each time the state outgrew it.
        let need = base.len();
        if buf.capacity() < need {
            buf = BytesMut::with_capacity(need + need / 8);
        }
        let path = self.log.path().to_path_buf();
        let snap = snapshot_path(&path);
        std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                buf.clear();
                base.frame_into(&mut buf);
                let r = write_snapshot(&path, &buf);
                let _ = tx.send((r, buf));
            })
            // A replica that cannot start a thread is out of resources: it
            // stops, as for any disk error (the old log still holds everything).
            .map_err(|source| DurableError::Io { path: snap, source })?;
        self.running = Some(Running { done });
        Ok(())
    }

    /// Finishes a compaction whose snapshot is written (waiting for it if
    /// `wait`): the new file becomes the log.
    fn poll(&mut self, wait: bool) -> Result<(), DurableError> {
        let Some(r) = &self.running else {
            return Ok(());
        };
        let finished = if wait {
            r.done.recv().map_err(|_| TryRecvError::Disconnected)
        } else {
            r.done.try_recv()
        };
        let (result, buf) = match finished {
            Ok(f) => f,
            Err(TryRecvError::Empty) => return Ok(()),
            Err(TryRecvError::Disconnected) => {
                self.running = None;
                return Err(DurableError::Io {
                    path: self.log.path().to_path_buf(),
                    source: std::io::Error::other("the snapshot thread stopped before it was done"),
                });
            }
        };
        self.running = None;
        self.spare = buf;
        result?;
        self.log.finish_compaction()?;
        self.compactions += 1;
        tracing::debug!(
            path = %self.log.path().display(),
            snapshot_bytes = self.spare.len(),
            "compacted the durable log"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::{frame_record, SyncPolicy};
    use bytes::Bytes;
    use std::time::Duration;

    /// Framed records holding `names`.
    fn records(names: &[&str]) -> BytesMut {
        let mut b = BytesMut::new();
        for n in names {
            frame_record(&Bytes::copy_from_slice(n.as_bytes()), &mut b);
        }
        b
    }

    /// What a log at `path` replays, as the names the records hold, opened
    /// from a copy of its folder (opening joins a compaction's files, and
    /// the original may still be in use): what a crash now would find.
    fn replay(path: &std::path::Path) -> (bool, Vec<String>) {
        let copy = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(path.parent().unwrap()).unwrap() {
            let e = e.unwrap();
            if e.path().is_file() {
                std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
            }
        }
        let (_, r) = DurableLog::open(
            &copy.path().join(path.file_name().unwrap()),
            SyncPolicy::Off,
        )
        .unwrap();
        let names = r
            .records
            .iter()
            .map(|b| {
                let mut rd = crate::wire::Reader::new(b.clone());
                let inner = rd.bytes("name").unwrap();
                String::from_utf8_lossy(&inner).into_owned()
            })
            .collect();
        (r.from_snapshot, names)
    }

    /// A base written later, which waits for `go` before it writes `name`.
    fn held_base(name: &'static str) -> (Base, crossbeam_channel::Sender<()>) {
        let (go, wait) = bounded::<()>(1);
        let base = Base::Later(
            Box::new(move |out| {
                let _ = wait.recv_timeout(Duration::from_secs(20));
                Bytes::from_static(name.as_bytes()).marshal(out);
            }),
            4 + name.len(),
        );
        (base, go)
    }

    use crate::wire::Marshal;

    /// The defect this module mends: a compaction wrote its snapshot inside
    /// the event loop, so nothing was made durable (or sent) until it was
    /// done. Here the snapshot cannot finish until records committed after
    /// it are: writing it in the loop, as before, would wait for ever.
    #[test]
    fn records_are_committed_while_the_snapshot_is_written() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("r.log");
        let (log, _) = DurableLog::open(&path, SyncPolicy::Batch).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let at_worker = path.clone();
        let worker = std::thread::spawn(move || {
            let path = at_worker;
            let mut disk = Disk::new(log);
            disk.write(&records(&["a", "b"]), None).unwrap();
            let (base, go) = held_base("snap");
            let rec = records(&["c", "tail"]);
            // "c" is before the compaction point, "tail" after it.
            let at = records(&["c"]).len();
            disk.write(&rec, Some((at, base))).unwrap();
            assert!(disk.compacting());
            disk.write(&records(&["d"]), None).unwrap();
            tx.send(()).unwrap();
            // Meanwhile, a crash finds the whole old log and no snapshot.
            assert_eq!(
                replay(&path),
                (
                    false,
                    ["a", "b", "c", "tail", "d"].map(String::from).to_vec()
                )
            );
            go.send(()).unwrap();
            disk.settle().unwrap();
            assert!(!disk.compacting());
            disk.write(&records(&["e"]), None).unwrap();
            disk.compactions()
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("records waited for the snapshot to be written");
        assert_eq!(worker.join().unwrap(), 1);
        assert_eq!(
            replay(&path),
            (true, ["snap", "tail", "d", "e"].map(String::from).to_vec()),
            "the snapshot, then the tail and everything committed since"
        );
    }

    #[test]
    fn a_second_compaction_waits_for_the_first() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("r.log");
        let (log, _) = DurableLog::open(&path, SyncPolicy::Off).unwrap();
        let mut disk = Disk::new(log);
        disk.write(&records(&["a"]), None).unwrap();
        disk.write(
            &records(&["t1"]),
            Some((0, Base::Framed(records(&["snap1"])))),
        )
        .unwrap();
        disk.write(&records(&["b"]), None).unwrap();
        disk.write(
            &records(&["c", "t2"]),
            Some((records(&["c"]).len(), Base::Framed(records(&["snap2"])))),
        )
        .unwrap();
        disk.write(&records(&["e"]), None).unwrap();
        disk.settle().unwrap();
        assert_eq!(disk.compactions(), 2);
        assert_eq!(
            replay(&path),
            (true, ["snap2", "t2", "e"].map(String::from).to_vec())
        );
    }

    #[test]
    fn a_snapshot_that_cannot_be_written_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("r.log");
        let (log, _) = DurableLog::open(&path, SyncPolicy::Off).unwrap();
        let mut disk = Disk::new(log);
        // A folder where the snapshot file's temporary file must go.
        std::fs::create_dir(d.path().join("r.snap.tmp")).unwrap();
        disk.write(&records(&["t"]), Some((0, Base::Framed(records(&["s"])))))
            .unwrap();
        let e = disk.settle().unwrap_err().to_string();
        assert!(e.contains("r.snap"), "{e}");
        // The old log still holds everything.
        assert_eq!(replay(&path), (false, vec!["t".to_string()]));
    }
}
