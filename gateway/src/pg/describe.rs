//! Describe (`D` from the client): describe a statement or portal.

use bytes::{BufMut, BytesMut};

use super::{put_cstr, CodecError, Frame, Reader};

/// Encodes a Describe of a prepared statement (`S`) or portal (`P`).
pub fn to_frame(kind: u8, name: &str) -> Frame {
    let mut b = BytesMut::new();
    b.put_u8(kind);
    put_cstr(&mut b, name);
    Frame::new(b'D', b)
}

/// Encodes a Describe of a statement or portal named by bytes (a name
/// in the client's encoding, as the client sent it).
pub fn to_frame_bytes(kind: u8, name: &[u8]) -> Frame {
    let mut b = BytesMut::new();
    b.put_u8(kind);
    super::put_cbytes(&mut b, name);
    Frame::new(b'D', b)
}

/// Decodes a Describe body.
pub fn decode(body: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    decode_target("Describe", body)
}

/// Decodes a Describe or Close body (they share the layout): the target
/// kind (`S` statement, `P` portal) and its name.
pub fn decode_target<'a>(what: &'static str, body: &'a [u8]) -> Result<(u8, &'a [u8]), CodecError> {
    let mut r = Reader::new(what, body);
    let kind = r.u8()?;
    if kind != b'S' && kind != b'P' {
        return Err(CodecError::Malformed {
            what,
            why: "target must be 'S' or 'P'",
        });
    }
    let name = r.cbytes()?;
    r.finish()?;
    Ok((kind, name))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let f = super::to_frame(b'S', "stmt");
        assert_eq!(super::decode(&f.body).unwrap(), (b'S', &b"stmt"[..]));
        assert!(super::decode(b"Xstmt\0").is_err());
        let f = super::to_frame_bytes(b'P', b"p\xff");
        assert_eq!(super::decode(&f.body).unwrap(), (b'P', &b"p\xff"[..]));
    }
}
