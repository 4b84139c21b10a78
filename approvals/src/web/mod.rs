//! The approvers' web UI, server-rendered (templates and assets in
//! `web/approvals/`): OIDC login (authorization code + PKCE), a pending
//! list that refreshes itself, request detail with approve / reject, and
//! history with filters. Sessions live in memory behind an HttpOnly,
//! SameSite=Lax cookie (Secure when the public URL is https); every form
//! carries the session's CSRF token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use portcullis::approvals::protocol::State as ReqState;
use portcullis::http::escape_html as esc;
use portcullis::http::random_token;
use portcullis::identity::rp::{Rp, RpError};
use portcullis::identity::Verifier;

mod auth;
mod pages;

use crate::config::WebConfig;
use crate::rules::Approver;
use crate::AppState;

const LAYOUT: &str = include_str!("../../../web/approvals/layout.html");
const STYLE: &str = include_str!("../../../web/approvals/style.css");
const COOKIE: &str = "pcg_session";
/// A login must come back from the identity provider within this.
const LOGIN_TTL: Duration = Duration::from_secs(600);

struct PendingLogin {
    oidc: portcullis::identity::rp::Pending,
    next: String,
    at: Instant,
}

struct Session {
    approver: Approver,
    csrf: String,
    until: Instant,
}

/// Web UI state.
pub struct Web {
    cfg: WebConfig,
    id_tokens: Verifier,
    rp: tokio::sync::OnceCell<Rp>,
    logins: Mutex<HashMap<String, PendingLogin>>,
    sessions: Mutex<HashMap<String, Session>>,
    secure: bool,
}

impl Web {
    /// The UI for `cfg`, with links and callbacks under `public_url`.
    pub fn new(cfg: WebConfig, public_url: &str) -> Self {
        let id_tokens = Verifier::for_id_tokens(&cfg.issuer, &cfg.client_id, &cfg.groups_claim);
        Self {
            cfg,
            id_tokens,
            rp: tokio::sync::OnceCell::new(),
            logins: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            secure: public_url.starts_with("https://"),
        }
    }

    /// The identity provider, discovered on first use (and again after a
    /// failure).
    async fn rp(&self) -> Result<&Rp, RpError> {
        self.rp
            .get_or_try_init(|| {
                Rp::discover(
                    &self.cfg.issuer,
                    &self.cfg.client_id,
                    self.cfg.client_secret.as_deref(),
                )
            })
            .await
    }

    /// Starts a login session of `web.session_ttl` for `approver`; returns
    /// its id.
    fn open_session(&self, approver: Approver) -> String {
        let sid = random_token();
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(
                sid.clone(),
                Session {
                    approver,
                    csrf: random_token(),
                    until: Instant::now() + self.cfg.session_ttl,
                },
            );
        }
        sid
    }

    /// The Set-Cookie value for session `sid`: HttpOnly, SameSite=Lax, and
    /// Secure when the UI is served over https.
    fn session_cookie(&self, sid: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax{secure}")
    }

    fn session(&self, headers: &HeaderMap) -> Option<(String, Approver, String)> {
        let id = cookie(headers)?;
        let mut sessions = self.sessions.lock().ok()?;
        sessions.retain(|_, s| s.until > Instant::now());
        let s = sessions.get(&id)?;
        Some((id, s.approver.clone(), s.csrf.clone()))
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    portcullis::http::cookie_value(headers, COOKIE)
}

fn page(title: &str, user: &str, body: &str, script: &str) -> Html<String> {
    Html(
        LAYOUT
            .replace("{{title}}", &esc(title))
            .replace("{{user}}", &esc(user))
            .replace("{{script}}", script)
            .replace("{{body}}", body),
    )
}

fn ago(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

fn badge(state: ReqState) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", state.as_str())
}

/// The route group.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { Redirect::to("/requests?state=pending") }),
        )
        .route("/assets/style.css", get(style))
        .route("/login", get(auth::login))
        .route("/callback", get(auth::callback))
        .route("/logout", axum::routing::post(auth::logout))
        .route("/requests", get(pages::list))
        .route("/requests/{id}", get(pages::detail).post(pages::decide))
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

fn not_configured() -> Response {
    (
        StatusCode::NOT_FOUND,
        "the web UI is not configured ([web] in the config)",
    )
        .into_response()
}

/// Redirects to login, coming back to `next`.
fn to_login(next: &str) -> Response {
    let q = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next);
    Redirect::to(&format!("/login?next={q}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(public_url: &str, ttl: Duration) -> Web {
        Web::new(
            WebConfig {
                issuer: "http://127.0.0.1:1".into(),
                client_id: "ui".into(),
                client_secret: None,
                groups_claim: "groups".into(),
                session_ttl: ttl,
            },
            public_url,
        )
    }

    fn with_cookie(sid: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("other=1; {COOKIE}={sid}").parse().expect("header"),
        );
        h
    }

    fn approver() -> Approver {
        Approver {
            sub: "dana".into(),
            email: "dana@example.com".into(),
            groups: vec!["dba".into()],
        }
    }

    #[test]
    fn the_cookie_is_secure_only_under_https() {
        let plain = web("http://127.0.0.1:8081", Duration::from_secs(60));
        let c = plain.session_cookie("abc");
        assert_eq!(c, "pcg_session=abc; Path=/; HttpOnly; SameSite=Lax");
        let tls = web("https://approvals.example.com", Duration::from_secs(60));
        assert!(tls.session_cookie("abc").ends_with("; Secure"));
    }

    #[test]
    fn a_session_ends_after_session_ttl() {
        let long = web("http://x", Duration::from_secs(3600));
        let sid = long.open_session(approver());
        let (_, who, csrf) = long.session(&with_cookie(&sid)).expect("session");
        assert_eq!(who.sub, "dana");
        assert!(!csrf.is_empty());
        assert!(long.session(&with_cookie("forged")).is_none());
        let short = web("http://x", Duration::ZERO);
        let sid = short.open_session(approver());
        assert!(
            short.session(&with_cookie(&sid)).is_none(),
            "a session past its ttl is gone"
        );
    }
}
