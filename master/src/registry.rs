//! The master's state: who registered, who is alive, who leads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use genericsmr::messages::{
    BeLeader, ClusterInfo, Ping, Pong, Register, RegisterReply, ReplicaAddr,
};
use genericsmr::transport::ConnOutbox;
use genericsmr::ReplicaId;
use tracing::{info, warn};

/// Timing of liveness checks.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Group size.
    pub n: usize,
    /// A replica whose last pong is older than this is considered down.
    pub liveness_timeout: Duration,
    /// How long a replica asked to lead has to report leadership before another is asked.
    pub election_grace: Duration,
}

struct Member {
    addr: ReplicaAddr,
    link: Option<(u64, Arc<ConnOutbox>)>,
    last_pong: Option<(Instant, Pong)>,
}

/// Registered replicas and the leader.
pub struct Registry {
    cfg: RegistryConfig,
    protocol: Option<String>,
    members: Vec<Option<Member>>,
    /// Registrations waiting for the group to complete: (link id, id, rejoin).
    waiting: Vec<(u64, ReplicaId, bool)>,
    leader: Option<ReplicaId>,
    asked: Option<(ReplicaId, Instant)>,
    /// Since when no live replica has claimed leadership.
    unclaimed_since: Option<Instant>,
    nonce: u64,
}

impl Registry {
    /// An empty registry.
    pub fn new(cfg: RegistryConfig) -> Self {
        let n = cfg.n;
        Registry {
            cfg,
            protocol: None,
            members: (0..n).map(|_| None).collect(),
            waiting: Vec::new(),
            leader: None,
            asked: None,
            unclaimed_since: None,
            nonce: 0,
        }
    }

    /// Whether every replica has registered.
    pub fn complete(&self) -> bool {
        self.members.iter().all(Option::is_some)
    }

    /// The current leader.
    pub fn leader(&self) -> Option<ReplicaId> {
        self.leader
    }

    fn refuse(error: String) -> RegisterReply {
        RegisterReply {
            ok: false,
            error,
            id: 0,
            rejoin: false,
            replicas: Vec::new(),
            leader: None,
        }
    }

    /// Handles a registration arriving on link `link`. Returns the replies to send
    /// now, as (link id, outbox, reply): this one (if the group is complete or it
    /// is refused) and every registration that was waiting for completion.
    pub fn register(
        &mut self,
        link: u64,
        out: Arc<ConnOutbox>,
        req: Register,
    ) -> Vec<(Arc<ConnOutbox>, RegisterReply)> {
        if let Some(p) = &self.protocol {
            if *p != req.protocol {
                let e = format!(
                    "this group runs '{p}', not '{}'; start the server with --protocol {p}",
                    req.protocol
                );
                return vec![(out, Self::refuse(e))];
            }
        }
        let same_addr = |m: &Option<Member>| {
            m.as_ref()
                .is_some_and(|m| m.addr.host == req.host && m.addr.peer_port == req.peer_port)
        };
        let id = match req.id {
            Some(i) if i as usize >= self.cfg.n => {
                return vec![(
                    out,
                    Self::refuse(format!(
                        "id {i} is out of range for a group of {}",
                        self.cfg.n
                    )),
                )]
            }
            Some(i) => i,
            None => match self.members.iter().position(same_addr) {
                Some(i) => i as ReplicaId,
                None => match self.members.iter().position(Option::is_none) {
                    Some(i) => i as ReplicaId,
                    None => {
                        let e = format!(
                            "the group of {} is complete and no replica listened on {}:{}; restart a replica with its old --id or address",
                            self.cfg.n, req.host, req.peer_port
                        );
                        return vec![(out, Self::refuse(e))];
                    }
                },
            },
        };
        if let Some(m) = &self.members[id as usize] {
            // Two live processes must never share an id (ballots and quorums
            // count on it). The same address means the old process is gone: the
            // new one could not have bound its port otherwise.
            let same_addr = m.addr.host == req.host && m.addr.peer_port == req.peer_port;
            if m.link.is_some() && !same_addr {
                let e = format!(
                    "replica {id} is still registered and alive at {}:{}; stop it before starting another replica {id}",
                    m.addr.host, m.addr.peer_port
                );
                return vec![(out, Self::refuse(e))];
            }
        }
        let rejoin = self.members[id as usize].is_some();
        if rejoin {
            info!(id, "replica re-registered");
        } else {
            info!(id, host = %req.host, peer_port = req.peer_port, client_port = req.client_port, "replica registered");
        }
        self.protocol.get_or_insert(req.protocol.clone());
        self.members[id as usize] = Some(Member {
            addr: ReplicaAddr {
                id,
                host: req.host,
                peer_port: req.peer_port,
                client_port: req.client_port,
                alive: true,
            },
            link: Some((link, out)),
            last_pong: None,
        });
        self.waiting.retain(|(l, i, _)| *l != link && *i != id);
        self.waiting.push((link, id, rejoin));
        if !self.complete() {
            return Vec::new();
        }
        let replicas = self.addrs();
        let leader = self.leader;
        let mut replies = Vec::new();
        for (l, id, rejoin) in std::mem::take(&mut self.waiting) {
            if let Some(Member {
                link: Some((ml, o)),
                ..
            }) = &self.members[id as usize]
            {
                if *ml == l {
                    let r = RegisterReply {
                        ok: true,
                        error: String::new(),
                        id,
                        rejoin,
                        replicas: replicas.clone(),
                        leader,
                    };
                    replies.push((o.clone(), r));
                }
            }
        }
        replies
    }

    /// The link `link` closed: its replica (returned, if it had registered) is
    /// unreachable until it re-registers.
    pub fn link_closed(&mut self, link: u64) -> Option<ReplicaId> {
        self.waiting.retain(|(l, _, _)| *l != link);
        let mut gone = None;
        for m in self.members.iter_mut().flatten() {
            if m.link.as_ref().is_some_and(|(l, _)| *l == link) {
                info!(id = m.addr.id, "replica link closed");
                m.link = None;
                m.last_pong = None;
                gone = Some(m.addr.id);
            }
        }
        gone
    }

    /// The master link of `replica`, if it is connected.
    pub fn link_of(&self, replica: ReplicaId) -> Option<Arc<ConnOutbox>> {
        let m = self.members.get(replica as usize)?.as_ref()?;
        m.link.as_ref().map(|(_, o)| o.clone())
    }

    /// Records a pong received on `link`.
    pub fn pong(&mut self, link: u64, p: Pong) {
        let Some(Some(m)) = self.members.get_mut(p.replica as usize) else {
            return;
        };
        if m.link.as_ref().is_some_and(|(l, _)| *l == link) {
            m.last_pong = Some((Instant::now(), p));
        }
    }

    fn alive(&self, m: &Member, now: Instant) -> bool {
        m.link.is_some()
            && m.last_pong
                .as_ref()
                .is_some_and(|(t, _)| now.duration_since(*t) < self.cfg.liveness_timeout)
    }

    fn addrs(&self) -> Vec<ReplicaAddr> {
        let now = Instant::now();
        self.members
            .iter()
            .flatten()
            .map(|m| ReplicaAddr {
                alive: m.link.is_some() && (m.last_pong.is_none() || self.alive(m, now)),
                ..m.addr.clone()
            })
            .collect()
    }

    /// The cluster description for clients.
    pub fn cluster_info(&self, nonce: u64) -> ClusterInfo {
        ClusterInfo {
            nonce,
            n: self.cfg.n as u8,
            complete: self.complete(),
            leader: self.leader,
            replicas: self.addrs(),
        }
    }

    /// One round of the liveness loop: ping everyone, then make sure a live
    /// replica leads (asking the most up-to-date live one when none does).
    pub fn tick(&mut self) {
        if !self.complete() {
            return;
        }
        self.nonce += 1;
        let ping = Ping { nonce: self.nonce };
        for m in self.members.iter().flatten() {
            if let Some((_, o)) = &m.link {
                o.push(&ping);
            }
        }
        let now = Instant::now();
        // The live replica claiming leadership with the highest ballot leads.
        let claimed = self
            .members
            .iter()
            .flatten()
            .filter(|m| self.alive(m, now))
            .filter_map(|m| m.last_pong.as_ref().map(|(_, p)| p))
            .filter(|p| p.leader)
            .max_by_key(|p| p.ballot)
            .map(|p| p.replica);
        if let Some(c) = claimed {
            if self.leader != Some(c) {
                info!(leader = c, "leader confirmed");
                self.leader = Some(c);
            }
            self.asked = None;
            self.unclaimed_since = None;
            return;
        }
        // A live leader that stopped claiming is most likely handing over to a
        // replica running phase 1 (SetLeader): give that a moment before
        // asking anyone, or the two would fight. A dead leader is replaced now.
        let since = *self.unclaimed_since.get_or_insert(now);
        let leader_alive = self
            .leader
            .and_then(|l| self.members.get(l as usize)?.as_ref())
            .is_some_and(|m| self.alive(m, now));
        if leader_alive && now.duration_since(since) < self.cfg.election_grace {
            return;
        }
        if let Some((a, at)) = self.asked {
            let still_up = self.members[a as usize]
                .as_ref()
                .is_some_and(|m| m.link.is_some());
            if still_up && now.duration_since(at) < self.cfg.election_grace {
                return;
            }
        }
        self.elect(now);
    }

    fn elect(&mut self, now: Instant) {
        let failed = self.asked.map(|(a, _)| a);
        let best = self
            .members
            .iter()
            .flatten()
            .filter(|m| self.alive(m, now))
            .filter_map(|m| m.last_pong.as_ref().map(|(_, p)| p))
            .filter(|p| !p.recovering)
            // Prefer the most up to date; on a tie prefer not to re-ask a replica that just failed.
            .max_by_key(|p| {
                (
                    p.commit_index,
                    Some(p.replica) != failed,
                    std::cmp::Reverse(p.replica),
                )
            })
            .map(|p| p.replica);
        let Some(b) = best else {
            if self.leader.is_some() {
                warn!("no live replica can lead");
            }
            self.leader = None;
            return;
        };
        info!(candidate = b, "asking replica to take over leadership");
        self.leader = Some(b);
        self.asked = Some((b, now));
        if let Some(Some(Member {
            link: Some((_, o)), ..
        })) = self.members.get(b as usize)
        {
            o.push(&BeLeader { nonce: self.nonce });
        }
    }
}
