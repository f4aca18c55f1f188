//! Multi-Paxos messages generic over the slot value `V`.
//!
//! The messages that carry a value ([`Accept`], [`Commit`], [`SlotReport`])
//! are generic types: `Accept<Vec<Command>>` in Multi-Paxos,
//! `Accept<Entry>` in MDLin. Their wire codes come from the value type
//! ([`Codes`]), so each protocol keeps its own code range. The messages
//! without a value are declared by [`value_free_messages!`](crate::value_free_messages),
//! once per protocol under that protocol's codes.

use bytes::BytesMut;
use genericsmr::wire::{Marshal, Message, Reader, Unmarshal, WireError};

/// A slot value that travels in Multi-Paxos messages, with the wire codes of
/// the messages that carry it (each protocol has its own code range).
pub trait Codes: Marshal + Unmarshal + Send + 'static {
    /// Code of [`Accept`] carrying this value.
    const ACCEPT: u8;
    /// Code of [`Commit`] carrying this value.
    const COMMIT: u8;
    /// Code of [`PrepareReply`] carrying this value.
    const PREPARE_REPLY: u8;
}

/// Phase 2a: the leader asks acceptors to accept `cmds` in `slot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept<V> {
    /// The leader's ballot.
    pub ballot: u64,
    /// The log slot.
    pub slot: u64,
    /// The value proposed for the slot (a batch of commands, empty for a
    /// no-op, in Multi-Paxos; a journal entry in MDLin).
    pub cmds: V,
}

/// The value chosen for a slot, sent in full to replicas that may not hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit<V> {
    /// The sender's ballot (informational: the value is chosen whatever it is).
    pub ballot: u64,
    /// The slot.
    pub slot: u64,
    /// The chosen value.
    pub cmds: V,
}

/// What an acceptor holds for one slot, reported in phase 1 (and in MDLin's
/// catch-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotReport<V> {
    /// The slot.
    pub slot: u64,
    /// The ballot at which the acceptor accepted `cmds`.
    pub ballot: u64,
    /// Whether the acceptor knows `cmds` is chosen (then a candidate adopts it as is).
    pub committed: bool,
    /// The accepted value.
    pub cmds: V,
}

/// Phase 1b: an acceptor's promise (or refusal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareReply<V> {
    /// The ballot of the Prepare answered.
    pub ballot: u64,
    /// Whether the promise was given.
    pub ok: bool,
    /// The acceptor's highest promised ballot (higher than `ballot` on refusal).
    pub promised: u64,
    /// The acceptor's commit index, so the candidate learns how far the group got.
    pub commit_index: u64,
    /// Every non-empty slot at or after the prepare's `from_slot` (none on refusal).
    pub slots: Vec<SlotReport<V>>,
}

impl<V> PrepareReply<V> {
    /// The refusal of a Prepare at `ballot` by an acceptor that promised
    /// `promised` (or leads at it).
    pub fn refusal(ballot: u64, promised: u64, commit_index: u64) -> Self {
        PrepareReply {
            ballot,
            ok: false,
            promised,
            commit_index,
            slots: Vec::new(),
        }
    }
}

/// Whether an acceptor that promised `promised` refuses a Prepare or an
/// Accept at `ballot`: one below its promise, or one at its own ballot while
/// it leads (another replica cannot own it; a stale copy of its own).
pub fn refuses(ballot: u64, promised: u64, leading: bool) -> bool {
    ballot < promised || (ballot == promised && leading)
}

/// `genericsmr::wire_struct!` for a struct generic over the value `V`: the
/// fields written back to back, and with `= CODE, NAME` a message whose code
/// is the value's ([`Codes`]).
macro_rules! generic_wire_struct {
    ($ty:ident { $($field:ident: $fty:ty),* $(,)? }) => {
        impl<V: Marshal> Marshal for $ty<V> {
            #[inline]
            fn marshal(&self, buf: &mut BytesMut) {
                $( self.$field.marshal(buf); )*
            }
        }
        impl<V: Unmarshal> Unmarshal for $ty<V> {
            const MIN_ENCODED: usize = 0 $( + <$fty as Unmarshal>::MIN_ENCODED )*;
            fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
                Ok($ty { $( $field: <$fty as Unmarshal>::unmarshal(r)?, )* })
            }
        }
    };
    ($ty:ident { $($field:ident: $fty:ty),* $(,)? } = $code:ident) => {
        generic_wire_struct!($ty { $($field: $fty),* });
        impl<V: Codes> Message for $ty<V> {
            const CODE: u8 = V::$code;
            const NAME: &'static str = stringify!($ty);
        }
    };
}

generic_wire_struct!(
    Accept {
        ballot: u64,
        slot: u64,
        cmds: V
    } = ACCEPT
);
generic_wire_struct!(
    Commit {
        ballot: u64,
        slot: u64,
        cmds: V
    } = COMMIT
);
generic_wire_struct!(SlotReport {
    slot: u64,
    ballot: u64,
    committed: bool,
    cmds: V
});
generic_wire_struct!(
    PrepareReply {
        ballot: u64,
        ok: bool,
        promised: u64,
        commit_index: u64,
        slots: Vec<SlotReport<V>>
    } = PREPARE_REPLY
);

/// What an acceptor's AcceptReply says, whatever the protocol's type for it
/// (each declares its own by [`value_free_messages!`](crate::value_free_messages),
/// which converts it to this): the leader counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    /// The ballot of the accept answered.
    pub ballot: u64,
    /// The slot answered.
    pub slot: u64,
    /// Whether the acceptor accepted.
    pub ok: bool,
    /// The acceptor's promised ballot (above `ballot` on refusal).
    pub promised: u64,
}

/// Declares the Multi-Paxos messages that carry no slot value (`Prepare`,
/// `AcceptReply`, `CommitShort`, `CatchupRequest`) in the calling module,
/// under the caller's wire codes: one declaration for every protocol on the
/// shared log. The caller depends on `genericsmr` and `bytes`.
#[macro_export]
macro_rules! value_free_messages {
    (
        prepare = $prepare:expr,
        accept_reply = $accept_reply:expr,
        commit_short = $commit_short:expr,
        catchup_request = $catchup_request:expr $(,)?
    ) => {
        /// Phase 1a: a candidate asks for promises for every slot from `from_slot` on.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Prepare {
            /// The candidate's ballot.
            pub ballot: u64,
            /// The candidate's first unchosen slot; acceptors report what they hold from here on.
            pub from_slot: u64,
        }
        ::genericsmr::wire_struct!(Prepare { ballot, from_slot } = $prepare);

        /// Phase 2b: an acceptor's vote (or refusal) on one slot.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct AcceptReply {
            /// The ballot of the accept answered.
            pub ballot: u64,
            /// The slot answered.
            pub slot: u64,
            /// Whether the acceptor accepted.
            pub ok: bool,
            /// The acceptor's promised ballot; above `ballot` on refusal,
            /// telling the leader to step down.
            pub promised: u64,
        }
        impl AcceptReply {
            /// The answer to an accept at `ballot` for `slot` by an acceptor
            /// that promised `promised`: a vote when `ok`, else a refusal.
            pub fn answer(ballot: u64, slot: u64, ok: bool, promised: u64) -> Self {
                AcceptReply {
                    ok,
                    promised,
                    ballot,
                    slot,
                }
            }
        }
        impl From<AcceptReply> for $crate::multi::messages::Vote {
            #[inline]
            fn from(m: AcceptReply) -> Self {
                $crate::multi::messages::Vote {
                    ballot: m.ballot,
                    slot: m.slot,
                    ok: m.ok,
                    promised: m.promised,
                }
            }
        }
        ::genericsmr::wire_struct!(
            AcceptReply {
                ballot,
                slot,
                ok,
                promised
            } = $accept_reply
        );

        /// Every slot below `up_to` is chosen. Doubles as the leader's heartbeat.
        ///
        /// A receiver that accepted a slot at exactly `ballot` holds the chosen
        /// value: the sender proposed it, and a leader whose own proposal is
        /// overruled by a value chosen at a higher ballot steps down instead of
        /// announcing it. (A vote at a ballot above `ballot` proves nothing: the
        /// sender may have learned the slot was chosen at a still higher
        /// ballot.) For any other slot it fetches the value through catch-up.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct CommitShort {
            /// The leader's ballot.
            pub ballot: u64,
            /// Exclusive bound of the chosen prefix.
            pub up_to: u64,
        }
        ::genericsmr::wire_struct!(CommitShort { ballot, up_to } = $commit_short);

        /// A lagging replica asks for chosen slots from `from_slot` on.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct CatchupRequest {
            /// First slot wanted.
            pub from_slot: u64,
            /// Most slots wanted in one reply.
            pub max: u32,
        }
        ::genericsmr::wire_struct!(CatchupRequest { from_slot, max } = $catchup_request);
    };
}

/// A protocol's peer message enum as the shared Multi-Paxos steps and tests
/// see it: a constructor for each message every protocol on the shared log
/// exchanges. [`peer_messages!`](crate::peer_messages) implements it.
pub trait SharedMessages: Sized {
    /// The slot value its messages carry.
    type Value;
    /// Phase 1a: a candidate at `ballot` asks for promises from `from_slot` on.
    fn prepare(ballot: u64, from_slot: u64) -> Self;
    /// Phase 1b: a promise or a refusal.
    fn prepare_reply(r: PrepareReply<Self::Value>) -> Self;
    /// Phase 2a: the leader proposes a value for a slot.
    fn accept(a: Accept<Self::Value>) -> Self;
    /// Phase 2b: a vote (`ok`) or a refusal on `slot` at `ballot` by an
    /// acceptor that promised `promised`.
    fn accept_reply(ballot: u64, slot: u64, ok: bool, promised: u64) -> Self;
    /// A chosen value, in full.
    fn commit(c: Commit<Self::Value>) -> Self;
    /// Every slot below `up_to` is chosen (the leader's heartbeat at `ballot`).
    fn commit_short(ballot: u64, up_to: u64) -> Self;
    /// A lagging replica asks for at most `max` chosen slots from `from_slot` on.
    fn catchup_request(from_slot: u64, max: u32) -> Self;
    /// The shared snapshot messages of [`genericsmr::snapshot`], in the
    /// order [`genericsmr::protocol::Registrar::snapshots`] takes them.
    #[allow(clippy::type_complexity)]
    fn snapshot_variants() -> (
        fn(genericsmr::snapshot::Compacted) -> Self,
        fn(genericsmr::snapshot::SnapshotRequest) -> Self,
        fn(genericsmr::snapshot::SnapshotChunk) -> Self,
    );
}

/// The slot value a generic message carries (for [`peer_messages!`](crate::peer_messages),
/// which knows a protocol's `Accept` only by name).
pub trait Carries {
    /// The slot value.
    type Value;
}

impl<V> Carries for Accept<V> {
    type Value = V;
}

/// Declares a protocol's peer message enum `$name` and its
/// [`Frame`](genericsmr::wire::Frame) encoding: first the protocol's own
/// variants listed before the `;` (those it registers itself, such as
/// messages from clients), then the messages every protocol on the shared
/// log exchanges (Prepare, PrepareReply, Accept, AcceptReply, Commit,
/// CommitShort, CatchupRequest; each is the type of that name in scope
/// where it is used), then its own peer messages listed after the `;`, then
/// the snapshot messages (Compacted, SnapshotRequest, SnapshotChunk). It
/// also declares `CODES`, every message's code and name in that order (each
/// protocol's table starts at its base code), implements [`SharedMessages`]
/// for the enum, and gives it `register_peers`, which registers every
/// variant but those before the `;` as a message between replicas.
#[macro_export]
macro_rules! peer_messages {
    (
        $(#[$m:meta])* $name:ident {
            $($(#[$fm:meta])* $f:ident($ft:ty),)*
            ;
            $($(#[$vm:meta])* $v:ident($t:ty)),* $(,)?
        }
    ) => {
        $crate::peer_messages!(@enum $(#[$m])* $name {
            $($(#[$fm])* $f($ft),)*
            /// Phase 1a: a candidate asks for promises.
            Prepare(Prepare),
            /// Phase 1b: a promise (with the slots held) or a refusal.
            PrepareReply(PrepareReply),
            /// Phase 2a: the leader proposes a value for a slot.
            Accept(Accept),
            /// Phase 2b: a vote or a refusal.
            AcceptReply(AcceptReply),
            /// A chosen value, in full.
            Commit(Commit),
            /// A chosen prefix; the leader's heartbeat.
            CommitShort(CommitShort),
            /// A lagging replica asks for chosen slots.
            CatchupRequest(CatchupRequest),
            $($(#[$vm])* $v($t),)*
            /// What was asked for is compacted at the sender (shared code 0x21).
            Compacted(Compacted),
            /// A request for the sender's snapshot (shared code 0x22).
            SnapshotRequest(SnapshotRequest),
            /// A piece of a snapshot (shared code 0x23).
            SnapshotChunk(SnapshotChunk),
        });

        impl $name {
            /// Registers every message between replicas: the shared
            /// Multi-Paxos messages, the protocol's own peer messages and
            /// the snapshot messages (a protocol registers the rest, such
            /// as its client messages, itself).
            pub fn register_peers(r: &mut ::genericsmr::protocol::Registrar<'_, $name>) {
                r.peer($name::Prepare);
                r.peer($name::PrepareReply);
                r.peer($name::Accept);
                r.peer($name::AcceptReply);
                r.peer($name::Commit);
                r.peer($name::CommitShort);
                r.peer($name::CatchupRequest);
                $( r.peer($name::$v); )*
                r.snapshots($name::Compacted, $name::SnapshotRequest, $name::SnapshotChunk);
            }
        }

        impl $crate::multi::messages::SharedMessages for $name {
            type Value = <Accept as $crate::multi::messages::Carries>::Value;
            fn prepare(ballot: u64, from_slot: u64) -> Self {
                $name::Prepare(Prepare { ballot, from_slot })
            }
            fn prepare_reply(r: PrepareReply) -> Self {
                $name::PrepareReply(r)
            }
            fn accept(a: Accept) -> Self {
                $name::Accept(a)
            }
            fn accept_reply(ballot: u64, slot: u64, ok: bool, promised: u64) -> Self {
                $name::AcceptReply(AcceptReply::answer(ballot, slot, ok, promised))
            }
            fn commit(c: Commit) -> Self {
                $name::Commit(c)
            }
            fn commit_short(ballot: u64, up_to: u64) -> Self {
                $name::CommitShort(CommitShort { ballot, up_to })
            }
            fn catchup_request(from_slot: u64, max: u32) -> Self {
                $name::CatchupRequest(CatchupRequest { from_slot, max })
            }
            fn snapshot_variants() -> (
                fn(Compacted) -> Self,
                fn(SnapshotRequest) -> Self,
                fn(SnapshotChunk) -> Self,
            ) {
                ($name::Compacted, $name::SnapshotRequest, $name::SnapshotChunk)
            }
        }
    };
    (@enum $(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident($t:ty),)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vm])* $v($t),)*
        }

        impl ::genericsmr::wire::Frame for $name {
            fn encode_frame(&self, out: &mut ::bytes::BytesMut) {
                match self {
                    $($name::$v(m) => ::genericsmr::wire::Frame::encode_frame(m, out),)*
                }
            }
        }

        /// The code and name of every message, in the order of the enum,
        /// for documentation and tests.
        pub const CODES: [(u8, &str); [$(stringify!($v)),*].len()] =
            ::genericsmr::message_codes![$($t),*];
    };
}
