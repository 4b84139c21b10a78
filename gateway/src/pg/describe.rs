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

/// Decodes a Describe (or Close, which shares the layout) body.
pub fn decode(body: &[u8]) -> Result<(u8, &str), CodecError> {
    let mut r = Reader::new("Describe", body);
    let kind = r.u8()?;
    if kind != b'S' && kind != b'P' {
        return Err(CodecError::Malformed {
            what: "Describe",
            why: "target must be 'S' or 'P'",
        });
    }
    let name = r.cstr()?;
    r.finish()?;
    Ok((kind, name))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let f = super::to_frame(b'S', "stmt");
        assert_eq!(super::decode(&f.body).unwrap(), (b'S', "stmt"));
        assert!(super::decode(b"Xstmt\0").is_err());
    }
}
