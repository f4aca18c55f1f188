//! The transport's ceiling: the same path a replica uses (listener, frame
//! decoder, rpc table, channel, a core thread, coalescing writer), with an echo
//! instead of a protocol. Protocol figures are read against it.

use std::sync::Arc;

use genericsmr::command::Outcome;
use genericsmr::effects::{Driver, Effects, Reply};
use genericsmr::messages::{Propose, ProposeReply, ReplyStatus};
use genericsmr::rpc_table::{class, RpcTable, Source};
use genericsmr::transport::{Transport, TransportConfig};
use genericsmr::wire::Frame;

/// No peer messages exist in the echo server.
enum NoPeer {}

impl Frame for NoPeer {
    fn encode_frame(&self, _: &mut bytes::BytesMut) {
        match *self {}
    }
}

/// Runs the echo server on `port` (0: any), printing `listening on ADDR`; never returns.
pub fn serve_echo(port: u16) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (client_l, peer_l) = rt.block_on(async {
        let c = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let p = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        anyhow::Ok((c, p))
    })?;
    println!("listening on {}", client_l.local_addr()?);
    let mut table = RpcTable::new();
    let rx = table.register::<Propose>(class::CLIENT);
    let transport = Transport::start(
        rt.handle(),
        TransportConfig::new(0, vec![String::new()]),
        Arc::new(table),
        peer_l,
        client_l,
    );
    let mut driver = Driver::new(transport, None);
    let mut fx: Effects<NoPeer> = Effects::default();
    while let Ok((src, m)) = rx.recv() {
        // Handle everything queued, then write once, as a replica's runtime does.
        for (src, m) in std::iter::once((src, m)).chain(rx.try_iter().take(8191)) {
            if let Source::Conn(conn) = src {
                let r = ProposeReply {
                    client: m.cmd.client,
                    seq: m.cmd.seq,
                    status: ReplyStatus::Ok,
                    leader: Some(0),
                    outcome: Outcome::default(),
                };
                fx.reply(conn, Reply::Propose(r));
            }
        }
        driver.carry_out(&mut fx)?;
    }
    Ok(())
}
