//! Approver login: authorization code flow with PKCE against the
//! configured issuer, the ID token verified against its JWKS, then an
//! in-memory session behind an HttpOnly cookie.

use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{cookie, not_configured, random_token, PendingLogin, Session, COOKIE, LOGIN_TTL};
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
    let ep = match web.endpoints().await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the identity provider's discovery document");
            return (
                StatusCode::BAD_GATEWAY,
                "the identity provider cannot be reached",
            )
                .into_response();
        }
    };
    let (login_state, verifier) = (random_token(), random_token());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if let Ok(mut logins) = web.logins.lock() {
        logins.retain(|_, l| l.at.elapsed() < LOGIN_TTL);
        logins.insert(
            login_state.clone(),
            PendingLogin {
                verifier,
                next,
                at: Instant::now(),
            },
        );
    }
    let url = reqwest::Url::parse_with_params(
        &ep.authorization_endpoint,
        &[
            ("response_type", "code"),
            ("client_id", web.cfg.client_id.as_str()),
            (
                "redirect_uri",
                &format!("{}/callback", state.config.public_url()),
            ),
            ("scope", "openid email groups"),
            ("state", &login_state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    match url {
        Ok(u) => Redirect::to(u.as_str()).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "bad authorization endpoint",
        )
            .into_response(),
    }
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

#[derive(Deserialize)]
pub(super) struct TokenResponse {
    id_token: String,
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
    let Ok(ep) = web.endpoints().await else {
        return (
            StatusCode::BAD_GATEWAY,
            "the identity provider cannot be reached",
        )
            .into_response();
    };
    let redirect = format!("{}/callback", state.config.public_url());
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", cb.code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("client_id", web.cfg.client_id.as_str()),
        ("code_verifier", pending.verifier.as_str()),
    ];
    if let Some(secret) = web.cfg.client_secret.as_deref() {
        form.push(("client_secret", secret));
    }
    let token = match web.http.post(&ep.token_endpoint).form(&form).send().await {
        Ok(r) if r.status().is_success() => r.json::<TokenResponse>().await.ok(),
        Ok(r) => {
            tracing::warn!(status = %r.status(), "token exchange refused");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "token exchange failed");
            None
        }
    };
    let Some(token) = token else {
        return (
            StatusCode::UNAUTHORIZED,
            "login failed: the identity provider refused the code",
        )
            .into_response();
    };
    let id = match web.id_tokens.verify(&token.id_token).await {
        Ok(id) => id,
        Err(e) => return (StatusCode::UNAUTHORIZED, format!("login failed: {e}")).into_response(),
    };
    let approver = Approver {
        sub: id.sub,
        email: id.email,
        groups: id.groups,
    };
    tracing::info!(approver = %approver.id(), "approver logged in");
    let sid = random_token();
    if let Ok(mut s) = web.sessions.lock() {
        s.insert(
            sid.clone(),
            Session {
                approver,
                csrf: random_token(),
                until: Instant::now() + web.cfg.session_ttl,
            },
        );
    }
    let secure = if web.secure { "; Secure" } else { "" };
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax{secure}"),
        )],
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
