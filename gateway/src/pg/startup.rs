//! Untagged startup-phase packets: StartupMessage, SSLRequest,
//! GSSENCRequest and CancelRequest.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{put_cstr, CodecError, Reader};

/// Protocol version 3.0.
pub const PROTOCOL_3_0: i32 = 196_608;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;
/// Answer to SSLRequest when the server will do TLS.
pub const ENCRYPTION_ACCEPTED: &[u8] = b"S";
/// Answer to SSLRequest / GSSENCRequest when it will not.
pub const ENCRYPTION_REFUSED: &[u8] = b"N";
/// Largest startup packet Postgres accepts (MAX_STARTUP_PACKET_LENGTH).
pub const MAX_STARTUP_LEN: usize = 10_000;

/// A packet sent before authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// Client asks for TLS.
    SslRequest,
    /// Client asks for GSSAPI encryption.
    GssEncRequest,
    /// Client asks to cancel the query running on another connection.
    Cancel {
        /// Backend process id from BackendKeyData.
        pid: i32,
        /// Secret key from BackendKeyData.
        key: i32,
    },
    /// A StartupMessage with its parameters in order.
    Startup {
        /// Requested protocol version.
        version: i32,
        /// Parameter name/value pairs (`user`, `database`, ...).
        params: Vec<(String, String)>,
    },
}

impl StartupPacket {
    /// Looks up a startup parameter.
    pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Decodes the body of a startup packet (after its length word).
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new("startup", body);
        let code = r.i32()?;
        match code {
            SSL_REQUEST => {
                r.finish()?;
                Ok(Self::SslRequest)
            }
            GSSENC_REQUEST => {
                r.finish()?;
                Ok(Self::GssEncRequest)
            }
            CANCEL_REQUEST => {
                let pid = r.i32()?;
                let key = r.i32()?;
                r.finish()?;
                Ok(Self::Cancel { pid, key })
            }
            version => {
                let mut params = Vec::new();
                loop {
                    let name = r.cstr()?;
                    if name.is_empty() {
                        break;
                    }
                    let value = r.cstr()?;
                    params.push((name.to_string(), value.to_string()));
                }
                r.finish()?;
                Ok(Self::Startup { version, params })
            }
        }
    }

    /// Encodes the packet with its length word.
    pub fn encode(&self) -> BytesMut {
        let mut body = BytesMut::new();
        match self {
            Self::SslRequest => body.put_i32(SSL_REQUEST),
            Self::GssEncRequest => body.put_i32(GSSENC_REQUEST),
            Self::Cancel { pid, key } => {
                body.put_i32(CANCEL_REQUEST);
                body.put_i32(*pid);
                body.put_i32(*key);
            }
            Self::Startup { version, params } => {
                body.put_i32(*version);
                for (k, v) in params {
                    put_cstr(&mut body, k);
                    put_cstr(&mut body, v);
                }
                body.put_u8(0);
            }
        }
        let mut out = BytesMut::with_capacity(body.len() + 4);
        out.put_i32(body.len() as i32 + 4);
        out.extend_from_slice(&body);
        out
    }

    /// Reads one startup packet; `Ok(None)` if the peer closed before sending
    /// anything.
    pub async fn read<R: AsyncRead + Unpin>(rd: &mut R) -> Result<Option<Self>, CodecError> {
        let mut len = [0u8; 4];
        match rd.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let len = i32::from_be_bytes(len);
        if len < 8 {
            return Err(CodecError::BadLength(len.into()));
        }
        let len = len as usize;
        if len > MAX_STARTUP_LEN {
            return Err(CodecError::TooLarge {
                len,
                max: MAX_STARTUP_LEN,
            });
        }
        let mut body = vec![0u8; len - 4];
        rd.read_exact(&mut body).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                CodecError::Truncated
            } else {
                e.into()
            }
        })?;
        Self::decode(&body).map(Some)
    }
}

/// Splits a startup `options` value into the settings it makes, as the
/// server does (whitespace separates arguments, a backslash keeps the next
/// character): `-c name=value`, `-cname=value` and `--name=value`
/// (dashes in names become underscores). Any other switch is an error
/// naming it.
pub fn parse_options(options: &str) -> Result<Vec<(String, String)>, String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_arg = true;
            }
            c if c.is_ascii_whitespace() => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            c => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        args.push(cur);
    }
    let setting = |s: &str| -> Result<(String, String), String> {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| format!("-c {s}: expected name=value"))?;
        Ok((name.replace('-', "_"), value.to_string()))
    };
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(rest) = a.strip_prefix("--") {
            out.push(setting(rest)?);
        } else if a == "-c" {
            let next = it.next().ok_or("-c without a setting")?;
            out.push(setting(next)?);
        } else if let Some(rest) = a.strip_prefix("-c") {
            out.push(setting(rest)?);
        } else {
            return Err(format!(
                "option {a} is not supported through the gateway (only -c name=value and --name=value)"
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_settings() {
        assert_eq!(
            parse_options("-c default_transaction_isolation=serializable --search-path=a\\ b  -cstatement_timeout=5s").unwrap(),
            vec![
                ("default_transaction_isolation".to_string(), "serializable".to_string()),
                ("search_path".to_string(), "a b".to_string()),
                ("statement_timeout".to_string(), "5s".to_string()),
            ]
        );
        assert!(parse_options("-d 5").unwrap_err().contains("-d"));
        assert!(parse_options("-c").is_err());
        assert!(parse_options("-c novalue").is_err());
        assert_eq!(parse_options("  ").unwrap(), vec![]);
    }

    #[test]
    fn round_trips() {
        for p in [
            StartupPacket::SslRequest,
            StartupPacket::GssEncRequest,
            StartupPacket::Cancel { pid: 7, key: -9 },
            StartupPacket::Startup {
                version: PROTOCOL_3_0,
                params: vec![
                    ("user".into(), "alice".into()),
                    ("database".into(), "prod".into()),
                ],
            },
        ] {
            let wire = p.encode();
            assert_eq!(StartupPacket::decode(&wire[4..]).unwrap(), p);
        }
    }

    #[tokio::test]
    async fn rejects_junk() {
        let mut junk: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        assert!(StartupPacket::read(&mut junk).await.is_err());
        let mut short: &[u8] = &[0, 0, 0, 12, 0, 3, 0, 0, b'u'];
        assert!(matches!(
            StartupPacket::read(&mut short).await,
            Err(CodecError::Truncated)
        ));
        let unterminated = [0, 3, 0, 0, b'u', b's'];
        assert!(StartupPacket::decode(&unterminated).is_err());
    }
}
