//! BackendKeyData (`K`): the process id and secret a client needs to cancel.

use bytes::{BufMut, BytesMut};

use super::{CodecError, Frame, Reader};

/// Process id and secret key identifying a backend for CancelRequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendKey {
    /// Process id.
    pub pid: i32,
    /// Secret key.
    pub key: i32,
}

impl BackendKey {
    /// Encodes as a `K` frame.
    pub fn to_frame(self) -> Frame {
        let mut b = BytesMut::with_capacity(8);
        b.put_i32(self.pid);
        b.put_i32(self.key);
        Frame::new(b'K', b)
    }

    /// Decodes the body of a `K` frame.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new("BackendKeyData", body);
        let pid = r.i32()?;
        let key = r.i32()?;
        // Protocol 3.2 allows longer keys; we only issue and accept 4 bytes.
        Ok(Self { pid, key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let k = BackendKey { pid: 42, key: -1 };
        assert_eq!(BackendKey::decode(&k.to_frame().body).unwrap(), k);
        assert!(BackendKey::decode(&[0, 1]).is_err());
    }
}
