//! The accessors of a replica on the shared log, written once.

/// Defines, inside `impl Replica`, the accessors every replica on the shared
/// Multi-Paxos log has: its configuration, promise, commit and execution
/// points, log (and the answers to log requests and the simulator's
/// agreement check drawn from it) and state machine, and the quorum and
/// slot-window checks.
///
/// The replica has the fields `cfg` (a `Config` with `quorum()` and
/// `slot_window`), `promised`, `log` (a [`crate::log::Log`] of its `Slot`s),
/// `commit_index`, `executed`, `leader_hint` and `sm` (a `StateMachine`)
/// and the method `is_leader`; the names
/// `Config`, `Slot` and `StateMachine` are in scope where it is used.
#[macro_export]
macro_rules! replica_accessors {
    () => {
        /// The configuration.
        pub fn config(&self) -> &Config {
            &self.cfg
        }

        /// The highest ballot promised; never decreases.
        pub fn promised(&self) -> u64 {
            self.promised
        }

        /// Every slot below this is chosen (committed) here.
        pub fn commit_index(&self) -> u64 {
            self.commit_index
        }

        /// Every slot below this is executed here.
        pub fn executed(&self) -> u64 {
            self.executed
        }

        /// The slots held, from [`Self::log_base`] on: `log()[i]` is slot
        /// `log_base() + i` (the slots below are compacted away).
        pub fn log(&self) -> &[Slot] {
            self.log.slots()
        }

        /// The first slot held in memory; every slot below it is executed
        /// and compacted away.
        pub fn log_base(&self) -> u64 {
            self.log.base()
        }

        /// The replica believed to lead (this one when it leads).
        pub fn leader_hint(&self) -> Option<genericsmr::ReplicaId> {
            if self.is_leader() {
                Some(self.cfg.id)
            } else {
                self.leader_hint
            }
        }

        /// The answer to a log request: a digest of each non-empty slot
        /// held in the range asked for ([`crate::log::Log::answer`]).
        pub fn log_reply(
            &self,
            m: &genericsmr::messages::LogRequest,
        ) -> genericsmr::messages::LogReply {
            self.log.answer(m)
        }

        /// (slot, digest of its value) of every committed slot held from
        /// `from` on, for the simulator's agreement check.
        pub fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
            self.log.committed(from).collect()
        }

        /// Whether it takes client requests now: not while it leads with
        /// its pipeline full ([`Host::takes_proposals`](crate::multi::host::Host::takes_proposals)).
        pub fn accepting(&self) -> bool {
            $crate::multi::host::Host::takes_proposals(self)
        }

        /// The state machine.
        pub fn state(&self) -> &StateMachine {
            &self.sm
        }

        /// Whether `votes` (a bit set of replicas) is a majority.
        pub(crate) fn majority(&self, votes: u64) -> bool {
            votes.count_ones() as usize >= self.cfg.quorum()
        }

        /// Slot `slot`, created (with every slot before it) if past the
        /// end; `None` if compacted away (executed here: chosen, and nothing
        /// about it changes). Callers bound `slot` by the window first.
        pub(crate) fn slot_mut(&mut self, slot: u64) -> Option<&mut Slot> {
            self.log.create(slot)
        }

        /// Whether a slot number from a peer is within reach of the log
        /// (`Config::slot_window` past the commit index): keeps a confused or
        /// hostile peer from sizing it.
        pub(crate) fn slot_in_window(&self, slot: u64) -> bool {
            slot <= self.commit_index.saturating_add(self.cfg.slot_window)
        }
    };
}
