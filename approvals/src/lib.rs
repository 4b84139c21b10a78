//! Portcullis approvals service: gateways post statements that need a
//! second pair of eyes, approvers decide, and every decision is signed
//! (Ed25519) so the gateway holding the statement can check it.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod error;
pub mod mail;
pub mod notify;
pub mod rules;
pub mod slack;
pub mod store;
pub mod tls;
pub mod web;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxState;
use axum::routing::get;
use axum::Router;
use portcullis::approvals::protocol::{sign, DecisionPayload, SignedDecision, State};
use portcullis::identity::Verifier;
use ring::signature::Ed25519KeyPair;
use tokio::sync::broadcast;

use config::Config;
use error::ApiError;
use rules::{Approver, Effect};
use store::{now_ms, Request, Store};

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    /// Requests created.
    pub created: AtomicU64,
    /// Requests approved.
    pub approved: AtomicU64,
    /// Requests rejected.
    pub rejected: AtomicU64,
    /// Requests expired.
    pub expired: AtomicU64,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// Configuration.
    pub config: Arc<Config>,
    /// Store.
    pub store: Arc<Store>,
    /// Approver token verification.
    pub verifier: Arc<Verifier>,
    /// Signing key.
    pub key: Arc<Ed25519KeyPair>,
    /// The gateways' bearer token.
    pub gateway_token: Arc<String>,
    /// Ids of requests whose state changed.
    pub changes: broadcast::Sender<String>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The web UI, when `[web]` is configured.
    pub web: Option<Arc<web::Web>>,
    /// Webhooks.
    pub notifier: Arc<notify::Notifier>,
    /// E-mail to approvers, when `[email]` is configured.
    pub mailer: Option<Arc<mail::Mailer>>,
    /// Slack, when `[slack]` is configured.
    pub slack: Option<Arc<slack::Slack>>,
}

/// Startup errors.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file named in the config could not be read.
    #[error("{what} {path}: {why}")]
    File {
        /// Which setting.
        what: &'static str,
        /// File.
        path: String,
        /// Reason.
        why: String,
    },
    /// The store did not open.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A webhook secret could not be read.
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
    /// The mailer could not be set up.
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    /// Slack could not be set up.
    #[error(transparent)]
    Slack(#[from] slack::SlackError),
}

impl AppState {
    /// Reads the key and token files and opens the store.
    pub async fn new(config: Config) -> Result<Self, StartError> {
        let read = |what: &'static str, path: &std::path::Path| {
            std::fs::read_to_string(path).map_err(|e| StartError::File {
                what,
                path: path.display().to_string(),
                why: e.kind().to_string(),
            })
        };
        let token = read("gateway_token_file", &config.gateway_token_file)?
            .trim()
            .to_string();
        if token.len() < 16 {
            return Err(StartError::File {
                what: "gateway_token_file",
                path: config.gateway_token_file.display().to_string(),
                why: "the token must be at least 16 characters".into(),
            });
        }
        let key = portcullis::approvals::protocol::key_from_seed(&read(
            "signing_key_file",
            &config.signing_key_file,
        )?)
        .ok_or_else(|| StartError::File {
            what: "signing_key_file",
            path: config.signing_key_file.display().to_string(),
            why: "not a base64 32-byte Ed25519 seed (portcullis-approvals keygen writes one)"
                .into(),
        })?;
        let store = Store::open(&config.store_url).await?;
        let web = config
            .web
            .clone()
            .map(|w| Arc::new(web::Web::new(w, &config.public_url())));
        let notifier = Arc::new(notify::Notifier::new(
            &config.webhooks,
            config.public_url(),
        )?);
        let mailer = match config.email.clone() {
            Some(e) => Some(Arc::new(mail::Mailer::new(e, config.public_url())?)),
            None => None,
        };
        let slack = match config.slack.clone() {
            Some(s) => Some(Arc::new(slack::Slack::new(s, config.public_url())?)),
            None => None,
        };
        Ok(Self {
            slack,
            mailer,
            notifier,
            web,
            verifier: Arc::new(Verifier::new(&config.identity.issuers)),
            config: Arc::new(config),
            store: Arc::new(store),
            key: Arc::new(key),
            gateway_token: Arc::new(token),
            changes: broadcast::channel(1024).0,
            metrics: Arc::new(Metrics::default()),
        })
    }

    /// Tells waiting gateways that `id` changed.
    pub fn notify(&self, id: &str) {
        let _ = self.changes.send(id.to_string());
    }

    /// The page approvers open for `id`.
    pub fn request_url(&self, id: &str) -> String {
        format!("{}/requests/{id}", self.config.public_url())
    }

    /// Signs decisions of this service.
    pub fn signer(&self) -> impl FnOnce(&Request, State, Vec<String>) -> SignedDecision {
        let key = self.key.clone();
        let grant = self.config.grant_lifetime.as_millis() as i64;
        move |req: &Request, outcome: State, approvers: Vec<String>| {
            sign(
                &key,
                DecisionPayload {
                    request_id: req.id.clone(),
                    statement_sha256: req.statement_sha256.clone(),
                    outcome,
                    approvers,
                    comment: req.comment.clone(),
                    valid_until: now_ms() + grant,
                    gateway: req.gateway.clone(),
                },
            )
        }
    }

    /// Announces that `r` left `pending` (decided, expired or withdrawn):
    /// waiting gateways, webhooks, and the Slack message.
    pub fn closed(&self, r: &Request) {
        self.notify(&r.id);
        self.notifier.send("decided", r);
        if let Some(s) = &self.slack {
            s.request_closed(r);
        }
    }

    /// Records a vote and announces a decision.
    pub async fn vote(
        &self,
        id: &str,
        who: &Approver,
        approve: bool,
        comment: &str,
    ) -> Result<Request, ApiError> {
        let (r, effect) = self
            .store
            .vote(id, who, approve, comment, self.signer())
            .await?;
        if let Effect::Decides(state) = effect {
            let counter = match state {
                State::Approved => &self.metrics.approved,
                _ => &self.metrics.rejected,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::info!(request = %id, approver = %who.id(), outcome = state.as_str(), "request decided");
            self.closed(&r);
        }
        Ok(r)
    }

    /// Marks requests past their expiry `expired`, once a second.
    pub async fn expire_loop(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let due = match self.store.due(now_ms()).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read expired requests");
                    continue;
                }
            };
            for id in due {
                match self
                    .store
                    .close_pending(&id, State::Expired, "expiry", self.signer())
                    .await
                {
                    Ok(true) => {
                        self.metrics.expired.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(request = %id, "request expired");
                        if let Ok(r) = self.store.get(&id).await {
                            self.closed(&r);
                        }
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(request = %id, error = %e, "cannot expire request"),
                }
            }
        }
    }
}

async fn metrics(AxState(state): AxState<AppState>) -> String {
    let m = &state.metrics;
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "# TYPE portcullis_approvals_requests_total counter\n\
         portcullis_approvals_requests_total {}\n\
         # TYPE portcullis_approvals_decisions_total counter\n\
         portcullis_approvals_decisions_total{{outcome=\"approved\"}} {}\n\
         portcullis_approvals_decisions_total{{outcome=\"rejected\"}} {}\n\
         portcullis_approvals_decisions_total{{outcome=\"expired\"}} {}\n",
        c(&m.created),
        c(&m.approved),
        c(&m.rejected),
        c(&m.expired)
    )
}

/// The service's router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .merge(api::routes())
        .merge(web::routes())
        .merge(slack::routes())
        .with_state(state)
}
