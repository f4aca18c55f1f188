//! The thin runtime: one thread that waits on the rpc-table receivers, feeds
//! the core, and hands its outbox to the [`Driver`].
//!
//! The replica's transport spans every replica of the deployment (global
//! ids), so shard leaders reach each other over the same mesh as their
//! followers.

use crossbeam_channel::{Receiver, Select};
use genericsmr::effects::{event_loop, Core, Drain, Driver, Effects};
use genericsmr::messages::{BeLeader, LogRequest, Ping, Propose, StatusRequest};
use genericsmr::rpc_table::{class, RpcTable, Source};

use crate::messages::*;
use crate::replica::Replica;

/// The receivers of every message type the replica handles.
pub struct Receivers {
    propose: Receiver<(Source, MdlPropose)>,
    plain: Receiver<(Source, Propose)>,
    coord_req: Receiver<(Source, CoordReq)>,
    status: Receiver<(Source, StatusRequest)>,
    log: Receiver<(Source, LogRequest)>,
    ping: Receiver<(Source, Ping)>,
    be_leader: Receiver<(Source, BeLeader)>,
    coord_reply: Receiver<(Source, CoordReply)>,
    accept: Receiver<(Source, Accept)>,
    accept_reply: Receiver<(Source, AcceptReply)>,
    commit: Receiver<(Source, Commit)>,
    commit_short: Receiver<(Source, CommitShort)>,
    prepare: Receiver<(Source, Prepare)>,
    prepare_reply: Receiver<(Source, PrepareReply)>,
    succ_ts_request: Receiver<(Source, SuccTsRequest)>,
    succ_ts_reply: Receiver<(Source, SuccTsReply)>,
    catchup_request: Receiver<(Source, CatchupRequest)>,
    catchup_reply: Receiver<(Source, CatchupReply)>,
}

/// Registers every message type of the replica in `t`.
pub fn register(t: &mut RpcTable) -> Receivers {
    let operator = class::CLIENT | class::MASTER;
    Receivers {
        propose: t.register(class::CLIENT),
        plain: t.register(class::CLIENT),
        // From clients, and from successor leaders retrying.
        coord_req: t.register(class::CLIENT | class::PEER),
        status: t.register(operator),
        log: t.register(operator),
        ping: t.register(class::MASTER),
        be_leader: t.register(class::MASTER | class::CLIENT),
        coord_reply: t.register(class::PEER),
        accept: t.register(class::PEER),
        accept_reply: t.register(class::PEER),
        commit: t.register(class::PEER),
        commit_short: t.register(class::PEER),
        prepare: t.register(class::PEER),
        prepare_reply: t.register(class::PEER),
        succ_ts_request: t.register(class::PEER),
        succ_ts_reply: t.register(class::PEER),
        catchup_request: t.register(class::PEER),
        catchup_reply: t.register(class::PEER),
    }
}

/// Runs the replica until the process ends.
pub fn run(
    mut core: Replica,
    rx: Receivers,
    mut driver: Driver,
) -> Result<(), genericsmr::durable::DurableError> {
    let mut fx = Effects::without_persistence();
    let mut sel = Select::new();
    sel.recv(&rx.propose);
    sel.recv(&rx.plain);
    sel.recv(&rx.coord_req);
    sel.recv(&rx.status);
    sel.recv(&rx.log);
    sel.recv(&rx.ping);
    sel.recv(&rx.be_leader);
    sel.recv(&rx.coord_reply);
    sel.recv(&rx.accept);
    sel.recv(&rx.accept_reply);
    sel.recv(&rx.commit);
    sel.recv(&rx.commit_short);
    sel.recv(&rx.prepare);
    sel.recv(&rx.prepare_reply);
    sel.recv(&rx.succ_ts_request);
    sel.recv(&rx.succ_ts_reply);
    sel.recv(&rx.catchup_request);
    sel.recv(&rx.catchup_reply);
    event_loop(
        &mut core,
        &mut fx,
        &mut driver,
        &mut sel,
        |c, t, fx, budget| drain(c, &rx, t, fx, budget),
    )
}

/// Handles what is queued, at most `budget` messages; returns how many.
fn drain(
    core: &mut Replica,
    rx: &Receivers,
    now: u64,
    fx: &mut Effects<MdlMsg>,
    budget: usize,
) -> usize {
    let mut d = Drain::new(budget);
    // Liveness first: a late pong looks like a dead replica.
    d.take(&rx.ping, |s, m| core.handle_ping(s.conn_id(), m, fx));
    d.take(&rx.be_leader, |_s, m| {
        // The master marks its own failover requests as hints; an operator's
        // set-leader always moves leadership.
        if m.is_hint() {
            core.handle_leader_hint(now, fx)
        } else {
            core.handle_be_leader(now, fx)
        }
    });
    d.take(&rx.accept_reply, |s, m| {
        core.handle_accept_reply(now, s.peer_id(), m, fx)
    });
    d.take(&rx.accept, |s, m| {
        core.handle_accept(now, s.peer_id(), m, fx)
    });
    d.take(&rx.commit_short, |s, m| {
        core.handle_commit_short(now, s.peer_id(), m, fx)
    });
    d.take(&rx.commit, |s, m| {
        core.handle_commit(now, s.peer_id(), m, fx)
    });
    d.take(&rx.coord_reply, |_s, m| core.handle_coord_reply(now, m, fx));
    d.take(&rx.propose, |s, m| {
        core.handle_propose(now, s.conn_id(), m, fx)
    });
    d.take(&rx.plain, |s, m| {
        core.handle_plain_propose(now, s.conn_id(), m, fx)
    });
    d.take(&rx.coord_req, |s, m| {
        let asker = match s {
            Source::Peer(p) => Some(p),
            Source::Conn(_) => None,
        };
        core.handle_coord_req(now, asker, m, fx)
    });
    d.take(&rx.prepare, |s, m| {
        core.handle_prepare(now, s.peer_id(), m, fx)
    });
    d.take(&rx.prepare_reply, |s, m| {
        core.handle_prepare_reply(now, s.peer_id(), m, fx)
    });
    d.take(&rx.succ_ts_request, |s, m| {
        core.handle_succ_ts_request(now, s.peer_id(), m, fx)
    });
    d.take(&rx.succ_ts_reply, |_s, m| {
        core.handle_succ_ts_reply(now, m, fx)
    });
    d.take(&rx.catchup_request, |s, m| {
        core.handle_catchup_request(s.peer_id(), m, fx)
    });
    d.take(&rx.catchup_reply, |s, m| {
        core.handle_catchup_reply(s.peer_id(), m, fx)
    });
    d.take(&rx.status, |s, m| core.handle_status(s.conn_id(), m, fx));
    d.take(&rx.log, |s, m| core.handle_log_request(s.conn_id(), m, fx));
    d.handled()
}

impl Core for Replica {
    type Msg = MdlMsg;

    fn tick(&mut self, now: u64, fx: &mut Effects<Self::Msg>) {
        Replica::tick(self, now, fx)
    }

    fn flush(&mut self, now: u64, fx: &mut Effects<Self::Msg>) {
        Replica::flush(self, now, fx)
    }
}
