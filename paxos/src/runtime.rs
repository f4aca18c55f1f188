//! The thin runtime: one thread that waits on the rpc-table receivers, feeds the
//! core, and hands its outbox to the [`Driver`].
//!
//! Everything that arrives together is handled before the outbox is carried
//! out, so votes of one burst share one fsync and proposals of one burst share
//! one slot (when batching).

use crossbeam_channel::{Receiver, Select};
use genericsmr::effects::{event_loop, Core, Drain, Driver, Effects};
use genericsmr::messages::{BeLeader, LogRequest, Ping, Propose, StatusRequest};
use genericsmr::rpc_table::{class, RpcTable, Source};

use crate::messages::*;
use crate::replica::Replica;

/// The receivers of every message type the replica handles.
pub struct Receivers {
    propose: Receiver<(Source, Propose)>,
    status: Receiver<(Source, StatusRequest)>,
    log: Receiver<(Source, LogRequest)>,
    ping: Receiver<(Source, Ping)>,
    be_leader: Receiver<(Source, BeLeader)>,
    prepare: Receiver<(Source, Prepare)>,
    prepare_reply: Receiver<(Source, PrepareReply)>,
    accept: Receiver<(Source, Accept)>,
    accept_reply: Receiver<(Source, AcceptReply)>,
    commit: Receiver<(Source, Commit)>,
    commit_short: Receiver<(Source, CommitShort)>,
    catchup_request: Receiver<(Source, CatchupRequest)>,
    catchup_reply: Receiver<(Source, CatchupReply)>,
    recovery_query: Receiver<(Source, RecoveryQuery)>,
    recovery_info: Receiver<(Source, RecoveryInfo)>,
    compacted: Receiver<(Source, Compacted)>,
    snapshot_request: Receiver<(Source, SnapshotRequest)>,
    snapshot_chunk: Receiver<(Source, SnapshotChunk)>,
}

/// Registers every message type of the replica in `t`.
pub fn register(t: &mut RpcTable) -> Receivers {
    let operator = class::CLIENT | class::MASTER;
    Receivers {
        propose: t.register(class::CLIENT),
        status: t.register(operator),
        log: t.register(operator),
        ping: t.register(class::MASTER),
        // Clients may ask too (SetLeader), but the transport lets that through only with --control.
        be_leader: t.register(class::MASTER | class::CLIENT),
        prepare: t.register(class::PEER),
        prepare_reply: t.register(class::PEER),
        accept: t.register(class::PEER),
        accept_reply: t.register(class::PEER),
        commit: t.register(class::PEER),
        commit_short: t.register(class::PEER),
        catchup_request: t.register(class::PEER),
        catchup_reply: t.register(class::PEER),
        recovery_query: t.register(class::PEER),
        recovery_info: t.register(class::PEER),
        compacted: t.register(class::PEER),
        snapshot_request: t.register(class::PEER),
        snapshot_chunk: t.register(class::PEER),
    }
}

/// Runs the replica until the durable log fails (then the replica must stop: it
/// cannot vote without persisting).
pub fn run(
    mut core: Replica,
    rx: Receivers,
    mut driver: Driver,
    recover: bool,
) -> Result<(), genericsmr::durable::DurableError> {
    let mut fx = if driver.is_durable() {
        Effects::default()
    } else {
        Effects::without_persistence()
    };
    if recover {
        core.start_recovery(0, &mut fx);
        driver.carry_out(&mut fx)?;
    }
    let mut sel = Select::new();
    sel.recv(&rx.propose);
    sel.recv(&rx.status);
    sel.recv(&rx.log);
    sel.recv(&rx.ping);
    sel.recv(&rx.be_leader);
    sel.recv(&rx.prepare);
    sel.recv(&rx.prepare_reply);
    sel.recv(&rx.accept);
    sel.recv(&rx.accept_reply);
    sel.recv(&rx.commit);
    sel.recv(&rx.commit_short);
    sel.recv(&rx.catchup_request);
    sel.recv(&rx.catchup_reply);
    sel.recv(&rx.recovery_query);
    sel.recv(&rx.recovery_info);
    sel.recv(&rx.compacted);
    sel.recv(&rx.snapshot_request);
    sel.recv(&rx.snapshot_chunk);
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
    fx: &mut Effects<PaxosMsg>,
    budget: usize,
) -> usize {
    let mut d = Drain::new(budget);
    // Liveness and control first: under overload they must not wait behind
    // thousands of protocol messages (a late pong looks like a dead replica).
    d.take(&rx.ping, |s, m| core.handle_ping(s.conn_id(), m, fx));
    d.take(&rx.be_leader, |_s, m| {
        // The master marks its own failover requests as hints; an operator's
        // set-leader (direct, or relayed with a small nonce) always moves
        // leadership. (A hint is weaker than an order, so a client that sets
        // the bit gains nothing.)
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
    d.take(&rx.propose, |s, m| {
        core.handle_propose(now, s.conn_id(), m, fx)
    });
    d.take(&rx.prepare, |s, m| {
        core.handle_prepare(now, s.peer_id(), m, fx)
    });
    d.take(&rx.prepare_reply, |s, m| {
        core.handle_prepare_reply(now, s.peer_id(), m, fx)
    });
    d.take(&rx.catchup_request, |s, m| {
        core.handle_catchup_request(now, s.peer_id(), m, fx)
    });
    d.take(&rx.catchup_reply, |s, m| {
        core.handle_catchup_reply(now, s.peer_id(), m, fx)
    });
    d.take(&rx.recovery_query, |s, m| {
        core.handle_recovery_query(now, s.peer_id(), m, fx)
    });
    d.take(&rx.recovery_info, |s, m| {
        core.handle_recovery_info(now, s.peer_id(), m, fx)
    });
    d.take(&rx.compacted, |s, m| {
        core.handle_compacted(now, s.peer_id(), m, fx)
    });
    d.take(&rx.snapshot_request, |s, m| {
        core.handle_snapshot_request(s.peer_id(), m, fx)
    });
    d.take(&rx.snapshot_chunk, |s, m| {
        core.handle_snapshot_chunk(now, s.peer_id(), m, fx)
    });
    d.take(&rx.status, |s, m| core.handle_status(s.conn_id(), m, fx));
    d.take(&rx.log, |s, m| core.handle_log_request(s.conn_id(), m, fx));
    d.handled()
}

impl Core for Replica {
    type Msg = PaxosMsg;

    fn tick(&mut self, now: u64, fx: &mut Effects<Self::Msg>) {
        Replica::tick(self, now, fx)
    }

    fn flush(&mut self, now: u64, fx: &mut Effects<Self::Msg>) {
        Replica::flush(self, now, fx)
    }
}
