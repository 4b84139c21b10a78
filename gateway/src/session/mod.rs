//! One client session: startup and authentication ([`startup`]), upstream
//! login ([`upstream`]), per-statement decisions ([`decide`]), the
//! protocol pipeline ([`pipeline`]: in-flight queue, statement registry,
//! stages) and its one-task I/O loop ([`relay`]).

pub mod cancel;
pub mod decide;
pub mod hold;
pub mod inflight;
pub mod pipeline;
pub mod registry;
pub mod relay;
pub mod stage;
pub mod startup;
pub mod stream;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::config::Config;
use crate::identity::{IdentityError, Verifier};
use crate::metrics::Metrics;
use crate::pg::{CodecError, ErrorFields, Severity};
use crate::policy::PolicyStore;
use cancel::CancelRegistry;
use upstream::UpstreamError;

/// State shared by every session of one gateway.
pub struct Shared {
    /// Validated configuration.
    pub config: Config,
    /// Connections by name (shared with cancel targets).
    pub connections: Vec<Arc<crate::config::ConnectionConfig>>,
    /// The approvals service, when configured.
    pub approvals: Option<Arc<crate::approvals::ApprovalsClient>>,
    /// The audit writer, when recording is on.
    pub audit: Option<crate::audit::Auditor>,
    /// Each connection's catalog, by connection name.
    pub catalogs: std::collections::HashMap<String, Arc<crate::catalog::CatalogCache>>,
    /// Token validation.
    pub verifier: Verifier,
    /// Policy in force.
    pub policy: PolicyStore,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Cancel key routing.
    pub cancels: CancelRegistry,
    /// Client TLS, when configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Masking (the hash key, read at the first hash).
    pub masker: crate::mask::Masker,
}

impl Shared {
    /// The catalog of `conn` (a new, unloaded one for a connection not
    /// configured at start, as in tests).
    pub fn catalog(
        &self,
        conn: &Arc<crate::config::ConnectionConfig>,
    ) -> Arc<crate::catalog::CatalogCache> {
        self.catalogs
            .get(&conn.name)
            .cloned()
            .unwrap_or_else(|| crate::catalog::CatalogCache::new(conn.clone()))
    }
}

/// Messages to a running session from outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// A CancelRequest with this session's key arrived.
    Cancel,
    /// The gateway is shutting down and the grace period is over.
    Shutdown,
    /// The gateway started shutting down: statements held for approval
    /// are withdrawn now (they could not finish within the grace period
    /// anyway).
    Draining,
}

/// Why a session ended abnormally. Each maps to one protocol response in
/// [`SessionError::to_error`].
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Malformed or oversized client input, or I/O failure.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The token was refused.
    #[error("authentication failed: {0}")]
    Auth(#[from] IdentityError),
    /// Startup refused for a reason with its own SQLSTATE.
    #[error("{message}")]
    Refused {
        /// SQLSTATE.
        code: &'static str,
        /// Message.
        message: String,
        /// Optional hint.
        hint: Option<String>,
    },
    /// The upstream database could not be used.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Startup took too long.
    #[error("startup timed out")]
    Timeout,
}

impl SessionError {
    /// The FATAL ErrorResponse for this error, if the client should get one.
    pub fn to_error(&self) -> Option<ErrorFields> {
        let fatal = |code: &str, msg: String| ErrorFields::new(Severity::Fatal, code, msg);
        match self {
            Self::Codec(CodecError::Io(_)) | Self::Codec(CodecError::Truncated) => None,
            Self::Codec(CodecError::TooLarge { .. }) => Some(fatal("54000", self.to_string())),
            Self::Codec(e) => Some(fatal("08P01", format!("invalid message: {e}"))),
            Self::Auth(e) => Some(fatal("28P01", format!("authentication failed: {e}"))),
            Self::Refused {
                code,
                message,
                hint,
            } => {
                let e = fatal(code, message.clone());
                Some(match hint {
                    Some(h) => e.with_hint(h.clone()),
                    None => e,
                })
            }
            Self::Upstream(UpstreamError::Server(e)) => Some(ErrorFields {
                severity: Severity::Fatal,
                ..e.clone()
            }),
            Self::Upstream(e) => Some(fatal("08006", e.to_string())),
            Self::Timeout => Some(fatal("08006", "startup timed out".into())),
        }
    }
}

/// Longest `application_name` Postgres keeps (NAMEDATALEN - 1).
const MAX_APPLICATION_NAME: usize = 63;

/// `<app> (portcullis:<user>)`: the client's part is cut so the user
/// suffix always fits (`pg_stat_activity` must show who it is).
pub(crate) fn upstream_application_name(app: &str, user: &str) -> String {
    let mut suffix = format!("portcullis:{user}");
    startup::truncate_utf8(&mut suffix, MAX_APPLICATION_NAME);
    if app.is_empty() {
        return suffix;
    }
    let room = MAX_APPLICATION_NAME.saturating_sub(suffix.len() + 3);
    if room == 0 {
        return suffix;
    }
    let mut app = app.to_string();
    startup::truncate_utf8(&mut app, room);
    format!("{app} ({suffix})")
}

/// Serves one client connection to completion.
pub async fn handle(tcp: TcpStream, peer: SocketAddr, local: SocketAddr, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let timeout = shared.config.startup_timeout();
    let started =
        tokio::time::timeout(timeout, startup::establish(tcp, peer, local, &shared)).await;
    let ready = match started {
        Ok(Ok(Some(ready))) => ready,
        Ok(Ok(None)) => return,
        Ok(Err((mut stream, err))) => {
            log_startup_error(&err, peer);
            if let (Some(stream), Some(e)) = (stream.as_mut(), err.to_error()) {
                let _ = stream.write_all(&e.to_frame().to_bytes()).await;
                let _ = stream.shutdown().await;
            }
            return;
        }
        Err(_) => {
            tracing::info!(client = %peer, "startup timed out");
            return;
        }
    };
    relay::run(ready, shared).await;
}

fn log_startup_error(err: &SessionError, peer: SocketAddr) {
    match err {
        SessionError::Auth(e) => {
            tracing::warn!(client = %peer, reason = %e, "authentication failed")
        }
        SessionError::Upstream(e) => {
            tracing::error!(client = %peer, error = %e, "upstream login failed")
        }
        other => tracing::info!(client = %peer, error = %other, "startup refused"),
    }
}

#[cfg(test)]
mod tests;
