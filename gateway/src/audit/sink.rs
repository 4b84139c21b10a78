//! Live sinks for SIEMs: committed records, as JSON lines, appended to a
//! file (for an agent to tail) or POSTed in batches to a webhook with an
//! HMAC-SHA256 signature (`X-Portcullis-Signature: sha256=<hex of
//! HMAC("<timestamp>.<body>")>`, `X-Portcullis-Timestamp`), retried with
//! backoff. Sinks run in their own tasks: a slow or failing receiver never
//! holds up the writer.

use std::io::Write as _;
use std::time::Duration;

use ring::hmac;
use tokio::sync::mpsc;

use super::config::SinkConfig;
use super::record::Stored;

/// Batches queued per sink before new ones are dropped from that sink
/// (the store still has every record; the sink logs the gap).
const SINK_QUEUE: usize = 1024;

/// The configured sinks.
#[derive(Default)]
pub struct Sinks {
    txs: Vec<mpsc::Sender<String>>,
}

impl Sinks {
    /// Starts a task per sink.
    pub fn new(cfgs: &[SinkConfig]) -> Self {
        let mut txs = Vec::new();
        for c in cfgs {
            let (tx, rx) = mpsc::channel(SINK_QUEUE);
            match (c.kind.as_str(), &c.url, &c.path) {
                ("webhook", Some(url), _) => {
                    let secret = c
                        .secret_file
                        .as_ref()
                        .and_then(|f| std::fs::read_to_string(f).ok())
                        .map(|s| s.trim().to_string())
                        .unwrap_or_default();
                    tokio::spawn(webhook(url.clone(), secret, rx));
                }
                ("file", _, Some(path)) => {
                    tokio::spawn(file(path.clone(), rx));
                }
                _ => continue,
            }
            txs.push(tx);
        }
        Self { txs }
    }

    /// Hands a committed batch to every sink.
    pub fn send(&self, rows: &[&Stored]) {
        if self.txs.is_empty() {
            return;
        }
        let mut lines = String::new();
        for r in rows {
            if let Ok(l) = serde_json::to_string(r) {
                lines.push_str(&l);
                lines.push('\n');
            }
        }
        for tx in &self.txs {
            if tx.try_send(lines.clone()).is_err() {
                tracing::warn!(
                    records = rows.len(),
                    "audit sink is behind; batch skipped for it (the store has it)"
                );
            }
        }
    }
}

async fn file(path: std::path::PathBuf, mut rx: mpsc::Receiver<String>) {
    while let Some(lines) = rx.recv().await {
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(lines.as_bytes()));
        if let Err(e) = r {
            tracing::warn!(path = %path.display(), error = %e, "audit file sink cannot write");
        }
    }
}

async fn webhook(url: String, secret: String, mut rx: mpsc::Receiver<String>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    while let Some(body) = rx.recv().await {
        let ts = super::record::now_us() / 1_000_000;
        let sig = hmac::sign(&key, format!("{ts}.{body}").as_bytes());
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=5 {
            let r = http
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .header("x-portcullis-timestamp", ts.to_string())
                .header(
                    "x-portcullis-signature",
                    format!("sha256={}", hex::encode(sig.as_ref())),
                )
                .body(body.clone())
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => tracing::warn!(status = %r.status(), attempt, "audit webhook refused"),
                Err(e) => tracing::warn!(error = %e, attempt, "audit webhook failed"),
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
}
