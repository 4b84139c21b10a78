//! The audit viewer on the admin listener (`[audit.viewer]`): auditors
//! sign in with OIDC (authorization code + PKCE through
//! [`crate::identity::rp`]; membership of `audit.viewer.groups` required),
//! list sessions with filters, open a session's timeline (each statement
//! with its decision, approvers and result table) and export it as JSON
//! lines. Server-rendered from `web/audit/`; read-only: the one form
//! signs the auditor out. Sign-ins are kept in the audit store
//! ([`crate::audit::store`]), so they outlive a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;
use serde::Deserialize;

use super::{cookie_value, escape_html as esc, random_token};
use crate::audit::config::ViewerConfig;
use crate::audit::crypt::Keys;
use crate::audit::export::{body, rfc3339, to_json};
use crate::audit::record::{now_us, Stored};
use crate::audit::store::{Filter, Store};
use crate::identity::rp::{Pending, Rp};
use crate::identity::Verifier;

const LAYOUT: &str = include_str!("../../../web/audit/layout.html");
const BASE_STYLE: &str = include_str!("../../../web/approvals/style.css");
const STYLE: &str = include_str!("../../../web/audit/style.css");
const COOKIE: &str = "pca_session";
const LOGIN_TTL: Duration = Duration::from_secs(600);

struct Login {
    oidc: Pending,
    next: String,
    at: Instant,
}

/// The viewer's state.
pub struct Viewer {
    cfg: ViewerConfig,
    public_url: String,
    store: Store,
    keys: Keys,
    rp: tokio::sync::OnceCell<Rp>,
    id_tokens: Verifier,
    logins: Mutex<HashMap<String, Login>>,
}

impl Viewer {
    /// A viewer reading `store` with `keys`, its links under `public_url`.
    pub fn new(cfg: ViewerConfig, public_url: String, store: Store, keys: Keys) -> Self {
        let id_tokens = Verifier::for_id_tokens(&cfg.issuer, &cfg.client_id, &cfg.groups_claim);
        Self {
            cfg,
            public_url: public_url.trim_end_matches('/').to_string(),
            store,
            keys,
            rp: tokio::sync::OnceCell::new(),
            id_tokens,
            logins: Mutex::default(),
        }
    }

    /// The signed-in auditor, from the session cookie; for anyone else
    /// the response to send: the sign-in page (back to `next` after), or
    /// 503 when the store that keeps sign-ins cannot be read.
    async fn auditor(&self, headers: &HeaderMap, next: &str) -> Result<String, Response> {
        let Some(token) = cookie_value(headers, COOKIE) else {
            return Err(to_login(next));
        };
        match self.store.login_user(&token, now_us()).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(to_login(next)),
            Err(e) => {
                tracing::error!(error = %e, "audit viewer: cannot read sign-ins from the audit store");
                Err(store_unavailable())
            }
        }
    }
}

fn store_unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the audit store cannot be read; try again shortly",
    )
        .into_response()
}

/// When a sign-in made at `now_us` for `ttl` ends (Unix µs).
fn expiry(now_us: i64, ttl: Duration) -> i64 {
    now_us.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX))
}

/// The viewer's routes (under `/audit`).
pub fn routes(v: Arc<Viewer>) -> Router {
    Router::new()
        .route("/audit/assets/style.css", get(style))
        .route("/audit/login", get(login))
        .route("/audit/callback", get(callback))
        .route("/audit/logout", post(logout))
        .route("/audit/sessions", get(sessions))
        .route("/audit/sessions/{id}", get(session))
        .route("/audit/sessions/{id}/export", get(export))
        .with_state(v)
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css")],
        format!("{BASE_STYLE}\n{STYLE}"),
    )
        .into_response()
}

fn page(title: &str, user: &str, body: &str) -> Html<String> {
    Html(
        LAYOUT
            .replace("{{title}}", &esc(title))
            .replace("{{user}}", &esc(user))
            .replace("{{body}}", body),
    )
}

fn to_login(next: &str) -> Response {
    Redirect::to(&format!("/audit/login?next={}", urlencode(next))).into_response()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
struct Next {
    #[serde(default)]
    next: String,
}

async fn login(State(v): State<Arc<Viewer>>, Query(q): Query<Next>) -> Response {
    let next = if q.next.starts_with("/audit/") {
        q.next
    } else {
        "/audit/sessions".into()
    };
    let rp = match v
        .rp
        .get_or_try_init(|| {
            Rp::discover(
                &v.cfg.issuer,
                &v.cfg.client_id,
                v.cfg.client_secret.as_deref(),
            )
        })
        .await
    {
        Ok(rp) => rp,
        Err(e) => {
            tracing::error!(error = %e, "audit viewer: identity provider unreachable");
            return (
                StatusCode::BAD_GATEWAY,
                "the identity provider cannot be reached",
            )
                .into_response();
        }
    };
    let redirect = format!("{}/audit/callback", v.public_url);
    let scopes = ["openid".to_string(), "email".into(), "groups".into()];
    let oidc = match rp.start(&redirect, &scopes, false) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "audit viewer: cannot start a login");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot start a login").into_response();
        }
    };
    let url = oidc.url.clone();
    if let Ok(mut l) = v.logins.lock() {
        l.retain(|_, x| x.at.elapsed() < LOGIN_TTL);
        l.insert(
            oidc.state.clone(),
            Login {
                oidc,
                next,
                at: Instant::now(),
            },
        );
    }
    Redirect::to(&url).into_response()
}

#[derive(Deserialize)]
struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
}

async fn callback(State(v): State<Arc<Viewer>>, Query(cb): Query<Callback>) -> Response {
    let pending = v.logins.lock().ok().and_then(|mut l| l.remove(&cb.state));
    let (Some(pending), Some(rp)) = (pending, v.rp.get()) else {
        return (
            StatusCode::BAD_REQUEST,
            "unknown or expired login; start again",
        )
            .into_response();
    };
    let tokens = match rp.finish(&pending.oidc, &cb.code, &cb.state).await {
        Ok(t) => t,
        Err(e) => return (StatusCode::UNAUTHORIZED, format!("login failed: {e}")).into_response(),
    };
    let id = match v
        .id_tokens
        .verify(tokens.id_token.as_deref().unwrap_or(""))
        .await
    {
        Ok(id) => id,
        Err(e) => return (StatusCode::UNAUTHORIZED, format!("login failed: {e}")).into_response(),
    };
    if !id.groups.iter().any(|g| v.cfg.groups.contains(g)) {
        tracing::warn!(user = %id.display(), "audit viewer: not in an auditor group");
        return (
            StatusCode::FORBIDDEN,
            format!(
                "{} is not in an auditor group ({})",
                id.display(),
                v.cfg.groups.join(", ")
            ),
        )
            .into_response();
    }
    let sid = random_token();
    let now = now_us();
    let until = expiry(now, v.cfg.session_ttl);
    if let Err(e) = v.store.save_login(&sid, id.display(), now, until).await {
        tracing::error!(error = %e, "audit viewer: cannot keep a sign-in in the audit store");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit store cannot be written; sign in again later",
        )
            .into_response();
    }
    tracing::info!(auditor = %id.display(), "auditor signed in");
    let secure = if v.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}={sid}; Path=/audit; HttpOnly; SameSite=Lax{secure}"),
        )],
        Redirect::to(&pending.next),
    )
        .into_response()
}

/// Ends the sign-in: forgets it in the store and clears the cookie.
async fn logout(State(v): State<Arc<Viewer>>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie_value(&headers, COOKIE) {
        if let Err(e) = v.store.end_login(&token).await {
            tracing::error!(error = %e, "audit viewer: cannot end a sign-in in the audit store");
            return store_unavailable();
        }
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/audit; Max-Age=0; HttpOnly; SameSite=Lax"),
        )],
        Html("<!doctype html><title>Signed out · Portcullis audit</title><p>Signed out. <a href=\"/audit/sessions\">Sign in again</a></p>"),
    )
        .into_response()
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    connection: String,
}

async fn sessions(
    State(v): State<Arc<Viewer>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let user = match v.auditor(&headers, "/audit/sessions").await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let f = Filter {
        user: (!q.user.is_empty()).then(|| q.user.clone()),
        connection: (!q.connection.is_empty()).then(|| q.connection.clone()),
        ..Default::default()
    };
    let list = match v.store.sessions(&f, 200).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "audit viewer: store read failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the audit store cannot be read",
            )
                .into_response();
        }
    };
    let mut rows = String::new();
    for s in &list {
        rows.push_str(&format!(
            "<tr><td><a href=\"/audit/sessions/{id}\">{short}</a></td><td>{at}</td><td>{user}</td><td>{client}</td><td>{conn}</td><td>{n}</td><td>{d}</td></tr>",
            id = esc(&s.session_id),
            short = esc(&s.session_id.chars().take(8).collect::<String>()),
            at = esc(&rfc3339(s.first_us)),
            user = esc(&s.user),
            client = esc(&s.client_addr),
            conn = esc(&s.connection),
            n = s.statements,
            d = s.denied,
        ));
    }
    let body = format!(
        "<h1>Sessions</h1><form class=\"filters\" method=\"get\"><input name=\"user\" placeholder=\"user\" value=\"{}\"><input name=\"connection\" placeholder=\"connection\" value=\"{}\"><button type=\"submit\">Filter</button></form>\
         <table><thead><tr><th>Session</th><th>Started</th><th>User</th><th>Client</th><th>Connection</th><th>Statements</th><th>Denied</th></tr></thead><tbody>{rows}</tbody></table>",
        esc(&q.user),
        esc(&q.connection)
    );
    page("Sessions", &user, &body).into_response()
}

/// The records of session `id`, in chain order; an error page when the
/// store cannot be read.
async fn session_records(v: &Viewer, id: &str) -> Result<Vec<Stored>, Response> {
    let f = Filter {
        session: Some(id.to_string()),
        ..Default::default()
    };
    let mut stream = v.store.stream(&f);
    let mut recs = Vec::new();
    while let Some(r) = stream.next().await {
        match r {
            Ok(r) => recs.push(r),
            Err(e) => {
                tracing::error!(error = %e, "audit viewer: store read failed");
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the audit store cannot be read",
                )
                    .into_response());
            }
        }
    }
    Ok(recs)
}

fn result_table(columns: &[String], rows: &[Vec<Option<String>>]) -> String {
    if columns.is_empty() {
        return String::new();
    }
    let head: String = columns
        .iter()
        .map(|c| format!("<th>{}</th>", esc(c)))
        .collect();
    let body: String = rows
        .iter()
        .map(|r| {
            let cells: String = r
                .iter()
                .map(|v| {
                    format!(
                        "<td>{}</td>",
                        v.as_deref()
                            .map(esc)
                            .unwrap_or_else(|| "<i>NULL</i>".into())
                    )
                })
                .collect();
            format!("<tr>{cells}</tr>")
        })
        .collect();
    format!("<div class=\"result\"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
}

async fn session(
    State(v): State<Arc<Viewer>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let user = match v.auditor(&headers, &format!("/audit/sessions/{id}")).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut recs = match session_records(&v, &id).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if recs.is_empty() {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    }
    recs.sort_by_key(|r| (r.at_us, r.seq));
    let first = &recs[0];
    let mut html = format!(
        "<h1>Session {}</h1><p class=\"actions\"><a href=\"/audit/sessions/{}/export\">Export (JSON lines)</a></p>\
         <div class=\"card\"><dl class=\"facts\"><dt>User</dt><dd>{}</dd><dt>Client</dt><dd>{} ({})</dd><dt>Connection</dt><dd>{}</dd><dt>Started</dt><dd>{}</dd></dl></div>",
        esc(&id.chars().take(8).collect::<String>()),
        esc(&id),
        esc(&first.user),
        esc(&first.client_addr),
        esc(&first.application),
        esc(&first.connection),
        esc(&rfc3339(first.at_us)),
    );
    for r in &recs {
        let b = body(r, &v.keys);
        if r.kind != crate::audit::record::KIND_STATEMENT {
            html.push_str(&format!(
                "<p class=\"meta\">{} · {} {}</p>",
                esc(&rfc3339(r.at_us)),
                esc(&r.kind.replace('_', " ")),
                esc(&b.detail)
            ));
            continue;
        }
        let mut meta = vec![
            esc(&rfc3339(r.at_us)),
            format!("{:.1} ms", r.duration_us as f64 / 1000.0),
        ];
        if !r.command_tag.is_empty() {
            meta.push(esc(&r.command_tag));
        }
        if !b.approvers.is_empty() {
            meta.push(format!("approved by {}", esc(&b.approvers.join(", "))));
        }
        if !b.reasons.is_empty() {
            meta.push(esc(&b.reasons.join("; ")));
        }
        let params = if b.params.is_empty() {
            String::new()
        } else {
            let ps: Vec<String> = b
                .params
                .iter()
                .enumerate()
                .map(|(i, p)| format!("${}={}", i + 1, p.as_deref().unwrap_or("NULL")))
                .collect();
            format!(
                "<div class=\"meta\">parameters: {}</div>",
                esc(&ps.join(", "))
            )
        };
        let error = if b.error.is_empty() {
            String::new()
        } else {
            format!(
                "<div class=\"error\">ERROR {}: {}</div>",
                esc(&r.error_code),
                esc(&b.error)
            )
        };
        html.push_str(&format!(
            "<div class=\"stmt\"><span class=\"badge {a}\">{a}</span><pre class=\"sql\">{sql}</pre><div class=\"meta\">{meta}</div>{params}{error}{table}{more}</div>",
            a = esc(&r.action),
            sql = esc(&b.statement),
            meta = meta.join(" · "),
            table = result_table(&b.columns, &b.rows),
            more = if b.rows_truncated { "<div class=\"meta\">more rows were not recorded</div>" } else { "" },
        ));
    }
    page(&format!("Session {id}"), &user, &html).into_response()
}

async fn export(
    State(v): State<Arc<Viewer>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = v.auditor(&headers, &format!("/audit/sessions/{id}")).await {
        return r;
    }
    let recs = match session_records(&v, &id).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut out = String::new();
    for r in &recs {
        out.push_str(&to_json(r, &body(r, &v.keys)).to_string());
        out.push('\n');
    }
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"session-{}.jsonl\"",
                    id.replace('"', "")
                ),
            ),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_ends_session_ttl_after_it_was_made() {
        assert_eq!(
            expiry(1_000_000, Duration::from_secs(8 * 3600)),
            1_000_000 + 28_800_000_000
        );
        assert_eq!(expiry(5, Duration::MAX), i64::MAX);
    }
}
