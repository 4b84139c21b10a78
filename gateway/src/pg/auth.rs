//! Authentication request (`R`) and the password-family frontend messages
//! (`p`: PasswordMessage, SASLInitialResponse, SASLResponse).

use bytes::{BufMut, Bytes, BytesMut};

use super::{put_cstr, CodecError, Frame, Reader};

/// An authentication request from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    /// Authentication succeeded.
    Ok,
    /// Send the password in clear text.
    Cleartext,
    /// Send the md5-hashed password with this salt.
    Md5([u8; 4]),
    /// Start SASL with one of these mechanisms.
    Sasl(Vec<String>),
    /// SASL server challenge.
    SaslContinue(Bytes),
    /// SASL server final message.
    SaslFinal(Bytes),
    /// Any other method (Kerberos, GSS, SSPI...), unsupported here.
    Other(i32),
}

impl AuthRequest {
    /// Encodes as an `R` frame.
    pub fn to_frame(&self) -> Frame {
        let mut b = BytesMut::new();
        match self {
            Self::Ok => b.put_i32(0),
            Self::Cleartext => b.put_i32(3),
            Self::Md5(salt) => {
                b.put_i32(5);
                b.put_slice(salt);
            }
            Self::Sasl(mechs) => {
                b.put_i32(10);
                for m in mechs {
                    put_cstr(&mut b, m);
                }
                b.put_u8(0);
            }
            Self::SaslContinue(d) => {
                b.put_i32(11);
                b.put_slice(d);
            }
            Self::SaslFinal(d) => {
                b.put_i32(12);
                b.put_slice(d);
            }
            Self::Other(code) => b.put_i32(*code),
        }
        Frame::new(b'R', b)
    }

    /// Decodes the body of an `R` frame.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new("Authentication", body);
        Ok(match r.i32()? {
            0 => Self::Ok,
            3 => Self::Cleartext,
            5 => {
                let s = r.bytes(4)?;
                Self::Md5([s[0], s[1], s[2], s[3]])
            }
            10 => {
                let mut mechs = Vec::new();
                loop {
                    let m = r.cstr()?;
                    if m.is_empty() {
                        break;
                    }
                    mechs.push(m.to_string());
                }
                Self::Sasl(mechs)
            }
            11 => Self::SaslContinue(Bytes::copy_from_slice(r.rest())),
            12 => Self::SaslFinal(Bytes::copy_from_slice(r.rest())),
            other => Self::Other(other),
        })
    }
}

/// A cleartext PasswordMessage: the NUL-terminated password.
pub fn password_frame(password: &str) -> Frame {
    let mut b = BytesMut::new();
    put_cstr(&mut b, password);
    Frame::new(b'p', b)
}

/// Reads the password out of a cleartext PasswordMessage body.
pub fn decode_password(body: &[u8]) -> Result<&str, CodecError> {
    let mut r = Reader::new("PasswordMessage", body);
    let pw = r.cstr()?;
    r.finish()?;
    Ok(pw)
}

/// A SASLInitialResponse naming the mechanism.
pub fn sasl_initial_frame(mechanism: &str, data: &[u8]) -> Frame {
    let mut b = BytesMut::new();
    put_cstr(&mut b, mechanism);
    b.put_i32(data.len() as i32);
    b.put_slice(data);
    Frame::new(b'p', b)
}

/// A SASLResponse carrying the client's next message.
pub fn sasl_response_frame(data: &[u8]) -> Frame {
    Frame::new(b'p', Bytes::copy_from_slice(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for a in [
            AuthRequest::Ok,
            AuthRequest::Cleartext,
            AuthRequest::Md5([1, 2, 3, 4]),
            AuthRequest::Sasl(vec!["SCRAM-SHA-256".into()]),
            AuthRequest::SaslContinue(Bytes::from_static(b"r=abc")),
            AuthRequest::SaslFinal(Bytes::from_static(b"v=xyz")),
            AuthRequest::Other(7),
        ] {
            assert_eq!(AuthRequest::decode(&a.to_frame().body).unwrap(), a);
        }
        let f = password_frame("tok");
        assert_eq!(decode_password(&f.body).unwrap(), "tok");
        assert!(decode_password(b"no-nul").is_err());
        assert!(AuthRequest::decode(&[0, 0, 0, 5, 1]).is_err());
    }
}
