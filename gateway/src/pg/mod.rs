//! PostgreSQL wire protocol (v3) codec: framing plus one file per message type.
//!
//! Only this module touches raw bytes. Everything above it works with typed
//! messages or with opaque [`Frame`]s that are relayed unchanged.

pub mod auth;
pub mod backend;
pub mod backend_key;
pub mod bind;
pub mod describe;
pub mod encoding;
pub mod error_response;
pub mod frontend;
pub mod negotiate;
pub mod param_status;
pub mod parse;
pub mod query;
pub mod ready;
pub mod row;
pub mod startup;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

pub use error_response::{ErrorFields, Severity};

/// How much buffer space is added at a time while a message arrives.
pub const READ_CHUNK: usize = 64 * 1024;

/// Errors from the framing layer: the peer sent something that is not valid
/// protocol, or the transport failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A length field was smaller than the length field itself.
    #[error("invalid message length {0}")]
    BadLength(i64),
    /// A message was longer than the configured maximum.
    #[error("message of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The body of a message did not match its type.
    #[error("malformed {what} message: {why}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// What was wrong.
        why: &'static str,
    },
    /// The peer closed the connection in the middle of a message.
    #[error("connection closed in the middle of a message")]
    Truncated,
}

/// One tagged protocol message: its type byte and its body (without the
/// length word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Message type byte, e.g. `b'Q'`.
    pub tag: u8,
    /// Body after the length word.
    pub body: Bytes,
}

impl Frame {
    /// Builds a frame from a tag and body.
    pub fn new(tag: u8, body: impl Into<Bytes>) -> Self {
        Self {
            tag,
            body: body.into(),
        }
    }

    /// Appends the wire encoding of this frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(5 + self.body.len());
        out.put_u8(self.tag);
        out.put_u32((self.body.len() + 4) as u32);
        out.put_slice(&self.body);
    }

    /// The wire encoding of this frame.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(5 + self.body.len());
        self.encode(&mut out);
        out.freeze()
    }
}

/// Looks at the frame at the front of `buf` without consuming it: its tag
/// and total length (tag + length word + body), or `None` if the header is
/// not complete yet.
pub fn peek_frame(buf: &[u8], max: usize) -> Result<Option<(u8, usize)>, CodecError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(CodecError::BadLength(len.into()));
    }
    let len = len as usize;
    if len > max {
        return Err(CodecError::TooLarge { len, max });
    }
    Ok(Some((buf[0], 1 + len)))
}

/// Splits one tagged frame off the front of `buf` if a whole one is there.
///
/// Returns `Ok(None)` when more bytes are needed. `max` bounds the declared
/// length so a hostile peer cannot make us buffer without limit.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, CodecError> {
    let Some((_, total)) = peek_frame(buf, max)? else {
        return Ok(None);
    };
    let len = total - 1;
    if buf.len() < 1 + len {
        // Grow with the data that actually arrives, not with the declared
        // length: a peer that announces a huge message and then trickles
        // must not make us allocate it up front.
        buf.reserve((1 + len - buf.len()).min(READ_CHUNK));
        return Ok(None);
    }
    let tag = buf[0];
    buf.advance(5);
    let body = buf.split_to(len - 4).freeze();
    Ok(Some(Frame { tag, body }))
}

/// Reads one tagged frame from `rd`, buffering in `buf`.
///
/// Returns `Ok(None)` on a clean end of stream between messages.
pub async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Frame>, CodecError> {
    loop {
        if let Some(frame) = split_frame(buf, max)? {
            return Ok(Some(frame));
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8192);
        }
        if rd.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(CodecError::Truncated)
            };
        }
    }
}

/// A cursor over a message body that reads protocol primitives and reports
/// malformed input instead of panicking.
pub struct Reader<'a> {
    what: &'static str,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `buf`, naming the message `what` in errors.
    pub fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Self { what, buf }
    }

    fn err(&self, why: &'static str) -> CodecError {
        CodecError::Malformed {
            what: self.what,
            why,
        }
    }

    /// Reads a big-endian i32.
    pub fn i32(&mut self) -> Result<i32, CodecError> {
        if self.buf.len() < 4 {
            return Err(self.err("truncated integer"));
        }
        let v = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        self.buf = &self.buf[4..];
        Ok(v)
    }

    /// Reads a big-endian i16.
    pub fn i16(&mut self) -> Result<i16, CodecError> {
        if self.buf.len() < 2 {
            return Err(self.err("truncated integer"));
        }
        let v = i16::from_be_bytes([self.buf[0], self.buf[1]]);
        self.buf = &self.buf[2..];
        Ok(v)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| self.err("truncated byte"))?;
        self.buf = rest;
        Ok(b)
    }

    /// Reads a NUL-terminated UTF-8 string.
    pub fn cstr(&mut self) -> Result<&'a str, CodecError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err("string without terminator"))?;
        let s = std::str::from_utf8(&self.buf[..end]).map_err(|_| self.err("invalid UTF-8"))?;
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// Reads a NUL-terminated byte string (text in the client's encoding).
    pub fn cbytes(&mut self) -> Result<&'a [u8], CodecError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err("string without terminator"))?;
        let s = &self.buf[..end];
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// Reads `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(self.err("truncated bytes"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The bytes not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), CodecError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

/// Appends a NUL-terminated byte string.
pub fn put_cbytes(out: &mut BytesMut, s: &[u8]) {
    out.put_slice(s);
    out.put_u8(0);
}

/// Appends a NUL-terminated string.
pub fn put_cstr(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_partial() {
        let f = Frame::new(b'Q', &b"select 1\0"[..]);
        let wire = f.to_bytes();
        let mut buf = BytesMut::from(&wire[..3]);
        assert_eq!(split_frame(&mut buf, 1 << 20).unwrap(), None);
        buf.extend_from_slice(&wire[3..]);
        assert_eq!(split_frame(&mut buf, 1 << 20).unwrap(), Some(f));
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_bad_and_oversized_lengths() {
        let mut buf = BytesMut::from(&[b'Q', 0, 0, 0, 3][..]);
        assert!(matches!(
            split_frame(&mut buf, 100),
            Err(CodecError::BadLength(3))
        ));
        let mut buf = BytesMut::from(&[b'Q', 0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            split_frame(&mut buf, 100),
            Err(CodecError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&[b'Q', 0xff, 0xff, 0xff, 0xff][..]);
        assert!(split_frame(&mut buf, 100).is_err());
    }

    #[test]
    fn announced_length_does_not_allocate_up_front() {
        let mut buf = BytesMut::from(&[b'Q', 0x10, 0, 0, 0][..]);
        assert_eq!(split_frame(&mut buf, 1 << 30).unwrap(), None);
        assert!(buf.capacity() < 2 * READ_CHUNK, "{}", buf.capacity());
    }

    #[test]
    fn reader_reports_malformed() {
        let mut r = Reader::new("test", b"abc");
        assert!(r.cstr().is_err());
        let mut r = Reader::new("test", b"\x00\x01");
        assert!(r.i32().is_err());
    }
}
