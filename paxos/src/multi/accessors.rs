//! The accessors of a replica on the shared log, written once.

/// Defines, inside `impl Replica`, the accessors every replica on the shared
/// Multi-Paxos log has: its configuration, promise, commit and execution
/// points, log (and the answers to log requests and the simulator's
/// agreement check drawn from it) and state machine, and the quorum and
/// slot-window checks.
///
/// The replica has the fields `cfg` (a `Config` with `quorum()` and
/// `slot_window`) and `px` (a [`crate::multi::state::State`] of its slot
/// value), the method `is_leader` and an implementation of
/// [`crate::multi::snapshot::Snapshots`]; the names `Config`, `Slot` and
/// `StateMachine` are in scope where it is used.
#[macro_export]
macro_rules! replica_accessors {
    () => {
        /// The configuration.
        pub fn config(&self) -> &Config {
            &self.cfg
        }

        /// The highest ballot promised; never decreases.
        pub fn promised(&self) -> u64 {
            self.px.promised
        }

        /// Every slot below this is chosen (committed) here.
        pub fn commit_index(&self) -> u64 {
            self.px.commit_index
        }

        /// Every slot below this is executed here.
        pub fn executed(&self) -> u64 {
            self.px.executed
        }

        /// The slots held, from [`Self::log_base`] on: `log()[i]` is slot
        /// `log_base() + i` (the slots below are compacted away).
        pub fn log(&self) -> &[Slot] {
            self.px.log.slots()
        }

        /// The first slot held in memory; every slot below it is executed
        /// and compacted away.
        pub fn log_base(&self) -> u64 {
            self.px.log.base()
        }

        /// The replica believed to lead (this one when it leads).
        pub fn leader_hint(&self) -> Option<genericsmr::ReplicaId> {
            if self.is_leader() {
                Some(self.cfg.group.id)
            } else {
                self.px.leader_hint
            }
        }

        /// The answer to a log request: a digest of each non-empty slot
        /// held in the range asked for ([`crate::log::Log::answer`]).
        pub fn log_reply(
            &self,
            m: &genericsmr::messages::LogRequest,
        ) -> genericsmr::messages::LogReply {
            self.px.log.answer(m)
        }

        /// (slot, digest of its value) of every committed slot held from
        /// `from` on, for the simulator's agreement check.
        pub fn committed_from(&self, from: u64) -> Vec<(u64, u64)> {
            self.px.log.committed(from).collect()
        }

        /// Whether it takes client requests now: not while it leads with
        /// its pipeline full ([`Host::takes_proposals`](crate::multi::host::Host::takes_proposals)).
        pub fn accepting(&self) -> bool {
            $crate::multi::host::Host::takes_proposals(self)
        }

        /// The state machine.
        pub fn state(&self) -> &StateMachine {
            &self.px.sm
        }

        /// This replica's snapshot: its state at its executed point (see
        /// [`Snapshots::current_snapshot`]($crate::multi::snapshot::Snapshots::current_snapshot)).
        pub fn snapshot(&self) -> genericsmr::snapshot::Snapshot {
            $crate::multi::snapshot::Snapshots::current_snapshot(self)
        }

        /// Snapshots installed from peers, snapshots sent to peers, and
        /// compactions of this replica's log.
        pub fn snapshots(&self) -> (u64, u64, u64) {
            let p = &self.px;
            (p.snapshots_installed, p.snapshots_sent, p.compactions)
        }

        /// Slot `slot`, created (with every slot before it) if past the
        /// end; `None` if compacted away (executed here: chosen, and nothing
        /// about it changes). Callers bound `slot` by the window first.
        pub(crate) fn slot_mut(&mut self, slot: u64) -> Option<&mut Slot> {
            self.px.log.create(slot)
        }

        /// Whether a slot number from a peer is within reach of the log
        /// (`GroupConfig::slot_window` past the commit index): keeps a confused or
        /// hostile peer from sizing it.
        pub(crate) fn slot_in_window(&self, slot: u64) -> bool {
            slot <= self
                .px
                .commit_index
                .saturating_add(self.cfg.group.slot_window)
        }
    };
}
