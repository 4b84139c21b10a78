//! Backend (server → client) messages after startup, typed and borrowing
//! from the read buffer. Bodies the session never interprets (rows, COPY
//! data) stay as bytes and are relayed unchanged.

use super::ready::TxStatus;
use super::{param_status, CodecError, ErrorFields, Reader};

/// One backend message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage<'a> {
    /// `1`
    ParseComplete,
    /// `2`
    BindComplete,
    /// `3`
    CloseComplete,
    /// `n`
    NoData,
    /// `t`
    ParameterDescription,
    /// `T` (body kept for the mask stage).
    RowDescription(&'a [u8]),
    /// `D` (body kept for the mask and record stages).
    DataRow(&'a [u8]),
    /// `C` with its command tag.
    CommandComplete(&'a [u8]),
    /// `I`
    EmptyQueryResponse,
    /// `s`
    PortalSuspended,
    /// `E`
    ErrorResponse(&'a [u8]),
    /// `N`
    NoticeResponse,
    /// `Z`
    ReadyForQuery(TxStatus),
    /// `S`
    ParameterStatus {
        /// Parameter name.
        name: &'a str,
        /// Value.
        value: &'a str,
    },
    /// `A`
    NotificationResponse,
    /// `G`
    CopyInResponse,
    /// `H`
    CopyOutResponse,
    /// `W`
    CopyBothResponse,
    /// `d`
    CopyData,
    /// `c`
    CopyDone,
    /// `V`
    FunctionCallResponse,
    /// Anything else (`K`, `R`, `v` after startup are protocol errors the
    /// client will report, as it would directly).
    Other(u8),
}

impl<'a> BackendMessage<'a> {
    /// Decodes a backend message from its tag and body.
    pub fn decode(tag: u8, body: &'a [u8]) -> Result<Self, CodecError> {
        Ok(match tag {
            b'1' => Self::ParseComplete,
            b'2' => Self::BindComplete,
            b'3' => Self::CloseComplete,
            b'n' => Self::NoData,
            b't' => Self::ParameterDescription,
            b'T' => Self::RowDescription(body),
            b'D' => Self::DataRow(body),
            b'C' => {
                let mut r = Reader::new("CommandComplete", body);
                Self::CommandComplete(r.cbytes()?)
            }
            b'I' => Self::EmptyQueryResponse,
            b's' => Self::PortalSuspended,
            b'E' => Self::ErrorResponse(body),
            b'N' => Self::NoticeResponse,
            b'Z' => Self::ReadyForQuery(TxStatus::decode(body)?),
            b'S' => {
                let (name, value) = param_status::decode(body)?;
                Self::ParameterStatus { name, value }
            }
            b'A' => Self::NotificationResponse,
            b'G' => Self::CopyInResponse,
            b'H' => Self::CopyOutResponse,
            b'W' => Self::CopyBothResponse,
            b'd' => Self::CopyData,
            b'c' => Self::CopyDone,
            b'V' => Self::FunctionCallResponse,
            other => Self::Other(other),
        })
    }
}

/// Whether an ErrorResponse body has severity FATAL or PANIC, and its
/// SQLSTATE; reads only those fields.
pub fn error_summary(body: &[u8]) -> (bool, [u8; 5]) {
    let mut fatal = false;
    let mut code = [b'0'; 5];
    let mut r = Reader::new("ErrorResponse", body);
    while let Ok(field) = r.u8() {
        if field == 0 {
            break;
        }
        let Ok(value) = r.cbytes() else { break };
        match field {
            b'V' => fatal = value == b"FATAL" || value == b"PANIC",
            b'C' if value.len() == 5 => code.copy_from_slice(value),
            _ => {}
        }
    }
    (fatal, code)
}

/// Decodes an ErrorResponse body fully (for logs and tests).
pub fn error_fields(body: &[u8]) -> Result<ErrorFields, CodecError> {
    ErrorFields::decode(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::Severity;

    #[test]
    fn decodes_and_summarises() {
        let z = TxStatus::InTransaction.to_frame();
        assert_eq!(
            BackendMessage::decode(z.tag, &z.body).unwrap(),
            BackendMessage::ReadyForQuery(TxStatus::InTransaction)
        );
        let s = param_status::to_frame("client_encoding", "LATIN9");
        assert_eq!(
            BackendMessage::decode(s.tag, &s.body).unwrap(),
            BackendMessage::ParameterStatus {
                name: "client_encoding",
                value: "LATIN9"
            }
        );
        assert_eq!(
            BackendMessage::decode(b'C', b"SELECT 1\0").unwrap(),
            BackendMessage::CommandComplete(b"SELECT 1")
        );
        assert!(BackendMessage::decode(b'C', b"SELECT 1").is_err());
        assert!(BackendMessage::decode(b'Z', b"Q").is_err());
        let e = ErrorFields::new(Severity::Fatal, "57P01", "terminating").to_frame();
        assert_eq!(error_summary(&e.body), (true, *b"57P01"));
        let e = ErrorFields::new(Severity::Error, "42601", "syntax").to_frame();
        assert_eq!(error_summary(&e.body), (false, *b"42601"));
        assert_eq!(error_fields(&e.body).unwrap().code, "42601");
    }
}
