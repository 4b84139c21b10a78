//! `approvals.toml`: one typed struct, every field with a named default,
//! validated once at load. Environment overrides: `PORTCULLIS_APPROVALS_*`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis::config::IssuerConfig;
use serde::Deserialize;

/// Default `listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
/// Default `store_url`.
pub const DEFAULT_STORE_URL: &str = "sqlite://approvals.db";
/// Default `max_expiry`.
pub const DEFAULT_MAX_EXPIRY: &str = "24h";
/// Default `grant_lifetime`.
pub const DEFAULT_GRANT_LIFETIME: &str = "15m";

/// The service's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listen address. Default [`DEFAULT_LISTEN`]; env
    /// `PORTCULLIS_APPROVALS_LISTEN`.
    #[serde(default = "d_listen")]
    pub listen: String,
    /// URL approvers open (links in notices and notifications). Default:
    /// `http://` + `listen`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// `sqlite://FILE` or `postgres://...`. Default [`DEFAULT_STORE_URL`];
    /// relative SQLite paths are relative to the config file.
    #[serde(default = "d_store_url")]
    pub store_url: String,
    /// File holding the bearer token gateways present. Required.
    pub gateway_token_file: PathBuf,
    /// File holding the Ed25519 signing key (base64 of a 32-byte seed;
    /// `portcullis-approvals keygen` writes one). Required.
    pub signing_key_file: PathBuf,
    /// Longest expiry a gateway may ask for. Default [`DEFAULT_MAX_EXPIRY`].
    #[serde(default = "d_max_expiry", with = "humantime_serde_compat")]
    pub max_expiry: Duration,
    /// How long an approval of a `retry` request may be used. Default
    /// [`DEFAULT_GRANT_LIFETIME`].
    #[serde(default = "d_grant_lifetime", with = "humantime_serde_compat")]
    pub grant_lifetime: Duration,
    /// Issuers whose access tokens approvers present.
    #[serde(default)]
    pub identity: Identity,
    /// The web UI's OIDC login. Default: none (no web UI).
    #[serde(default)]
    pub web: Option<WebConfig>,
    /// Generic webhooks notified of requests. Default: none.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// E-mail to approvers over SMTP. Default: none.
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// Slack messages with Approve / Reject buttons. Default: none.
    #[serde(default)]
    pub slack: Option<SlackConfig>,
    /// Serve HTTPS (and optionally require gateways' client certificates).
    /// Default: none (plain HTTP, e.g. behind a TLS-terminating proxy).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain (PEM). Required.
    pub cert_file: PathBuf,
    /// Its private key (PEM). Required.
    pub key_file: PathBuf,
    /// CA (PEM) that signs gateways' client certificates. When set, the
    /// gateway API (`/api/v1/requests` create/read/wait/withdraw and
    /// `/api/v1/grants/consume`) needs a verified client certificate as
    /// well as the bearer token; approvers' browsers need none. Default:
    /// none.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// `[slack]`: an incoming webhook for new requests, and the interactive
/// endpoint `/slack/interactive` for the buttons.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Incoming webhook URL. Either this or `bot_token_file` + `channel`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// File holding a bot token (`xoxb-...`, scope `chat:write`): messages
    /// are posted with `chat.postMessage` and updated with `chat.update`
    /// when the request is decided anywhere (web UI, API, Slack, expiry).
    /// Default: none.
    #[serde(default)]
    pub bot_token_file: Option<PathBuf>,
    /// Channel id for the bot's messages. Required with `bot_token_file`.
    #[serde(default)]
    pub channel: Option<String>,
    /// Slack Web API base URL. Default [`DEFAULT_SLACK_API_URL`].
    #[serde(default = "d_slack_api_url")]
    pub api_url: String,
    /// File holding the app's signing secret. Required.
    pub signing_secret_file: PathBuf,
    /// Slack user id → approver identity.
    #[serde(default)]
    pub users: std::collections::BTreeMap<String, SlackApprover>,
}

/// Default `slack.api_url`.
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";

fn d_slack_api_url() -> String {
    DEFAULT_SLACK_API_URL.into()
}

/// An approver a Slack user acts as.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackApprover {
    /// Approver e-mail (their identity in decisions).
    pub email: String,
    /// Their approver groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `[email]`: new requests are mailed to the members of their approver
/// groups, with the link.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server host. Required.
    pub host: String,
    /// SMTP port. Default 587.
    #[serde(default = "d_smtp_port")]
    pub port: u16,
    /// `starttls` (default), `tls` (implicit TLS) or `none` (plain, for a
    /// local relay only).
    #[serde(default = "d_security")]
    pub security: String,
    /// SMTP user. Default: none (no authentication).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the SMTP password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Sender address. Required.
    pub from: String,
    /// Addresses per approver group (members or aliases).
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
}

fn d_smtp_port() -> u16 {
    587
}
fn d_security() -> String {
    "starttls".into()
}

/// `[[webhooks]]`: a receiver of JSON events, signed with HMAC-SHA256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are POSTed.
    pub url: String,
    /// File holding the shared secret for the signature.
    pub secret_file: PathBuf,
    /// Events to send: `created`, `decided`. Default both.
    #[serde(default = "d_events")]
    pub events: Vec<String>,
}

fn d_events() -> Vec<String> {
    vec!["created".into(), "decided".into()]
}

/// `[web]`: how approvers log in to the web UI (authorization code flow
/// with PKCE; redirect URI `<public_url>/callback`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Issuer URL (discovery at `/.well-known/openid-configuration`).
    pub issuer: String,
    /// OIDC client id registered for the UI.
    pub client_id: String,
    /// Client secret, for confidential clients. Default: none (public
    /// client with PKCE).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Claim holding the approver's groups. Default `groups`.
    #[serde(default = "d_groups_claim")]
    pub groups_claim: String,
    /// How long a login lasts. Default [`DEFAULT_SESSION_TTL`].
    #[serde(default = "d_session_ttl", with = "humantime_serde_compat")]
    pub session_ttl: Duration,
}

/// Default `web.session_ttl`.
pub const DEFAULT_SESSION_TTL: &str = "8h";

fn d_groups_claim() -> String {
    "groups".into()
}
fn d_session_ttl() -> Duration {
    humantime::parse_duration(DEFAULT_SESSION_TTL).unwrap_or(Duration::from_secs(8 * 3600))
}

/// `[identity]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Trusted issuers (same fields as the gateway's).
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
}

fn d_listen() -> String {
    DEFAULT_LISTEN.into()
}
fn d_store_url() -> String {
    DEFAULT_STORE_URL.into()
}
fn d_max_expiry() -> Duration {
    humantime::parse_duration(DEFAULT_MAX_EXPIRY).unwrap_or(Duration::from_secs(86400))
}
fn d_grant_lifetime() -> Duration {
    humantime::parse_duration(DEFAULT_GRANT_LIFETIME).unwrap_or(Duration::from_secs(900))
}

/// Durations written as `30s`, `5m`, `1h 30m`.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// A configuration error, naming the file (and line, from the TOML parser).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("{path}: {why}")]
    Read {
        /// File.
        path: String,
        /// Reason.
        why: String,
    },
    /// Bad TOML or values.
    #[error("{path}: {why}")]
    Parse {
        /// File.
        path: String,
        /// Parser message (with line and key).
        why: String,
    },
    /// A value that parses but cannot work.
    #[error("{path}: `{key}`: {why}")]
    Invalid {
        /// File.
        path: String,
        /// Key.
        key: &'static str,
        /// Reason.
        why: String,
    },
}

impl Config {
    /// Loads and validates `path`, applying environment overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: p.clone(),
            why: e.to_string(),
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: p.clone(),
            why: e.to_string(),
        })?;
        if let Ok(v) = std::env::var("PORTCULLIS_APPROVALS_LISTEN") {
            cfg.listen = v;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for f in [&mut cfg.gateway_token_file, &mut cfg.signing_key_file]
            .into_iter()
            .chain(cfg.webhooks.iter_mut().map(|w| &mut w.secret_file))
            .chain(
                cfg.email
                    .iter_mut()
                    .filter_map(|e| e.password_file.as_mut()),
            )
            .chain(cfg.tls.iter_mut().flat_map(|t| {
                [&mut t.cert_file, &mut t.key_file]
                    .into_iter()
                    .chain(t.client_ca_file.as_mut())
            }))
            .chain(cfg.slack.iter_mut().flat_map(|s| {
                std::iter::once(&mut s.signing_secret_file).chain(s.bot_token_file.as_mut())
            }))
        {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        if let Some(file) = cfg.store_url.strip_prefix("sqlite://") {
            if !file.starts_with('/') && !file.starts_with(':') {
                cfg.store_url = format!("sqlite://{}", base.join(file).display());
            }
        } else if !cfg.store_url.starts_with("postgres://")
            && !cfg.store_url.starts_with("postgresql://")
        {
            return Err(ConfigError::Invalid {
                path: p,
                key: "store_url",
                why: "must start with sqlite:// or postgres://".into(),
            });
        }
        if let Some(sl) = &cfg.slack {
            let bot = sl.bot_token_file.is_some() || sl.channel.is_some();
            let why = match (&sl.webhook_url, bot) {
                (Some(_), true) => Some("give webhook_url or bot_token_file + channel, not both"),
                (None, false) => Some("needs webhook_url, or bot_token_file and channel"),
                (None, true) if sl.bot_token_file.is_none() || sl.channel.is_none() => {
                    Some("bot_token_file and channel go together")
                }
                _ => None,
            };
            if let Some(why) = why {
                return Err(ConfigError::Invalid {
                    path: p,
                    key: "slack",
                    why: why.into(),
                });
            }
        }
        if let Some(e) = &cfg.email {
            if !matches!(e.security.as_str(), "starttls" | "tls" | "none") {
                return Err(ConfigError::Invalid {
                    path: p,
                    key: "email.security",
                    why: format!("`{}`: must be starttls, tls or none", e.security),
                });
            }
        }
        Ok(cfg)
    }

    /// The URL approvers open.
    pub fn public_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(extra: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("pc-appr-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("approvals.toml");
        std::fs::write(
            &path,
            format!("gateway_token_file = \"t\"\nsigning_key_file = \"k\"\n{extra}"),
        )
        .expect("write");
        let r = Config::load(&path);
        std::fs::remove_dir_all(dir).ok();
        r
    }

    #[test]
    fn slack_needs_exactly_one_way_to_post() {
        let ok = load("[slack]\nwebhook_url = \"http://x\"\nsigning_secret_file = \"s\"\n")
            .expect("webhook");
        let sl = ok.slack.expect("slack");
        assert!(
            sl.signing_secret_file.is_absolute(),
            "resolved next to the config"
        );
        assert_eq!(sl.api_url, DEFAULT_SLACK_API_URL);
        load("[slack]\nbot_token_file = \"b\"\nchannel = \"C1\"\nsigning_secret_file = \"s\"\n")
            .expect("bot");
        for bad in [
            "[slack]\nsigning_secret_file = \"s\"\n",
            "[slack]\nwebhook_url = \"http://x\"\nbot_token_file = \"b\"\nchannel = \"C\"\nsigning_secret_file = \"s\"\n",
            "[slack]\nbot_token_file = \"b\"\nsigning_secret_file = \"s\"\n",
        ] {
            let e = load(bad).expect_err(bad).to_string();
            assert!(e.contains("`slack`"), "{e}");
        }
    }
}
