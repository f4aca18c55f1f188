//! Whom a leader's phase-2 messages go to.

use genericsmr::ReplicaId;

/// The peers a leader sends an Accept to: all of `peers` (a bit set), or
/// with `thrifty` sends a bare quorum's worth (`quorum - 1` of them, the
/// leader votes too), the first by `rank`, lowest first (ties by id).
/// Each protocol ranks its own way: Multi-Paxos prefers the peers heard
/// most recently, MDLin a stable set (its prefix rule wants followers that
/// see consecutive slots).
pub fn phase2_targets<K: Ord>(
    peers: u64,
    thrifty: bool,
    quorum: usize,
    rank: impl Fn(ReplicaId) -> K,
) -> u64 {
    if !thrifty {
        return peers;
    }
    let mut ids: Vec<ReplicaId> = (0..64u8).filter(|j| peers & (1u64 << j) != 0).collect();
    ids.sort_by_key(|j| rank(*j));
    ids.iter()
        .take(quorum.saturating_sub(1))
        .fold(0, |s, j| s | (1u64 << j))
}
