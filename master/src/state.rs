//! The master's durable membership file (`master --state FILE`).
//!
//! It records what a restarted master cannot learn from a single replica: the
//! shape of the deployment, the protocol, and every replica's id and
//! addresses, including replicas that are down when the master restarts. It
//! holds no protocol state and no leader: leaders are learned again from the
//! replicas' pongs. The file is small text, one line per fact:
//!
//! ```text
//! master-state 1
//! n 3
//! shards 1
//! protocol paxos
//! replica 0 127.0.0.1 7070 8070
//! ```
//!
//! It is rewritten whole on every membership change (a new replica, or a known
//! id at a new address): written to `FILE.tmp`, synced, then renamed over
//! `FILE`, so a crash leaves either the old file or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use genericsmr::messages::ReplicaAddr;
use genericsmr::ReplicaId;

/// The first line of a state file, with its format version.
const MAGIC: &str = "master-state 1";

/// Membership as recorded in the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Replicas per shard.
    pub n: usize,
    /// Number of shards.
    pub shards: usize,
    /// The protocol the replicas run, once one has registered.
    pub protocol: Option<String>,
    /// Every replica registered so far, by global id.
    pub replicas: Vec<ReplicaAddr>,
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a state file this master can read.
    #[error("{path} line {line}: {what}; fix or remove the file (the replicas' ids are then assigned anew unless they give --id)")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// The file describes another deployment than the one the master was started for.
    #[error("{path} describes {file_shards} shard(s) of {file_n} replicas, but the master was started with --shards {shards} --replicas {n}; start it with the file's shape or another --state")]
    Shape {
        /// The file.
        path: PathBuf,
        /// Replicas per shard in the file.
        file_n: usize,
        /// Shards in the file.
        file_shards: usize,
        /// Replicas per shard on the command line.
        n: usize,
        /// Shards on the command line.
        shards: usize,
    },
}

impl State {
    /// Reads the state file at `path`; `Ok(None)` if it does not exist yet.
    pub fn load(path: &Path) -> Result<Option<State>, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Self::parse(&text)
            .map(Some)
            .map_err(|(line, what)| StateError::Damaged {
                path: path.to_path_buf(),
                line,
                what,
            })
    }

    /// Checks that the state describes `shards` shards of `n` replicas.
    pub fn check_shape(&self, path: &Path, n: usize, shards: usize) -> Result<(), StateError> {
        if self.n == n && self.shards == shards {
            return Ok(());
        }
        Err(StateError::Shape {
            path: path.to_path_buf(),
            file_n: self.n,
            file_shards: self.shards,
            n,
            shards,
        })
    }

    /// Parses the file's text; an error names the line (1-based) and the problem.
    fn parse(text: &str) -> Result<State, (usize, String)> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        match lines.next() {
            Some((_, MAGIC)) => {}
            Some((l, other)) => {
                return Err((l, format!("expected '{MAGIC}', found '{other}'")));
            }
            None => return Err((1, "the file is empty".into())),
        }
        let (mut n, mut shards, mut protocol) = (None, None, None);
        let mut replicas: Vec<ReplicaAddr> = Vec::new();
        let num = |l: usize, what: &str, s: Option<&str>| -> Result<u64, (usize, String)> {
            let s = s.ok_or_else(|| (l, format!("{what} is missing")))?;
            s.parse()
                .map_err(|_| (l, format!("{what} '{s}' is not a number")))
        };
        for (l, line) in lines {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut w = line.split_whitespace();
            match w.next() {
                Some("n") => n = Some(num(l, "n", w.next())? as usize),
                Some("shards") => shards = Some(num(l, "shards", w.next())? as usize),
                Some("protocol") => {
                    protocol = Some(
                        w.next()
                            .ok_or_else(|| (l, "the protocol name is missing".to_string()))?
                            .to_string(),
                    )
                }
                Some("replica") => {
                    let id = num(l, "the replica id", w.next())?;
                    let id = ReplicaId::try_from(id)
                        .map_err(|_| (l, format!("replica id {id} is too large")))?;
                    let host = w
                        .next()
                        .ok_or_else(|| (l, "the replica host is missing".to_string()))?
                        .to_string();
                    let port = |what: &str, s: Option<&str>| -> Result<u16, (usize, String)> {
                        let p = num(l, what, s)?;
                        u16::try_from(p).map_err(|_| (l, format!("{what} {p} is not a port")))
                    };
                    let peer_port = port("the peer port", w.next())?;
                    let client_port = port("the client port", w.next())?;
                    if replicas.iter().any(|r| r.id == id) {
                        return Err((l, format!("replica {id} appears twice")));
                    }
                    replicas.push(ReplicaAddr {
                        id,
                        host,
                        peer_port,
                        client_port,
                        alive: false,
                    });
                }
                Some(other) => return Err((l, format!("unknown entry '{other}'"))),
                None => {}
            }
        }
        let n = n.ok_or((0, "the 'n' line is missing".to_string()))?;
        let shards = shards.ok_or((0, "the 'shards' line is missing".to_string()))?;
        if let Some(r) = replicas.iter().find(|r| r.id as usize >= n * shards) {
            return Err((
                0,
                format!(
                    "replica {} is out of range for {shards} shard(s) of {n}",
                    r.id
                ),
            ));
        }
        replicas.sort_by_key(|r| r.id);
        Ok(State {
            n,
            shards,
            protocol,
            replicas,
        })
    }

    /// The file's text.
    fn render(&self) -> String {
        let mut s = format!("{MAGIC}\nn {}\nshards {}\n", self.n, self.shards);
        if let Some(p) = &self.protocol {
            s += &format!("protocol {p}\n");
        }
        for r in &self.replicas {
            s += &format!(
                "replica {} {} {} {}\n",
                r.id, r.host, r.peer_port, r.client_port
            );
        }
        s
    }

    /// Writes the state to `path` atomically: a temporary file next to it,
    /// synced, then renamed over it (and the folder synced, so the rename
    /// survives a power loss).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(self.render().as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // Not every platform can open a folder to sync it; the rename is done either way.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            n: 3,
            shards: 2,
            protocol: Some(protocols::DEFAULT.into()),
            replicas: vec![
                ReplicaAddr {
                    id: 0,
                    host: "127.0.0.1".into(),
                    peer_port: 7070,
                    client_port: 8070,
                    alive: false,
                },
                ReplicaAddr {
                    id: 4,
                    host: "10.0.0.2".into(),
                    peer_port: 7074,
                    client_port: 8074,
                    alive: false,
                },
            ],
        }
    }

    #[test]
    fn a_saved_state_loads_back() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("master.state");
        assert!(State::load(&p).unwrap().is_none());
        sample().save(&p).unwrap();
        assert_eq!(State::load(&p).unwrap(), Some(sample()));
        assert!(!d.path().join("master.state.tmp").exists());
        let e = State::load(&p).unwrap().unwrap().check_shape(&p, 5, 2);
        assert!(e.unwrap_err().to_string().contains("--replicas 5"));
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("master.state");
        for (text, says) in [
            ("", "empty"),
            ("garbage\n", "expected"),
            (
                "master-state 1\nn 3\nshards 1\nreplica 0 h 70\n",
                "client port",
            ),
            (
                "master-state 1\nn 3\nshards 1\nreplica 0 h 70 99999\n",
                "not a port",
            ),
            (
                "master-state 1\nn 3\nshards 1\nreplica 7 h 70 80\n",
                "out of range",
            ),
            ("master-state 1\nn x\n", "not a number"),
            ("master-state 1\nshards 1\n", "'n' line"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = State::load(&p).unwrap_err().to_string();
            assert!(
                e.contains("master.state") && e.contains(says),
                "{text:?}: {e}"
            );
        }
    }
}
