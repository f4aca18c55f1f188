//! The rpc table: type code -> decoder -> the channel of that message type.
//!
//! A protocol registers each message type once and receives the
//! `crossbeam_channel::Receiver` it will read that type from. The transport
//! calls [`RpcTable::dispatch`] for every frame; unknown codes, codes not allowed
//! on that kind of connection and decode errors come back as errors, and the
//! transport closes the connection. They never reach a protocol.

use bytes::Bytes;
use crossbeam_channel::{unbounded, Receiver, Sender};

use crate::wire::{decode_body, Message, WireError};
use crate::{ConnId, ReplicaId};

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Another replica of the group.
    Peer(ReplicaId),
    /// A client or master connection; replies go back on it.
    Conn(ConnId),
}

impl Source {
    /// The sending replica (`u8::MAX` for a connection: the rpc table routes
    /// peer message types only from peer connections, so cores never see it).
    pub fn peer_id(self) -> ReplicaId {
        match self {
            Source::Peer(p) => p,
            Source::Conn(_) => ReplicaId::MAX,
        }
    }

    /// The connection to answer on (`u64::MAX` for a peer, which is never
    /// answered this way).
    pub fn conn_id(self) -> ConnId {
        match self {
            Source::Conn(c) => c,
            Source::Peer(_) => ConnId::MAX,
        }
    }
}

/// The kinds of connection, as a bit set of where a code is accepted.
pub mod class {
    /// The client listener.
    pub const CLIENT: u8 = 1;
    /// The peer listener (after the hello).
    pub const PEER: u8 = 2;
    /// The replica's link to the master.
    pub const MASTER: u8 = 4;

    /// Name of a single class, for error messages.
    pub fn name(c: u8) -> &'static str {
        match c {
            CLIENT => "client",
            PEER => "peer",
            MASTER => "master",
            _ => "mixed",
        }
    }
}

type Decoder = Box<dyn Fn(Source, Bytes) -> Result<(), WireError> + Send + Sync>;

struct Entry {
    name: &'static str,
    classes: u8,
    decode: Decoder,
}

/// Maps type codes to decoders that feed one channel per message type.
#[derive(Default)]
pub struct RpcTable {
    entries: Vec<Option<Entry>>,
    /// The bound on the lane client requests go to, if the runtime set one.
    gate: Option<std::sync::Arc<crate::gate::ClientGate>>,
}

impl RpcTable {
    /// An empty table.
    pub fn new() -> Self {
        RpcTable {
            entries: (0..256).map(|_| None).collect(),
            gate: None,
        }
    }

    /// Sets the gate client connections wait on before each frame (see
    /// [`crate::gate`]).
    pub fn set_client_gate(&mut self, gate: std::sync::Arc<crate::gate::ClientGate>) {
        self.gate = Some(gate);
    }

    /// The gate client connections wait on, if any.
    pub fn client_gate(&self) -> Option<&crate::gate::ClientGate> {
        self.gate.as_deref()
    }

    /// Registers message type `M`, accepted on connections of `classes`, and returns
    /// the receiving end of its channel.
    ///
    /// # Panics
    /// If `M::CODE` is already registered: that is a programming error caught at start.
    pub fn register<M: Message + 'static>(&mut self, classes: u8) -> Receiver<(Source, M)> {
        let (tx, rx): (Sender<(Source, M)>, _) = unbounded();
        self.register_into(classes, tx, |m| m);
        rx
    }

    /// Registers message type `M`, accepted on connections of `classes`,
    /// into an existing channel (a lane several types share), each message
    /// wrapped by `wrap`.
    ///
    /// # Panics
    /// If `M::CODE` is already registered: that is a programming error caught at start.
    pub fn register_into<M: Message + 'static, L: Send + 'static>(
        &mut self,
        classes: u8,
        tx: Sender<(Source, L)>,
        wrap: impl Fn(M) -> L + Send + Sync + 'static,
    ) {
        let slot = &mut self.entries[M::CODE as usize];
        assert!(
            slot.is_none(),
            "type code {:#04x} registered twice",
            M::CODE
        );
        *slot = Some(Entry {
            name: M::NAME,
            classes,
            decode: Box::new(move |src, body| {
                let msg = decode_body::<M>(body)?;
                // A closed receiver means the protocol is shutting down: drop quietly.
                let _ = tx.send((src, wrap(msg)));
                Ok(())
            }),
        });
    }

    /// Decodes one frame body and forwards it to its channel.
    pub fn dispatch(&self, on: u8, src: Source, code: u8, body: Bytes) -> Result<(), WireError> {
        let e = self.entries[code as usize]
            .as_ref()
            .ok_or(WireError::UnknownType(code))?;
        if e.classes & on == 0 {
            return Err(WireError::WrongClass {
                code,
                name: e.name,
                class: class::name(on),
            });
        }
        (e.decode)(src, body)
    }

    /// The registered name of a code, if any.
    pub fn name(&self, code: u8) -> Option<&'static str> {
        self.entries[code as usize].as_ref().map(|e| e.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Ping, StatusRequest};
    use crate::wire::frame_bytes;

    #[test]
    fn dispatch_routes_by_code_and_class() {
        let mut t = RpcTable::new();
        let rx = t.register::<StatusRequest>(class::CLIENT);
        let f = frame_bytes(&StatusRequest { nonce: 7 });
        let body = f.slice(5..);
        t.dispatch(class::CLIENT, Source::Conn(1), f[0], body.clone())
            .unwrap();
        assert_eq!(rx.try_recv().unwrap().1.nonce, 7);
        assert!(matches!(
            t.dispatch(class::PEER, Source::Peer(0), f[0], body),
            Err(WireError::WrongClass { .. })
        ));
        let p = frame_bytes(&Ping {
            nonce: 1,
            leaders: Vec::new(),
        });
        assert_eq!(
            t.dispatch(class::CLIENT, Source::Conn(1), p[0], p.slice(5..)),
            Err(WireError::UnknownType(p[0]))
        );
    }
}
