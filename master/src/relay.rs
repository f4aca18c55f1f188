//! Control requests relayed to one replica over its master link, and the
//! answers routed back to the client that asked.
//!
//! Every relayable request and its reply start with a `u64` nonce. The master
//! swaps the client's nonce for one of its own on the way out (two clients may
//! pick the same nonce) and swaps it back on the way in.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use genericsmr::messages::{Relay, RelayError, RELAYABLE};
use genericsmr::transport::ConnOutbox;
use genericsmr::wire::FRAME_HEADER_LEN;
use genericsmr::ReplicaId;

/// Requests unanswered for this long are forgotten (the client has given up).
const PATIENCE: Duration = Duration::from_secs(60);

struct Pending {
    client: Arc<ConnOutbox>,
    nonce: u64,
    replica: ReplicaId,
    since: Instant,
}

/// Relayed requests in flight.
#[derive(Default)]
pub struct Relays {
    next: u64,
    pending: HashMap<u64, Pending>,
}

fn nonce_of(body: &[u8]) -> Option<u64> {
    let b: [u8; 8] = body.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

fn with_nonce(body: &[u8], nonce: u64) -> BytesMut {
    let mut b = BytesMut::with_capacity(body.len());
    b.put_u64_le(nonce);
    b.extend_from_slice(&body[8..]);
    b
}

impl Relays {
    /// Sends `r` from `client` to the replica behind `link` (`None` if it is
    /// not connected). On failure, says why to the client and returns false.
    pub fn forward(
        &mut self,
        client: &Arc<ConnOutbox>,
        r: Relay,
        link: Option<Arc<ConnOutbox>>,
    ) -> bool {
        let Some(nonce) = nonce_of(&r.body) else {
            return false;
        };
        let refuse = |error: String| {
            client.push(&RelayError { nonce, error });
            false
        };
        if !RELAYABLE.contains(&r.code) {
            return refuse(format!(
                "message type {:#04x} cannot be relayed; relayable: status, log, fault and set-leader requests",
                r.code
            ));
        }
        let Some(link) = link else {
            return refuse(format!(
                "replica {} is not connected to the master; is it running (see `client status`)?",
                r.replica
            ));
        };
        self.next += 1;
        let id = self.next;
        let out = Relay {
            replica: r.replica,
            code: r.code,
            body: with_nonce(&r.body, id).freeze(),
        };
        if !link.push(&out) {
            return refuse(format!("replica {}'s master link just closed", r.replica));
        }
        self.pending.insert(
            id,
            Pending {
                client: client.clone(),
                nonce,
                replica: r.replica,
                since: Instant::now(),
            },
        );
        true
    }

    /// A reply of type `code` arrived from a replica: hand it to whoever asked.
    pub fn answer(&mut self, code: u8, body: &Bytes) {
        let Some(p) = nonce_of(body).and_then(|n| self.pending.remove(&n)) else {
            return;
        };
        let body = with_nonce(body, p.nonce);
        let mut frame = BytesMut::with_capacity(FRAME_HEADER_LEN + body.len());
        frame.put_u8(code);
        frame.put_u32_le(body.len() as u32);
        frame.extend_from_slice(&body);
        p.client.push_raw(&frame);
    }

    /// `replica`'s link closed: what it had not answered never will be.
    pub fn replica_gone(&mut self, replica: ReplicaId) {
        let gone: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.replica == replica)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(p) = self.pending.remove(&id) {
                p.client.push(&RelayError {
                    nonce: p.nonce,
                    error: format!("replica {replica}'s master link closed before it answered"),
                });
            }
        }
    }

    /// Forgets requests nobody waits for any more (set-leader has no reply).
    pub fn expire(&mut self, now: Instant) {
        self.pending
            .retain(|_, p| now.duration_since(p.since) < PATIENCE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genericsmr::messages::{codes, StatusRequest};
    use genericsmr::wire::Marshal;

    #[test]
    fn nonces_are_swapped_both_ways_and_unknown_codes_refused() {
        let client = Arc::new(ConnOutbox::new(true, 1 << 20));
        let link = Arc::new(ConnOutbox::new(true, 1 << 20));
        let mut rl = Relays::default();
        let mut body = BytesMut::new();
        StatusRequest { nonce: 42 }.marshal(&mut body);
        let req = Relay {
            replica: 1,
            code: codes::STATUS_REQUEST,
            body: body.freeze(),
        };
        assert!(rl.forward(&client, req.clone(), Some(link.clone())));
        let sent = rl.pending.keys().copied().next().unwrap();
        assert_ne!(sent, 42);
        let reply = with_nonce(&[0u8; 12], sent).freeze();
        rl.answer(codes::STATUS_REPLY, &reply);
        assert!(rl.pending.is_empty());
        // A second answer with the same nonce finds nobody and is ignored.
        rl.answer(codes::STATUS_REPLY, &reply);
        let bad = Relay {
            code: codes::PROPOSE,
            ..req.clone()
        };
        assert!(!rl.forward(&client, bad, Some(link)));
        assert!(!rl.forward(&client, req, None));
        assert!(rl.pending.is_empty());
        assert!(!rl.forward(
            &client,
            Relay {
                replica: 0,
                code: codes::STATUS_REQUEST,
                body: Bytes::from_static(&[1, 2]),
            },
            None
        ));
    }
}
