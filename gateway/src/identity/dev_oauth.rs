//! The development issuer's sign-in: an authorization endpoint that shows
//! a page of demo users (template `web/dev/login.html`) and a token
//! endpoint for the authorization code grant (PKCE S256 required) and
//! refresh tokens. It issues an ES256 ID token for the client and an
//! access token for the gateway, so `portcullis login --dev` and the
//! approvals web UI sign in through it exactly as they would through a
//! real identity provider. Redirects go to loopback addresses only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;

use super::dev::DevIssuer;
use crate::http::escape_html as html_escape;

const LOGIN_PAGE: &str = include_str!("../../../web/dev/login.html");
/// An authorization code must be redeemed within this.
const CODE_TTL: Duration = Duration::from_secs(120);
/// Lifetime of tokens issued through sign-in.
pub const SIGN_IN_TOKEN_TTL: u64 = 3600;

/// A demo user offered on the sign-in page.
pub struct DemoUser {
    /// Login name (email is `name@example.com`).
    pub name: &'static str,
    /// Groups claim.
    pub groups: &'static [&'static str],
    /// What the user stands for in the demo.
    pub role: &'static str,
}

/// The demo users. `dba` is the shipped policy's approver group.
pub const DEMO_USERS: &[DemoUser] = &[
    DemoUser {
        name: "alice",
        groups: &["dev"],
        role: "developer: reads and writes; DDL waits for a DBA",
    },
    DemoUser {
        name: "bob",
        groups: &["analyst"],
        role: "analyst: reads",
    },
    DemoUser {
        name: "dana",
        groups: &["dba"],
        role: "DBA: approves held statements",
    },
    DemoUser {
        name: "erin",
        groups: &["dba"],
        role: "DBA: a second approver for quorum 2",
    },
];

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    user: &'static DemoUser,
    at: Instant,
}

struct Refresh {
    client_id: String,
    user: &'static DemoUser,
}

/// Codes and refresh tokens handed out (in memory: a restart signs
/// everyone out, as befits a development issuer).
#[derive(Clone)]
pub(super) struct SignIn {
    issuer: DevIssuer,
    codes: Arc<Mutex<HashMap<String, Grant>>>,
    refresh: Arc<Mutex<HashMap<String, Refresh>>>,
}

impl SignIn {
    pub(super) fn new(issuer: DevIssuer) -> Self {
        Self {
            issuer,
            codes: Arc::default(),
            refresh: Arc::default(),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct AuthorizeQuery {
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
    /// Set by the sign-in page's buttons.
    #[serde(default)]
    user: Option<String>,
}

fn bad_request(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("dev issuer: {why}\n")).into_response()
}

/// Only loopback redirects: the dev issuer must not hand codes to the
/// outside world.
fn loopback(uri: &str) -> bool {
    reqwest::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http"
            && matches!(
                u.host_str(),
                Some("127.0.0.1") | Some("localhost") | Some("[::1]")
            )
    })
}

impl AuthorizeQuery {
    fn check(&self) -> Result<(), &'static str> {
        if self.response_type != "code" {
            return Err("only response_type=code is supported");
        }
        if self.client_id.is_empty() {
            return Err("client_id is missing");
        }
        if !loopback(&self.redirect_uri) {
            return Err("redirect_uri must be an http://127.0.0.1 or http://localhost address");
        }
        if self.code_challenge.is_empty() || self.code_challenge_method != "S256" {
            return Err("PKCE is required (code_challenge with code_challenge_method=S256)");
        }
        Ok(())
    }
}

/// GET /authorize: the page of demo users.
pub(super) async fn authorize_page(Query(q): Query<AuthorizeQuery>) -> Response {
    if let Err(why) = q.check() {
        return bad_request(why);
    }
    let mut hidden = String::new();
    for (k, v) in [
        ("response_type", q.response_type.as_str()),
        ("client_id", &q.client_id),
        ("redirect_uri", &q.redirect_uri),
        ("state", &q.state),
        ("nonce", q.nonce.as_deref().unwrap_or("")),
        ("code_challenge", &q.code_challenge),
        ("code_challenge_method", &q.code_challenge_method),
    ] {
        hidden.push_str(&format!(
            "<input type=\"hidden\" name=\"{k}\" value=\"{}\">\n",
            html_escape(v)
        ));
    }
    let users: String = DEMO_USERS
        .iter()
        .map(|u| {
            format!(
                "<button class=\"user\" type=\"submit\" name=\"user\" value=\"{0}\"><span><span class=\"name\">{0}</span><br><span class=\"role\">{1}</span></span><span class=\"groups\">{2}</span></button>\n",
                u.name,
                html_escape(u.role),
                u.groups.join(", ")
            )
        })
        .collect();
    Html(
        LOGIN_PAGE
            .replace("{{hidden}}", &hidden)
            .replace("{{users}}", &users)
            .replace("{{client}}", &html_escape(&q.client_id))
            .replace("{{redirect}}", &html_escape(&q.redirect_uri)),
    )
    .into_response()
}

fn random() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// POST /authorize: the chosen user; redirects back with a code.
pub(super) async fn authorize_pick(
    State(s): State<SignIn>,
    Form(q): Form<AuthorizeQuery>,
) -> Response {
    if let Err(why) = q.check() {
        return bad_request(why);
    }
    let Some(user) = DEMO_USERS
        .iter()
        .find(|u| Some(u.name) == q.user.as_deref())
    else {
        return bad_request("pick one of the demo users");
    };
    let code = random();
    if let Ok(mut codes) = s.codes.lock() {
        codes.retain(|_, g| g.at.elapsed() < CODE_TTL);
        codes.insert(
            code.clone(),
            Grant {
                client_id: q.client_id.clone(),
                redirect_uri: q.redirect_uri.clone(),
                challenge: q.code_challenge.clone(),
                nonce: q.nonce.clone().filter(|n| !n.is_empty()),
                user,
                at: Instant::now(),
            },
        );
    }
    match reqwest::Url::parse_with_params(&q.redirect_uri, &[("code", code), ("state", q.state)]) {
        Ok(u) => Redirect::to(u.as_str()).into_response(),
        Err(_) => bad_request("redirect_uri is not a URL"),
    }
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    code_verifier: String,
    #[serde(default)]
    refresh_token: String,
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// POST /token: authorization code (with PKCE) and refresh grants.
pub(super) async fn token(State(s): State<SignIn>, Form(f): Form<TokenForm>) -> Response {
    let (client_id, user, nonce) = match f.grant_type.as_str() {
        "authorization_code" => {
            let grant = s.codes.lock().ok().and_then(|mut c| c.remove(&f.code));
            let Some(g) = grant.filter(|g| g.at.elapsed() < CODE_TTL) else {
                return oauth_error("invalid_grant", "unknown, used or expired code");
            };
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(f.code_verifier.as_bytes()));
            if g.client_id != f.client_id || g.redirect_uri != f.redirect_uri {
                return oauth_error("invalid_grant", "client_id or redirect_uri differ");
            }
            if challenge != g.challenge {
                return oauth_error("invalid_grant", "PKCE verifier does not match");
            }
            (g.client_id, g.user, g.nonce)
        }
        "refresh_token" => {
            let r = s
                .refresh
                .lock()
                .ok()
                .and_then(|mut r| r.remove(&f.refresh_token));
            let Some(r) = r else {
                return oauth_error("invalid_grant", "unknown or used refresh token");
            };
            (r.client_id, r.user, None)
        }
        other => {
            return oauth_error(
                "unsupported_grant_type",
                &format!("{other:?} is not supported"),
            )
        }
    };
    let groups: Vec<String> = user.groups.iter().map(|g| g.to_string()).collect();
    let access = s.issuer.mint(user.name, &groups, SIGN_IN_TOKEN_TTL);
    let id = s.issuer.id_token(
        user.name,
        &groups,
        &client_id,
        nonce.as_deref(),
        SIGN_IN_TOKEN_TTL,
    );
    let (Ok(access), Ok(id)) = (access, id) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "signing failed").into_response();
    };
    let refresh_token = random();
    if let Ok(mut r) = s.refresh.lock() {
        r.insert(refresh_token.clone(), Refresh { client_id, user });
    }
    Json(json!({
        "access_token": access,
        "id_token": id,
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": SIGN_IN_TOKEN_TTL,
        "scope": "openid email profile groups",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_redirects() {
        assert!(loopback("http://127.0.0.1:4000/callback"));
        assert!(loopback("http://localhost/cb"));
        assert!(!loopback("https://127.0.0.1/cb"));
        assert!(!loopback("http://evil.example/cb"));
        assert!(!loopback("http://127.0.0.1.evil.example/cb"));
        assert!(!loopback("not a url"));
    }
}
