//! Approver login: authorization code flow with PKCE against the
//! configured issuer, the ID token verified against its JWKS, then an
//! in-memory session behind an HttpOnly cookie.

use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use serde::Deserialize;

use super::{cookie, not_configured, PendingLogin, COOKIE, LOGIN_TTL};
use crate::rules::Approver;
use crate::AppState;

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    #[serde(default)]
    next: String,
}

pub(super) async fn login(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let Some(web) = state.web.as_ref() else {
        return not_configured();
    };
    let next = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&q.next)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .unwrap_or_else(|| "/requests?state=pending".into());
    let rp = match web.rp().await {
        Ok(rp) => rp,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the identity provider's discovery document");
            return (
                StatusCode::BAD_GATEWAY,
                "the identity provider cannot be reached",
            )
                .into_response();
        }
    };
    let redirect = format!("{}/callback", state.config.public_url());
    let scopes = ["openid".to_string(), "email".into(), "groups".into()];
    let oidc = match rp.start(&redirect, &scopes, false) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a login");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot start a login").into_response();
        }
    };
    let url = oidc.url.clone();
    if let Ok(mut logins) = web.logins.lock() {
        logins.retain(|_, l| l.at.elapsed() < LOGIN_TTL);
        logins.insert(
            oidc.state.clone(),
            PendingLogin {
                oidc,
                next,
                at: Instant::now(),
            },
        );
    }
    Redirect::to(&url).into_response()
}

#[derive(Deserialize)]
pub(super) struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: Option<String>,
}

pub(super) async fn callback(
    State(state): State<AppState>,
    Query(cb): Query<Callback>,
) -> Response {
    let Some(web) = state.web.as_ref() else {
        return not_configured();
    };
    if let Some(e) = cb.error {
        return (StatusCode::UNAUTHORIZED, format!("login failed: {e}")).into_response();
    }
    let pending = web.logins.lock().ok().and_then(|mut l| l.remove(&cb.state));
    let Some(pending) = pending.filter(|p| p.at.elapsed() < LOGIN_TTL) else {
        return (
            StatusCode::BAD_REQUEST,
            "unknown or expired login; start again",
        )
            .into_response();
    };
    let Ok(rp) = web.rp().await else {
        return (
            StatusCode::BAD_GATEWAY,
            "the identity provider cannot be reached",
        )
            .into_response();
    };
    // Code exchange with the PKCE verifier; the ID token is verified
    // against the provider's keys and this login's nonce.
    let id_token = match rp.finish(&pending.oidc, &cb.code, &cb.state).await {
        Ok(t) => t.id_token.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "login refused");
            return (StatusCode::UNAUTHORIZED, format!("login failed: {e}")).into_response();
        }
    };
    // The groups claim is the configured one, read as the gateway reads it.
    let id = match web.id_tokens.verify(&id_token).await {
        Ok(id) => id,
        Err(e) => return (StatusCode::UNAUTHORIZED, format!("login failed: {e}")).into_response(),
    };
    let approver = Approver {
        sub: id.sub,
        email: id.email,
        groups: id.groups,
    };
    tracing::info!(approver = %approver.id(), "approver logged in");
    let sid = web.open_session(approver);
    (
        [(header::SET_COOKIE, web.session_cookie(&sid))],
        Redirect::to(&pending.next),
    )
        .into_response()
}

pub(super) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let (Some(web), Some(id)) = (state.web.as_ref(), cookie(&headers)) {
        if let Ok(mut s) = web.sessions.lock() {
            s.remove(&id);
        }
    }
    (
        [(header::SET_COOKIE, format!("{COOKIE}=; Path=/; Max-Age=0"))],
        Redirect::to("/requests"),
    )
        .into_response()
}
