//! Parse (`P`): prepare a named or unnamed statement (extended protocol).

use bytes::{BufMut, BytesMut};

use super::{put_cbytes, CodecError, Frame, Reader};

/// A decoded Parse message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse<'a> {
    /// Statement name; empty for the unnamed statement.
    pub name: &'a [u8],
    /// SQL text, in the client encoding.
    pub sql: &'a [u8],
    /// Parameter type OIDs the client fixed (0 = unspecified).
    pub param_types: Vec<u32>,
}

impl<'a> Parse<'a> {
    /// Decodes a Parse body.
    pub fn decode(body: &'a [u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new("Parse", body);
        let name = r.cbytes()?;
        let sql = r.cbytes()?;
        let n = r.i16()?;
        if n < 0 {
            return Err(CodecError::Malformed {
                what: "Parse",
                why: "negative parameter count",
            });
        }
        let mut param_types = Vec::with_capacity(n as usize);
        for _ in 0..n {
            param_types.push(r.i32()? as u32);
        }
        r.finish()?;
        Ok(Self {
            name,
            sql,
            param_types,
        })
    }

    /// Encodes as a `P` frame.
    pub fn to_frame(&self) -> Frame {
        let mut b = BytesMut::new();
        put_cbytes(&mut b, self.name);
        put_cbytes(&mut b, self.sql);
        b.put_i16(self.param_types.len() as i16);
        for t in &self.param_types {
            b.put_u32(*t);
        }
        Frame::new(b'P', b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = Parse {
            name: b"s1",
            sql: b"select $1::int",
            param_types: vec![23],
        };
        let f = p.to_frame();
        assert_eq!(Parse::decode(&f.body).unwrap(), p);
        assert!(Parse::decode(b"s\0q\0\xff\xff").is_err());
        assert!(Parse::decode(b"s\0q\0\0\x01").is_err());
    }
}
