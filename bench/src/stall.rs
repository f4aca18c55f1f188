//! When a load client gives up on a connection. A request unanswered past
//! the attempt timeout means one of two things: the replica is gone or no
//! longer leads (nothing comes back on the connection at all), or it is
//! busy and the request waits in its queue and in TCP behind others (replies
//! keep coming). Only the first is worth a new connection; tearing down a
//! busy one and resending everything outstanding on a new one makes the
//! replica execute (and answer again) thousands of requests it already had,
//! so a load above capacity would lose most of its goodput to resends.

/// What a client does, at a tick, about one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stall {
    /// Nothing waits past the attempt timeout.
    Wait,
    /// The oldest request waits past it, but the connection still brings
    /// replies: resend that request alone (same id, answered at most once),
    /// in case the replica lost it (a leader that stepped down and was
    /// elected again drops what it had not placed). At most one such resend
    /// per attempt timeout and connection: under a load above capacity every
    /// request waits past the timeout, and resending each would double it.
    Resend,
    /// Nothing came back for the attempt timeout: a new connection, to the
    /// (possibly new) leader, with everything outstanding resent.
    Reconnect,
}

/// When a connection last did something: opened or brought a reply
/// (`heard_ns`), and opened or resent a request alone (`resent_ns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Heard {
    /// When it opened or last brought a reply.
    pub heard_ns: u64,
    /// When it opened or last resent a request alone.
    pub resent_ns: u64,
}

impl Heard {
    /// A connection opened at `now_ns`.
    pub fn opened(now_ns: u64) -> Heard {
        Heard {
            heard_ns: now_ns,
            resent_ns: now_ns,
        }
    }

    /// The decision at `now_ns` for this connection, whose longest-waiting
    /// request was last sent at `oldest_sent_ns` (none: nothing
    /// outstanding); a resend is noted.
    pub fn stall(&mut self, oldest_sent_ns: Option<u64>, now_ns: u64, attempt_ns: u64) -> Stall {
        let late = |t: u64| now_ns.saturating_sub(t) > attempt_ns;
        match oldest_sent_ns {
            Some(sent) if late(sent) => {
                if late(self.heard_ns) {
                    Stall::Reconnect
                } else if late(self.resent_ns) {
                    self.resent_ns = now_ns;
                    Stall::Resend
                } else {
                    Stall::Wait
                }
            }
            _ => Stall::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_busy_connection_is_kept_and_a_silent_one_is_replaced() {
        let attempt = 1_000 * MS;
        let mut h = Heard::opened(0);
        // Nothing outstanding, or nothing late.
        assert_eq!(h.stall(None, 5_000 * MS, attempt), Stall::Wait);
        h.heard_ns = 4_990 * MS;
        assert_eq!(h.stall(Some(4_500 * MS), 5_000 * MS, attempt), Stall::Wait);
        // Late, but a reply came 10 ms ago: the replica is busy, not gone;
        // the oldest request is resent once, and no other for a timeout.
        assert_eq!(
            h.stall(Some(3_000 * MS), 5_000 * MS, attempt),
            Stall::Resend
        );
        assert_eq!(h.stall(Some(3_010 * MS), 5_010 * MS, attempt), Stall::Wait);
        h.heard_ns = 5_990 * MS;
        assert_eq!(
            h.stall(Some(3_020 * MS), 6_001 * MS, attempt),
            Stall::Resend
        );
        // Late, and silent for longer than the attempt timeout.
        assert_eq!(
            h.stall(Some(3_030 * MS), 7_000 * MS, attempt),
            Stall::Reconnect
        );
    }
}
