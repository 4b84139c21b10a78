//! Listeners: the Postgres-protocol listener, the admin HTTP listener, the
//! policy watcher and graceful shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::admin::{self, AdminState};
use crate::identity::Verifier;
use crate::metrics::Metrics;
use crate::policy::{PolicyError, PolicyStore};
use crate::session::stream::{acceptor, TlsError};
use crate::session::{self, cancel::CancelRegistry, Shared};

/// Errors starting the gateway.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The policy did not load.
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    /// TLS material did not load.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// The approvals client could not be set up.
    #[error("approvals: {0}")]
    Approvals(#[from] crate::approvals::ApprovalsError),
    /// The audit store or writer could not start.
    #[error("audit: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {why}")]
    Bind {
        /// Address.
        addr: String,
        /// Reason.
        why: String,
    },
}

/// A started gateway.
pub struct Gateway {
    /// Bound Postgres-protocol address.
    pub pg_addr: SocketAddr,
    /// Bound admin address, if enabled.
    pub admin_addr: Option<SocketAddr>,
    listener: TcpListener,
    shared: Arc<Shared>,
    accepting: Arc<AtomicBool>,
}

async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Bind {
            addr: addr.to_string(),
            why: e.to_string(),
        })
}

impl Gateway {
    /// Loads policy and TLS, binds the listeners and starts the admin
    /// server and policy watcher.
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        let metrics = Arc::new(Metrics::default());
        let audit = crate::audit::start(&config.store.url, &config.audit).await?;
        let policy = PolicyStore::open(
            &config.policy.dir,
            &config.policy.query,
            config.policy.engine == crate::config::PolicyEngine::Vm,
        )?;
        tracing::info!(policy_hash = %policy.current().hash, dir = %config.policy.dir.display(), "policy loaded");
        let interval = config.policy.reload_interval;
        {
            let m = metrics.clone();
            policy.spawn_watcher(interval, move |ok| m.policy_reload(ok));
        }
        let tls = match (&config.gateway.tls_cert, &config.gateway.tls_key) {
            (Some(c), Some(k)) => Some(acceptor(c, k)?),
            _ => None,
        };
        let listener = bind(&config.gateway.listen).await?;
        let pg_addr = listener.local_addr().map_err(|e| ServerError::Bind {
            addr: config.gateway.listen.clone(),
            why: e.to_string(),
        })?;
        let accepting = Arc::new(AtomicBool::new(true));
        let admin_addr = if config.gateway.admin_listen.is_empty() {
            None
        } else {
            let l = bind(&config.gateway.admin_listen).await?;
            let addr = l.local_addr().ok();
            let viewer = match &config.audit.viewer {
                Some(vc) => {
                    let store = crate::audit::store::Store::open(&config.store.url)
                        .await
                        .map_err(crate::audit::AuditError::from)?;
                    let keys = crate::audit::read_keys(&config.audit)?;
                    let public = vc.public_url.clone().unwrap_or_else(|| {
                        format!(
                            "http://{}",
                            addr.map_or(config.gateway.admin_listen.clone(), |a| a.to_string())
                        )
                    });
                    Some(Arc::new(crate::http::viewer::Viewer::new(
                        vc.clone(),
                        public,
                        store,
                        keys,
                    )))
                }
                None => None,
            };
            let app = admin::app(AdminState {
                viewer,
                audit: audit.as_ref().map(|a| a.stats.clone()),
                metrics: metrics.clone(),
                policy: policy.clone(),
                accepting: accepting.clone(),
            });
            tokio::spawn(async move {
                if let Err(e) = axum::serve(l, app).await {
                    tracing::error!(error = %e, "admin listener failed");
                }
            });
            addr
        };
        let connections: Vec<_> = config.connections.iter().cloned().map(Arc::new).collect();
        let catalogs = connections
            .iter()
            .map(|c| (c.name.clone(), crate::catalog::CatalogCache::new(c.clone())))
            .collect();
        let approvals =
            crate::approvals::ApprovalsClient::from_config(&config.approvals)?.map(Arc::new);
        let shared = Arc::new(Shared {
            audit,
            approvals,
            connections,
            catalogs,
            verifier: Verifier::new(&config.identity.issuers),
            policy,
            metrics,
            cancels: CancelRegistry::default(),
            tls,
            masker: crate::mask::Masker::new(config.masking.clone()),
            config,
        });
        tracing::info!(listen = %pg_addr, admin = ?admin_addr, tls = shared.tls.is_some(), "gateway listening");
        Ok(Self {
            pg_addr,
            admin_addr,
            listener,
            shared,
            accepting,
        })
    }

    /// Accepts sessions until `shutdown` resolves, then waits up to the
    /// configured grace period for open sessions to finish.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let local = self.pg_addr;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        self.shared.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(session::handle(tcp, peer, local, self.shared.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        self.accepting.store(false, Ordering::Release);
        drop(self.listener);
        self.shared.cancels.tell_all(session::Control::Draining);
        let grace = self.shared.config.shutdown_grace();
        let deadline = Instant::now() + grace;
        let active = || {
            self.shared
                .metrics
                .connections_active
                .load(Ordering::Acquire)
        };
        tracing::info!(
            sessions = active(),
            grace_secs = grace.as_secs(),
            "shutting down: no new connections; waiting for sessions"
        );
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while active() > 0 && Instant::now() < deadline {
            tick.tick().await;
        }
        if active() > 0 {
            let told = self.shared.cancels.shutdown_all();
            tracing::warn!(
                sessions = active(),
                told,
                "grace period over; closing remaining sessions"
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while active() > 0 && Instant::now() < deadline {
                tick.tick().await;
            }
        } else {
            tracing::info!("all sessions finished");
        }
        if let Some(a) = &self.shared.audit {
            a.flush().await;
            tracing::info!("audit records written");
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
