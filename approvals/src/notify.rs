//! Notifications: a generic webhook per `[[webhooks]]` entry. Each event
//! (a request created, a request decided) is POSTed as JSON with an
//! HMAC-SHA256 signature over `<timestamp>.<body>`; a failed delivery is
//! retried with backoff in the background, so a slow or failing receiver
//! never holds up a request.

use std::time::Duration;

use ring::hmac;
use serde::Serialize;

use crate::config::WebhookConfig;
use crate::store::{now_ms, Request};

/// Attempts per event and receiver.
const ATTEMPTS: u32 = 5;
/// First retry delay (doubles each time).
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest a receiver may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One configured receiver.
struct Receiver {
    url: String,
    key: hmac::Key,
    events: Vec<String>,
}

/// The notifiers.
pub struct Notifier {
    http: reqwest::Client,
    receivers: Vec<Receiver>,
    public_url: String,
}

/// What a receiver gets.
#[derive(Serialize)]
struct Event<'a> {
    event: &'a str,
    id: &'a str,
    state: &'a str,
    url: String,
    requester: &'a str,
    connection: &'a str,
    statement: &'a str,
    reasons: &'a [String],
    groups: &'a [String],
    comment: &'a str,
    at: i64,
}

/// Why the notifiers could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("webhooks[{index}].secret_file {path}: {why}")]
pub struct NotifyError {
    index: usize,
    path: String,
    why: String,
}

/// The signature header value for `body` sent at `timestamp`.
pub fn signature(key: &hmac::Key, timestamp: i64, body: &[u8]) -> String {
    let mut msg = format!("{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    format!("sha256={}", hex::encode(hmac::sign(key, &msg).as_ref()))
}

impl Notifier {
    /// Reads every receiver's secret.
    pub fn new(hooks: &[WebhookConfig], public_url: String) -> Result<Self, NotifyError> {
        let mut receivers = Vec::new();
        for (index, h) in hooks.iter().enumerate() {
            let secret = std::fs::read_to_string(&h.secret_file).map_err(|e| NotifyError {
                index,
                path: h.secret_file.display().to_string(),
                why: e.kind().to_string(),
            })?;
            receivers.push(Receiver {
                url: h.url.clone(),
                key: hmac::Key::new(hmac::HMAC_SHA256, secret.trim().as_bytes()),
                events: h.events.clone(),
            });
        }
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .unwrap_or_default(),
            receivers,
            public_url,
        })
    }

    /// Sends `event` about `r` to every receiver that wants it, in the
    /// background.
    pub fn send(&self, event: &str, r: &Request) {
        let body = Event {
            event,
            id: &r.id,
            state: r.state.as_str(),
            url: format!("{}/requests/{}", self.public_url, r.id),
            requester: &r.requester.email,
            connection: &r.connection,
            statement: &r.statement,
            reasons: &r.reasons,
            groups: &r.groups,
            comment: &r.comment,
            at: now_ms(),
        };
        let Ok(body) = serde_json::to_vec(&body) else {
            return;
        };
        for recv in self
            .receivers
            .iter()
            .filter(|h| h.events.iter().any(|e| e == event))
        {
            let (http, url, key, body) = (
                self.http.clone(),
                recv.url.clone(),
                recv.key.clone(),
                body.clone(),
            );
            let id = r.id.clone();
            tokio::spawn(async move { deliver(http, url, key, body, id).await });
        }
    }
}

/// Posts one event, retrying with backoff.
async fn deliver(http: reqwest::Client, url: String, key: hmac::Key, body: Vec<u8>, id: String) {
    let mut delay = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        let ts = now_ms() / 1000;
        let sent = http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-portcullis-timestamp", ts.to_string())
            .header("x-portcullis-signature", signature(&key, ts, &body))
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                tracing::warn!(request = %id, url = %url, attempt, status = %r.status(), "webhook refused")
            }
            Err(e) => {
                tracing::warn!(request = %id, url = %url, attempt, error = %e, "webhook failed")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    tracing::error!(request = %id, url = %url, "webhook gave up after {ATTEMPTS} attempts");
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_covers_timestamp_and_body() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        let a = super::signature(&key, 1, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, super::signature(&key, 2, b"{}"));
        assert_ne!(a, super::signature(&key, 1, b"{ }"));
    }
}
