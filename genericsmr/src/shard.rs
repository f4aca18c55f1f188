//! Sharded deployments: S shards of N replicas each.
//!
//! Replicas have *global* ids `g` in `0..S*N`: replica `g` belongs to shard
//! `g / N` and has the *local* id `g % N` inside it. The master, clients and
//! operators name replicas by global id; a protocol whose groups are single
//! shards (Multi-Paxos, EPaxos) runs its core over the shard's N replicas
//! with local ids. A single-shard deployment (S = 1) has global id = local id.
//!
//! Keys map to shards by [`shard_of`], one function shared by every client and
//! replica (documented in docs/wire.md so that clients in other languages can
//! compute it).

use crate::ReplicaId;

/// The shard that owns `key` in a deployment of `shards` shards:
/// `xxh3_64(key) % shards` (XXH3, 64-bit, seed 0, over the key's bytes).
/// With `shards` 0 or 1 every key belongs to shard 0.
pub fn shard_of(key: &[u8], shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    (xxhash_rust::xxh3::xxh3_64(key) % shards as u64) as u32
}

/// The shard of the replica with global id `g`, in shards of `n` replicas.
pub fn shard_of_replica(g: ReplicaId, n: usize) -> usize {
    g as usize / n.max(1)
}

/// The local id (index inside its shard) of the replica with global id `g`.
pub fn local_id(g: ReplicaId, n: usize) -> ReplicaId {
    (g as usize % n.max(1)) as ReplicaId
}

/// The global id of local replica `local` of shard `shard`, in shards of `n`.
pub fn global_id(shard: usize, local: ReplicaId, n: usize) -> ReplicaId {
    (shard * n + local as usize) as ReplicaId
}

/// The global ids of the replicas of shard `shard`, in shards of `n`.
pub fn members(shard: usize, n: usize) -> std::ops::Range<usize> {
    shard * n..(shard + 1) * n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key-to-shard map is part of the wire contract: clients in other
    /// languages compute it. These values must never change.
    #[test]
    fn the_map_is_stable() {
        // xxh3_64 itself, against the reference implementation's values.
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2d06_8005_38d3_94c2);
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b"a"), 0xe6c6_32b6_1e96_4e1f);
        assert_eq!(
            xxhash_rust::xxh3::xxh3_64(b"greeting"),
            0x1fc8_09e0_902f_8741
        );
        let pinned: [(&[u8], u32, u32); 12] = [
            (b"", 2, 0),
            (b"", 3, 1),
            (b"", 7, 4),
            (b"a", 2, 1),
            (b"a", 3, 1),
            (b"k0", 3, 1),
            (b"k0", 7, 3),
            (b"greeting", 2, 1),
            (b"greeting", 3, 0),
            (b"greeting", 7, 2),
            (b"user:42", 3, 0),
            (b"user:42", 7, 4),
        ];
        for (key, shards, want) in pinned {
            assert_eq!(shard_of(key, shards), want, "key {key:?}, {shards} shards");
        }
    }

    #[test]
    fn one_shard_holds_everything_and_ids_split() {
        assert_eq!(shard_of(b"anything", 1), 0);
        assert_eq!(shard_of(b"anything", 0), 0);
        assert_eq!(shard_of_replica(7, 3), 2);
        assert_eq!(local_id(7, 3), 1);
        assert_eq!(global_id(2, 1, 3), 7);
        assert_eq!(members(1, 3), 3..6);
        // Keys spread over every shard.
        let mut seen = [0usize; 3];
        for i in 0..3000 {
            seen[shard_of(format!("k{i}").as_bytes(), 3) as usize] += 1;
        }
        assert!(seen.iter().all(|c| (800..1200).contains(c)), "{seen:?}");
    }
}
