//! Reading and writing whole frames on async byte streams.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::wire::{parse_header, Frame, WireError, FRAME_HEADER_LEN};

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not a valid frame or message.
    #[error("malformed input: {0}")]
    Wire(#[from] WireError),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame ({0} bytes buffered)")]
    TruncatedFrame(usize),
    /// The peer did not complete a handshake in time, or sent the wrong first frame.
    #[error("handshake failed: {0}")]
    Handshake(String),
}

/// Reads the next frame, using `buf` as the connection's read buffer.
///
/// Returns `Ok(None)` on a clean end of stream between frames. A length above
/// `max` is an error before any body byte is read or allocated.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<(u8, Bytes)>, ConnError> {
    loop {
        if let Some((code, len)) = parse_header(buf, max)? {
            if buf.len() >= FRAME_HEADER_LEN + len {
                let _ = buf.split_to(FRAME_HEADER_LEN);
                return Ok(Some((code, buf.split_to(len).freeze())));
            }
            // Grow with the data that actually arrives: a header alone must not
            // make us allocate the size it announces.
            buf.reserve((FRAME_HEADER_LEN + len - buf.len()).min(1 << 20));
        } else if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        if r.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(ConnError::TruncatedFrame(buf.len()))
            };
        }
    }
}

/// Writes one frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin, F: Frame + ?Sized>(
    w: &mut W,
    msg: &F,
) -> std::io::Result<()> {
    let mut b = BytesMut::new();
    msg.encode_frame(&mut b);
    w.write_all(&b).await?;
    w.flush().await
}
