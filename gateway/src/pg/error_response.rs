//! ErrorResponse (`E`) and NoticeResponse (`N`): severity, SQLSTATE and
//! message fields.

use bytes::{BufMut, BytesMut};

use super::{put_cstr, CodecError, Frame, Reader};

/// Severity of an error or notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Statement failed; session continues.
    Error,
    /// Session is ending.
    Fatal,
    /// Informational notice.
    Notice,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
            Self::Notice => "NOTICE",
        }
    }
}

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    /// Severity (`S` and `V`).
    pub severity: Severity,
    /// SQLSTATE (`C`).
    pub code: String,
    /// Primary message (`M`).
    pub message: String,
    /// Optional detail (`D`).
    pub detail: Option<String>,
    /// Optional hint (`H`).
    pub hint: Option<String>,
}

impl ErrorFields {
    /// A new error with severity, SQLSTATE and message.
    pub fn new(severity: Severity, code: &str, message: impl Into<String>) -> Self {
        Self {
            severity,
            code: code.to_string(),
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a detail line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Encodes as ErrorResponse, or NoticeResponse when severity is Notice.
    pub fn to_frame(&self) -> Frame {
        let mut body = BytesMut::new();
        for tag in [b'S', b'V'] {
            body.put_u8(tag);
            put_cstr(&mut body, self.severity.as_str());
        }
        body.put_u8(b'C');
        put_cstr(&mut body, &self.code);
        body.put_u8(b'M');
        put_cstr(&mut body, &self.message);
        if let Some(d) = &self.detail {
            body.put_u8(b'D');
            put_cstr(&mut body, d);
        }
        if let Some(h) = &self.hint {
            body.put_u8(b'H');
            put_cstr(&mut body, h);
        }
        body.put_u8(0);
        let tag = if self.severity == Severity::Notice {
            b'N'
        } else {
            b'E'
        };
        Frame::new(tag, body)
    }

    /// Decodes the body of an ErrorResponse or NoticeResponse. Unknown
    /// fields are skipped; unknown severities read as Error.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new("ErrorResponse", body);
        let mut out = Self::new(Severity::Error, "", "");
        loop {
            let field = r.u8()?;
            if field == 0 {
                break;
            }
            let raw = r.cbytes()?;
            // Server text is in the client encoding; only ASCII fields
            // (severity, SQLSTATE) are interpreted.
            let value = String::from_utf8_lossy(raw);
            let value = value.as_ref();
            match field {
                b'V' => {
                    out.severity = match value {
                        "FATAL" | "PANIC" => Severity::Fatal,
                        "ERROR" => Severity::Error,
                        _ => Severity::Notice,
                    }
                }
                b'C' => out.code = value.to_string(),
                b'M' => out.message = value.to_string(),
                b'D' => out.detail = Some(value.to_string()),
                b'H' => out.hint = Some(value.to_string()),
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = ErrorFields::new(Severity::Error, "42501", "denied")
            .with_hint("ask a dba")
            .with_detail("why");
        let f = e.to_frame();
        assert_eq!(f.tag, b'E');
        assert_eq!(ErrorFields::decode(&f.body).unwrap(), e);
        let n = ErrorFields::new(Severity::Notice, "00000", "hello");
        let f = n.to_frame();
        assert_eq!(f.tag, b'N');
        assert_eq!(ErrorFields::decode(&f.body).unwrap(), n);
    }

    #[test]
    fn malformed() {
        assert!(ErrorFields::decode(b"Mno terminator").is_err());
        assert!(ErrorFields::decode(b"").is_err());
    }
}
