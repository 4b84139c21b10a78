//! Logging in to the upstream database with the held credential
//! (SCRAM-SHA-256, md5 or cleartext as the server asks), over TLS when the
//! connection requires it. The credential never leaves this module.

use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::stream::{connector, BoxStream, TlsError};
use crate::config::{split_host_port, ConnectionConfig, TlsMode};
use crate::pg::auth::{password_frame, sasl_initial_frame, sasl_response_frame, AuthRequest};
use crate::pg::backend_key::BackendKey;
use crate::pg::startup::{StartupPacket, PROTOCOL_3_0};
use crate::pg::{param_status, read_frame, CodecError, ErrorFields, Frame};

/// Longest we wait for the database to accept and authenticate us.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message accepted from the database during login.
const MAX_LOGIN_MESSAGE: usize = 1 << 20;

/// Upstream connection errors. Messages never include the credential.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP connect or I/O failure.
    #[error("cannot reach database {addr}: {why}")]
    Connect {
        /// host:port.
        addr: String,
        /// Reason.
        why: String,
    },
    /// Timed out.
    #[error("database {0} did not answer in time")]
    Timeout(String),
    /// The server refused TLS that the connection requires.
    #[error("database {0} does not support TLS, which this connection requires")]
    NoTls(String),
    /// TLS setup or handshake failed.
    #[error("TLS to database: {0}")]
    Tls(String),
    /// The credential could not be read.
    #[error("credential for connection `{name}` is not available: {why}")]
    Credential {
        /// Connection name.
        name: String,
        /// Which source failed.
        why: String,
    },
    /// The database refused the login or sent an error.
    #[error("database refused the gateway's login: {0}")]
    Refused(String),
    /// The database sent an error during login for a reason other than
    /// the gateway's credential (a client setting it rejects, too many
    /// connections, shutting down...): the client gets it as it is.
    #[error("database refused the session: {} ({})", .0.message, .0.code)]
    Server(ErrorFields),
    /// Unsupported authentication method.
    #[error("database asks for an unsupported authentication method ({0})")]
    Method(String),
    /// Protocol error.
    #[error("database protocol error: {0}")]
    Codec(#[from] CodecError),
}

impl From<TlsError> for UpstreamError {
    fn from(e: TlsError) -> Self {
        Self::Tls(e.to_string())
    }
}

/// A logged-in upstream connection.
pub struct Upstream {
    /// The stream, positioned after the first ReadyForQuery.
    pub stream: BoxStream,
    /// ParameterStatus messages the server sent at login, to replay.
    pub params: Vec<Frame>,
    /// The backend's cancel key.
    pub key: BackendKey,
    /// Leftover bytes read past ReadyForQuery (normally empty).
    pub leftover: BytesMut,
}

/// Reads the upstream password from the environment or a file.
pub fn credential(conn: &ConnectionConfig) -> Result<String, UpstreamError> {
    let fail = |why: String| UpstreamError::Credential {
        name: conn.name.clone(),
        why,
    };
    if let Some(var) = &conn.password_env {
        return std::env::var(var)
            .map_err(|_| fail(format!("environment variable {var} is not set")));
    }
    if let Some(path) = &conn.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(format!("cannot read {}: {}", path.display(), e.kind())))?;
        return Ok(text.lines().next().unwrap_or_default().to_string());
    }
    Err(fail("no password_env or password_file".into()))
}

/// Opens a TCP (and, per config, TLS) stream to the database.
pub async fn open(conn: &ConnectionConfig) -> Result<BoxStream, UpstreamError> {
    let addr = conn.upstream.clone();
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| UpstreamError::Connect {
            addr: addr.clone(),
            why: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    if conn.tls == TlsMode::Disable {
        return Ok(Box::new(tcp));
    }
    let mut tcp = tcp;
    tcp.write_all(&StartupPacket::SslRequest.encode())
        .await
        .map_err(CodecError::from)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)
        .await
        .map_err(CodecError::from)?;
    if answer[..] != *crate::pg::startup::ENCRYPTION_ACCEPTED {
        return Err(UpstreamError::NoTls(addr));
    }
    let verify = conn.tls == TlsMode::VerifyFull;
    let tls = connector(verify, conn.ca_file.as_deref())?;
    let host = split_host_port(&addr).map(|(h, _)| h).unwrap_or_default();
    let name = rustls::pki_types::ServerName::try_from(host)
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    Ok(Box::new(stream))
}

/// Connects and logs in. `extra` are client startup parameters that are
/// safe to pass on (encoding, date style, time zone...).
pub async fn connect(
    conn: &ConnectionConfig,
    application_name: &str,
    extra: &[(String, String)],
) -> Result<Upstream, UpstreamError> {
    let addr = conn.upstream.clone();
    tokio::time::timeout(CONNECT_TIMEOUT, login(conn, application_name, extra))
        .await
        .map_err(|_| UpstreamError::Timeout(addr))?
}

async fn login(
    conn: &ConnectionConfig,
    application_name: &str,
    extra: &[(String, String)],
) -> Result<Upstream, UpstreamError> {
    let password = credential(conn)?;
    let mut stream = open(conn).await?;
    let mut params = vec![
        ("user".to_string(), conn.user.clone()),
        ("database".to_string(), conn.database().to_string()),
        ("application_name".to_string(), application_name.to_string()),
    ];
    params.extend(extra.iter().cloned());
    let startup = StartupPacket::Startup {
        version: PROTOCOL_3_0,
        params,
    };
    stream
        .write_all(&startup.encode())
        .await
        .map_err(CodecError::from)?;

    let mut buf = BytesMut::with_capacity(8192);
    let mut scram: Option<ScramSha256> = None;
    let mut status = Vec::new();
    let mut key = BackendKey { pid: 0, key: 0 };
    loop {
        let frame = read_frame(&mut stream, &mut buf, MAX_LOGIN_MESSAGE)
            .await?
            .ok_or(CodecError::Truncated)?;
        match frame.tag {
            b'R' => {
                let reply = match AuthRequest::decode(&frame.body)? {
                    AuthRequest::Ok => None,
                    AuthRequest::Cleartext => Some(password_frame(&password)),
                    AuthRequest::Md5(salt) => Some(password_frame(
                        &postgres_protocol::authentication::md5_hash(
                            conn.user.as_bytes(),
                            password.as_bytes(),
                            salt,
                        ),
                    )),
                    AuthRequest::Sasl(mechs) => {
                        if !mechs.iter().any(|m| m == "SCRAM-SHA-256") {
                            return Err(UpstreamError::Method(mechs.join(", ")));
                        }
                        let s =
                            ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                        let f = sasl_initial_frame("SCRAM-SHA-256", s.message());
                        scram = Some(s);
                        Some(f)
                    }
                    AuthRequest::SaslContinue(data) => {
                        let s = scram.as_mut().ok_or_else(|| {
                            UpstreamError::Method("SASL continue without start".into())
                        })?;
                        s.update(&data)
                            .map_err(|e| UpstreamError::Refused(format!("SCRAM: {e}")))?;
                        Some(sasl_response_frame(s.message()))
                    }
                    AuthRequest::SaslFinal(data) => {
                        let s = scram.as_mut().ok_or_else(|| {
                            UpstreamError::Method("SASL final without start".into())
                        })?;
                        s.finish(&data).map_err(|e| {
                            UpstreamError::Refused(format!("SCRAM server proof: {e}"))
                        })?;
                        None
                    }
                    AuthRequest::Other(code) => {
                        return Err(UpstreamError::Method(format!("code {code}")))
                    }
                };
                if let Some(f) = reply {
                    stream
                        .write_all(&f.to_bytes())
                        .await
                        .map_err(CodecError::from)?;
                }
            }
            b'S' => {
                param_status::decode(&frame.body)?;
                status.push(frame);
            }
            b'K' => key = BackendKey::decode(&frame.body)?,
            b'E' => {
                let e = ErrorFields::decode(&frame.body)?;
                // Credential problems stay the gateway's business.
                if e.code.starts_with("28") {
                    return Err(UpstreamError::Refused(format!(
                        "{} ({})",
                        e.message, e.code
                    )));
                }
                return Err(UpstreamError::Server(e));
            }
            b'N' => {}
            b'Z' => {
                return Ok(Upstream {
                    stream,
                    params: status,
                    key,
                    leftover: buf,
                })
            }
            b'v' => {} // NegotiateProtocolVersion: we only speak 3.0 anyway.
            other => {
                return Err(UpstreamError::Codec(CodecError::Malformed {
                    what: "login",
                    why: if other.is_ascii_graphic() {
                        "unexpected message"
                    } else {
                        "unexpected byte"
                    },
                }))
            }
        }
    }
}

/// Sends a CancelRequest for `key` to the database.
pub async fn cancel(conn: &ConnectionConfig, key: BackendKey) -> Result<(), UpstreamError> {
    let mut stream = open(conn).await?;
    let pkt = StartupPacket::Cancel {
        pid: key.pid,
        key: key.key,
    };
    stream
        .write_all(&pkt.encode())
        .await
        .map_err(CodecError::from)?;
    stream.flush().await.map_err(CodecError::from)?;
    // The server closes the connection once it has read the request.
    let mut sink = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await;
    Ok(())
}
