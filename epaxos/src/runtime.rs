//! The thin runtime: one thread that waits on the rpc-table receivers, feeds
//! the core, and hands its outbox to the [`Driver`]. Everything that arrives
//! together is handled before the outbox is carried out, so proposals of one
//! burst share an instance (when batching) and votes share one fsync.

use crossbeam_channel::{Receiver, Select};
use genericsmr::effects::{event_loop, Core, Drain, Driver, Effects};
use genericsmr::messages::{BeLeader, LogRequest, Ping, Propose, StatusRequest};
use genericsmr::rpc_table::{class, RpcTable, Source};

use crate::messages::*;
use crate::replica::Replica;
use genericsmr::snapshot::{Compacted, SnapshotChunk, SnapshotRequest};

macro_rules! peer_types {
    ($($field:ident: $ty:ident),*) => {
        /// The receivers of every message type the replica handles.
        pub struct Receivers {
            propose: Receiver<(Source, Propose)>,
            status: Receiver<(Source, StatusRequest)>,
            log: Receiver<(Source, LogRequest)>,
            ping: Receiver<(Source, Ping)>,
            be_leader: Receiver<(Source, BeLeader)>,
            $($field: Receiver<(Source, $ty)>,)*
        }

        /// Registers every message type of the replica in `t`.
        pub fn register(t: &mut RpcTable) -> Receivers {
            let operator = class::CLIENT | class::MASTER;
            Receivers {
                propose: t.register(class::CLIENT),
                status: t.register(operator),
                log: t.register(operator),
                ping: t.register(class::MASTER),
                // Every replica leads its own commands; BeLeader changes nothing.
                be_leader: t.register(class::MASTER | class::CLIENT),
                $($field: t.register(class::PEER),)*
            }
        }

        fn select(rx: &Receivers) -> Select<'_> {
            let mut sel = Select::new();
            sel.recv(&rx.propose);
            sel.recv(&rx.status);
            sel.recv(&rx.log);
            sel.recv(&rx.ping);
            sel.recv(&rx.be_leader);
            $(sel.recv(&rx.$field);)*
            sel
        }

        fn drain_peers(core: &mut Replica, rx: &Receivers, now: u64, fx: &mut Effects<EpaxosMsg>, d: &mut Drain) {
            $(
                d.take(&rx.$field, |s, m| {
                    if let Source::Peer(from) = s {
                        core.handle_peer(now, from, EpaxosMsg::$ty(m), fx);
                    }
                });
            )*
        }
    };
}

peer_types!(
    accept_reply: AcceptReply,
    pre_accept_ok: PreAcceptOk,
    pre_accept_reply: PreAcceptReply,
    commit_short: CommitShort,
    commit: Commit,
    accept: Accept,
    pre_accept: PreAccept,
    prepare: Prepare,
    prepare_reply: PrepareReply,
    progress: Progress,
    try_pre_accept: TryPreAccept,
    try_pre_accept_reply: TryPreAcceptReply,
    compacted: Compacted,
    snapshot_request: SnapshotRequest,
    snapshot_chunk: SnapshotChunk
);

/// Runs the replica until the durable log fails.
pub fn run(
    mut core: Replica,
    rx: Receivers,
    mut driver: Driver,
) -> Result<(), genericsmr::durable::DurableError> {
    let mut fx = if driver.is_durable() {
        Effects::default()
    } else {
        Effects::without_persistence()
    };
    let mut sel = select(&rx);
    event_loop(
        &mut core,
        &mut fx,
        &mut driver,
        &mut sel,
        |c, t, fx, budget| drain(c, &rx, t, fx, budget),
    )
}

fn drain(
    core: &mut Replica,
    rx: &Receivers,
    now: u64,
    fx: &mut Effects<EpaxosMsg>,
    budget: usize,
) -> usize {
    let mut d = Drain::new(budget);
    d.take(&rx.ping, |s, m| core.handle_ping(s.conn_id(), m, fx));
    // Every replica leads its own commands: a request to lead is drained and ignored.
    d.take(&rx.be_leader, |_, _| {});
    drain_peers(core, rx, now, fx, &mut d);
    d.take(&rx.propose, |s, m| {
        core.handle_propose(now, s.conn_id(), m, fx)
    });
    d.take(&rx.status, |s, m| core.handle_status(s.conn_id(), m, fx));
    d.take(&rx.log, |s, m| core.handle_log_request(s.conn_id(), m, fx));
    d.handled()
}

impl Core for Replica {
    type Msg = EpaxosMsg;

    fn tick(&mut self, now: u64, fx: &mut Effects<Self::Msg>) {
        Replica::tick(self, now, fx)
    }

    fn flush(&mut self, now: u64, fx: &mut Effects<Self::Msg>) {
        Replica::flush(self, now, fx)
    }
}
