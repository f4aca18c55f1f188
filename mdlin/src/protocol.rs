//! MDLin on the protocol seam: how the runtime and the registry see
//! [`Replica`]. Its replicas talk over one mesh of every shard (global ids),
//! and its clients send chained multi-dispatch requests beside plain ones.

use genericsmr::effects::{Effects, Reply};
use genericsmr::knobs::Knobs;
use genericsmr::messages::{Ping, Pong, Propose};
use genericsmr::protocol::{
    Audit, BootError, Caps, ChainedOp, Executed, Protocol, Registrar, Settings,
};
use genericsmr::rpc_table::{class, Source};
use genericsmr::ConnId;

use crate::messages::*;
use crate::replica::{Config, CoordMode, Replica};
use paxos::multi::config::GroupConfig;

/// Parameters only MDLin has (`server --param NAME=VALUE`).
const PARAMS: [&str; 4] = ["coord", "coord-timeout-ms", "announce-ms", "keep-ms"];

impl Config {
    /// The configuration `s` asks for (the defaults of [`Config::new`] where
    /// it is silent).
    pub fn from_settings(s: &Settings) -> Result<Config, BootError> {
        s.check_params(Replica::NAME, &PARAMS)?;
        if s.broken.is_some() {
            return Err(BootError::Settings("MDLin has no broken variants".into()));
        }
        let mut cfg = Config::new(s.id, s.n, s.shards.max(1));
        if let Some(m) = s.param("coord") {
            cfg.mode = m.parse::<CoordMode>().map_err(BootError::Settings)?;
        }
        if let Some(ns) = ms_param(s, "coord-timeout-ms")? {
            cfg.coord_timeout_ns = ns;
        }
        if let Some(ns) = ms_param(s, "keep-ms")? {
            cfg.keep_ns = ns;
        }
        if let Some(ns) = ms_param(s, "announce-ms")? {
            cfg.announce_ns = ns;
        }
        cfg.group = GroupConfig::from_settings(s.id, s.n, s);
        s.apply(Knobs {
            record_commits: Some(&mut cfg.record_order),
            ..Knobs::default()
        });
        Ok(cfg)
    }
}

/// Parameter `name`, in milliseconds, as nanoseconds.
fn ms_param(s: &Settings, name: &str) -> Result<Option<u64>, BootError> {
    s.param(name)
        .map(|ms| {
            let ms: u64 = ms.parse().map_err(|_| {
                BootError::Settings(format!("{name} must be milliseconds, not {ms:?}"))
            })?;
            Ok(ms.saturating_mul(1_000_000))
        })
        .transpose()
}

impl Protocol for Replica {
    const NAME: &'static str = "mdlin";
    const ABOUT: &'static str =
        "MDLin: sharded Multi-Paxos with multi-dispatch linearizability across shards";
    // One mesh of every shard's replicas, and chained clients.
    const CAPS: Caps = Caps {
        sharded_mesh: true,
        multi_dispatch: true,
        ..Caps::ELECTED_LEADER
    };
    // Even seeds coordinate in fast mode, odd ones in safe mode.
    const SIM_VARIANTS: &'static [&'static [(&'static str, &'static str)]] =
        &[&[("coord", "fast")], &[("coord", "safe")]];
    type Msg = MdlMsg;

    const CODES: &'static [(u8, &'static str)] = &CODES;

    fn register(r: &mut Registrar<'_, MdlMsg>) {
        r.client(class::CLIENT, MdlMsg::Propose);
        // From clients, and from successor leaders retrying.
        r.client(class::CLIENT | class::PEER, MdlMsg::CoordReq);
        MdlMsg::register_peers(r);
    }

    // Without its votes it refuses to rejoin (the default): it has no
    // recovery protocol.
    genericsmr::inherent!(fresh);

    fn replay(&mut self, now: u64, records: &[bytes::Bytes]) -> Result<(), BootError> {
        self.restore(now, records)
            .map_err(|e| BootError::Replay(e.to_string()))
    }

    fn handle(&mut self, now: u64, src: Source, m: MdlMsg, fx: &mut Effects<MdlMsg>) {
        match (src, m) {
            (Source::Conn(c), MdlMsg::Propose(p)) => self.handle_propose(now, c, p, fx),
            (Source::Conn(_), MdlMsg::CoordReq(m)) => self.handle_coord_req(now, None, m, fx),
            (Source::Peer(from), m) => self.handle_peer(now, from, m, fx),
            // The rpc table takes no other message from a connection.
            (Source::Conn(_), _) => {}
        }
    }

    fn propose(&mut self, now: u64, conn: ConnId, p: Propose, fx: &mut Effects<MdlMsg>) {
        self.handle_plain_propose(now, conn, p, fx)
    }

    genericsmr::inherent!(be_leader, accepting, tick, flush);
    genericsmr::inherent!(status, log, committed_from, snapshot, snapshots);

    /// The probe also names every shard's leader, which coordination needs.
    fn ping(&mut self, conn: ConnId, p: Ping, fx: &mut Effects<MdlMsg>) {
        self.set_shard_leaders(&p.leaders);
        fx.reply(conn, Reply::Pong(Pong::of(&Replica::status(self, p.nonce))));
    }
    fn chained_request(op: &ChainedOp) -> Vec<(u8, MdlMsg)> {
        let pred = op.pred.map(|(seq, shard)| Pred { seq, shard });
        let mut out = vec![(
            op.shard,
            MdlMsg::Propose(MdlPropose {
                cmd: op.cmd.clone(),
                shard_seq: op.shard_seq,
                pred,
            }),
        )];
        // The predecessor's leader tells this operation's leader when to follow.
        if let Some(p) = pred {
            out.push((
                p.shard,
                MdlMsg::CoordReq(CoordReq {
                    pred: OpId {
                        client: op.cmd.client,
                        seq: p.seq,
                    },
                    succ: OpId::of(&op.cmd),
                    succ_shard: op.shard,
                }),
            ));
        }
        out
    }

    fn audit(&self) -> Audit {
        let executed = self
            .exec_order()
            .iter()
            .zip(self.exec_timestamps())
            .map(|(o, t)| Executed {
                client: o.client,
                seq: o.seq,
                stamp: *t,
            })
            .collect();
        let leading = self.is_leader() && self.in_flight() > 0;
        Audit {
            executed,
            in_flight: if leading { self.in_flight() } else { 0 },
            in_flight_detail: if leading {
                self.describe_in_flight()
            } else {
                String::new()
            },
        }
    }
}
