//! The approvers' pages: the request list (pending, refreshing itself, and
//! history with filters), a request's detail, and the approve / reject
//! form.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis::approvals::protocol::State as ReqState;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{ago, badge, esc, not_configured, page, to_login};
use crate::store::{now_ms, Request};
use crate::AppState;

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    requester: String,
    #[serde(default)]
    connection: String,
}

pub(super) async fn list(
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

pub(super) async fn detail(
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
pub(super) struct DecisionForm {
    outcome: String,
    #[serde(default)]
    comment: String,
    csrf: String,
}

pub(super) async fn decide(
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
