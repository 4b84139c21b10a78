//! `/api/v1`: the gateways' endpoints (bearer token from a file, compared
//! in constant time) and the approvers' decision endpoint (an OIDC access
//! token from a trusted issuer).

use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis::approvals::protocol::{NewRequest, RequestView, State as ReqState};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::rules::Approver;
use crate::store::{now_ms, Request};
use crate::tls::Peer;
use crate::AppState;

/// Longest a gateway's wait call is held open.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// The route group.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/requests", post(create).get(list))
        .route("/api/v1/requests/{id}", get(read))
        .route("/api/v1/requests/{id}/wait", get(wait))
        .route("/api/v1/requests/{id}/withdraw", post(withdraw))
        .route("/api/v1/requests/{id}/decision", post(decide))
        .route("/api/v1/grants/consume", post(consume))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Checks the gateway token in constant time (over SHA-256 digests, so
/// lengths leak nothing either).
/// With `tls.client_ca_file`, the connection must also have presented a
/// verified client certificate (mTLS).
fn gateway_only(state: &AppState, headers: &HeaderMap, peer: &Peer) -> Result<(), ApiError> {
    if state
        .config
        .tls
        .as_ref()
        .is_some_and(|t| t.client_ca_file.is_some())
        && !peer.client_cert
    {
        return Err(ApiError::Unauthorized);
    }
    let given = bearer(headers).ok_or(ApiError::Unauthorized)?;
    let a = Sha256::digest(given.trim().as_bytes());
    let b = Sha256::digest(state.gateway_token.as_bytes());
    let diff = a.iter().zip(b.iter()).fold(0u8, |d, (x, y)| d | (x ^ y));
    if diff == 0 {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// The approver presenting an access token.
pub async fn approver(state: &AppState, headers: &HeaderMap) -> Result<Approver, ApiError> {
    let token = bearer(headers).ok_or(ApiError::Unauthorized)?;
    let id = state
        .verifier
        .verify(token)
        .await
        .map_err(|e| ApiError::Forbidden(e.to_string()))?;
    Ok(Approver {
        sub: id.sub,
        email: id.email,
        groups: id.groups,
    })
}

fn view(r: &Request) -> RequestView {
    RequestView {
        id: r.id.clone(),
        state: r.state,
        decision: r.decision.clone(),
    }
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Json(req): Json<NewRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    gateway_only(&state, &headers, &peer)?;
    if uuid::Uuid::parse_str(&req.id).is_err() {
        return Err(ApiError::BadRequest("id must be a UUID".into()));
    }
    if req.groups.is_empty() {
        return Err(ApiError::BadRequest(
            "groups must name at least one group".into(),
        ));
    }
    if req.quorum == 0 {
        return Err(ApiError::BadRequest("quorum must be at least 1".into()));
    }
    let max = state.config.max_expiry.as_millis() as i64;
    let expires_at = now_ms() + (req.expires_in.saturating_mul(1000) as i64).min(max);
    let r = state.store.create(&req, expires_at).await?;
    state
        .metrics
        .created
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(request = %r.id, requester = %r.requester.email, connection = %r.connection, "approval requested");
    state.notify(&r.id);
    state.notifier.send("created", &r);
    if let Some(m) = &state.mailer {
        m.request_created(&r);
    }
    if let Some(s) = &state.slack {
        s.request_created(&r);
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"id": r.id, "state": r.state, "url": state.request_url(&r.id)})),
    ))
}

async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(id): Path<String>,
) -> Result<Json<RequestView>, ApiError> {
    gateway_only(&state, &headers, &peer)?;
    Ok(Json(view(&state.store.get(&id).await?)))
}

#[derive(Deserialize)]
struct WaitQuery {
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Long poll: answers as soon as the request is no longer pending, or
/// after the timeout with its (pending) state.
async fn wait(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<RequestView>, ApiError> {
    gateway_only(&state, &headers, &peer)?;
    let timeout = Duration::from_millis(q.timeout_ms.unwrap_or(25_000)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changes = state.changes.subscribe();
    loop {
        let r = state.store.get(&id).await?;
        if r.state != ReqState::Pending {
            return Ok(Json(view(&r)));
        }
        loop {
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Err(_) => return Ok(Json(view(&r))),
                Ok(Ok(changed)) if changed != id => continue,
                Ok(_) => break,
            }
        }
    }
}

async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(id): Path<String>,
) -> Result<Json<RequestView>, ApiError> {
    gateway_only(&state, &headers, &peer)?;
    let signer = state.signer();
    if state
        .store
        .close_pending(&id, ReqState::Withdrawn, "gateway", signer)
        .await?
    {
        tracing::info!(request = %id, "approval request withdrawn");
        let r = state.store.get(&id).await?;
        state.closed(&r);
        return Ok(Json(view(&r)));
    }
    Ok(Json(view(&state.store.get(&id).await?)))
}

/// A gateway asking whether a `retry` statement was approved.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumeBody {
    gateway: String,
    requester_sub: String,
    statement_sha256: String,
}

/// Uses up a matching approval (once): 200 with the request and its signed
/// decision, 404 when there is none.
async fn consume(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Json(b): Json<ConsumeBody>,
) -> Result<Json<RequestView>, ApiError> {
    gateway_only(&state, &headers, &peer)?;
    match state
        .store
        .consume(&b.gateway, &b.requester_sub, &b.statement_sha256, now_ms())
        .await?
    {
        Some(r) => {
            tracing::info!(request = %r.id, requester = %b.requester_sub, "approval used");
            Ok(Json(view(&r)))
        }
        None => Err(ApiError::NotFound),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    state: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Request>>, ApiError> {
    approver(&state, &headers).await?;
    let filter = match q.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => Some(
            ReqState::parse(s).ok_or_else(|| ApiError::BadRequest(format!("unknown state {s}")))?,
        ),
    };
    Ok(Json(state.store.list(filter, 200).await?))
}

/// An approver's vote.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `approve` or `reject`.
    pub outcome: String,
    /// Comment (shown to the requester on rejection).
    #[serde(default)]
    pub comment: String,
}

async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<DecisionBody>,
) -> Result<Json<RequestView>, ApiError> {
    let who = approver(&state, &headers).await?;
    let approve = match body.outcome.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(ApiError::BadRequest(format!(
                "outcome must be approve or reject, not {other}"
            )))
        }
    };
    let r = state.vote(&id, &who, approve, &body.comment).await?;
    Ok(Json(view(&r)))
}
