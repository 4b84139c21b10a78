//! Frontend (client → server) messages after startup, typed and borrowing
//! from the read buffer.

use super::bind::Bind;
use super::parse::Parse;
use super::{describe, query, CodecError, Frame, Reader};

/// One frontend message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    /// `Q`: simple query (text in the client encoding).
    Query(&'a [u8]),
    /// `P`: prepare a statement.
    Parse(Parse<'a>),
    /// `B`: bind a portal.
    Bind(Bind<'a>),
    /// `D`: describe a statement (`S`) or portal (`P`).
    Describe {
        /// `S` or `P`.
        kind: u8,
        /// Name.
        name: &'a [u8],
    },
    /// `E`: execute a portal.
    Execute {
        /// Portal name.
        portal: &'a [u8],
        /// Row limit (0 = all).
        max_rows: i32,
    },
    /// `C`: close a statement (`S`) or portal (`P`).
    Close {
        /// `S` or `P`.
        kind: u8,
        /// Name.
        name: &'a [u8],
    },
    /// `S`: end of an extended-protocol batch.
    Sync,
    /// `H`: flush pending output.
    Flush,
    /// `d`: COPY data.
    CopyData,
    /// `c`: COPY done.
    CopyDone,
    /// `f`: COPY failed.
    CopyFail,
    /// `F`: fast-path function call.
    FunctionCall,
    /// `X`: terminate.
    Terminate,
    /// Any other type byte: a protocol violation.
    Unknown(u8),
}

impl<'a> FrontendMessage<'a> {
    /// Decodes a frame received from the client.
    pub fn decode(frame: &'a Frame) -> Result<Self, CodecError> {
        let body = &frame.body[..];
        Ok(match frame.tag {
            b'Q' => Self::Query(query::decode(body)?),
            b'P' => Self::Parse(Parse::decode(body)?),
            b'B' => Self::Bind(Bind::decode(body)?),
            b'D' => {
                let (kind, name) = describe::decode(body)?;
                Self::Describe { kind, name }
            }
            b'E' => {
                let mut r = Reader::new("Execute", body);
                let portal = r.cbytes()?;
                let max_rows = r.i32()?;
                r.finish()?;
                Self::Execute { portal, max_rows }
            }
            b'C' => {
                let (kind, name) = describe::decode_target("Close", body)?;
                Self::Close { kind, name }
            }
            b'S' => empty(body, "Sync", Self::Sync)?,
            b'H' => empty(body, "Flush", Self::Flush)?,
            b'd' => Self::CopyData,
            b'c' => empty(body, "CopyDone", Self::CopyDone)?,
            b'f' => Self::CopyFail,
            b'F' => Self::FunctionCall,
            b'X' => empty(body, "Terminate", Self::Terminate)?,
            other => Self::Unknown(other),
        })
    }
}

/// `msg` if `body` is empty, as its type requires.
fn empty<'a>(
    body: &[u8],
    what: &'static str,
    msg: FrontendMessage<'a>,
) -> Result<FrontendMessage<'a>, CodecError> {
    if body.is_empty() {
        Ok(msg)
    } else {
        Err(CodecError::Malformed {
            what,
            why: "unexpected body",
        })
    }
}

/// A Sync frame.
pub fn sync_frame() -> Frame {
    Frame::new(b'S', bytes::Bytes::new())
}

/// A Flush frame.
pub fn flush_frame() -> Frame {
    Frame::new(b'H', bytes::Bytes::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_type() {
        let q = query::to_frame("select 1");
        assert_eq!(
            FrontendMessage::decode(&q).unwrap(),
            FrontendMessage::Query(b"select 1")
        );
        let e = Frame::new(b'E', &b"p\0\0\0\0\x05"[..]);
        assert_eq!(
            FrontendMessage::decode(&e).unwrap(),
            FrontendMessage::Execute {
                portal: b"p",
                max_rows: 5
            }
        );
        let c = Frame::new(b'C', &b"Ss1\0"[..]);
        assert_eq!(
            FrontendMessage::decode(&c).unwrap(),
            FrontendMessage::Close {
                kind: b'S',
                name: b"s1"
            }
        );
        assert_eq!(
            FrontendMessage::decode(&sync_frame()).unwrap(),
            FrontendMessage::Sync
        );
        assert_eq!(
            FrontendMessage::decode(&flush_frame()).unwrap(),
            FrontendMessage::Flush
        );
        assert_eq!(
            FrontendMessage::decode(&Frame::new(b'z', &b""[..])).unwrap(),
            FrontendMessage::Unknown(b'z')
        );
        assert!(FrontendMessage::decode(&Frame::new(b'E', &b"p\0"[..])).is_err());
        assert!(FrontendMessage::decode(&Frame::new(b'C', &b"Xs\0"[..])).is_err());
        assert!(FrontendMessage::decode(&Frame::new(b'S', &b"x"[..])).is_err());
        assert!(FrontendMessage::decode(&Frame::new(b'H', &b"x"[..])).is_err());
    }
}
