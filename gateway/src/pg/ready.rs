//! ReadyForQuery (`Z`): the server is idle, with its transaction status.

use super::{CodecError, Frame, Reader};

/// Transaction status reported by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// Not in a transaction block (`I`).
    Idle,
    /// In a transaction block (`T`).
    InTransaction,
    /// In a failed transaction block (`E`).
    Failed,
}

impl TxStatus {
    /// Encodes as a `Z` frame.
    pub fn to_frame(self) -> Frame {
        let b = match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        };
        Frame::new(b'Z', vec![b])
    }

    /// Decodes the body of a `Z` frame.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new("ReadyForQuery", body);
        let s = match r.u8()? {
            b'I' => Self::Idle,
            b'T' => Self::InTransaction,
            b'E' => Self::Failed,
            _ => {
                return Err(CodecError::Malformed {
                    what: "ReadyForQuery",
                    why: "unknown transaction status",
                })
            }
        };
        r.finish()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for s in [TxStatus::Idle, TxStatus::InTransaction, TxStatus::Failed] {
            assert_eq!(TxStatus::decode(&s.to_frame().body).unwrap(), s);
        }
        assert!(TxStatus::decode(b"X").is_err());
    }
}
