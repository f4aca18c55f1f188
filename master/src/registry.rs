//! The master's state: who registered, who is alive, who leads each shard.
//!
//! A deployment has `shards` shards of `n` replicas each; replica `g` (its
//! global id) belongs to shard `g / n`. Leadership is tracked per shard: the
//! same rules (the live replica claiming leadership with the highest ballot
//! leads; a grace period for handovers; otherwise the most up-to-date live
//! replica is asked to lead) run independently over each shard's members.
//! Groups whose replicas elect their own leaders (Multi-Paxos and MDLin, unless
//! `replicas_elect` is off) get only the first of these rules, plus "the
//! owner of the highest promised ballot leads": the master reports leaders
//! and picks a fresh group's first one, nothing more.

use std::sync::Arc;
use std::time::{Duration, Instant};

use genericsmr::messages::{
    BeLeader, ClusterInfo, Ping, Pong, Register, RegisterReply, ReplicaAddr,
};
use genericsmr::transport::ConnOutbox;
use genericsmr::ReplicaId;
use tracing::{info, warn};

/// Shape of the deployment and timing of liveness checks.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Replicas per shard.
    pub n: usize,
    /// Number of shards (1: an unsharded group).
    pub shards: usize,
    /// A replica whose last pong is older than this is considered down.
    pub liveness_timeout: Duration,
    /// How long a replica asked to lead has to report leadership before another is asked.
    pub election_grace: Duration,
    /// Leave failover to replicas that elect their own leaders (Multi-Paxos
    /// and MDLin): the master then never asks a replica to lead over a leader
    /// the others still follow. Off, the master drives every failover.
    pub replicas_elect: bool,
}

/// The replica (local id in its shard) that owns a Multi-Paxos ballot: its low 8 bits.
fn ballot_owner(b: u64) -> u8 {
    (b & 0xff) as u8
}

impl RegistryConfig {
    /// Replicas in the whole deployment.
    pub fn total(&self) -> usize {
        self.n * self.shards.max(1)
    }
}

struct Member {
    addr: ReplicaAddr,
    link: Option<(u64, Arc<ConnOutbox>)>,
    last_pong: Option<(Instant, Pong)>,
    /// Whether it answers after execution (`server --reply-after-exec`).
    reply_after_exec: bool,
}

/// Leadership of one shard.
#[derive(Default)]
struct Lead {
    leader: Option<ReplicaId>,
    asked: Option<(ReplicaId, Instant)>,
    /// Since when no live replica of the shard has claimed leadership.
    unclaimed_since: Option<Instant>,
    /// Whether a replica of the shard was ever asked to lead.
    elected_once: bool,
    /// When a follower was last hinted that we lost the leader.
    hinted_at: Option<Instant>,
}

/// Registered replicas and each shard's leader.
pub struct Registry {
    cfg: RegistryConfig,
    protocol: Option<String>,
    /// Indexed by global id.
    members: Vec<Option<Member>>,
    /// Registrations waiting for the deployment to complete: (link id, id, rejoin).
    waiting: Vec<(u64, ReplicaId, bool)>,
    /// Indexed by shard.
    lead: Vec<Lead>,
    nonce: u64,
    /// Restored from a state file and not yet rejoined by a majority of every
    /// shard: registrations wait (see [`Registry::restore`]).
    awaiting_majority: bool,
    /// Bumped on every membership change (a new replica, a new address, the
    /// protocol), so the caller knows when to rewrite the state file.
    version: u64,
}

impl Registry {
    /// An empty registry.
    pub fn new(mut cfg: RegistryConfig) -> Self {
        cfg.shards = cfg.shards.max(1);
        Registry {
            protocol: None,
            members: (0..cfg.total()).map(|_| None).collect(),
            waiting: Vec::new(),
            lead: (0..cfg.shards).map(|_| Lead::default()).collect(),
            nonce: 0,
            awaiting_majority: false,
            version: 0,
            cfg,
        }
    }

    /// A registry rebuilt from a state file, for a restarted master: every
    /// recorded replica is known (under its id, at its addresses) but
    /// unreachable until it re-registers. The deployment counts as complete
    /// again once a majority of every shard has re-registered, which is when
    /// the waiting registrations are answered: a majority is what a shard
    /// needs to serve, and waiting for all would leave the cluster without a
    /// master for as long as one replica stays down. Late replicas rejoin
    /// under their ids. The caller checks the state's shape against `cfg`.
    pub fn restore(cfg: RegistryConfig, state: &crate::state::State) -> Self {
        let mut r = Registry::new(cfg);
        r.protocol = state.protocol.clone();
        for a in &state.replicas {
            if let Some(slot) = r.members.get_mut(a.id as usize) {
                *slot = Some(Member {
                    addr: a.clone(),
                    link: None,
                    last_pong: None,
                    // Unknown until it re-registers: "not after execution" is the safe guess.
                    reply_after_exec: false,
                });
            }
        }
        r.awaiting_majority = true;
        r
    }

    /// The membership to record in the state file.
    pub fn state(&self) -> crate::state::State {
        crate::state::State {
            n: self.cfg.n,
            shards: self.cfg.shards,
            protocol: self.protocol.clone(),
            replicas: self
                .members
                .iter()
                .flatten()
                .map(|m| m.addr.clone())
                .collect(),
        }
    }

    /// A number that changes whenever the membership to record changes.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether every replica of every shard has registered (for a restored
    /// registry: is known, and a majority of each shard has re-registered).
    pub fn complete(&self) -> bool {
        self.members.iter().all(Option::is_some) && !self.awaiting_majority
    }

    /// Whether a majority of every shard is connected.
    fn majority_linked(&self) -> bool {
        (0..self.cfg.shards).all(|s| {
            let linked = self.members[self.shard_ids(s)]
                .iter()
                .flatten()
                .filter(|m| m.link.is_some())
                .count();
            linked > self.cfg.n / 2
        })
    }

    /// The current leader of shard 0.
    pub fn leader(&self) -> Option<ReplicaId> {
        self.leader_of(0)
    }

    /// The current leader of shard `s`.
    pub fn leader_of(&self, s: usize) -> Option<ReplicaId> {
        self.lead.get(s).and_then(|l| l.leader)
    }

    /// The current leader of every shard, indexed by shard.
    pub fn leaders(&self) -> Vec<Option<ReplicaId>> {
        self.lead.iter().map(|l| l.leader).collect()
    }

    fn refuse(error: String) -> RegisterReply {
        RegisterReply {
            ok: false,
            error,
            id: 0,
            rejoin: false,
            replicas: Vec::new(),
            leader: None,
            shards: 0,
            leaders: Vec::new(),
        }
    }

    /// Global ids of shard `s`.
    fn shard_ids(&self, s: usize) -> std::ops::Range<usize> {
        genericsmr::shard::members(s, self.cfg.n)
    }

    fn shard_of(&self, id: ReplicaId) -> usize {
        genericsmr::shard::shard_of_replica(id, self.cfg.n)
    }

    /// Chooses the global id for a registration, or says why none fits.
    fn pick_id(&self, req: &Register) -> Result<ReplicaId, String> {
        let (n, shards) = (self.cfg.n, self.cfg.shards);
        let shard = req.shard as usize;
        if shard >= shards {
            return Err(if shards == 1 {
                format!("shard {shard} does not exist: this deployment is not sharded; start the server without --shard")
            } else {
                format!(
                    "shard {shard} does not exist: the deployment has {shards} shards (0..{}); start the server with a --shard below {shards}",
                    shards - 1
                )
            });
        }
        let ids = self.shard_ids(shard);
        let same_addr = |m: &Option<Member>| {
            m.as_ref()
                .is_some_and(|m| m.addr.host == req.host && m.addr.peer_port == req.peer_port)
        };
        match req.id {
            Some(i) if i as usize >= self.cfg.total() => Err(if shards == 1 {
                format!("id {i} is out of range for a group of {n}")
            } else {
                format!(
                    "id {i} is out of range for {shards} shards of {n} replicas (global ids 0..{})",
                    self.cfg.total() - 1
                )
            }),
            Some(i) if self.shard_of(i) != shard => Err(format!(
                "id {i} belongs to shard {}, not shard {shard} (whose global ids are {}..{}); start the server with --shard {}",
                self.shard_of(i),
                ids.start,
                ids.end - 1,
                self.shard_of(i)
            )),
            Some(i) => Ok(i),
            None => match self.members.iter().position(same_addr) {
                Some(i) if !ids.contains(&i) => Err(format!(
                    "{}:{} was replica {i} of shard {}; restart it with --shard {}",
                    req.host,
                    req.peer_port,
                    self.shard_of(i as ReplicaId),
                    self.shard_of(i as ReplicaId)
                )),
                Some(i) => Ok(i as ReplicaId),
                None => match ids.clone().find(|i| self.members[*i].is_none()) {
                    Some(i) => Ok(i as ReplicaId),
                    None if shards == 1 => Err(format!(
                        "the group of {n} is complete and no replica listened on {}:{}; restart a replica with its old --id or address",
                        req.host, req.peer_port
                    )),
                    None => Err(format!(
                        "shard {shard} ({n} replicas) is complete and no replica of it listened on {}:{}; restart a replica with its old --id or address",
                        req.host, req.peer_port
                    )),
                },
            },
        }
    }

    /// Handles a registration arriving on link `link`. Returns the replies to send
    /// now, as (outbox, reply): this one (if the deployment is complete or it is
    /// refused) and every registration that was waiting for completion.
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
        let id = match self.pick_id(&req) {
            Ok(id) => id,
            Err(e) => return vec![(out, Self::refuse(e))],
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
            info!(id, shard = req.shard, "replica re-registered");
        } else {
            info!(id, shard = req.shard, host = %req.host, peer_port = req.peer_port, client_port = req.client_port, "replica registered");
        }
        if self.protocol.is_none() {
            self.protocol = Some(req.protocol.clone());
            self.version += 1;
        }
        let moved = self.members[id as usize].as_ref().is_none_or(|m| {
            (&m.addr.host, m.addr.peer_port, m.addr.client_port)
                != (&req.host, req.peer_port, req.client_port)
        });
        if moved {
            self.version += 1;
        }
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
            reply_after_exec: req.reply_after_exec,
        });
        self.waiting.retain(|(l, i, _)| *l != link && *i != id);
        self.waiting.push((link, id, rejoin));
        if self.awaiting_majority && self.majority_linked() {
            info!("a majority of every shard is back: the deployment is complete again");
            self.awaiting_majority = false;
        }
        if !self.complete() {
            return Vec::new();
        }
        let replicas = self.addrs();
        let leaders = self.leaders();
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
                        leader: leaders[0],
                        shards: self.cfg.shards as u8,
                        leaders: leaders.clone(),
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

    /// Records a pong received on `link`. It is attributed to the replica
    /// registered on that link, whatever id the pong names (a protocol core
    /// running over one shard fills in its id inside the shard).
    pub fn pong(&mut self, link: u64, p: Pong) {
        self.pong_at(link, p, Instant::now())
    }

    /// [`Registry::pong`] at time `now`.
    pub fn pong_at(&mut self, link: u64, p: Pong, now: Instant) {
        let m = self
            .members
            .iter_mut()
            .flatten()
            .find(|m| m.link.as_ref().is_some_and(|(l, _)| *l == link));
        if let Some(m) = m {
            m.last_pong = Some((now, p));
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
            leader: self.leader(),
            replicas: self.addrs(),
            shards: self.cfg.shards as u8,
            leaders: self.leaders(),
            protocol: self.protocol.clone().unwrap_or_default(),
            reply_after_exec: {
                let mut members = self.members.iter().flatten().peekable();
                members.peek().is_some() && members.all(|m| m.reply_after_exec)
            },
        }
    }

    /// One round of the liveness loop: ping everyone (telling every replica
    /// each shard's leader), then make sure a live replica leads each shard.
    pub fn tick(&mut self) {
        self.tick_at(Instant::now())
    }

    /// [`Registry::tick`] at time `now`.
    pub fn tick_at(&mut self, now: Instant) {
        if !self.complete() {
            return;
        }
        self.nonce += 1;
        let ping = Ping {
            nonce: self.nonce,
            leaders: self.leaders(),
        };
        for m in self.members.iter().flatten() {
            if let Some((_, o)) = &m.link {
                o.push(&ping);
            }
        }
        for s in 0..self.cfg.shards {
            self.tick_shard(s, now);
        }
    }

    /// Live members of shard `s` with their latest pong.
    fn live(&self, s: usize, now: Instant) -> impl Iterator<Item = (ReplicaId, &Pong)> + '_ {
        self.members[self.shard_ids(s)]
            .iter()
            .flatten()
            .filter(move |m| self.alive(m, now))
            .filter_map(|m| m.last_pong.as_ref().map(|(_, p)| (m.addr.id, p)))
    }

    fn tick_shard(&mut self, s: usize, now: Instant) {
        // The live replica claiming leadership with the highest ballot leads.
        let claimed = self
            .live(s, now)
            .filter(|(_, p)| p.leader)
            .max_by_key(|(_, p)| p.ballot)
            .map(|(id, _)| id);
        if let Some(c) = claimed {
            let lead = &mut self.lead[s];
            if lead.leader != Some(c) {
                info!(shard = s, leader = c, "leader confirmed");
                lead.leader = Some(c);
            }
            lead.asked = None;
            lead.unclaimed_since = None;
            return;
        }
        if self.replicas_elect() {
            // The replicas elect their own leaders: report the one they follow
            // (the owner of the highest ballot a live replica promised), even
            // if our own link to it is broken, and never ask anyone to lead
            // over it. A group where nobody promised anything yet is fresh:
            // its first leader is picked below, which deposes nobody.
            let followed = self
                .live(s, now)
                .map(|(_, p)| p.ballot)
                .max()
                .filter(|b| *b > 0);
            if let Some(l) = followed.and_then(|b| self.ballot_leader(s, b)) {
                let lead = &mut self.lead[s];
                if lead.leader != Some(l) {
                    info!(shard = s, leader = l, "leader reported by its followers");
                    lead.leader = Some(l);
                }
                lead.elected_once = true;
                let leader_seen = self.members[l as usize]
                    .as_ref()
                    .is_some_and(|m| self.alive(m, now));
                self.lead[s].asked = None;
                if leader_seen {
                    self.lead[s].hinted_at = None;
                } else {
                    self.hint(s, l, now);
                }
                return;
            }
        }
        // A live leader that stopped claiming is most likely handing over to a
        // replica running phase 1 (SetLeader): give that a moment before
        // asking anyone, or the two would fight. A dead leader is replaced now.
        let since = *self.lead[s].unclaimed_since.get_or_insert(now);
        let leader_alive = self.lead[s]
            .leader
            .and_then(|l| self.members.get(l as usize)?.as_ref())
            .is_some_and(|m| self.alive(m, now));
        if leader_alive && now.duration_since(since) < self.cfg.election_grace {
            return;
        }
        if let Some((a, at)) = self.lead[s].asked {
            let still_up = self.members[a as usize]
                .as_ref()
                .is_some_and(|m| m.link.is_some());
            if still_up && now.duration_since(at) < self.cfg.election_grace {
                return;
            }
        }
        // A shard's first election waits (one liveness timeout at most) until
        // every connected replica of the shard has answered a ping, so that on
        // a tie the lowest id leads whichever pong came first: a planned
        // placement (a WAN preset puts each shard's first replica at its
        // leader site) then holds.
        if !self.lead[s].elected_once && now.duration_since(since) < self.cfg.liveness_timeout {
            let silent = self.members[self.shard_ids(s)]
                .iter()
                .flatten()
                .any(|m| m.link.is_some() && m.last_pong.is_none());
            if silent {
                return;
            }
        }
        self.elect(s, now);
    }

    /// Whether the group's replicas elect their own leaders (Multi-Paxos
    /// does, with its election timer): then the master only reports leaders
    /// and picks a fresh group's first one.
    fn replicas_elect(&self) -> bool {
        self.cfg.replicas_elect
            && self
                .protocol
                .as_deref()
                .is_some_and(|p| protocols::caps(p).elects)
    }

    /// The replica of shard `s` that owns ballot `b`: Multi-Paxos ballots name
    /// a local id in the group, MDLin ballots a global one. None if it is not
    /// one of the shard's replicas (a confused report).
    fn ballot_leader(&self, s: usize, b: u64) -> Option<ReplicaId> {
        let ids = self.shard_ids(s);
        let o = ballot_owner(b) as usize;
        let global = self
            .protocol
            .as_deref()
            .is_some_and(|p| protocols::caps(p).sharded_mesh);
        let g = if global { o } else { ids.start + o };
        ids.contains(&g).then_some(g as ReplicaId)
    }

    /// We lost sight of leader `l` of a group that elects its own leaders:
    /// hint the most up-to-date live follower (at most once per liveness
    /// timeout). The follower campaigns only if it has stopped hearing `l`
    /// too, so this speeds up replacing a dead leader and deposes nobody.
    fn hint(&mut self, s: usize, l: ReplicaId, now: Instant) {
        if self.lead[s]
            .hinted_at
            .is_some_and(|at| now.duration_since(at) < self.cfg.liveness_timeout)
        {
            return;
        }
        let best = self
            .live(s, now)
            .filter(|(id, p)| *id != l && !p.recovering)
            .max_by_key(|(id, p)| (p.commit_index, std::cmp::Reverse(*id)))
            .map(|(id, _)| id);
        let Some(b) = best else {
            return;
        };
        info!(
            shard = s,
            leader = l,
            follower = b,
            "lost sight of the leader: hinting a follower"
        );
        self.lead[s].hinted_at = Some(now);
        if let Some(Some(Member {
            link: Some((_, o)), ..
        })) = self.members.get(b as usize)
        {
            o.push(&BeLeader {
                nonce: self.nonce | BeLeader::HINT,
            });
        }
    }

    fn elect(&mut self, s: usize, now: Instant) {
        let failed = self.lead[s].asked.map(|(a, _)| a);
        let best = self
            .live(s, now)
            .filter(|(_, p)| !p.recovering)
            // Prefer the most up to date; on a tie prefer not to re-ask a replica that just failed.
            .max_by_key(|(id, p)| (p.commit_index, Some(*id) != failed, std::cmp::Reverse(*id)))
            .map(|(id, _)| id);
        let Some(b) = best else {
            if self.lead[s].leader.is_some() {
                warn!(shard = s, "no live replica of the shard can lead");
            }
            self.lead[s].leader = None;
            return;
        };
        info!(
            shard = s,
            candidate = b,
            "asking replica to take over leadership"
        );
        self.lead[s].leader = Some(b);
        self.lead[s].asked = Some((b, now));
        self.lead[s].elected_once = true;
        if let Some(Some(Member {
            link: Some((_, o)), ..
        })) = self.members.get(b as usize)
        {
            o.push(&BeLeader { nonce: self.nonce });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genericsmr::messages::codes;
    use genericsmr::wire::{decode_body, parse_header, FRAME_HEADER_LEN};

    fn cfg(n: usize, shards: usize) -> RegistryConfig {
        RegistryConfig {
            n,
            shards,
            liveness_timeout: Duration::from_millis(600),
            election_grace: Duration::from_millis(1800),
            // These tests exercise the master-driven failover; see
            // `a_leader_cut_off_from_the_master_is_not_deposed` for the other.
            replicas_elect: false,
        }
    }

    fn req(shard: u8, id: Option<u8>, port: u16) -> Register {
        Register {
            id,
            host: "127.0.0.1".into(),
            peer_port: port,
            client_port: port + 1,
            protocol: protocols::DEFAULT.into(),
            shard,
            reply_after_exec: false,
        }
    }

    /// Frames queued on `o`, as (code, body).
    fn sent(o: &ConnOutbox) -> Vec<(u8, bytes::Bytes)> {
        let mut b = o.take_queued().freeze();
        let mut out = Vec::new();
        while let Ok(Some((code, len))) = parse_header(&b, usize::MAX) {
            let body = b.slice(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len);
            out.push((code, body));
            b = b.slice(FRAME_HEADER_LEN + len..);
        }
        out
    }

    /// A deployment of `shards` x `n` with every replica registered on link
    /// `g + 1`, in shard order; returns the registry and each link's outbox.
    fn full(n: usize, shards: usize) -> (Registry, Vec<Arc<ConnOutbox>>) {
        let mut r = Registry::new(cfg(n, shards));
        let mut outs = Vec::new();
        for g in 0..n * shards {
            let o = Arc::new(ConnOutbox::new(true, 1 << 20));
            let shard = (g / n) as u8;
            let replies = r.register(g as u64 + 1, o.clone(), req(shard, None, 9000 + g as u16));
            for (to, rr) in replies {
                assert!(rr.ok, "{rr:?}");
                to.push(&rr);
            }
            outs.push(o);
        }
        assert!(r.complete());
        for o in &outs {
            let frames = sent(o);
            assert_eq!(frames.len(), 1);
            let rr: RegisterReply = decode_body(frames[0].1.clone()).unwrap();
            assert_eq!(rr.shards as usize, shards);
            assert_eq!(rr.replicas.len(), n * shards);
        }
        (r, outs)
    }

    /// A pong as a core over one shard sends it: with its local id.
    fn pong(local: u8, leader: bool, ballot: u64, commit_index: u64) -> Pong {
        Pong {
            nonce: 0,
            replica: local,
            ballot,
            leader,
            commit_index,
            recovering: false,
        }
    }

    fn be_leader_sent(o: &ConnOutbox) -> bool {
        sent(o).iter().any(|(c, _)| *c == codes::BE_LEADER)
    }

    #[test]
    fn ids_are_assigned_within_the_declared_shard() {
        let mut r = Registry::new(cfg(3, 2));
        let o = || Arc::new(ConnOutbox::new(true, 1 << 20));
        // A replica of shard 1 gets the first free id of shard 1.
        assert!(r.register(1, o(), req(1, None, 9000)).is_empty());
        assert!(r.members[3].is_some());
        // A given id must lie in the declared shard.
        let e = r.register(2, o(), req(0, Some(4), 9001));
        assert!(
            !e[0].1.ok && e[0].1.error.contains("--shard 1"),
            "{:?}",
            e[0].1
        );
        let e = r.register(2, o(), req(2, None, 9001));
        assert!(
            !e[0].1.ok && e[0].1.error.contains("2 shards"),
            "{:?}",
            e[0].1
        );
        let e = r.register(2, o(), req(0, Some(6), 9001));
        assert!(
            !e[0].1.ok && e[0].1.error.contains("out of range"),
            "{:?}",
            e[0].1
        );
        // An address known in another shard is pointed there.
        let e = r.register(2, o(), req(0, None, 9000));
        assert!(
            !e[0].1.ok && e[0].1.error.contains("--shard 1"),
            "{:?}",
            e[0].1
        );
        // Nobody is answered until all six have registered.
        for (i, (s, p)) in [(0, 9010), (0, 9011), (0, 9012), (1, 9013)]
            .iter()
            .enumerate()
        {
            assert!(r.register(10 + i as u64, o(), req(*s, None, *p)).is_empty());
        }
        let e = r.register(20, o(), req(0, None, 9014));
        assert!(
            !e[0].1.ok && e[0].1.error.contains("shard 0"),
            "{:?}",
            e[0].1
        );
        let replies = r.register(21, o(), req(1, Some(5), 9015));
        assert_eq!(replies.len(), 6);
        let mut ids: Vec<u8> = replies.iter().map(|(_, rr)| rr.id).collect();
        ids.sort();
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
        let info = r.cluster_info(1);
        assert_eq!((info.n, info.shards, info.leaders.len()), (3, 2, 2));
    }

    /// Two shards; shard 1's leader dies: only shard 1 elects a new one, and
    /// every ping tells every replica each shard's leader.
    #[test]
    fn one_shard_reelects_and_the_other_keeps_its_leader() {
        let (mut r, outs) = full(3, 2);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        r.tick_at(at(0));
        // Everyone answers with its local id; nobody leads yet.
        for g in 0..6u8 {
            r.pong_at(g as u64 + 1, pong(g % 3, false, 0, 0), at(10));
        }
        r.tick_at(at(100));
        assert_eq!(r.leaders(), vec![Some(0), Some(3)]);
        assert!(be_leader_sent(&outs[0]) && be_leader_sent(&outs[3]));
        // They take over (a ballot owned by local id 0 in both shards).
        for g in 0..6u8 {
            let leads = g % 3 == 0;
            r.pong_at(g as u64 + 1, pong(g % 3, leads, 1 << 8, 5), at(110));
        }
        r.tick_at(at(200));
        assert_eq!(r.leaders(), vec![Some(0), Some(3)]);
        // Every replica hears both leaders at each ping.
        for o in &outs {
            let pings: Vec<Ping> = sent(o)
                .into_iter()
                .filter(|(c, _)| *c == codes::PING)
                .map(|(_, b)| decode_body(b).unwrap())
                .collect();
            assert_eq!(pings.last().unwrap().leaders, vec![Some(0), Some(3)]);
        }
        // Shard 1's leader dies; replica 5 is more up to date than 4.
        assert_eq!(r.link_closed(4), Some(3));
        for g in [0u8, 1, 2, 4, 5] {
            let leads = g == 0;
            let commit = if g == 5 { 9 } else { 5 };
            r.pong_at(g as u64 + 1, pong(g % 3, leads, 1 << 8, commit), at(300));
        }
        r.tick_at(at(310));
        assert_eq!(r.leaders(), vec![Some(0), Some(5)]);
        assert!(be_leader_sent(&outs[5]));
        assert!(!be_leader_sent(&outs[0]) && !be_leader_sent(&outs[1]));
        assert!(!be_leader_sent(&outs[2]) && !be_leader_sent(&outs[4]));
        // Replica 5 takes over with a higher ballot; shard 0 never changed.
        r.pong_at(6, pong(2, true, 2 << 8 | 2, 9), at(320));
        r.pong_at(1, pong(0, true, 1 << 8, 9), at(320));
        r.tick_at(at(400));
        assert_eq!(r.leaders(), vec![Some(0), Some(5)]);
        assert_eq!(r.cluster_info(1).leader, Some(0));
    }

    /// The first election waits for every replica of the shard to answer, so
    /// the lowest id leads; but not longer than a liveness timeout.
    #[test]
    fn the_first_election_waits_for_every_pong() {
        let (mut r, _outs) = full(3, 2);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        r.tick_at(at(0));
        // Only replicas 2 and 4 have answered: nobody is asked yet.
        r.pong_at(3, pong(2, false, 0, 0), at(5));
        r.pong_at(5, pong(1, false, 0, 0), at(5));
        r.tick_at(at(100));
        assert_eq!(r.leaders(), vec![None, None]);
        // Shard 0 hears from everyone: its lowest id is asked.
        r.pong_at(1, pong(0, false, 0, 0), at(150));
        r.pong_at(2, pong(1, false, 0, 0), at(150));
        r.pong_at(3, pong(2, false, 0, 0), at(150));
        r.pong_at(5, pong(1, false, 0, 0), at(150));
        r.tick_at(at(200));
        assert_eq!(r.leaders(), vec![Some(0), None]);
        // Shard 1's replica 3 stays silent: after a liveness timeout the others go ahead.
        r.pong_at(5, pong(1, false, 0, 0), at(590));
        r.pong_at(6, pong(2, false, 0, 0), at(590));
        r.tick_at(at(650));
        assert_eq!(r.leader_of(1), Some(4));
    }

    /// A pong is credited to the replica registered on the link it came on,
    /// not to the id it names.
    #[test]
    fn pongs_count_for_the_link_they_arrive_on() {
        let (mut r, _outs) = full(2, 2);
        let t0 = Instant::now();
        // Replica 3 (shard 1, local id 1) claims leadership naming local id 1.
        r.pong_at(4, pong(1, true, 1 << 8 | 1, 0), t0);
        r.tick_at(t0 + Duration::from_millis(1));
        assert_eq!(r.leader_of(1), Some(3));
        assert_ne!(r.leader_of(0), Some(1));
    }

    /// Replicas that elect their own leaders: the master picks a fresh group's
    /// first leader, then only reports the leader the followers follow, even
    /// one whose link to the master broke, and never asks anyone else to lead.
    #[test]
    fn a_leader_cut_off_from_the_master_is_not_deposed() {
        let (mut r, outs) = full(3, 1);
        r.cfg.replicas_elect = true;
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        r.tick_at(at(0));
        for g in 0..3u8 {
            r.pong_at(g as u64 + 1, pong(g, false, 0, 0), at(10));
        }
        // A fresh group: the master picks the first leader.
        r.tick_at(at(100));
        assert_eq!(r.leader(), Some(0));
        assert!(be_leader_sent(&outs[0]));
        for g in 0..3u8 {
            r.pong_at(g as u64 + 1, pong(g, g == 0, 1 << 8, 5), at(110));
        }
        r.tick_at(at(200));
        assert_eq!(r.leader(), Some(0));
        // The leader's master link breaks; its followers still follow it.
        assert_eq!(r.link_closed(1), Some(0));
        for t in [300, 1000, 5000] {
            for g in 1..3u8 {
                r.pong_at(g as u64 + 1, pong(g, false, 1 << 8, 9), at(t));
            }
            r.tick_at(at(t + 10));
            assert_eq!(r.leader(), Some(0), "at {t} ms");
        }
        // Only hints went out (to the most up-to-date follower, once per
        // liveness timeout), never an order.
        let asks: Vec<(usize, BeLeader)> = outs
            .iter()
            .enumerate()
            .flat_map(|(g, o)| {
                sent(o)
                    .into_iter()
                    .filter(|(c, _)| *c == codes::BE_LEADER)
                    .map(move |(_, b)| (g, decode_body::<BeLeader>(b).unwrap()))
            })
            .collect();
        assert!(!asks.is_empty());
        assert!(asks.iter().all(|(g, b)| *g == 1 && b.is_hint()), "{asks:?}");
        // The replicas elect replica 2 themselves: the master reports it.
        r.pong_at(3, pong(2, true, 2 << 8 | 2, 9), at(6000));
        r.tick_at(at(6010));
        assert_eq!(r.leader(), Some(2));
        // Followers alone are enough to name it.
        r.pong_at(3, pong(2, false, 3 << 8 | 1, 9), at(7000));
        r.pong_at(2, pong(1, false, 3 << 8 | 1, 9), at(7000));
        r.tick_at(at(7010));
        assert_eq!(r.leader(), Some(1));
    }

    /// MDLin shards elect their own leaders too; their ballots name global
    /// ids, so the master reports the right replica of each shard and only
    /// hints when it loses one.
    #[test]
    fn mdlin_shards_report_their_elected_leaders() {
        let (mut r, outs) = full(3, 2);
        r.cfg.replicas_elect = true;
        // A protocol whose ballots name global ids (MDLin).
        let global = protocols::all()
            .into_iter()
            .find(|i| i.caps.sharded_mesh && i.caps.elects);
        r.protocol = Some(global.expect("a sharded protocol").name.into());
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Shard 1 (global ids 3..6) follows global replica 4 at round 2.
        for g in 3..6u8 {
            r.pong_at(g as u64 + 1, pong(g - 3, g == 4, 2 << 8 | 4, 7), at(10));
        }
        r.tick_at(at(20));
        assert_eq!(r.leader_of(1), Some(4));
        // Replica 4's link breaks: the followers still follow it; only hints go out.
        assert!(r.link_closed(5).is_some());
        for t in [100, 1000, 3000] {
            for g in [3u8, 5] {
                r.pong_at(g as u64 + 1, pong(g - 3, false, 2 << 8 | 4, 9), at(t));
            }
            r.tick_at(at(t + 10));
            assert_eq!(r.leader_of(1), Some(4), "at {t} ms");
        }
        for (g, o) in outs.iter().enumerate().skip(3) {
            for (c, b) in sent(o) {
                if c == codes::BE_LEADER {
                    let m = decode_body::<BeLeader>(b).unwrap();
                    assert!(m.is_hint(), "replica {g} was ordered to lead");
                }
            }
        }
    }

    /// A registry restored from its state answers once a majority of every
    /// shard is back, each under its recorded id and as a rejoin; a late
    /// replica rejoins under its id; the state only changes with the membership.
    #[test]
    fn a_restored_registry_completes_with_a_majority_of_each_shard() {
        let (r0, _outs) = full(3, 2);
        let st = r0.state();
        assert_eq!(st.replicas.len(), 6);
        let mut r = Registry::restore(cfg(3, 2), &st);
        let v0 = r.version();
        assert!(!r.complete());
        let o = || Arc::new(ConnOutbox::new(true, 1 << 20));
        // Survivors reconnect with their ids; replica 2 (shard 0) and 5 (shard 1) stay down.
        assert!(r.register(11, o(), req(0, Some(0), 9000)).is_empty());
        assert!(r.register(12, o(), req(0, Some(1), 9001)).is_empty());
        assert!(r.register(13, o(), req(1, Some(3), 9003)).is_empty());
        assert!(!r.complete(), "shard 1 has one of three back");
        let replies = r.register(14, o(), req(1, Some(4), 9004));
        assert!(r.complete());
        let mut got: Vec<(u8, bool)> = replies.iter().map(|(_, rr)| (rr.id, rr.rejoin)).collect();
        got.sort();
        assert_eq!(got, vec![(0, true), (1, true), (3, true), (4, true)]);
        assert_eq!(replies[0].1.replicas.len(), 6);
        assert_eq!(r.version(), v0, "nobody moved: nothing to rewrite");
        // A late replica that lost its id (no --id, no data) is found by address.
        let late = r.register(15, o(), req(0, None, 9002));
        assert_eq!((late[0].1.id, late[0].1.rejoin), (2, true));
        // A fresh process claiming a known id from another address while the
        // old one is connected is refused.
        let e = r.register(16, o(), req(1, Some(4), 9999));
        assert!(!e[0].1.ok, "{:?}", e[0].1);
        // Replica 5 comes back at a new address: the state must be rewritten.
        let moved = r.register(17, o(), req(1, Some(5), 9105));
        assert!(moved[0].1.ok);
        assert_ne!(r.version(), v0);
        assert_eq!(r.state().replicas[5].peer_port, 9105);
    }
}
