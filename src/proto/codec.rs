//! Length-delimited framing: a 4-byte big-endian body length, then a MessagePack body.
//! With a shared secret the frames travel inside encrypted records once the key exchange
//! is done ([`FrameCodec::decrypt_with`], `proto::crypto`).
//!
//! Written as a `tokio_util` codec by hand (rather than `LengthDelimitedCodec` + a second
//! pass) so that the errors can say exactly what was wrong — the announced length and the
//! limit, or the MessagePack error — and so that a frame is checked before it is parsed.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::crypto::{CryptoError, Opener};
use super::publish_frame::decode_fast;
use super::wire::Frame;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Smallest upper bound for one frame body a node may be configured with: every peer takes
/// frames this large (senders that combine small frames stay within it).
pub const MIN_MAX_FRAME: usize = 1024;

/// Default upper bound for one frame body (16 MiB); configurable per node.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Why a stream of bytes is not a valid frame sequence. Either closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced body length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The body is not a MessagePack frame this protocol knows.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// An encrypted record was refused.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Encodes `frame` with its length prefix, ready to be written to a socket.
pub fn encode_frame(frame: &Frame) -> Result<Bytes, FrameError> {
    let mut buf = BytesMut::new();
    encode_frame_into(frame, &mut buf)?;
    Ok(buf.freeze())
}

/// Appends `frame` with its length prefix to `buf` (a connection's outgoing buffer);
/// on failure `buf` is left as it was.
pub fn encode_frame_into(frame: &Frame, buf: &mut BytesMut) -> Result<(), FrameError> {
    encode_into(frame, payload_len(frame), buf)
}

/// Appends what serialises as a frame (a [`Frame`], or a borrowed form of one such as
/// `call_frame::CallFrame`) with its length prefix to `buf`, reserving room for `nested`
/// bytes of payload; on failure `buf` is left as it was.
pub fn encode_into(
    frame: &impl serde::Serialize,
    nested: usize,
    buf: &mut BytesMut,
) -> Result<(), FrameError> {
    let start = begin_frame(buf, 64 + nested);
    if let Err(e) = rmp_serde::encode::write_named(&mut (&mut *buf).writer(), frame) {
        buf.truncate(start);
        return Err(FrameError::Malformed(format!("cannot encode: {e}")));
    }
    end_frame(buf, start);
    Ok(())
}

/// Starts a frame at the end of `buf` with room for a `body` of about that many bytes:
/// writes a length prefix for [`end_frame`] to set, and returns where the frame starts.
pub fn begin_frame(buf: &mut BytesMut, body: usize) -> usize {
    let start = buf.len();
    buf.reserve(HEADER_LEN + body);
    buf.put_bytes(0, HEADER_LEN);
    start
}

/// Sets the length prefix of the frame that starts at `start` and ends `buf`.
pub fn end_frame(buf: &mut BytesMut, start: usize) {
    let len = (buf.len() - start - HEADER_LEN) as u32;
    buf[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
}

/// Bytes of nested payload in `frame`, so the encode buffer is allocated once.
fn payload_len(frame: &Frame) -> usize {
    match frame {
        Frame::Call(c) => c.fun.len() + c.args.len() + c.kwargs.as_ref().map_or(0, Bytes::len),
        Frame::Reply(r) => r.result.as_ref().map_or(64, |b| b.len()),
        Frame::Publish(p) => p.topic.len() + p.payload.len(),
        Frame::Publications(p) => {
            p.topic.len() + p.payloads.iter().map(|b| b.len() + 5).sum::<usize>()
        }
        _ => 192,
    }
}

/// Decodes one frame body (without its length prefix).
pub fn decode_body(body: &[u8]) -> Result<Frame, FrameError> {
    rmp_serde::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Decoder half of the framing, bounded by `max_frame`.
pub struct FrameCodec {
    max_frame: usize,
    /// Bytes of whole frames decoded so far, headers included.
    consumed: u64,
    /// Once the key exchange is done: the record cipher, and the frames decrypted so far.
    sealed: Option<(Opener, BytesMut)>,
}

impl FrameCodec {
    /// A codec refusing bodies longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameCodec {
            max_frame,
            consumed: 0,
            sealed: None,
        }
    }

    /// From the next byte on, the stream is encrypted records opened with `opener`.
    pub fn decrypt_with(&mut self, opener: Opener) {
        self.sealed = Some((opener, BytesMut::new()));
    }

    /// Whether frames arrive encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.sealed.is_some()
    }

    /// Bytes of whole frames decoded so far, headers included (a connection's bytes in).
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Cheap check of the header: `Ok(Some(len))` when a whole frame of `len` body bytes is
    /// buffered, `Ok(None)` when more bytes are needed.
    pub fn check(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        if buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        Ok(Some(len))
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let Some((mut opener, mut plain)) = self.sealed.take() else {
            return self.decode_plain(src);
        };
        // Frames already decrypted first; then one record at a time, only as many as it
        // takes to complete a frame (so the plaintext buffer stays near one frame).
        let out = loop {
            match self.decode_plain(&mut plain) {
                Ok(None) => {}
                other => break other,
            }
            match opener.open(src, &mut plain) {
                Ok(true) => {}
                Ok(false) => break Ok(None),
                Err(e) => break Err(FrameError::Crypto(e).into()),
            }
        };
        self.sealed = Some((opener, plain));
        out
    }
}

impl FrameCodec {
    fn decode_plain(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.check(src)? {
            None => {
                if src.len() >= HEADER_LEN {
                    let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
                    src.reserve(HEADER_LEN + len - src.len());
                }
                Ok(None)
            }
            Some(len) => {
                self.consumed += (HEADER_LEN + len) as u64;
                src.advance(HEADER_LEN);
                let body = src.split_to(len).freeze();
                if let Some(f) = decode_fast(&body) {
                    return Ok(Some(f));
                }
                Ok(Some(decode_body(&body)?))
            }
        }
    }
}

/// A framing or I/O failure while reading.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Bad bytes from the peer.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Appends an already-encoded frame to `out` (used by the coalescing writer).
pub fn append(out: &mut BytesMut, frame: &[u8]) {
    out.put_slice(frame);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::Cancel;

    #[test]
    fn partial_then_whole() {
        let bytes = encode_frame(&Frame::Cancel(Cancel { id: 9 })).unwrap();
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::new();
        for (i, b) in bytes.iter().enumerate() {
            buf.put_u8(*b);
            let out = codec.decode(&mut buf).unwrap();
            if i + 1 < bytes.len() {
                assert!(out.is_none());
            } else {
                assert_eq!(out, Some(Frame::Cancel(Cancel { id: 9 })));
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_is_refused_before_reading_the_body() {
        let mut codec = FrameCodec::new(100);
        let mut buf = BytesMut::from(&[0u8, 0, 1, 0][..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "frame of 256 bytes exceeds the limit of 100 bytes"
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let mut codec = FrameCodec::new(100);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 0xc1, 0xff, 0x00][..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(err.to_string().starts_with("malformed frame"), "{err}");
    }
}
