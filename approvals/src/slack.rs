//! Slack: a new request is posted as a Block Kit message (requester,
//! statement excerpt, reasons, Approve / Reject buttons and a link to the
//! web UI), through an incoming webhook or, with a bot token, through
//! `chat.postMessage` — then the message is updated with `chat.update`
//! when the request is decided, wherever that happens. Button clicks arrive at
//! `POST /slack/interactive`, which checks Slack's request signature (v0,
//! HMAC-SHA256 over `v0:<timestamp>:<body>`, timestamp within 5 minutes),
//! maps the Slack user to an approver from the config, records the vote
//! under the same rules as the web UI, and updates the message through the
//! interaction's `response_url`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use ring::hmac;
use serde::Deserialize;

use crate::config::SlackConfig;
use crate::rules::Approver;
use crate::store::{now_ms, Request};
use crate::AppState;

/// Oldest request signature accepted.
const WINDOW_SECS: i64 = 300;

/// The Slack integration.
pub struct Slack {
    cfg: SlackConfig,
    key: hmac::Key,
    http: reqwest::Client,
    public_url: String,
    /// Bot token, when messages go through the Web API.
    bot: Option<String>,
    /// Request id → (channel, ts) of the bot's message, to update it.
    posted: Arc<Mutex<HashMap<String, (String, String)>>>,
}

/// Why Slack could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("slack.{0} {1}: {2}")]
pub struct SlackError(&'static str, String, String);

fn read_secret(key: &'static str, path: &std::path::Path) -> Result<String, SlackError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| SlackError(key, path.display().to_string(), e.kind().to_string()))
}

impl Slack {
    /// The integration for `cfg`.
    pub fn new(cfg: SlackConfig, public_url: String) -> Result<Self, SlackError> {
        let secret = read_secret("signing_secret_file", &cfg.signing_secret_file)?;
        let bot = match &cfg.bot_token_file {
            Some(f) => Some(read_secret("bot_token_file", f)?),
            None => None,
        };
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            bot,
            posted: Arc::default(),
            cfg,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            public_url,
        })
    }

    /// Posts the request to the channel (in the background).
    pub fn request_created(&self, r: &Request) {
        let link = format!("{}/requests/{}", self.public_url, r.id);
        let excerpt: String = r.statement.chars().take(300).collect();
        let msg = serde_json::json!({
            "text": format!("Approval needed: {} on {}", r.requester.email, r.connection),
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": format!(
                    "*Approval needed* — {} on `{}`\n```{}```\n{}",
                    r.requester.email, r.connection, excerpt.replace("```", "'''"), r.reasons.join("; "))}},
                {"type": "actions", "block_id": r.id, "elements": [
                    {"type": "button", "style": "primary", "action_id": "approve", "value": r.id,
                     "text": {"type": "plain_text", "text": "Approve"}},
                    {"type": "button", "style": "danger", "action_id": "reject", "value": r.id,
                     "text": {"type": "plain_text", "text": "Reject"}},
                    {"type": "button", "action_id": "open", "url": link,
                     "text": {"type": "plain_text", "text": "Open"}}
                ]}
            ]
        });
        let id = r.id.clone();
        let http = self.http.clone();
        match (&self.bot, &self.cfg.channel, &self.cfg.webhook_url) {
            (Some(token), Some(channel), _) => {
                let mut msg = msg;
                msg["channel"] = channel.clone().into();
                let (token, posted) = (token.clone(), self.posted.clone());
                let url = format!("{}/chat.postMessage", self.cfg.api_url);
                tokio::spawn(async move {
                    if let Some(v) = api_call(&http, &url, &token, &msg, &id).await {
                        let (ch, ts) = (v["channel"].as_str(), v["ts"].as_str());
                        if let (Some(ch), Some(ts), Ok(mut p)) = (ch, ts, posted.lock()) {
                            p.insert(id, (ch.to_string(), ts.to_string()));
                        }
                    }
                });
            }
            (_, _, Some(url)) => {
                let url = url.clone();
                tokio::spawn(async move {
                    match http.post(&url).json(&msg).send().await {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => {
                            tracing::warn!(request = %id, status = %r.status(), "slack webhook refused")
                        }
                        Err(e) => tracing::warn!(request = %id, error = %e, "slack webhook failed"),
                    }
                });
            }
            _ => {}
        }
    }

    /// Replaces the bot's message about `r` with its outcome (bot token
    /// only: incoming-webhook messages cannot be edited; a click's
    /// `response_url` updates those).
    pub fn request_closed(&self, r: &Request) {
        let (Some(token), Some((channel, ts))) = (
            self.bot.clone(),
            self.posted.lock().ok().and_then(|mut p| p.remove(&r.id)),
        ) else {
            return;
        };
        let who = r
            .decision
            .as_ref()
            .map(|d| d.payload.approvers.join(", "))
            .filter(|a| !a.is_empty())
            .map(|a| format!(" by {a}"))
            .unwrap_or_default();
        let comment = if r.comment.is_empty() {
            String::new()
        } else {
            format!(": {}", r.comment)
        };
        let text = format!(
            "Request {} on {} was *{}*{who}{comment}",
            short(&r.id),
            r.connection,
            r.state.as_str()
        );
        let excerpt: String = r.statement.chars().take(300).collect();
        let msg = serde_json::json!({
            "channel": channel, "ts": ts, "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": format!(
                "{text}\n```{}```\n<{}/requests/{}|Open>",
                excerpt.replace("```", "'''"), self.public_url, r.id)}}],
        });
        let (http, id) = (self.http.clone(), r.id.clone());
        let url = format!("{}/chat.update", self.cfg.api_url);
        tokio::spawn(async move {
            api_call(&http, &url, &token, &msg, &id).await;
        });
    }

    /// Whether Slack signed `body` (timestamp within the window).
    fn verified(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        let Ok(ts) = get("x-slack-request-timestamp").parse::<i64>() else {
            return false;
        };
        if (now_ms() / 1000 - ts).abs() > WINDOW_SECS {
            return false;
        }
        let Some(sig) = get("x-slack-signature")
            .strip_prefix("v0=")
            .and_then(|h| hex::decode(h).ok())
        else {
            return false;
        };
        let mut msg = format!("v0:{ts}:").into_bytes();
        msg.extend_from_slice(body);
        hmac::verify(&self.key, &msg, &sig).is_ok()
    }
}

/// One Slack Web API call; the answer when Slack says `ok`.
async fn api_call(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
    id: &str,
) -> Option<serde_json::Value> {
    match http.post(url).bearer_auth(token).json(body).send().await {
        Ok(r) => match r.json::<serde_json::Value>().await {
            Ok(v) if v["ok"] == true => Some(v),
            Ok(v) => {
                tracing::warn!(request = %id, error = %v["error"], "slack API call refused");
                None
            }
            Err(e) => {
                tracing::warn!(request = %id, error = %e, "slack API answer unreadable");
                None
            }
        },
        Err(e) => {
            tracing::warn!(request = %id, error = %e, "slack API call failed");
            None
        }
    }
}

/// The route group.
pub fn routes() -> Router<AppState> {
    Router::new().route("/slack/interactive", post(interactive))
}

#[derive(Deserialize)]
struct Form {
    payload: String,
}

#[derive(Deserialize)]
struct Payload {
    user: SlackUser,
    #[serde(default)]
    actions: Vec<Action>,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct SlackUser {
    id: String,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
    #[serde(default)]
    value: String,
}

async fn interactive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(slack) = state.slack.as_ref() else {
        return (StatusCode::NOT_FOUND, "slack is not configured").into_response();
    };
    if !slack.verified(&headers, &body) {
        tracing::warn!("slack request with a bad or stale signature refused");
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let Ok(form) = serde_urlencoded_payload(&body) else {
        return (StatusCode::BAD_REQUEST, "no payload").into_response();
    };
    let Ok(p) = serde_json::from_str::<Payload>(&form.payload) else {
        return (StatusCode::BAD_REQUEST, "malformed payload").into_response();
    };
    let Some(action) = p.actions.first() else {
        return StatusCode::OK.into_response();
    };
    let approve = match action.action_id.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return StatusCode::OK.into_response(),
    };
    let Some(user) = slack.cfg.users.get(&p.user.id) else {
        return reply(
            slack,
            p.response_url,
            false,
            "Your Slack user is not mapped to an approver.",
        )
        .await;
    };
    let who = Approver {
        sub: user.email.clone(),
        email: user.email.clone(),
        groups: user.groups.clone(),
    };
    let text = match state.vote(&action.value, &who, approve, "via Slack").await {
        Ok(r) => format!(
            "Request {} is {} ({}).",
            short(&r.id),
            r.state.as_str(),
            who.id()
        ),
        Err(e) => format!("Not recorded: {e}"),
    };
    reply(slack, p.response_url, true, &text).await
}

fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

/// Answers the interaction: the message is replaced with `text` through
/// `response_url` when Slack gave one.
async fn reply(slack: &Slack, response_url: Option<String>, replace: bool, text: &str) -> Response {
    if let Some(url) = response_url {
        let body = serde_json::json!({"replace_original": replace, "text": text});
        if let Err(e) = slack.http.post(&url).json(&body).send().await {
            tracing::warn!(error = %e, "slack response_url failed");
        }
    }
    (StatusCode::OK, text.to_string()).into_response()
}

/// Reads `payload=<urlencoded json>` from a form body.
fn serde_urlencoded_payload(body: &[u8]) -> Result<Form, ()> {
    let text = std::str::from_utf8(body).map_err(|_| ())?;
    let raw = text
        .split('&')
        .find_map(|kv| kv.strip_prefix("payload="))
        .ok_or(())?;
    let decoded = url_decode(raw).ok_or(())?;
    Ok(Form { payload: decoded })
}

fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_decoding() {
        assert_eq!(
            super::url_decode("a%7B%22b%22%3A1%7D+c").as_deref(),
            Some("a{\"b\":1} c")
        );
        assert_eq!(super::url_decode("%zz"), None);
        assert_eq!(super::url_decode("%4"), None);
    }
}
