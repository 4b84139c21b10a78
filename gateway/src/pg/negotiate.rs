//! NegotiateProtocolVersion (`v`): the newest minor version the server
//! speaks and the protocol options it does not recognise.

use bytes::{BufMut, BytesMut};

use super::{put_cstr, CodecError, Frame, Reader};

/// Encodes a NegotiateProtocolVersion frame.
pub fn to_frame(newest_minor: i32, unrecognised: &[&str]) -> Frame {
    let mut b = BytesMut::new();
    b.put_i32(newest_minor);
    b.put_i32(unrecognised.len() as i32);
    for opt in unrecognised {
        put_cstr(&mut b, opt);
    }
    Frame::new(b'v', b)
}

/// Decodes a NegotiateProtocolVersion body.
pub fn decode(body: &[u8]) -> Result<(i32, Vec<&str>), CodecError> {
    let mut r = Reader::new("NegotiateProtocolVersion", body);
    let minor = r.i32()?;
    let n = r.i32()?;
    let mut opts = Vec::new();
    for _ in 0..n.max(0) {
        opts.push(r.cstr()?);
    }
    r.finish()?;
    Ok((minor, opts))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let f = super::to_frame(0, &["_pq_.compression"]);
        assert_eq!(
            super::decode(&f.body).unwrap(),
            (0, vec!["_pq_.compression"])
        );
        assert!(super::decode(&[0, 0, 0, 0, 0, 0, 0, 2, b'a', 0]).is_err());
    }
}
