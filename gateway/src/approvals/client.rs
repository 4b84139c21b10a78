//! The gateway's client of the approvals service: posts a request for a
//! held statement, long-polls until it is decided, checks the decision's
//! signature against the configured public key, and withdraws requests
//! whose client cancelled or went away. Any failure is a refusal (fail
//! closed), never a silent allow.

use std::path::Path;
use std::time::Duration;

use super::protocol::{verify, NewRequest, RequestView, State};
use crate::config::ApprovalsConfig;

/// One long-poll call.
const POLL: Duration = Duration::from_secs(25);
/// Wait between attempts when the service cannot be reached.
const RETRY: Duration = Duration::from_millis(500);

/// Errors setting up the client.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalsError {
    /// A required setting is missing.
    #[error("`approvals.{0}` is required when `approvals.url` is set")]
    Missing(&'static str),
    /// The token file cannot be read.
    #[error("`approvals.token_file` {0}: {1}")]
    Token(String, String),
    /// HTTP client setup failed.
    #[error("approvals client: {0}")]
    Http(String),
    /// A CA or client certificate file is unusable.
    #[error("approvals TLS file {0}: {1}")]
    File(String, String),
}

/// How a hold ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Approved (signature checked).
    Approved {
        /// Who approved.
        approvers: Vec<String>,
    },
    /// Rejected by an approver.
    Rejected {
        /// Who rejected.
        approvers: Vec<String>,
        /// Their comment.
        comment: String,
    },
    /// Nobody decided in time.
    Expired,
    /// The request could not be made or the answer not trusted.
    Failed(String),
    /// Mode retry: not approved yet; a request was made at this link.
    Requested {
        /// The approval page.
        link: String,
    },
}

/// A client of one approvals service.
pub struct ApprovalsClient {
    http: reqwest::Client,
    url: String,
    public_url: String,
    token: String,
    public_key: String,
    /// This gateway's instance id (decisions are bound to it).
    pub gateway_id: String,
    /// Default expiry of a request.
    pub timeout: Duration,
}

impl ApprovalsClient {
    /// The client for `cfg`, or `None` when no service is configured.
    pub fn from_config(cfg: &ApprovalsConfig) -> Result<Option<Self>, ApprovalsError> {
        let Some(url) = &cfg.url else {
            return Ok(None);
        };
        let token_file = cfg
            .token_file
            .as_deref()
            .ok_or(ApprovalsError::Missing("token_file"))?;
        let public_key = cfg
            .public_key
            .clone()
            .ok_or(ApprovalsError::Missing("public_key"))?;
        let token = read_token(token_file)?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(POLL + Duration::from_secs(10));
        let read = |p: &std::path::Path| {
            std::fs::read(p)
                .map_err(|e| ApprovalsError::File(p.display().to_string(), e.to_string()))
        };
        if let Some(ca) = &cfg.ca_file {
            let cert = reqwest::Certificate::from_pem(&read(ca)?)
                .map_err(|e| ApprovalsError::File(ca.display().to_string(), e.to_string()))?;
            builder = builder.add_root_certificate(cert);
        }
        if let (Some(cert), Some(key)) = (&cfg.client_cert_file, &cfg.client_key_file) {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| ApprovalsError::File(cert.display().to_string(), e.to_string()))?;
            builder = builder.identity(id);
        }
        let http = builder
            .build()
            .map_err(|e| ApprovalsError::Http(e.to_string()))?;
        let url = url.trim_end_matches('/').to_string();
        Ok(Some(Self {
            http,
            public_url: cfg
                .public_url
                .clone()
                .unwrap_or_else(|| url.clone())
                .trim_end_matches('/')
                .to_string(),
            url,
            token,
            public_key,
            gateway_id: cfg.gateway_id.clone(),
            timeout: cfg.hold_timeout(),
        }))
    }

    /// The page approvers open for request `id`.
    pub fn link(&self, id: &str) -> String {
        format!("{}/requests/{id}", self.public_url)
    }

    /// Posts `req` and waits until it is decided or expires (plus a
    /// grace second). `statement_sha256` is what the decision must be
    /// bound to.
    pub async fn hold(&self, req: NewRequest, statement_sha256: String) -> HoldOutcome {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(req.expires_in + 5);
        let id = req.id.clone();
        if let Err(failed) = self.post(&req).await {
            return failed;
        }
        loop {
            if tokio::time::Instant::now() >= deadline {
                return HoldOutcome::Expired;
            }
            let view = self
                .http
                .get(format!("{}/api/v1/requests/{id}/wait", self.url))
                .query(&[("timeout_ms", POLL.as_millis() as u64)])
                .bearer_auth(&self.token)
                .send()
                .await;
            let view: RequestView = match view {
                Ok(r) if r.status().is_success() => match r.json().await {
                    Ok(v) => v,
                    Err(_) => {
                        return HoldOutcome::Failed(
                            "malformed answer from the approvals service".into(),
                        )
                    }
                },
                Ok(r) if r.status().is_client_error() => {
                    return HoldOutcome::Failed(format!(
                        "the approvals service answered {}",
                        r.status()
                    ))
                }
                _ => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            if view.state == State::Pending {
                continue;
            }
            return self.judge(&view, &id, &statement_sha256);
        }
    }

    /// Mode retry: uses up an approval of this statement by this
    /// requester if there is one (signature and validity checked), else
    /// posts a request and answers with its link at once.
    pub async fn retry(&self, req: NewRequest, statement_sha256: String) -> HoldOutcome {
        let used = self
            .http
            .post(format!("{}/api/v1/grants/consume", self.url))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({
                "gateway": self.gateway_id,
                "requester_sub": req.requester.sub,
                "statement_sha256": statement_sha256,
            }))
            .send()
            .await;
        match used {
            Ok(r) if r.status().is_success() => {
                let Ok(view) = r.json::<RequestView>().await else {
                    return HoldOutcome::Failed(
                        "malformed answer from the approvals service".into(),
                    );
                };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                if view
                    .decision
                    .as_ref()
                    .is_some_and(|d| d.payload.valid_until <= now)
                {
                    return HoldOutcome::Expired;
                }
                return self.judge(&view, &view.id.clone(), &statement_sha256);
            }
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {}
            Ok(r) => {
                return HoldOutcome::Failed(format!(
                    "the approvals service answered {}",
                    r.status()
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "approvals service unreachable");
                return HoldOutcome::Failed("the approvals service cannot be reached".into());
            }
        }
        match self.post(&req).await {
            Ok(()) => HoldOutcome::Requested {
                link: self.link(&req.id),
            },
            Err(failed) => failed,
        }
    }

    /// Posts a new request; the failure to answer with when it fails.
    async fn post(&self, req: &NewRequest) -> Result<(), HoldOutcome> {
        let created = self
            .http
            .post(format!("{}/api/v1/requests", self.url))
            .bearer_auth(&self.token)
            .json(req)
            .send()
            .await;
        match created {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(HoldOutcome::Failed(format!(
                "the approvals service refused the request ({})",
                r.status()
            ))),
            Err(e) => {
                tracing::warn!(error = %e, "approvals service unreachable");
                Err(HoldOutcome::Failed(
                    "the approvals service cannot be reached".into(),
                ))
            }
        }
    }

    /// Checks a decided request's signed decision.
    fn judge(&self, view: &RequestView, id: &str, hash: &str) -> HoldOutcome {
        let Some(d) = &view.decision else {
            return HoldOutcome::Failed(
                "the approvals service sent a decision without a signature".into(),
            );
        };
        match verify(&self.public_key, d, id, hash, &self.gateway_id) {
            Ok(State::Approved) if view.state == State::Approved => HoldOutcome::Approved {
                approvers: d.payload.approvers.clone(),
            },
            Ok(State::Rejected) => HoldOutcome::Rejected {
                approvers: d.payload.approvers.clone(),
                comment: d.payload.comment.clone(),
            },
            Ok(State::Expired) => HoldOutcome::Expired,
            Ok(other) => HoldOutcome::Failed(format!("the request was {}", other.as_str())),
            Err(e) => {
                tracing::warn!(request = %id, error = %e, "approval decision refused");
                HoldOutcome::Failed(format!("approval refused: {e}"))
            }
        }
    }

    /// Withdraws request `id` (best effort, in the background).
    pub fn withdraw(self: &std::sync::Arc<Self>, id: String) {
        let me = self.clone();
        tokio::spawn(async move {
            let r = me
                .http
                .post(format!("{}/api/v1/requests/{id}/withdraw", me.url))
                .bearer_auth(&me.token)
                .send()
                .await;
            if let Err(e) = r {
                tracing::warn!(request = %id, error = %e, "could not withdraw the approval request");
            }
        });
    }
}

fn read_token(path: &Path) -> Result<String, ApprovalsError> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| ApprovalsError::Token(path.display().to_string(), e.kind().to_string()))
}
