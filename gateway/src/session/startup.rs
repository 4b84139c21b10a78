//! Session startup: SSL/GSS negotiation, CancelRequest routing, the
//! StartupMessage, token authentication, connection selection and the
//! upstream login.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use tokio::sync::mpsc;

use super::decide::Decider;
use super::pipeline::Pipeline;
use super::stream::BoxStream;
use super::upstream::{self, Upstream};
use super::{Control, SessionError, Shared};
use crate::config::ConnectionConfig;
use crate::identity::Identity;
use crate::pg::auth::{decode_password, AuthRequest};
use crate::pg::backend_key::BackendKey;
use crate::pg::ready::TxStatus;
use crate::pg::startup::{
    parse_options, StartupPacket, ENCRYPTION_ACCEPTED, ENCRYPTION_REFUSED, PROTOCOL_3_0,
};
use crate::pg::{param_status, read_frame, CodecError};
use crate::policy::Action;
use crate::sql::ParseSettings;

/// Largest password message (a JWT) accepted.
const MAX_PASSWORD_MESSAGE: usize = 64 * 1024;

/// Startup parameters that are not settings.
const NOT_SETTINGS: &[&str] = &[
    "user",
    "database",
    "application_name",
    "replication",
    "options",
];

/// An authenticated client joined to a logged-in upstream.
pub struct Ready {
    /// Client stream.
    pub client: BoxStream,
    /// Who the client is.
    pub identity: Identity,
    /// The connection used.
    pub conn: Arc<ConnectionConfig>,
    /// Upstream login.
    pub upstream: Upstream,
    /// The key the client got.
    pub key: BackendKey,
    /// Client address.
    pub peer: SocketAddr,
    /// Session id.
    pub session_id: String,
    /// The session's protocol state.
    pub pipeline: Pipeline,
    /// Cancel requests aimed at this session.
    pub control: mpsc::Receiver<Control>,
}

type StartupResult = Result<Option<Ready>, (Option<BoxStream>, SessionError)>;

/// What one startup packet asks for.
enum Step {
    Encrypt,
    Startup(i32, Vec<(String, String)>),
    Done,
}

/// Reads one startup packet and answers what can be answered in place.
async fn step<S: super::stream::Stream>(
    stream: &mut S,
    encrypted: bool,
    shared: &Arc<Shared>,
) -> Result<Step, SessionError> {
    let pkt = match StartupPacket::read(stream).await? {
        Some(p) => p,
        None => return Ok(Step::Done),
    };
    match pkt {
        StartupPacket::SslRequest if !encrypted && shared.tls.is_some() => Ok(Step::Encrypt),
        StartupPacket::SslRequest | StartupPacket::GssEncRequest if !encrypted => {
            stream
                .write_all(ENCRYPTION_REFUSED)
                .await
                .map_err(CodecError::from)?;
            Box::pin(step(stream, encrypted, shared)).await
        }
        StartupPacket::Cancel { pid, key } => {
            forward_cancel(shared, BackendKey { pid, key }).await;
            Ok(Step::Done)
        }
        StartupPacket::Startup { version, params } => Ok(Step::Startup(version, params)),
        _ => Err(CodecError::Malformed {
            what: "startup",
            why: "encryption requested twice",
        }
        .into()),
    }
}

/// Runs startup to the first ReadyForQuery. `Ok(None)`: the connection
/// ended normally before a session (cancel request, client gave up).
pub async fn establish(
    mut tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: &Arc<Shared>,
) -> StartupResult {
    let first = match step(&mut tcp, false, shared).await {
        Ok(s) => s,
        Err(e) => return Err((Some(Box::new(tcp)), e)),
    };
    let (mut stream, tls, version, params): (BoxStream, bool, i32, Vec<(String, String)>) =
        match first {
            Step::Done => return Ok(None),
            Step::Startup(v, p) => (Box::new(tcp), false, v, p),
            Step::Encrypt => {
                let Some(acceptor) = &shared.tls else {
                    return Ok(None);
                };
                if let Err(e) = tcp.write_all(ENCRYPTION_ACCEPTED).await {
                    return Err((None, CodecError::from(e).into()));
                }
                let mut s = match acceptor.accept(tcp).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::info!(client = %peer, error = %e, "TLS handshake failed");
                        return Ok(None);
                    }
                };
                match step(&mut s, true, shared).await {
                    Ok(Step::Startup(v, p)) => (Box::new(s), true, v, p),
                    Ok(_) => return Ok(None),
                    Err(e) => return Err((Some(Box::new(s)), e)),
                }
            }
        };
    match authenticate(&mut stream, tls, version, &params, peer, local, shared).await {
        Ok(a) => Ok(Some(Ready {
            client: stream,
            identity: a.identity,
            conn: a.conn,
            upstream: a.upstream,
            key: a.key,
            peer,
            session_id: a.session_id,
            pipeline: a.pipeline,
            control: a.control,
        })),
        Err(e) => Err((Some(stream), e)),
    }
}

/// The result of authentication and upstream login.
struct Authed {
    identity: Identity,
    conn: Arc<ConnectionConfig>,
    upstream: Upstream,
    key: BackendKey,
    session_id: String,
    pipeline: Pipeline,
    control: mpsc::Receiver<Control>,
}

fn refused(code: &'static str, message: impl Into<String>, hint: Option<String>) -> SessionError {
    SessionError::Refused {
        code,
        message: message.into(),
        hint,
    }
}

#[allow(clippy::too_many_arguments)]
async fn authenticate(
    stream: &mut BoxStream,
    tls: bool,
    version: i32,
    params: &[(String, String)],
    peer: SocketAddr,
    local: SocketAddr,
    shared: &Arc<Shared>,
) -> Result<Authed, SessionError> {
    let cfg = &shared.config;
    if version >> 16 != 3 {
        return Err(refused(
            "0A000",
            format!(
                "unsupported frontend protocol {}.{}: the gateway speaks 3.0",
                version >> 16,
                version & 0xffff
            ),
            None,
        ));
    }
    let unknown_pq: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.as_str())
        .collect();
    if version != PROTOCOL_3_0 || !unknown_pq.is_empty() {
        let frame = crate::pg::negotiate::to_frame(0, &unknown_pq);
        stream
            .write_all(&frame.to_bytes())
            .await
            .map_err(CodecError::from)?;
    }
    if StartupPacket::param(params, "replication")
        .is_some_and(|v| v != "false" && v != "0" && v != "off")
    {
        return Err(refused(
            "0A000",
            "replication connections are not supported through the gateway",
            None,
        ));
    }
    let user = StartupPacket::param(params, "user")
        .unwrap_or_default()
        .to_string();
    if user.is_empty() {
        return Err(refused(
            "28000",
            "no user name given in the startup message",
            None,
        ));
    }
    let dbname = StartupPacket::param(params, "database")
        .filter(|d| !d.is_empty())
        .unwrap_or(&user)
        .to_string();
    let plaintext_ok =
        cfg.gateway.allow_plaintext_loopback && local.ip().is_loopback() && peer.ip().is_loopback();
    if !tls && !plaintext_ok {
        let hint = if shared.tls.is_some() {
            "connect with sslmode=require".to_string()
        } else {
            "configure gateway.tls_cert/tls_key, or allow_plaintext_loopback for local development"
                .to_string()
        };
        return Err(refused(
            "28000",
            "the gateway accepts the token only over TLS",
            Some(hint),
        ));
    }

    stream
        .write_all(&AuthRequest::Cleartext.to_frame().to_bytes())
        .await
        .map_err(CodecError::from)?;
    let mut buf = BytesMut::new();
    let frame = read_frame(stream, &mut buf, MAX_PASSWORD_MESSAGE)
        .await?
        .ok_or(CodecError::Truncated)?;
    if frame.tag != b'p' {
        return Err(CodecError::Malformed {
            what: "authentication",
            why: "expected a password message",
        }
        .into());
    }
    let token = decode_password(&frame.body)?;
    let identity = match shared.verifier.verify(token).await {
        Ok(id) => id,
        Err(e) => {
            shared
                .metrics
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(e.into());
        }
    };
    if cfg.gateway.user_match == crate::config::UserMatch::Claim
        && !cfg
            .gateway
            .user_claims
            .iter()
            .any(|c| identity.claim(c) == Some(user.as_str()))
    {
        shared
            .metrics
            .auth_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Err(refused(
            "28P01",
            format!(
                "authentication failed: user \"{user}\" does not match the token ({})",
                cfg.gateway.user_claims.join(", ")
            ),
            Some(format!("connect as user {}", identity.display())),
        ));
    }
    let allowed: Vec<&Arc<ConnectionConfig>> = shared
        .connections
        .iter()
        .filter(|c| c.groups.is_empty() || c.groups.iter().any(|g| identity.groups.contains(g)))
        .collect();
    let Some(conn) = allowed
        .iter()
        .find(|c| c.name == dbname)
        .map(|c| Arc::clone(c))
    else {
        let names: Vec<&str> = allowed.iter().map(|c| c.name.as_str()).collect();
        let list = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        return Err(refused("3D000", format!("connection \"{dbname}\" does not exist or is not open to you; connections you may use: {list}"), None));
    };

    let app = StartupPacket::param(params, "application_name")
        .unwrap_or_default()
        .to_string();
    let upstream_app = super::upstream_application_name(&app, identity.display());
    let session_id = uuid::Uuid::now_v7().to_string();
    let catalog = shared.catalog(&conn);
    // The first session of a connection waits for its catalog (bounded; a
    // catalog that cannot be read counts every possible call as unknown).
    catalog.ready(upstream::CONNECT_TIMEOUT).await;
    let mut decider = Decider::new(
        shared.clone(),
        catalog,
        &identity,
        &conn,
        &peer.ip().to_string(),
        &app,
        &session_id,
    );
    let settings = decide_settings(params, &mut decider)?;
    let up = upstream::connect(&conn, &upstream_app, &settings).await?;
    let (tx, control) = mpsc::channel(8);
    let key = shared.cancels.register(up.key.pid, tx);

    let login: Vec<(String, String)> = up
        .params
        .iter()
        .filter_map(|f| param_status::decode(&f.body).ok())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut pipeline = Pipeline::new(decider, &login, app, upstream_app, identity.display());
    if let Some(client) = &shared.approvals {
        pipeline.set_approvals(super::hold::HoldContext {
            client: client.clone(),
            requester: crate::approvals::protocol::Requester {
                sub: identity.sub.clone(),
                email: identity.email.clone(),
                name: identity.name.clone(),
                groups: identity.groups.clone(),
            },
            client_addr: peer.ip().to_string(),
            connection: conn.name.clone(),
            database: conn.database().to_string(),
        });
    }
    if let Some(auditor) = &shared.audit {
        pipeline.set_recorder(crate::audit::recorder::Recorder::new(
            auditor.clone(),
            crate::audit::recorder::SessionInfo {
                session_id: session_id.clone(),
                user: identity.display().to_string(),
                groups: identity.groups.clone(),
                client_addr: peer.to_string(),
                application: params
                    .iter()
                    .find(|(k, _)| k == "application_name")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                connection: conn.name.clone(),
                issuer: identity.issuer.clone(),
            },
        ));
    }
    let mut out = BytesMut::new();
    AuthRequest::Ok.to_frame().encode(&mut out);
    for (name, value) in &login {
        param_status::to_frame(name, pipeline.client_param(name, value)).encode(&mut out);
    }
    key.to_frame().encode(&mut out);
    TxStatus::Idle.to_frame().encode(&mut out);
    stream.write_all(&out).await.map_err(CodecError::from)?;
    tracing::info!(client = %peer, user = %identity.display(), connection = %conn.name, tls, session = %session_id, "session started");
    Ok(Authed {
        identity,
        conn,
        upstream: up,
        key,
        session_id,
        pipeline,
        control,
    })
}

/// Every setting the client asks for at startup (parameters and `-c` /
/// `--name=value` inside `options`) is decided by the policy as the `SET`
/// statement it amounts to. All allowed: they go upstream as startup
/// parameters. One refused: the session is refused (FATAL 42501 with the
/// policy's reason); nothing is dropped silently.
fn decide_settings(
    params: &[(String, String)],
    decider: &mut Decider,
) -> Result<Vec<(String, String)>, SessionError> {
    let mut settings: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| {
            !NOT_SETTINGS.contains(&k.to_ascii_lowercase().as_str()) && !k.starts_with("_pq_.")
        })
        .cloned()
        .collect();
    if let Some(options) = StartupPacket::param(params, "options") {
        let parsed = parse_options(options).map_err(|why| {
            refused(
                "42501",
                format!("portcullis: startup options refused: {why}"),
                None,
            )
        })?;
        settings.extend(parsed);
    }
    for (name, value) in &settings {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid {
            return Err(refused(
                "42501",
                format!("portcullis: startup parameter \"{name}\" refused: not a setting name"),
                None,
            ));
        }
        let sql = format!("SET {name} TO '{}'", value.replace('\'', "''"));
        let v = decider.decide(&sql, false, ParseSettings::default(), true);
        let d = &v.decision;
        if d.action != Action::Allow {
            let reasons = if d.reasons.is_empty() {
                "no reason given".to_string()
            } else {
                d.reasons.join("; ")
            };
            return Err(refused(
                "42501",
                format!("portcullis: startup setting {name}={value} denied: {reasons}"),
                Some(format!("policy {}", v.policy_hash)),
            ));
        }
    }
    Ok(settings)
}

pub(crate) fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

async fn forward_cancel(shared: &Arc<Shared>, key: BackendKey) {
    if shared.cancels.cancel(key) {
        tracing::info!("cancel request delivered to its session");
    } else {
        tracing::info!("cancel request with unknown key ignored");
    }
}

#[cfg(test)]
mod tests {
    use crate::session::upstream_application_name as name;

    #[test]
    fn the_user_suffix_always_fits() {
        assert_eq!(
            name("psql", "alice@example.com"),
            "psql (portcullis:alice@example.com)"
        );
        assert_eq!(
            name("", "alice@example.com"),
            "portcullis:alice@example.com"
        );
        let long = "x".repeat(200);
        let n = name(&long, "alice@example.com");
        assert!(n.len() <= 63, "{n}");
        assert!(n.ends_with(" (portcullis:alice@example.com)"), "{n}");
        let n = name("ééééééééééééééééééééééééééééééé", "alice@example.com");
        assert!(
            n.len() <= 63 && n.ends_with("(portcullis:alice@example.com)"),
            "{n}"
        );
    }
}
