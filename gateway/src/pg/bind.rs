//! Bind (`B`): bind parameter values to a prepared statement, creating a
//! portal.

use bytes::{BufMut, BytesMut};

use super::{put_cbytes, CodecError, Frame, Reader};

/// A decoded Bind message. Parameter values stay as the client sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    /// Portal name; empty for the unnamed portal.
    pub portal: &'a [u8],
    /// Prepared statement name; empty for the unnamed statement.
    pub statement: &'a [u8],
    /// Parameter format codes (0 text, 1 binary).
    pub param_formats: Vec<i16>,
    /// Parameter values; `None` is SQL NULL.
    pub params: Vec<Option<&'a [u8]>>,
    /// Result column format codes.
    pub result_formats: Vec<i16>,
}

fn count(r: &mut Reader<'_>) -> Result<usize, CodecError> {
    let n = r.i16()?;
    usize::try_from(n).map_err(|_| CodecError::Malformed {
        what: "Bind",
        why: "negative count",
    })
}

impl<'a> Bind<'a> {
    /// Decodes a Bind body.
    pub fn decode(body: &'a [u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new("Bind", body);
        let portal = r.cbytes()?;
        let statement = r.cbytes()?;
        let n = count(&mut r)?;
        let param_formats = (0..n).map(|_| r.i16()).collect::<Result<Vec<_>, _>>()?;
        let n = count(&mut r)?;
        let mut params = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.i32()?;
            params.push(match usize::try_from(len) {
                Ok(len) => Some(r.bytes(len)?),
                Err(_) if len == -1 => None,
                Err(_) => {
                    return Err(CodecError::Malformed {
                        what: "Bind",
                        why: "invalid parameter length",
                    })
                }
            });
        }
        let n = count(&mut r)?;
        let result_formats = (0..n).map(|_| r.i16()).collect::<Result<Vec<_>, _>>()?;
        r.finish()?;
        Ok(Self {
            portal,
            statement,
            param_formats,
            params,
            result_formats,
        })
    }

    /// Encodes as a `B` frame.
    pub fn to_frame(&self) -> Frame {
        let mut b = BytesMut::new();
        put_cbytes(&mut b, self.portal);
        put_cbytes(&mut b, self.statement);
        b.put_i16(self.param_formats.len() as i16);
        for f in &self.param_formats {
            b.put_i16(*f);
        }
        b.put_i16(self.params.len() as i16);
        for p in &self.params {
            match p {
                Some(v) => {
                    b.put_i32(v.len() as i32);
                    b.put_slice(v);
                }
                None => b.put_i32(-1),
            }
        }
        b.put_i16(self.result_formats.len() as i16);
        for f in &self.result_formats {
            b.put_i16(*f);
        }
        Frame::new(b'B', b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let b = Bind {
            portal: b"p",
            statement: b"s",
            param_formats: vec![0, 1],
            params: vec![Some(b"42"), None],
            result_formats: vec![1],
        };
        let f = b.to_frame();
        assert_eq!(Bind::decode(&f.body).unwrap(), b);
        assert!(Bind::decode(b"p\0s\0\0\0\0\x01\xff\xff\xff\xfe\0\0").is_err());
        assert!(Bind::decode(b"p\0s\0\0\0\0\x01\0\0\0\x09ab\0\0").is_err());
    }
}
