//! The wire format: frames, the `Marshal`/`Unmarshal` traits and their limits.
//!
//! Every message travels as one *frame*:
//!
//! ```text
//! +---------+----------------+------------------+
//! | code u8 | body length u32 LE | body (length bytes) |
//! +---------+----------------+------------------+
//! ```
//!
//! The length is checked against a configured maximum before anything is
//! allocated, so a peer that announces 4 GiB gets its connection closed instead
//! of our memory. Inside a body every integer is little-endian and every
//! variable-length field carries a `u32` length that is checked against the
//! bytes actually left in the body, and no sequence reserves more memory up
//! front than those bytes ([`sequence_capacity`]). `docs/wire.md` documents
//! each message.

use byteorder::{ByteOrder, LittleEndian};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes in a frame header: one type code and a `u32` body length.
pub const FRAME_HEADER_LEN: usize = 5;

/// Default largest frame body accepted from the network (16 MiB).
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// Why bytes could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The body ended before a field did.
    #[error("truncated message: {what} needs {needed} bytes but only {left} are left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the body.
        left: usize,
    },
    /// A frame header announced a body larger than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced body length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// No message is registered under this type code.
    #[error("unknown message type code {0:#04x}")]
    UnknownType(u8),
    /// The code is known but not allowed on this kind of connection.
    #[error("message type {code:#04x} ({name}) is not accepted on a {class} connection")]
    WrongClass {
        /// The type code.
        code: u8,
        /// The message name.
        name: &'static str,
        /// The connection kind.
        class: &'static str,
    },
    /// A field held a value outside its domain (a flag that is not 0/1, an unknown op).
    #[error("invalid value {value} for {what}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// Bytes were left over after the message was decoded.
    #[error("{0} unexpected trailing bytes after the message body")]
    Trailing(usize),
}

/// Writes a value in wire form.
pub trait Marshal {
    /// Appends the little-endian encoding of `self` to `buf`.
    fn marshal(&self, buf: &mut BytesMut);
}

/// Reads a value in wire form.
pub trait Unmarshal: Sized {
    /// The fewest bytes any valid encoding of this type takes. A sequence count
    /// that would need more bytes than are left is rejected before anything is
    /// reserved for it. It must never exceed the shortest valid encoding (that
    /// would reject good messages); 1, the default, suits any type that reads at
    /// least one byte, and fixed-size types set their exact size.
    const MIN_ENCODED: usize = 1;

    /// Decodes one value from the front of `r`.
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError>;
}

/// How many elements to reserve up front for a sequence of `T` that announced
/// `n` elements with `remaining` body bytes behind its count.
///
/// The count comes off the wire, so it is capped twice: by how many elements
/// the bytes left could hold ([`Unmarshal::MIN_ENCODED`] each), and so that
/// the reservation takes no more memory than those bytes (an element can be
/// far larger in memory than on the wire: a `Command` about three times its
/// shortest encoding, an `Option<Command>` a hundred times). A sequence that
/// really is longer grows as it is filled, paying for its memory with bytes
/// that actually arrived.
pub fn sequence_capacity<T: Unmarshal>(n: usize, remaining: usize) -> usize {
    let fit = remaining / T::MIN_ENCODED.max(1);
    let memory = remaining / std::mem::size_of::<T>().max(1);
    n.min(fit).min(memory)
}

/// The [`Unmarshal::MIN_ENCODED`] of the type a field accessor returns: lets
/// [`wire_struct!`](crate::wire_struct) add up its fields' minimums without naming their types.
pub const fn min_encoded_of<S, T: Unmarshal>(_field: fn(&S) -> &T) -> usize {
    T::MIN_ENCODED
}

/// A message with a type code: what travels in one frame.
pub trait Message: Marshal + Unmarshal + Send + 'static {
    /// The 1-byte type code that identifies this message on the wire.
    const CODE: u8;
    /// Human-readable name for logs and errors.
    const NAME: &'static str;
}

/// Anything that can write itself as a whole frame (a message, or an enum of messages).
pub trait Frame {
    /// Appends header and body to `out`.
    fn encode_frame(&self, out: &mut BytesMut);
}

impl<M: Message> Frame for M {
    fn encode_frame(&self, out: &mut BytesMut) {
        encode_frame(M::CODE, self, out)
    }
}

/// Appends a frame carrying `body` under `code` to `out`.
pub fn encode_frame<B: Marshal + ?Sized>(code: u8, body: &B, out: &mut BytesMut) {
    out.reserve(FRAME_HEADER_LEN + 32);
    out.put_u8(code);
    let len_at = out.len();
    out.put_u32_le(0);
    body.marshal(out);
    let len = out.len() - len_at - 4;
    LittleEndian::write_u32(&mut out[len_at..len_at + 4], len as u32);
}

/// Encodes `msg` as a standalone frame.
pub fn frame_bytes<F: Frame + ?Sized>(msg: &F) -> Bytes {
    let mut b = BytesMut::new();
    msg.encode_frame(&mut b);
    b.freeze()
}

/// Parses a frame header from the front of `buf`.
///
/// Returns `Ok(None)` when fewer than [`FRAME_HEADER_LEN`] bytes are present and an
/// error when the announced length is above `max`.
pub fn parse_header(buf: &[u8], max: usize) -> Result<Option<(u8, usize)>, WireError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    let len = LittleEndian::read_u32(&buf[1..5]) as usize;
    if len > max {
        return Err(WireError::FrameTooLarge { len, max });
    }
    Ok(Some((buf[0], len)))
}

/// Decodes a whole message body, rejecting trailing bytes.
pub fn decode_body<M: Unmarshal>(body: Bytes) -> Result<M, WireError> {
    let mut r = Reader::new(body);
    let m = M::unmarshal(&mut r)?;
    r.finish()?;
    Ok(m)
}

/// A cursor over a message body. Byte fields are zero-copy slices of it.
#[derive(Debug)]
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    /// Starts reading `buf`.
    pub fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing(self.buf.len()))
        }
    }

    fn need(&self, what: &'static str, needed: usize) -> Result<(), WireError> {
        if self.buf.len() < needed {
            return Err(WireError::Truncated {
                what,
                needed,
                left: self.buf.len(),
            });
        }
        Ok(())
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        self.need(what, 1)?;
        // `Buf` moves the start of the slice: no reference-count traffic per field.
        Ok(self.buf.get_u8())
    }

    /// Reads a boolean stored as one byte that must be 0 or 1.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(WireError::Invalid {
                what,
                value: v as u64,
            }),
        }
    }

    /// Reads a little-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        self.need(what, 2)?;
        Ok(self.buf.get_u16_le())
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        self.need(what, 4)?;
        Ok(self.buf.get_u32_le())
    }

    /// Reads a little-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        self.need(what, 8)?;
        Ok(self.buf.get_u64_le())
    }

    /// Reads a `u32` length, checks it against what is left, and returns that many bytes.
    pub fn bytes(&mut self, what: &'static str) -> Result<Bytes, WireError> {
        let len = self.u32(what)? as usize;
        self.need(what, len)?;
        Ok(self.buf.split_to(len))
    }

    /// Reads a `u32` element count for a sequence whose elements take at least
    /// `min_elem` bytes each; a count that cannot fit in the rest of the body is
    /// an error. A count that passes can still be far more than the elements
    /// that follow, so size any reservation with [`sequence_capacity`].
    pub fn count(&mut self, what: &'static str, min_elem: usize) -> Result<usize, WireError> {
        let n = self.u32(what)? as usize;
        let needed = n.saturating_mul(min_elem.max(1));
        self.need(what, needed)?;
        Ok(n)
    }
}

impl Marshal for u8 {
    fn marshal(&self, buf: &mut BytesMut) {
        buf.put_u8(*self)
    }
}
impl Unmarshal for u8 {
    const MIN_ENCODED: usize = 1;
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        r.u8("u8")
    }
}
impl Marshal for bool {
    fn marshal(&self, buf: &mut BytesMut) {
        buf.put_u8(*self as u8)
    }
}
impl Unmarshal for bool {
    const MIN_ENCODED: usize = 1;
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        r.bool("bool")
    }
}
impl Marshal for u16 {
    fn marshal(&self, buf: &mut BytesMut) {
        buf.put_u16_le(*self)
    }
}
impl Unmarshal for u16 {
    const MIN_ENCODED: usize = 2;
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        r.u16("u16")
    }
}
impl Marshal for u32 {
    fn marshal(&self, buf: &mut BytesMut) {
        buf.put_u32_le(*self)
    }
}
impl Unmarshal for u32 {
    const MIN_ENCODED: usize = 4;
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        r.u32("u32")
    }
}
impl Marshal for u64 {
    fn marshal(&self, buf: &mut BytesMut) {
        buf.put_u64_le(*self)
    }
}
impl Unmarshal for u64 {
    const MIN_ENCODED: usize = 8;
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        r.u64("u64")
    }
}
impl Marshal for Bytes {
    fn marshal(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.len() as u32);
        buf.put_slice(self);
    }
}
impl Unmarshal for Bytes {
    const MIN_ENCODED: usize = 4; // the length
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        r.bytes("bytes")
    }
}
impl Marshal for String {
    fn marshal(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.len() as u32);
        buf.put_slice(self.as_bytes());
    }
}
impl Unmarshal for String {
    const MIN_ENCODED: usize = 4; // the length
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        let b = r.bytes("string")?;
        String::from_utf8(b.to_vec()).map_err(|e| WireError::Invalid {
            what: "utf-8 string",
            value: e.utf8_error().valid_up_to() as u64,
        })
    }
}
/// Optional values: a presence byte (0 or 1) then the value.
impl<T: Marshal> Marshal for Option<T> {
    fn marshal(&self, buf: &mut BytesMut) {
        match self {
            None => buf.put_u8(0),
            Some(v) => {
                buf.put_u8(1);
                v.marshal(buf)
            }
        }
    }
}
impl<T: Unmarshal> Unmarshal for Option<T> {
    const MIN_ENCODED: usize = 1; // the flag of `None`
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        if r.bool("option flag")? {
            Ok(Some(T::unmarshal(r)?))
        } else {
            Ok(None)
        }
    }
}
/// Sequences: a `u32` count then the elements (each at least one byte, or
/// [`Unmarshal::MIN_ENCODED`] bytes).
impl<T: Marshal> Marshal for [T] {
    fn marshal(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.len() as u32);
        for v in self {
            v.marshal(buf);
        }
    }
}
impl<T: Marshal> Marshal for Vec<T> {
    fn marshal(&self, buf: &mut BytesMut) {
        self.as_slice().marshal(buf)
    }
}

/// Anything that writes itself through a closure: lets a caller encode from
/// borrowed parts (no owned copy to build first), e.g. a log record.
pub struct Encoded<F: Fn(&mut BytesMut)>(pub F);

impl<F: Fn(&mut BytesMut)> Marshal for Encoded<F> {
    fn marshal(&self, buf: &mut BytesMut) {
        (self.0)(buf)
    }
}
impl<T: Unmarshal> Unmarshal for Vec<T> {
    const MIN_ENCODED: usize = 4; // the count of an empty sequence
    fn unmarshal(r: &mut Reader) -> Result<Self, WireError> {
        let n = r.count("sequence", T::MIN_ENCODED)?;
        let mut v = Vec::with_capacity(sequence_capacity::<T>(n, r.remaining()));
        for _ in 0..n {
            v.push(T::unmarshal(r)?);
        }
        Ok(v)
    }
}

/// Implements [`Marshal`] and [`Unmarshal`] for a struct by writing its fields in
/// the order listed, and optionally [`Message`] with a type code.
///
/// ```text
/// wire_struct!(Ping { nonce: u64 } = 0x12);
/// ```
#[macro_export]
macro_rules! wire_struct {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl $crate::wire::Marshal for $ty {
            fn marshal(&self, _buf: &mut ::bytes::BytesMut) {
                $( $crate::wire::Marshal::marshal(&self.$field, _buf); )*
            }
        }
        impl $crate::wire::Unmarshal for $ty {
            // The fields are written back to back: their minimums add up.
            const MIN_ENCODED: usize =
                0 $( + $crate::wire::min_encoded_of(|s: &$ty| &s.$field) )*;
            fn unmarshal(_r: &mut $crate::wire::Reader) -> Result<Self, $crate::wire::WireError> {
                Ok($ty { $( $field: $crate::wire::Unmarshal::unmarshal(_r)?, )* })
            }
        }
    };
    ($ty:ident { $($field:ident),* $(,)? } = $code:expr) => {
        $crate::wire_struct!($ty { $($field),* });
        impl $crate::wire::Message for $ty {
            const CODE: u8 = $code;
            const NAME: &'static str = stringify!($ty);
        }
    };
}

/// The `(code, name)` of each listed [`Message`] type, as an array: a
/// protocol's table of codes, for documentation and tests.
///
/// ```text
/// pub const CODES: [(u8, &str); 2] = message_codes![Ping, Pong];
/// ```
#[macro_export]
macro_rules! message_codes {
    ($($ty:ty),* $(,)?) => {
        [$((<$ty as $crate::wire::Message>::CODE, <$ty as $crate::wire::Message>::NAME)),*]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rejects_oversized_length() {
        let mut b = BytesMut::new();
        b.put_u8(7);
        b.put_u32_le(u32::MAX);
        assert_eq!(
            parse_header(&b, DEFAULT_MAX_FRAME),
            Err(WireError::FrameTooLarge {
                len: u32::MAX as usize,
                max: DEFAULT_MAX_FRAME
            })
        );
    }

    #[test]
    fn counts_that_cannot_fit_are_rejected_before_allocation() {
        let mut b = BytesMut::new();
        b.put_u32_le(u32::MAX);
        let mut r = Reader::new(b.freeze());
        assert!(matches!(
            Vec::<u64>::unmarshal(&mut r),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn sequence_capacity_is_bounded_by_the_bytes_left() {
        use crate::command::Command;
        // Elements far larger in memory than on the wire, and a count far
        // beyond what the bytes left hold: the reservation stays within them.
        let size = std::mem::size_of::<Command>();
        assert!(size > Command::MIN_ENCODED);
        for remaining in [0, 1, 41, 42, 1000, 16 << 20] {
            for n in [0, 1, remaining, u32::MAX as usize] {
                let cap = sequence_capacity::<Command>(n, remaining);
                assert!(cap <= n);
                assert!(cap * size <= remaining, "n {n} remaining {remaining}");
                assert!(cap * Command::MIN_ENCODED <= remaining);
            }
        }
        // Small elements: as many as the bytes can hold, or the count if fewer.
        assert_eq!(sequence_capacity::<u64>(3, 1000), 3);
        assert_eq!(sequence_capacity::<u64>(1000, 80), 10);
        assert_eq!(sequence_capacity::<u8>(u32::MAX as usize, 5), 5);
    }

    #[test]
    fn min_encoded_is_the_shortest_encoding() {
        use crate::command::Command;
        let mut b = BytesMut::new();
        Command::noop().marshal(&mut b);
        assert_eq!(Command::MIN_ENCODED, b.len());
        assert_eq!(Vec::<Command>::MIN_ENCODED, 4);
        assert_eq!(Option::<u64>::MIN_ENCODED, 1);
    }

    #[test]
    fn bad_flags_are_invalid() {
        let mut r = Reader::new(Bytes::from_static(&[2]));
        assert!(matches!(
            Option::<u8>::unmarshal(&mut r),
            Err(WireError::Invalid { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        assert_eq!(
            decode_body::<u8>(Bytes::from_static(&[1, 2])),
            Err(WireError::Trailing(1))
        );
    }
}
