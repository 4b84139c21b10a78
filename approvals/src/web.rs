//! The approvers' web UI, server-rendered (templates and assets in
//! `web/approvals/`): OIDC login (authorization code + PKCE), a pending
//! list that refreshes itself, request detail with approve / reject, and
//! history with filters. Sessions live in memory behind an HttpOnly,
//! SameSite=Lax cookie (Secure when the public URL is https); every form
//! carries the session's CSRF token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use portcullis::approvals::protocol::State as ReqState;
use portcullis::config::IssuerConfig;
use portcullis::identity::Verifier;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::WebConfig;
use crate::rules::Approver;
use crate::store::{now_ms, Request};
use crate::AppState;

const LAYOUT: &str = include_str!("../../web/approvals/layout.html");
const STYLE: &str = include_str!("../../web/approvals/style.css");
const COOKIE: &str = "pcg_session";
/// A login must come back from the identity provider within this.
const LOGIN_TTL: Duration = Duration::from_secs(600);

struct PendingLogin {
    verifier: String,
    next: String,
    at: Instant,
}

struct Session {
    approver: Approver,
    csrf: String,
    until: Instant,
}

#[derive(Deserialize)]
struct Endpoints {
    authorization_endpoint: String,
    token_endpoint: String,
}

/// Web UI state.
pub struct Web {
    cfg: WebConfig,
    id_tokens: Verifier,
    http: reqwest::Client,
    endpoints: tokio::sync::OnceCell<Endpoints>,
    logins: Mutex<HashMap<String, PendingLogin>>,
    sessions: Mutex<HashMap<String, Session>>,
    secure: bool,
}

impl Web {
    /// The UI for `cfg`, with links and callbacks under `public_url`.
    pub fn new(cfg: WebConfig, public_url: &str) -> Self {
        let id_tokens = Verifier::new(&[IssuerConfig {
            issuer: cfg.issuer.clone(),
            audience: cfg.client_id.clone(),
            groups_claim: cfg.groups_claim.clone(),
            algorithms: portcullis::config::DEFAULT_ALGORITHMS
                .iter()
                .map(|a| a.to_string())
                .collect(),
            leeway: Duration::from_secs(30),
            jwks_uri: None,
        }]);
        Self {
            cfg,
            id_tokens,
            http: reqwest::Client::new(),
            endpoints: tokio::sync::OnceCell::new(),
            logins: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            secure: public_url.starts_with("https://"),
        }
    }

    async fn endpoints(&self) -> Result<&Endpoints, String> {
        self.endpoints
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.cfg.issuer.trim_end_matches('/')
                );
                let r = self.http.get(url).send().await.map_err(|e| e.to_string())?;
                r.json::<Endpoints>().await.map_err(|e| e.to_string())
            })
            .await
    }

    fn session(&self, headers: &HeaderMap) -> Option<(String, Approver, String)> {
        let id = cookie(headers)?;
        let mut sessions = self.sessions.lock().ok()?;
        sessions.retain(|_, s| s.until > Instant::now());
        let s = sessions.get(&id)?;
        Some((id, s.approver.clone(), s.csrf.clone()))
    }
}

fn random_token() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/logout", axum::routing::post(logout))
        .route("/requests", get(list))
        .route("/requests/{id}", get(detail).post(decide))
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

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: String,
}

async fn login(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
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
struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: String,
}

async fn callback(State(state): State<AppState>, Query(cb): Query<Callback>) -> Response {
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

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
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

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    requester: String,
    #[serde(default)]
    connection: String,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let Some(web) = state.web.as_ref() else {
        return not_configured();
    };
    let Some((_, who, _)) = web.session(&headers) else {
        return to_login("/requests?state=pending");
    };
    let filter = ReqState::parse(&q.state);
    let rows = match state.store.list(filter, 200).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "list failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "the store failed").into_response();
        }
    };
    let now = now_ms();
    let mut body = String::new();
    let heading = if filter == Some(ReqState::Pending) {
        "Pending requests"
    } else {
        "History"
    };
    body.push_str(&format!("<h1>{heading}</h1>"));
    body.push_str(&format!(
        "<form class=\"filters\" method=\"get\"><select name=\"state\">{}</select>\
         <input name=\"requester\" placeholder=\"requester\" value=\"{}\">\
         <input name=\"connection\" placeholder=\"connection\" value=\"{}\">\
         <button class=\"plain\" type=\"submit\">Filter</button></form>",
        [
            "pending",
            "approved",
            "rejected",
            "expired",
            "withdrawn",
            "all"
        ]
        .iter()
        .map(|s| format!(
            "<option value=\"{s}\"{}>{s}</option>",
            if q.state == *s || (q.state.is_empty() && *s == "all") {
                " selected"
            } else {
                ""
            }
        ))
        .collect::<String>(),
        esc(&q.requester),
        esc(&q.connection)
    ));
    let shown: Vec<&Request> = rows
        .iter()
        .filter(|r| {
            q.requester.is_empty()
                || r.requester.email.contains(&q.requester)
                || r.requester.sub.contains(&q.requester)
        })
        .filter(|r| q.connection.is_empty() || r.connection.contains(&q.connection))
        .collect();
    if shown.is_empty() {
        body.push_str("<div class=\"card muted\">Nothing here.</div>");
    } else {
        body.push_str("<table><thead><tr><th>Requested</th><th>Requester</th><th>Connection</th><th>Statement</th><th>Time left</th><th>State</th></tr></thead><tbody>");
        for r in shown {
            let excerpt: String = r.statement.chars().take(80).collect();
            let left = if r.state == ReqState::Pending {
                ago(r.expires_at - now)
            } else {
                "–".into()
            };
            body.push_str(&format!(
                "<tr><td>{} ago</td><td>{}</td><td>{}</td><td><a href=\"/requests/{}\"><code>{}</code></a></td><td>{}</td><td>{}</td></tr>",
                ago(now - r.created_at),
                esc(&r.requester.email),
                esc(&r.connection),
                esc(&r.id),
                esc(&excerpt),
                left,
                badge(r.state)
            ));
        }
        body.push_str("</tbody></table>");
    }
    // The pending list refreshes itself (not while a filter is being typed).
    let script = if filter == Some(ReqState::Pending) {
        "<script>setInterval(function(){var a=document.activeElement;if(!a||a.tagName!=='INPUT'){location.reload();}},3000);</script>"
    } else {
        ""
    };
    page(heading, &who.id(), &body, script).into_response()
}

async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    render_detail(&state, &headers, &id, None).await
}

async fn render_detail(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    notice: Option<(bool, String)>,
) -> Response {
    let Some(web) = state.web.as_ref() else {
        return not_configured();
    };
    let Some((_, who, csrf)) = web.session(headers) else {
        return to_login(&format!("/requests/{id}"));
    };
    let r = match state.store.get(id).await {
        Ok(r) => r,
        Err(crate::store::StoreError::NotFound) => {
            return (StatusCode::NOT_FOUND, "no such request").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "get failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "the store failed").into_response();
        }
    };
    let events = state.store.events(id).await.unwrap_or_default();
    let now = now_ms();
    let mut body = String::new();
    if let Some((ok, text)) = notice {
        body.push_str(&format!(
            "<div class=\"notice {}\">{}</div>",
            if ok { "ok" } else { "error" },
            esc(&text)
        ));
    }
    body.push_str(&format!(
        "<h1>Request {} {}</h1>",
        esc(&r.id[..8.min(r.id.len())]),
        badge(r.state)
    ));
    body.push_str(&format!(
        "<div class=\"card\"><pre class=\"sql\">{}</pre>",
        esc(&r.statement)
    ));
    if !r.params.is_empty() {
        let params: Vec<String> = r
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "${} = {}",
                    i + 1,
                    p.as_deref()
                        .map_or("NULL".to_string(), |v| format!("'{}'", esc(v)))
                )
            })
            .collect();
        body.push_str(&format!(
            "<p><b>Parameters</b> <code>{}</code></p>",
            params.join(", ")
        ));
    }
    let tables: Vec<String> = r
        .facts
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["tables"].as_array().cloned().unwrap_or_default())
        .map(|t| {
            format!(
                "{}.{} ({})",
                t["schema"].as_str().unwrap_or(""),
                t["name"].as_str().unwrap_or(""),
                t["access"].as_str().unwrap_or("")
            )
        })
        .collect();
    let left = if r.state == ReqState::Pending {
        ago(r.expires_at - now)
    } else {
        "–".into()
    };
    body.push_str(&format!(
        "<dl class=\"facts\"><dt>Requester</dt><dd>{} <span class=\"muted\">from {}</span></dd>\
         <dt>Connection</dt><dd>{} <span class=\"muted\">({})</span></dd>\
         <dt>Why</dt><dd>{}</dd><dt>Tables</dt><dd>{}</dd>\
         <dt>Approvers</dt><dd>{} · {} needed</dd><dt>Waiting</dt><dd>{}</dd><dt>Time left</dt><dd>{}</dd></dl></div>",
        esc(&r.requester.email),
        esc(&r.client_addr),
        esc(&r.connection),
        esc(&r.database),
        esc(&r.reasons.join("; ")),
        esc(&tables.join(", ")),
        esc(&r.groups.join(", ")),
        r.quorum,
        ago(now - r.created_at),
        left
    ));
    if r.state == ReqState::Pending {
        body.push_str(&format!(
            "<form class=\"card\" method=\"post\" action=\"/requests/{}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label for=\"comment\">Comment</label><textarea id=\"comment\" name=\"comment\" placeholder=\"optional; shown to the requester\"></textarea>\
             <div class=\"actions\"><button class=\"approve\" name=\"outcome\" value=\"approve\">Approve</button>\
             <button class=\"reject\" name=\"outcome\" value=\"reject\">Reject</button></div></form>",
            esc(&r.id),
            esc(&csrf)
        ));
    }
    body.push_str("<div class=\"card\"><h3>History</h3><ul class=\"events\">");
    for e in events {
        body.push_str(&format!(
            "<li><b>{}</b> by {} <span class=\"muted\">{} ago</span>{}</li>",
            esc(&e.action),
            esc(&e.actor),
            ago(now - e.at),
            if e.comment.is_empty() {
                String::new()
            } else {
                format!(" — {}", esc(&e.comment))
            }
        ));
    }
    body.push_str("</ul></div>");
    let script = if r.state == ReqState::Pending {
        "<script>setInterval(function(){var a=document.activeElement;if(!a||a.tagName!=='TEXTAREA'){fetch(location.href,{credentials:'same-origin'}).then(function(r){return r.text()}).then(function(t){if(t.indexOf('badge pending')<0){location.reload();}});}},3000);</script>"
    } else {
        ""
    };
    page("Request", &who.id(), &body, script).into_response()
}

#[derive(Deserialize)]
struct DecisionForm {
    outcome: String,
    #[serde(default)]
    comment: String,
    csrf: String,
}

async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Response {
    let Some(web) = state.web.as_ref() else {
        return not_configured();
    };
    let Some((_, who, csrf)) = web.session(&headers) else {
        return to_login(&format!("/requests/{id}"));
    };
    let a = Sha256::digest(f.csrf.as_bytes());
    let b = Sha256::digest(csrf.as_bytes());
    if a.iter().zip(b.iter()).fold(0u8, |d, (x, y)| d | (x ^ y)) != 0 {
        return (StatusCode::FORBIDDEN, "the form expired; reload the page").into_response();
    }
    let approve = match f.outcome.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return (StatusCode::BAD_REQUEST, "outcome must be approve or reject").into_response(),
    };
    let notice = match state.vote(&id, &who, approve, &f.comment).await {
        Ok(r) => (
            true,
            format!("Recorded. The request is {}.", r.state.as_str()),
        ),
        Err(e) => (false, e.to_string()),
    };
    render_detail(&state, &headers, &id, Some(notice)).await
}
