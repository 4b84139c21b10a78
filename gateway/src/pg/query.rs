//! Query (`Q`): a simple-protocol query string.

use bytes::BytesMut;

use super::{put_cstr, CodecError, Frame, Reader};

/// Encodes a Query frame.
pub fn to_frame(sql: &str) -> Frame {
    let mut b = BytesMut::with_capacity(sql.len() + 1);
    put_cstr(&mut b, sql);
    Frame::new(b'Q', b)
}

/// Decodes the SQL text of a Query body (bytes in the client encoding).
pub fn decode(body: &[u8]) -> Result<&[u8], CodecError> {
    let mut r = Reader::new("Query", body);
    let sql = r.cbytes()?;
    r.finish()?;
    Ok(sql)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let f = super::to_frame("select 1; select 2");
        assert_eq!(super::decode(&f.body).unwrap(), b"select 1; select 2");
        assert_eq!(super::decode(b"select '\xa4'\0").unwrap(), b"select '\xa4'");
        assert!(super::decode(b"select 1").is_err());
        assert!(super::decode(b"a\0b\0").is_err());
    }
}
