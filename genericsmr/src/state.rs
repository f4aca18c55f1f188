//! The replicated key-value state machine, its digest and the per-client dedup table.
//!
//! Every protocol executes the same commands in the same order through
//! [`StateMachine::execute`], so two replicas whose [`StateMachine::digest`]
//! agree hold the same key-value state.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64};

use crate::command::{ClientId, Command, Op, Outcome};
use crate::wire::{Marshal, Reader, Unmarshal, WireError};

/// Bytes stored in the map: short strings inline (no pointer to chase, no
/// reference count to touch), longer ones as an `Arc<[u8]>` of their own. Most keys and
/// values of a benchmark are short, and the store is the part of execution
/// that touches memory at random. The long form's pointer is two words, so
/// the type stays at 32 bytes and a key-value pair fills exactly one 64-byte
/// cache line: a lookup in a large store costs one miss for the pair, not
/// two. Copying the store for a snapshot ([`crate::snapshot::Capture`])
/// then costs one reference count per long value, not an allocation.
///
/// The long form is a copy, never a slice of what it came from: a decoded
/// command's key and value are slices of the connection's read buffer (64 KB
/// or a whole batch frame) or of a snapshot image, and one value kept in the
/// store would keep that whole buffer alive for as long as the key is not
/// overwritten.
#[derive(Clone)]
enum Compact {
    Inline { len: u8, data: [u8; INLINE] },
    Shared(std::sync::Arc<[u8]>),
}

const INLINE: usize = 30;
const _: () = assert!(std::mem::size_of::<Compact>() == 32);

impl Compact {
    fn new(b: &Bytes) -> Compact {
        if b.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..b.len()].copy_from_slice(b);
            Compact::Inline {
                len: b.len() as u8,
                data,
            }
        } else {
            Compact::Shared(std::sync::Arc::from(&b[..]))
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Compact::Inline { len, data } => &data[..*len as usize],
            Compact::Shared(b) => b,
        }
    }

    fn to_bytes(&self) -> Bytes {
        match self {
            Compact::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            Compact::Shared(b) => Bytes::from_owner(b.clone()),
        }
    }
}

/// A copy of `b` that shares no buffer with it, for bytes kept long after the
/// message they arrived in (see [`Compact`]).
fn owned(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

impl std::fmt::Debug for Compact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

impl PartialEq for Compact {
    fn eq(&self, o: &Self) -> bool {
        self.as_slice() == o.as_slice()
    }
}
impl Eq for Compact {}

/// Hashes like `[u8]`, as `Borrow<[u8]>` requires.
impl std::hash::Hash for Compact {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_slice().hash(h)
    }
}

impl std::borrow::Borrow<[u8]> for Compact {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

/// The plain key-value map with an order-independent digest kept up to date.
#[derive(Debug, Default, Clone)]
pub struct KvStore {
    /// aHash: several times faster than SipHash on short keys, and still seeded
    /// at random, so clients cannot choose colliding keys.
    map: HashMap<Compact, Compact, ahash::RandomState>,
    digest: u128,
    /// Bytes of every key and value held: what a snapshot's image will
    /// roughly take, known without a pass over the map.
    bytes: usize,
}

/// Hash of one key-value pair: the value hashed with the key's hash as seed, so
/// (key, value) pairs cannot collide by shifting bytes between the two.
fn entry_hash(key: &[u8], value: &[u8]) -> u128 {
    xxh3_128_with_seed(value, xxh3_64(key))
}

impl KvStore {
    /// Reads a key.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(Compact::as_slice)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Stores `value` under `key`; the value replaced, if `keep` asks for it.
    fn set(&mut self, key: &Bytes, value: &Bytes, keep: bool) -> Option<Bytes> {
        self.digest ^= entry_hash(key, value);
        self.bytes += value.len();
        // One probe whether the key is new or not: the store is large and
        // every probe is a likely cache miss.
        match self.map.entry(Compact::new(key)) {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let old = std::mem::replace(o.get_mut(), Compact::new(value));
                self.digest ^= entry_hash(key, old.as_slice());
                self.bytes -= old.as_slice().len();
                keep.then(|| old.to_bytes())
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                self.bytes += key.len();
                v.insert(Compact::new(value));
                None
            }
        }
    }

    fn remove(&mut self, key: &[u8]) -> Option<Bytes> {
        let old = self.map.remove(key).map(|o| o.to_bytes());
        if let Some(o) = &old {
            self.digest ^= entry_hash(key, o);
            self.bytes -= key.len() + o.len();
        }
        old
    }

    /// Applies one command and returns its outcome. No dedup here.
    pub fn apply(&mut self, cmd: &Command) -> Outcome {
        self.apply_with(cmd, true)
    }

    /// [`KvStore::apply`], reporting the value a put replaced only if `keep`.
    fn apply_with(&mut self, cmd: &Command, keep: bool) -> Outcome {
        match cmd.op {
            Op::Noop => Outcome::default(),
            Op::Get => Outcome {
                value: self.map.get(&cmd.key[..]).map(Compact::to_bytes),
                flag: false,
            },
            Op::Put => Outcome {
                value: self.set(&cmd.key, &cmd.value, keep),
                flag: false,
            },
            Op::Delete => {
                let old = self.remove(&cmd.key);
                Outcome {
                    flag: old.is_some(),
                    value: old,
                }
            }
            Op::Cas => {
                let cur = self.map.get(&cmd.key[..]).map(Compact::to_bytes);
                if cur == cmd.expected {
                    self.set(&cmd.key, &cmd.value, false);
                    Outcome {
                        value: cur,
                        flag: true,
                    }
                } else {
                    Outcome {
                        value: cur,
                        flag: false,
                    }
                }
            }
        }
    }

    /// A 128-bit digest of the whole map, independent of insertion order.
    pub fn digest(&self) -> u128 {
        self.digest
    }

    /// Bytes of every key and value held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One client's entry in the dedup table: which of its sequence numbers ran
/// here, and the results it has not yet acknowledged.
///
/// Two questions with two answers kept apart:
///
/// - **Did (client, seq) run here?** Every sequence number below `floor` ran,
///   and so did those in the `ran` ranges above it. This is what decides
///   whether a command is applied, so it depends only on the commands this
///   replica executed, never on the client's acknowledgement: a protocol that
///   answers at commit may execute a client's later command (which
///   acknowledges the earlier one) before the earlier one on some replica,
///   and the earlier one must still run there. A client's numbers rise one by
///   one, so `ran` is empty or holds a few ranges around gaps; past
///   [`Limits::max_gaps`] ranges the lowest gap is given up (see there).
/// - **What did it return?** Results are kept from the acknowledgement on
///   (`acked_below`), in a ring from `base` that holds the next
///   [`Limits::ring`] numbers; the rare result beyond it (a client far ahead, or a hostile
///   one) goes to an ordered map, so no sequence number can make the ring
///   grow without bound.
#[derive(Debug, Default, Clone)]
struct Session {
    base: u64,
    ring: VecDeque<Option<Outcome>>,
    far: BTreeMap<u64, Outcome>,
    acked_below: u64,
    floor: u64,
    /// Disjoint, non-adjacent ranges `[start, end)` of numbers that ran, all above `floor`.
    ran: BTreeMap<u64, u64>,
    /// Bytes the kept results take in the image ([`result_len`]).
    held: usize,
}

/// Bytes one kept result takes in the image: its number and its outcome.
fn result_len(o: &Outcome) -> usize {
    8 + 1 + o.value.as_ref().map_or(0, |v| 4 + v.len()) + 1
}

impl Session {
    fn get(&self, seq: u64) -> Option<&Outcome> {
        let at = seq.checked_sub(self.base)?;
        match self.ring.get(at as usize) {
            Some(Some(o)) => Some(o),
            _ => self.far.get(&seq),
        }
    }

    /// Keeps a result, unless the client has already acknowledged it, or
    /// it lies past the ring and `max_far` results already do (see
    /// [`Limits::max_far`]).
    fn insert(&mut self, seq: u64, out: Outcome, limits: &Limits) {
        let Some(at) = seq.checked_sub(self.base) else {
            return;
        };
        let len = result_len(&out);
        let old = if at >= limits.ring {
            if self.far.len() >= limits.max_far && !self.far.contains_key(&seq) {
                return;
            }
            self.far.insert(seq, out)
        } else {
            let at = at as usize;
            if self.ring.len() <= at {
                self.ring.resize(at + 1, None);
            }
            self.ring[at].replace(out)
        };
        self.held = self.held + len - old.as_ref().map_or(0, result_len);
    }

    /// Forgets every result below `acked`.
    fn acknowledge(&mut self, acked: u64) {
        self.acked_below = acked;
        let drop = acked.saturating_sub(self.base).min(self.ring.len() as u64);
        let mut freed: usize = self
            .ring
            .drain(..drop as usize)
            .flatten()
            .map(|o| result_len(&o))
            .sum();
        self.base = self.base.max(acked);
        if self.far.first_key_value().is_some_and(|(k, _)| *k < acked) {
            let kept = self.far.split_off(&acked);
            freed += std::mem::replace(&mut self.far, kept)
                .values()
                .map(result_len)
                .sum::<usize>();
        }
        self.held -= freed;
    }

    /// Whether `seq` ran here (or lies in a gap given up on).
    fn ran(&self, seq: u64) -> bool {
        if seq < self.floor {
            return true;
        }
        // The common case first: a number past everything that ran.
        match self.ran.last_key_value() {
            None => false,
            Some((_, &end)) if seq >= end => false,
            Some(_) => self
                .ran
                .range(..=seq)
                .next_back()
                .is_some_and(|(_, &end)| seq < end),
        }
    }

    /// Notes that `seq` ran; gives up the lowest gaps past `max_gaps`, and
    /// returns how many it gave up.
    fn mark_ran(&mut self, seq: u64, max_gaps: usize) -> u64 {
        if seq == self.floor {
            // The next number in order.
            self.floor += 1;
            if self
                .ran
                .first_key_value()
                .is_none_or(|(s, _)| *s > self.floor)
            {
                return 0;
            }
        } else if let Some(mut top) = self.ran.last_entry().filter(|e| *e.get() == seq) {
            // The next number after a gap (a client whose numbers start at
            // 1, say): the top range grows.
            *top.get_mut() += 1;
            return 0;
        } else {
            let (mut start, mut end) = (seq, seq + 1);
            if let Some((&s, &e)) = self.ran.range(..=seq).next_back() {
                if e >= seq {
                    start = s;
                    end = end.max(e);
                    self.ran.remove(&s);
                }
            }
            if let Some(e) = self.ran.remove(&end) {
                end = e;
            }
            self.ran.insert(start, end);
        }
        let mut given_up = 0;
        while let Some((&s, &e)) = self.ran.first_key_value() {
            if s > self.floor && self.ran.len() <= max_gaps {
                break;
            }
            given_up += u64::from(s > self.floor);
            self.floor = self.floor.max(e);
            self.ran.pop_first();
        }
        given_up
    }
}

/// Bounds of the dedup table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sequence numbers past a client's acknowledgement whose results its
    /// session keeps in a ring (`--dedup-ring`): a client with up to this
    /// many requests unacknowledged has every retry answered from it.
    pub ring: u64,
    /// Results a client's session keeps past its ring (the `ring`
    /// numbers from its acknowledgement): those of a client running far
    /// ahead of what it acknowledges, such as an open-loop load whose oldest
    /// request is still unanswered, or a hostile client. Past the bound a
    /// result is not kept (a retry of that command is answered stale; it
    /// never runs twice), so no client can grow its session without limit.
    pub max_far: usize,
    /// Gaps a client's executed sequence numbers may hold before the lowest is
    /// given up (counted as run). A gap is a number the client acknowledged
    /// that has not run here: a command committed elsewhere and not yet
    /// executed here (it will come), or one the client gave up on (it never
    /// will). A command that arrives for a gap given up on is skipped as a
    /// duplicate, so this bounds the memory a client with holes in its
    /// numbering can take, at the price of a command that stays unexecuted
    /// here while its client opens this many further gaps.
    pub max_gaps: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            ring: 1 << 16,
            max_far: 4096,
            max_gaps: 1024,
        }
    }
}

/// What executing a (client, seq) would do; see [`StateMachine::check`].
#[derive(Debug, PartialEq, Eq)]
pub enum Check<'a> {
    /// Not executed yet: it would be applied.
    Fresh,
    /// Executed: this was its outcome.
    Done(&'a Outcome),
    /// Executed, and its result acknowledged and forgotten (see [`StateMachine::is_stale`]).
    Stale,
}

/// The state machine as executed by a replica: the store plus the dedup table.
#[derive(Debug, Default, Clone)]
pub struct StateMachine {
    kv: KvStore,
    /// aHash, as for the store: SipHash cost more than the lookup.
    sessions: HashMap<ClientId, Session, ahash::RandomState>,
    applied: u64,
    duplicates: u64,
    /// Puts do not report the value they replaced (see
    /// [`StateMachine::without_replaced_values`]).
    blind_puts: bool,
    limits: Limits,
    /// Gaps given up on (see [`Limits::max_gaps`]).
    gaps_given_up: u64,
}

impl StateMachine {
    /// A state machine whose puts answer with an empty outcome instead of the
    /// value they replaced: for replicas that answer puts at commit, before
    /// execution, where no client could see that value. It is then neither
    /// copied nor kept in the dedup table, and a retried put gets the same
    /// empty answer as the first.
    pub fn without_replaced_values() -> Self {
        StateMachine {
            blind_puts: true,
            ..Self::default()
        }
    }

    /// Its dedup bounds.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The same state machine with other dedup bounds.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Executes a command exactly once per (client, seq): a repeat returns the
    /// first outcome without touching the store. A stale command (see
    /// [`StateMachine::is_stale`]) is not applied and yields an empty outcome;
    /// use [`StateMachine::execute_checked`] to tell it apart.
    pub fn execute(&mut self, cmd: &Command) -> Outcome {
        self.execute_checked(cmd).unwrap_or_default()
    }

    /// Whether (client, seq) ran here and its result is forgotten (the client
    /// acknowledged it): a retry can only be told that it ran.
    pub fn is_stale(&self, client: ClientId, seq: u64) -> bool {
        self.sessions
            .get(&client)
            .is_some_and(|s| s.ran(seq) && s.get(seq).is_none())
    }

    /// Like [`StateMachine::execute`], but `None` for a stale command.
    pub fn execute_checked(&mut self, cmd: &Command) -> Option<Outcome> {
        if cmd.op == Op::Noop {
            return Some(Outcome::default());
        }
        let s = self.sessions.entry(cmd.client).or_default();
        if cmd.acked_below > s.acked_below {
            // Results below the client's acknowledgement are never asked for again.
            s.acknowledge(cmd.acked_below);
        }
        if let Some(o) = s.get(cmd.seq) {
            self.duplicates += 1;
            return Some(o.clone());
        }
        if s.ran(cmd.seq) {
            // Ran here before, and its result is acknowledged and forgotten.
            self.duplicates += 1;
            return None;
        }
        let out = self.kv.apply_with(cmd, !self.blind_puts);
        s.insert(cmd.seq, out.clone(), &self.limits);
        self.gaps_given_up += s.mark_ran(cmd.seq, self.limits.max_gaps);
        self.applied += 1;
        Some(out)
    }

    /// The first outcome of (client, seq) if that command was executed and not yet forgotten.
    pub fn lookup(&self, client: ClientId, seq: u64) -> Option<&Outcome> {
        self.sessions.get(&client)?.get(seq)
    }

    /// What executing (client, seq) now would do, with one lookup.
    pub fn check(&self, client: ClientId, seq: u64) -> Check<'_> {
        match self.sessions.get(&client) {
            None => Check::Fresh,
            Some(s) => match s.get(seq) {
                Some(o) => Check::Done(o),
                None if s.ran(seq) => Check::Stale,
                None => Check::Fresh,
            },
        }
    }

    /// The key-value store.
    pub fn kv(&self) -> &KvStore {
        &self.kv
    }

    /// Digest of the key-value state (see [`KvStore::digest`]).
    pub fn digest(&self) -> u128 {
        self.kv.digest()
    }

    /// Commands that changed or read the store (duplicates and no-ops excluded).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Commands skipped because their (client, seq) had already been executed.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Its part of a status reply (applied, duplicates, digest, keys); the
    /// replica fills in the rest.
    pub fn status(&self) -> crate::messages::StatusReply {
        let d = self.digest();
        crate::messages::StatusReply {
            applied: self.applied,
            duplicates: self.duplicates,
            digest_hi: (d >> 64) as u64,
            digest_lo: d as u64,
            keys: self.kv.len() as u64,
            ..Default::default()
        }
    }

    /// Gaps in clients' executed sequence numbers given up on (see [`Limits::max_gaps`]).
    pub fn gaps_given_up(&self) -> u64 {
        self.gaps_given_up
    }

    /// How many bytes [`StateMachine::encode_image`] would write, known
    /// without encoding (counts kept as the state changes): compaction
    /// weighs it against the log written since the last snapshot when the
    /// image itself is built later, off the event loop (see
    /// [`crate::snapshot::Capture`]).
    pub fn image_len(&self) -> usize {
        let sessions: usize = self
            .sessions
            .values()
            .map(|s| 8 * 3 + 4 + 16 * s.ran.len() + 4 + s.held)
            .sum();
        8 * 3 + 4 + self.kv.bytes + 8 * self.kv.len() + 4 + sessions
    }
}

/// The state machine as bytes, for snapshots: the store, every session's
/// record of what ran and its unacknowledged results, and the counters.
/// Layout (little-endian, fields in this order, nothing between them):
/// `applied u64 | duplicates u64 | gaps_given_up u64 | pairs u32 | (key bytes,
/// value bytes)* | sessions u32 | (client u64, acked_below u64, floor u64,
/// ranges u32 | (start u64, end u64)*, results u32 | (seq u64, Outcome)*)*`,
/// where `bytes` is a `u32` length then the bytes.
impl StateMachine {
    /// Appends the image of the state machine to `out`.
    pub fn encode_image(&self, out: &mut bytes::BytesMut) {
        self.applied.marshal(out);
        self.duplicates.marshal(out);
        self.gaps_given_up.marshal(out);
        // In key order: the maps iterate in a per-process random order, and
        // equal states must give equal bytes (a simulated run replays exactly).
        let mut pairs: Vec<(&[u8], &[u8])> = self
            .kv
            .map
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        pairs.sort_unstable();
        (pairs.len() as u32).marshal(out);
        for (k, v) in pairs {
            (k.len() as u32).marshal(out);
            out.extend_from_slice(k);
            (v.len() as u32).marshal(out);
            out.extend_from_slice(v);
        }
        let mut sessions: Vec<_> = self.sessions.iter().collect();
        sessions.sort_unstable_by_key(|(c, _)| **c);
        (sessions.len() as u32).marshal(out);
        for (client, s) in sessions {
            client.marshal(out);
            s.acked_below.marshal(out);
            s.floor.marshal(out);
            (s.ran.len() as u32).marshal(out);
            for (a, b) in &s.ran {
                a.marshal(out);
                b.marshal(out);
            }
            let ring = s
                .ring
                .iter()
                .enumerate()
                .filter_map(|(i, o)| Some((s.base + i as u64, o.as_ref()?)));
            let results: Vec<(u64, &Outcome)> =
                ring.chain(s.far.iter().map(|(k, o)| (*k, o))).collect();
            (results.len() as u32).marshal(out);
            for (seq, o) in results {
                seq.marshal(out);
                o.marshal(out);
            }
        }
    }

    /// Rebuilds a state machine from an image made by
    /// [`StateMachine::encode_image`], with this one's settings (reply policy
    /// and limits). Bad input is an error, never a panic.
    pub fn decode_image(&self, r: &mut Reader) -> Result<StateMachine, WireError> {
        let mut sm = StateMachine {
            blind_puts: self.blind_puts,
            limits: self.limits,
            ..StateMachine::default()
        };
        sm.applied = r.u64("applied")?;
        sm.duplicates = r.u64("duplicates")?;
        sm.gaps_given_up = r.u64("gaps given up")?;
        let pairs = r.count("store pairs", 8)?;
        sm.kv.map.reserve(pairs);
        for _ in 0..pairs {
            let k = r.bytes("key")?;
            let v = r.bytes("value")?;
            sm.kv.set(&k, &v, false);
        }
        // client, acked_below, floor, and the two counts
        let sessions = r.count("sessions", 32)?;
        for _ in 0..sessions {
            let client = r.u64("client")?;
            let acked = r.u64("acked_below")?;
            let mut s = Session {
                base: acked,
                acked_below: acked,
                floor: r.u64("floor")?,
                ..Session::default()
            };
            for _ in 0..r.count("ranges", 16)? {
                let (a, b) = (r.u64("range start")?, r.u64("range end")?);
                if a <= s.floor || b <= a || s.ran.last_key_value().is_some_and(|(_, e)| *e >= a) {
                    return Err(WireError::Invalid {
                        what: "executed range",
                        value: a,
                    });
                }
                s.ran.insert(a, b);
            }
            for _ in 0..r.count("results", 9)? {
                let seq = r.u64("result seq")?;
                let mut o = Outcome::unmarshal(r)?;
                // Not a slice of the image, which would stay alive until the
                // client acknowledges this result (see `Compact`).
                o.value = o.value.as_ref().map(owned);
                s.insert(seq, o, &sm.limits);
            }
            sm.sessions.insert(client, s);
        }
        Ok(sm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session with nothing left to say (every result acknowledged, every
    /// number below its floor) is the smallest thing in an image, and an
    /// image may end with one: the decoder took it for cut short.
    #[test]
    fn an_image_of_sessions_with_nothing_kept_decodes() {
        let mut sm = StateMachine::default();
        for client in 1..=3u64 {
            // Acknowledged as it runs: nothing is kept but the floor.
            let mut c = Command::put(client, 0, "k", "v");
            c.acked_below = 1;
            sm.execute(&c);
        }
        let mut img = bytes::BytesMut::new();
        sm.encode_image(&mut img);
        assert_eq!(img.len(), sm.image_len());
        let back = sm
            .decode_image(&mut Reader::new(img.freeze()))
            .expect("the image decodes");
        assert_eq!(back.digest(), sm.digest());
        assert_eq!(back.image_len(), sm.image_len());
    }

    #[test]
    fn retried_command_applies_once_and_returns_first_result() {
        let mut sm = StateMachine::default();
        assert_eq!(sm.execute(&Command::put(1, 1, "k", "a")).value, None);
        sm.execute(&Command::put(2, 1, "k", "b"));
        // The retry of (1,1) must not overwrite b, and must answer with the first outcome.
        assert_eq!(sm.execute(&Command::put(1, 1, "k", "a")).value, None);
        assert_eq!(sm.kv().get(b"k"), Some(&b"b"[..]));
        assert_eq!(sm.applied(), 2);
        assert_eq!(sm.duplicates(), 1);
    }

    #[test]
    fn cas_and_delete() {
        let mut sm = StateMachine::default();
        let o = sm.execute(&Command::cas(1, 1, "k", None, "v1"));
        assert!(o.flag);
        let o = sm.execute(&Command::cas(1, 2, "k", Some("x".into()), "v2"));
        assert!(!o.flag);
        assert_eq!(o.value.as_deref(), Some(&b"v1"[..]));
        let o = sm.execute(&Command::delete(1, 3, "k"));
        assert!(o.flag);
        assert!(sm.kv().is_empty());
    }

    #[test]
    fn digest_is_order_independent_and_tracks_content() {
        let mut a = StateMachine::default();
        let mut b = StateMachine::default();
        a.execute(&Command::put(1, 1, "x", "1"));
        a.execute(&Command::put(1, 2, "y", "2"));
        b.execute(&Command::put(1, 1, "y", "2"));
        b.execute(&Command::put(1, 2, "x", "1"));
        assert_eq!(a.digest(), b.digest());
        b.execute(&Command::put(1, 3, "x", "3"));
        assert_ne!(a.digest(), b.digest());
        b.execute(&Command::put(1, 4, "x", "1"));
        assert_eq!(a.digest(), b.digest());
        b.execute(&Command::delete(1, 5, "x"));
        b.execute(&Command::delete(1, 6, "y"));
        assert_eq!(b.digest(), 0);
    }

    #[test]
    fn acknowledged_results_are_forgotten() {
        let mut sm = StateMachine::default();
        for seq in 0..100 {
            let mut c = Command::put(9, seq, "k", "v");
            c.acked_below = seq;
            sm.execute(&c);
        }
        assert!(sm.lookup(9, 98).is_none());
        assert!(sm.lookup(9, 99).is_some());
    }

    #[test]
    fn results_far_ahead_are_kept_apart_and_still_deduplicated() {
        let mut sm = StateMachine::default();
        let far = Limits::default().ring * 1000;
        for seq in [3, far, 5, far + 1] {
            sm.execute(&Command::put(9, seq, "k", "v"));
        }
        assert_eq!(sm.applied(), 4);
        for seq in [3, far, 5, far + 1] {
            assert!(sm.lookup(9, seq).is_some(), "seq {seq}");
            sm.execute(&Command::put(9, seq, "k", "v"));
        }
        assert_eq!(sm.duplicates(), 4, "each repeat answered from the table");
        let s = &sm.sessions[&9];
        assert!(
            s.ring.len() <= 6,
            "the ring never stretched to the far ones"
        );
        // An acknowledgement past everything forgets it all.
        let mut c = Command::put(9, far + 2, "k", "v");
        c.acked_below = far + 2;
        sm.execute(&c);
        assert!(sm.lookup(9, far).is_none() && sm.lookup(9, 5).is_none());
        assert!(sm.is_stale(9, far + 1));
        assert!(sm.lookup(9, far + 2).is_some());
    }

    /// A client that never acknowledges (or an open-loop load whose oldest
    /// request is still outstanding) must not grow its session without
    /// bound: past the ring, at most `max_far` results are kept, and a
    /// command whose result was not kept is still never run twice.
    #[test]
    fn results_past_the_ring_are_bounded_for_a_client_that_never_acknowledges() {
        // The ring is a setting: crossed here at 64 numbers.
        const WINDOW: u64 = 64;
        let limits = Limits {
            ring: WINDOW,
            max_far: 64,
            ..Limits::default()
        };
        let mut sm = StateMachine::default().with_limits(limits);
        let past = WINDOW + 1000;
        for seq in 0..past {
            sm.execute(&Command::put(
                9,
                seq,
                format!("k{}", seq % 7),
                format!("v{seq}"),
            ));
        }
        let s = &sm.sessions[&9];
        assert_eq!(s.ring.len() as u64, WINDOW, "the ring holds its window");
        assert!(
            s.far.len() <= 64,
            "{} results kept past the ring, above the bound of 64",
            s.far.len()
        );
        assert_eq!(sm.applied(), past);
        // Every command still ran once: a retry of one whose result was
        // not kept is stale, never applied again.
        for seq in [WINDOW, WINDOW + 63, WINDOW + 64, past - 1] {
            let before = sm.applied();
            sm.execute(&Command::put(9, seq, "k0", "again"));
            assert_eq!(sm.applied(), before, "seq {seq} ran twice");
        }
        assert!(
            sm.lookup(9, WINDOW).is_some(),
            "the first results past the ring are kept"
        );
        assert!(sm.is_stale(9, past - 1), "a later one is answered stale");
    }

    #[test]
    fn blind_puts_answer_empty_and_reach_the_same_state() {
        let (mut a, mut b) = (
            StateMachine::default(),
            StateMachine::without_replaced_values(),
        );
        for (seq, v) in [(1, "x"), (2, "y")] {
            a.execute(&Command::put(1, seq, "k", v));
            b.execute(&Command::put(1, seq, "k", v));
        }
        assert_eq!(
            a.lookup(1, 2).and_then(|o| o.value.clone()),
            Some("x".into())
        );
        assert_eq!(b.lookup(1, 2).and_then(|o| o.value.clone()), None);
        assert_eq!(
            b.execute(&Command::put(1, 2, "k", "y")).value,
            None,
            "a retry too"
        );
        assert_eq!(a.digest(), b.digest());
        // Reads and swaps still report what they found.
        assert_eq!(b.execute(&Command::get(1, 3, "k")).value, Some("y".into()));
        let o = b.execute(&Command::cas(1, 4, "k", Some("y".into()), "z"));
        assert!(o.flag && o.value == Some("y".into()));
    }

    /// The lost write of EPaxos: a put answered at commit, then the client's
    /// next command (another key, acknowledging the put) executes first on a
    /// replica where the put is committed but not yet executed. The put must
    /// still be applied when it executes: the acknowledgement says the client
    /// has its answer, not that this replica ran the command.
    #[test]
    fn a_command_below_the_acknowledgement_that_never_ran_here_still_runs() {
        let mut sm = StateMachine::without_replaced_values();
        let mut next = Command::put(7, 6, "k2", "c7-s6");
        next.acked_below = 6;
        sm.execute(&next);
        let late = Command::put(7, 5, "k1", "c7-s5");
        assert!(sm.execute_checked(&late).is_some(), "seq 5 never ran here");
        assert_eq!(sm.kv().get(b"k1"), Some(&b"c7-s5"[..]));
        assert_eq!(sm.applied(), 2);
        // It ran once: a second copy of it (a retry the client sent to another
        // replica before it had its answer) is a duplicate.
        sm.execute(&late);
        assert_eq!(sm.applied(), 2);
        assert_eq!(sm.duplicates(), 1);
    }

    #[test]
    fn gaps_fill_in_any_order_and_past_the_limit_the_lowest_is_given_up() {
        let mut sm = StateMachine::default().with_limits(Limits {
            max_gaps: 2,
            ..Limits::default()
        });
        // Whether the command was applied (not skipped as a duplicate).
        let run = |sm: &mut StateMachine, seq: u64| {
            let mut c = Command::put(3, seq, format!("k{seq}"), format!("c3-s{seq}"));
            c.acked_below = seq;
            let before = sm.applied();
            sm.execute(&c);
            sm.applied() > before
        };
        // 0 and 1 run; 3, 5 and 7 leave gaps at 2, 4 and 6.
        for seq in [0, 1, 3, 5] {
            assert!(run(&mut sm, seq));
        }
        assert!(run(&mut sm, 2), "the gap at 2 still runs");
        assert!(run(&mut sm, 7));
        assert!(run(&mut sm, 9), "a third gap (4, 6, 8): 4 is given up");
        assert_eq!(sm.gaps_given_up(), 1);
        assert!(!run(&mut sm, 4), "given up: skipped as a duplicate");
        assert!(run(&mut sm, 6) && run(&mut sm, 8));
        for seq in 0..10 {
            assert!(!run(&mut sm, seq), "{seq} ran already");
        }
        let s = &sm.sessions[&3];
        assert_eq!((s.floor, s.ran.len()), (10, 0), "all merged into the floor");
    }

    #[test]
    fn the_image_rebuilds_the_same_store_and_dedup_table() {
        let mut a = StateMachine::without_replaced_values();
        for seq in [0u64, 1, 2, 4, 6] {
            let mut c = Command::put(seq % 2 + 1, seq, format!("k{}", seq % 3), format!("v{seq}"));
            c.acked_below = seq.saturating_sub(1);
            a.execute(&c);
        }
        a.execute(&Command::cas(5, 0, "long", None, "x".repeat(100)));
        let mut img = bytes::BytesMut::new();
        a.encode_image(&mut img);
        let mut r = Reader::new(img.freeze());
        let mut b = StateMachine::without_replaced_values()
            .decode_image(&mut r)
            .expect("decodes");
        r.finish().expect("all read");
        assert_eq!(a.digest(), b.digest());
        assert_eq!((a.applied(), a.duplicates()), (b.applied(), b.duplicates()));
        assert_eq!(b.kv().get(b"long"), Some("x".repeat(100).as_bytes()));
        // The same commands are duplicates on both, and the same gap runs on both.
        for sm in [&mut a, &mut b] {
            assert_eq!(sm.check(1, 2), Check::Stale);
            assert!(matches!(sm.check(1, 6), Check::Done(_)));
            assert!(matches!(sm.check(2, 1), Check::Done(_)));
            assert_eq!(sm.check(1, 3), Check::Fresh, "the gap at 3");
        }
        // Truncated images are errors, never panics.
        let mut img = bytes::BytesMut::new();
        a.encode_image(&mut img);
        for cut in 0..img.len() {
            let r = &mut Reader::new(img.clone().freeze().slice(..cut));
            assert!(
                StateMachine::default().decode_image(r).is_err(),
                "cut at {cut}"
            );
        }
    }

    /// A long key or value arrives as a slice of a connection's read buffer;
    /// the store must keep its own copy, or every stored value holds on to
    /// a whole buffer (64 KB or a batch frame) until its key is overwritten:
    /// with a large store, most of every buffer ever received.
    #[test]
    fn stored_values_do_not_keep_their_frame_alive() {
        let frame = Bytes::from(vec![b'f'; 64 * 1024]);
        let (key, value) = (frame.slice(0..40), frame.slice(100..200));
        let mut sm = StateMachine::default();
        sm.execute(&Command::put(1, 1, key, value));
        sm.execute(&Command::put(1, 2, "short", frame.slice(300..400)));
        let got = sm.execute(&Command::get(1, 3, frame.slice(0..40)));
        assert_eq!(got.value.as_deref(), Some(&[b'f'; 100][..]));
        drop(got);
        assert!(frame.is_unique(), "the store still points into the frame");
        assert_eq!(sm.kv().get(&[b'f'; 40]), Some(&[b'f'; 100][..]));
        assert_eq!(sm.kv().get(b"short"), Some(&[b'f'; 100][..]));
    }

    /// Likewise a state machine rebuilt from a snapshot image must not keep
    /// the image (tens of MB) alive through its values or its kept results.
    #[test]
    fn a_decoded_image_does_not_keep_the_image_alive() {
        let mut a = StateMachine::default();
        a.execute(&Command::put(1, 1, "key", "y".repeat(50)));
        let read = a.execute(&Command::get(2, 1, "key"));
        assert!(
            read.value.is_some(),
            "client 2's result is kept, unacknowledged"
        );
        let mut img = bytes::BytesMut::new();
        a.encode_image(&mut img);
        let img = img.freeze();
        let mut r = Reader::new(img.clone());
        let b = StateMachine::default()
            .decode_image(&mut r)
            .expect("decodes");
        r.finish().expect("all read");
        drop(r);
        assert!(
            img.is_unique(),
            "the decoded state still points into the image"
        );
        assert_eq!(b.kv().get(b"key"), Some("y".repeat(50).as_bytes()));
        assert!(matches!(b.check(2, 1), Check::Done(o) if o.value == read.value));
    }

    #[test]
    fn conflict_relation() {
        let w = Command::put(1, 1, "k", "v");
        let r = Command::get(1, 2, "k");
        let other = Command::get(1, 3, "j");
        assert!(w.conflicts(&r));
        assert!(!r.conflicts(&r.clone()));
        assert!(!w.conflicts(&other));
        assert!(!Command::noop().conflicts(&w));
    }
}
