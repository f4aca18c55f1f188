//! The one runtime every protocol runs in: three priority lanes from the rpc
//! table into one thread that feeds the core and hands its outbox to the
//! [`Driver`].
//!
//! Lanes keep the order of priority every protocol relies on: control
//! (the master's pings and leadership requests, status and log requests)
//! before peer messages before client requests. Under overload a pong must
//! not wait behind thousands of votes (a late pong looks like a dead
//! replica), and votes must not wait behind new proposals. Within a lane,
//! messages are handled in arrival order. Everything that arrives together
//! is handled before the outbox is carried out, so the votes of one burst
//! share one fsync and the proposals of one burst share one batch.
//!
//! The client lane is bounded by a [`ClientGate`]: the transport stops
//! reading client sockets while it is full, and the runtime opens it after
//! every round, so a load above what the core serves waits in TCP, not in
//! the replica's memory. The core may also stop taking client requests
//! for a while ([`Protocol::accepting`]), which holds them back the same way.

use crossbeam_channel::{unbounded, Receiver, Select};

use crate::durable::DurableError;
use crate::effects::{Driver, Effects, Reply};
use crate::gate::ClientGate;
use crate::messages::{BeLeader, LogRequest, Ping, Propose, StatusRequest};
use crate::protocol::{Protocol, Registrar};
use crate::rpc_table::{class, RpcTable, Source};

/// How often the runtime runs the core's timers.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(5);

/// Most messages the runtime handles before it carries out the outbox.
pub const BURST: usize = 8192;

/// The client lane's place in the order of priority.
const CLIENT_LANE: usize = 2;

/// One message as it waits in a lane: a shared request, or one of the
/// protocol's own messages.
#[derive(Debug)]
pub enum Inbound<M> {
    /// The master's liveness probe.
    Ping(Ping),
    /// The master or an operator asks this replica to lead.
    BeLeader(BeLeader),
    /// A status request.
    Status(StatusRequest),
    /// A log request.
    Log(LogRequest),
    /// A client's proposal.
    Propose(Propose),
    /// One of the protocol's own messages.
    Msg(M),
}

/// The receiving ends of a replica's three lanes, in order of priority.
pub struct Lanes<M> {
    control: Receiver<(Source, Inbound<M>)>,
    peer: Receiver<(Source, Inbound<M>)>,
    client: Receiver<(Source, Inbound<M>)>,
    /// The client lane's bound, shared with the transport's readers.
    gate: std::sync::Arc<ClientGate>,
}

/// Registers the shared requests and every message type of protocol `P`
/// in `t`, and returns the lanes they arrive in.
pub fn register<P: Protocol>(t: &mut RpcTable) -> Lanes<P::Msg> {
    let (control_tx, control) = unbounded();
    let (peer_tx, peer) = unbounded();
    let (client_tx, client) = unbounded();
    let lane = client.clone();
    let gate = std::sync::Arc::new(ClientGate::new(move || lane.len()));
    t.set_client_gate(gate.clone());
    let operator = class::CLIENT | class::MASTER;
    t.register_into(class::MASTER, control_tx.clone(), Inbound::Ping);
    // Clients may ask too (set-leader); the transport lets that through only with --control.
    t.register_into(operator, control_tx.clone(), Inbound::BeLeader);
    t.register_into(operator, control_tx.clone(), Inbound::Status);
    t.register_into(operator, control_tx, Inbound::Log);
    t.register_into(class::CLIENT, client_tx.clone(), Inbound::Propose);
    P::register(&mut Registrar {
        table: t,
        peer: peer_tx,
        client: client_tx,
    });
    Lanes {
        control,
        peer,
        client,
        gate,
    }
}

/// Hands one message to the core.
pub fn deliver<P: Protocol>(
    core: &mut P,
    now: u64,
    src: Source,
    m: Inbound<P::Msg>,
    fx: &mut Effects<P::Msg>,
) {
    match m {
        Inbound::Ping(p) => core.ping(src.conn_id(), p, fx),
        // The master marks its own failover requests as hints; an operator's
        // set-leader always moves leadership.
        Inbound::BeLeader(b) => core.be_leader(now, b.is_hint(), fx),
        Inbound::Status(s) => fx.reply(src.conn_id(), Reply::Status(core.status(s.nonce))),
        Inbound::Log(l) => fx.reply(src.conn_id(), Reply::Log(core.log(&l))),
        Inbound::Propose(p) => core.propose(now, src.conn_id(), p, fx),
        Inbound::Msg(m) => core.handle(now, src, m, fx),
    }
}

/// Runs `core` until its durable log fails (then the replica must stop: it
/// cannot vote without persisting). `fx` holds what the core queued while
/// booting; it goes out first. Each round waits until a lane has something
/// (or a tick is due), handles up to [`BURST`] messages lane by lane in
/// order of priority, runs the timers, flushes, and carries out the outbox.
pub fn run<P: Protocol>(
    mut core: P,
    lanes: Lanes<P::Msg>,
    mut driver: Driver,
    mut fx: Effects<P::Msg>,
) -> Result<(), DurableError> {
    driver.carry_out(&mut fx)?;
    let mut all = Select::new();
    for lane in [&lanes.control, &lanes.peer, &lanes.client] {
        all.recv(lane);
    }
    // While the core takes no client requests, waiting on their lane would spin.
    let mut no_clients = Select::new();
    for lane in [&lanes.control, &lanes.peer] {
        no_clients.recv(lane);
    }
    let start = std::time::Instant::now();
    let mut last_tick = 0;
    loop {
        let _ = if core.accepting() {
            all.ready_timeout(TICK)
        } else {
            no_clients.ready_timeout(TICK)
        };
        let now = start.elapsed().as_nanos() as u64;
        let mut handled = 0;
        'burst: while handled < BURST {
            let before = handled;
            for (i, lane) in [&lanes.control, &lanes.peer, &lanes.client]
                .into_iter()
                .enumerate()
            {
                while handled < BURST {
                    if i == CLIENT_LANE && !core.accepting() {
                        break;
                    }
                    let Ok((src, m)) = lane.try_recv() else { break };
                    handled += 1;
                    deliver(&mut core, now, src, m, &mut fx);
                }
                if handled >= BURST {
                    break 'burst;
                }
            }
            if handled == before {
                break;
            }
        }
        lanes.gate.opened();
        if now.saturating_sub(last_tick) >= TICK.as_nanos() as u64 {
            last_tick = now;
            core.tick(now, &mut fx);
        }
        core.flush(now, &mut fx);
        driver.carry_out(&mut fx)?;
    }
}
