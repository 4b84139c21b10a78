//! `portcullis.toml`: one typed configuration, documented field by field,
//! validated once at load. Errors name the key and the line it is on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default Postgres-protocol listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6432";
/// Default admin (health, metrics) listen address.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Default largest accepted protocol message: 1 GiB, as Postgres.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 30;
/// Default time a client has to finish startup and authentication.
pub const DEFAULT_STARTUP_TIMEOUT: &str = "15s";
/// Default time sessions get to finish after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: &str = "30s";
/// Default policy directory.
pub const DEFAULT_POLICY_DIR: &str = "policies";
/// Default policy query.
pub const DEFAULT_POLICY_QUERY: &str = "data.portcullis.decision";
/// Default interval at which the policy directory is checked for changes.
pub const DEFAULT_RELOAD_INTERVAL: &str = "1s";
/// Default store URL.
pub const DEFAULT_STORE_URL: &str = "sqlite://portcullis.db";
/// Default clock leeway for `exp`/`nbf`.
pub const DEFAULT_LEEWAY: &str = "30s";
/// Default groups claim.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
/// Default claims the client's `user` is compared against, in order.
pub const DEFAULT_USER_CLAIMS: [&str; 3] = ["email", "preferred_username", "sub"];
/// Default signature algorithms accepted from an issuer.
pub const DEFAULT_ALGORITHMS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];
/// Default runtime worker threads (0: one per CPU core).
pub const DEFAULT_WORKER_THREADS: usize = 0;
/// Default hold timeout for approvals.
pub const DEFAULT_HOLD_TIMEOUT: &str = "5m";

/// A configuration error, with the file and line where it applies.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax or type error (the message names line and key).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// toml's description, with line and column.
        message: String,
    },
    /// A value is present but wrong.
    #[error("{path}:{line}: `{key}`: {why}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line (0 when the key is absent from the file).
        line: usize,
        /// Dotted key.
        key: String,
        /// What is wrong.
        why: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener settings.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// Token issuers.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Rego policy settings.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Audit and local state store.
    #[serde(default)]
    pub store: StoreConfig,
    /// Approvals service (optional until it is deployed).
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// Databases clients may reach.
    #[serde(default)]
    pub connections: Vec<ConnectionConfig>,
}

/// `[gateway]`: listeners and client-facing limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Postgres-protocol listen address. Default [`DEFAULT_LISTEN`].
    #[serde(default = "d_listen")]
    pub listen: String,
    /// Admin listener (`/healthz`, `/readyz`, `/metrics`); empty disables.
    /// Default [`DEFAULT_ADMIN_LISTEN`].
    #[serde(default = "d_admin_listen")]
    pub admin_listen: String,
    /// PEM certificate chain for client TLS. Default: none (no TLS).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for client TLS. Default: none.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Accept the token as a plaintext password on loopback listeners.
    /// Default false.
    #[serde(default)]
    pub allow_plaintext_loopback: bool,
    /// Largest protocol message accepted, in bytes. Default
    /// [`DEFAULT_MAX_MESSAGE_BYTES`].
    #[serde(default = "d_max_message")]
    pub max_message_bytes: usize,
    /// Time allowed for startup + authentication. Default
    /// [`DEFAULT_STARTUP_TIMEOUT`].
    #[serde(default = "d_startup_timeout")]
    pub startup_timeout: String,
    /// Time sessions get to finish after SIGTERM. Default
    /// [`DEFAULT_SHUTDOWN_GRACE`].
    #[serde(default = "d_shutdown_grace")]
    pub shutdown_grace: String,
    /// How the client's `user` is checked: `claim` (must equal one of
    /// `user_claims`) or `ignore`. Default `claim`.
    #[serde(default = "d_user_match")]
    pub user_match: String,
    /// Claims compared with the client's `user`. Default
    /// [`DEFAULT_USER_CLAIMS`].
    #[serde(default = "d_user_claims")]
    pub user_claims: Vec<String>,
    /// Log format: `text` or `json`. Default `text`.
    #[serde(default = "d_log_format")]
    pub log_format: String,
    /// Runtime worker threads; `0` (default, [`DEFAULT_WORKER_THREADS`]) =
    /// one per CPU core. `1` runs everything on one thread.
    #[serde(default)]
    pub worker_threads: usize,
}

/// `[identity]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Trusted OIDC issuers. At least one is required to serve.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
}

/// `[[identity.issuers]]`: one trusted OIDC issuer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Issuer URL; must equal the token's `iss`. Required.
    pub issuer: String,
    /// Expected `aud`. Required.
    pub audience: String,
    /// Claim holding the user's groups. Default [`DEFAULT_GROUPS_CLAIM`].
    #[serde(default = "d_groups_claim")]
    pub groups_claim: String,
    /// Accepted signature algorithms. Default [`DEFAULT_ALGORITHMS`];
    /// `none` and HS* are refused.
    #[serde(default = "d_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock leeway for `exp`/`nbf`. Default [`DEFAULT_LEEWAY`].
    #[serde(default = "d_leeway")]
    pub leeway: String,
    /// JWKS URL; default: taken from the issuer's discovery document.
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

/// `[policy]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directory of `*.rego` files plus optional `data.json`. Default
    /// [`DEFAULT_POLICY_DIR`]; relative to the config file.
    #[serde(default = "d_policy_dir")]
    pub dir: PathBuf,
    /// Rule evaluated for each statement. Default [`DEFAULT_POLICY_QUERY`].
    #[serde(default = "d_policy_query")]
    pub query: String,
    /// How often the directory is checked for changes. Default
    /// [`DEFAULT_RELOAD_INTERVAL`].
    #[serde(default = "d_reload_interval")]
    pub reload_interval: String,
    /// Cache decisions per session. Default true; automatically off when a
    /// policy refers to the time (`now`).
    #[serde(default = "d_true")]
    pub decision_cache: bool,
    /// `vm`: run the policy on regorus' bytecode VM when it compiles and
    /// agrees with the interpreter on probe inputs (VM errors fall back to
    /// the interpreter); `interpreter`: always the interpreter. Default `vm`.
    #[serde(default = "d_engine")]
    pub engine: String,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://FILE` or `postgres://...`. Default [`DEFAULT_STORE_URL`].
    #[serde(default = "d_store_url")]
    pub url: String,
}

/// `[approvals]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Base URL of the approvals service. Default: none (statements that
    /// need approval are refused).
    #[serde(default)]
    pub url: Option<String>,
    /// File holding the bearer token for the approvals API.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// How long a held statement waits. Default [`DEFAULT_HOLD_TIMEOUT`].
    #[serde(default)]
    pub hold_timeout: Option<String>,
}

/// `[[connections]]`: one upstream database.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Name the client puts in `dbname`. Required, unique.
    pub name: String,
    /// Protocol: `postgres` (others are reserved). Default `postgres`.
    #[serde(default = "d_kind")]
    pub kind: String,
    /// `host:port` of the database. Required.
    pub upstream: String,
    /// Database name upstream. Default: same as `name`.
    #[serde(default)]
    pub database: Option<String>,
    /// Upstream user. Required.
    pub user: String,
    /// Environment variable holding the upstream password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the upstream password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Upstream TLS: `disable`, `require` or `verify-full`. Default `disable`.
    #[serde(default = "d_tls")]
    pub tls: String,
    /// CA bundle (PEM) for `verify-full`; default: the Mozilla roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Groups allowed to use this connection; empty = every authenticated
    /// user. Default empty.
    #[serde(default)]
    pub groups: Vec<String>,
}

fn d_listen() -> String {
    DEFAULT_LISTEN.into()
}
fn d_admin_listen() -> String {
    DEFAULT_ADMIN_LISTEN.into()
}
fn d_max_message() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}
fn d_startup_timeout() -> String {
    DEFAULT_STARTUP_TIMEOUT.into()
}
fn d_shutdown_grace() -> String {
    DEFAULT_SHUTDOWN_GRACE.into()
}
fn d_user_match() -> String {
    "claim".into()
}
fn d_user_claims() -> Vec<String> {
    DEFAULT_USER_CLAIMS.iter().map(|s| s.to_string()).collect()
}
fn d_log_format() -> String {
    "text".into()
}
fn d_groups_claim() -> String {
    DEFAULT_GROUPS_CLAIM.into()
}
fn d_algorithms() -> Vec<String> {
    DEFAULT_ALGORITHMS.iter().map(|s| s.to_string()).collect()
}
fn d_leeway() -> String {
    DEFAULT_LEEWAY.into()
}
fn d_policy_dir() -> PathBuf {
    DEFAULT_POLICY_DIR.into()
}
fn d_policy_query() -> String {
    DEFAULT_POLICY_QUERY.into()
}
fn d_reload_interval() -> String {
    DEFAULT_RELOAD_INTERVAL.into()
}
fn d_engine() -> String {
    "vm".into()
}
fn d_true() -> bool {
    true
}
fn d_store_url() -> String {
    DEFAULT_STORE_URL.into()
}
fn d_kind() -> String {
    "postgres".into()
}
fn d_tls() -> String {
    "disable".into()
}

impl Default for GatewayConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}
impl Default for PolicyConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}
impl Default for StoreConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}

/// Parses a duration such as `250ms`, `30s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return None,
    })
}

impl Config {
    /// Reads, applies environment overrides and validates a config file.
    /// Relative paths are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg = Self::parse(&src, &path.display().to_string())?;
        cfg.apply_env();
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        cfg.validate(&src, &path.display().to_string())?;
        Ok(cfg)
    }

    /// Parses TOML text without validating.
    pub fn parse(src: &str, path: &str) -> Result<Self, ConfigError> {
        toml::from_str(src).map_err(|e| ConfigError::Parse {
            path: path.to_string(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Environment overrides (documented in the README).
    fn apply_env(&mut self) {
        if let Ok(v) = std::env::var("PORTCULLIS_LISTEN") {
            self.gateway.listen = v;
        }
        if let Ok(v) = std::env::var("PORTCULLIS_ADMIN_LISTEN") {
            self.gateway.admin_listen = v;
        }
        if let Ok(v) = std::env::var("PORTCULLIS_POLICY_DIR") {
            self.policy.dir = v.into();
        }
        if let Ok(v) = std::env::var("PORTCULLIS_LOG_FORMAT") {
            self.gateway.log_format = v;
        }
        if let Some(n) = std::env::var("PORTCULLIS_WORKER_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            self.gateway.worker_threads = n;
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.policy.dir);
        if let Some(p) = self.gateway.tls_cert.as_mut() {
            fix(p);
        }
        if let Some(p) = self.gateway.tls_key.as_mut() {
            fix(p);
        }
        for c in &mut self.connections {
            if let Some(p) = c.password_file.as_mut() {
                fix(p);
            }
            if let Some(p) = c.ca_file.as_mut() {
                fix(p);
            }
        }
    }

    /// Checks every value; the first problem is reported with its line.
    pub fn validate(&self, src: &str, path: &str) -> Result<(), ConfigError> {
        let bad = |table: &str, idx: Option<usize>, key: &str, why: String| {
            let line = locate(src, table, idx, key);
            let dotted = match (table, idx) {
                ("", _) => key.to_string(),
                (t, Some(i)) => format!("{t}[{i}].{key}"),
                (t, None) => format!("{t}.{key}"),
            };
            Err(ConfigError::Invalid {
                path: path.to_string(),
                line,
                key: dotted,
                why,
            })
        };
        let g = &self.gateway;
        if g.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "gateway",
                None,
                "listen",
                format!("`{}` is not an ip:port address", g.listen),
            );
        }
        if !g.admin_listen.is_empty() && g.admin_listen.parse::<SocketAddr>().is_err() {
            return bad(
                "gateway",
                None,
                "admin_listen",
                format!("`{}` is not an ip:port address", g.admin_listen),
            );
        }
        if g.tls_cert.is_some() != g.tls_key.is_some() {
            return bad(
                "gateway",
                None,
                "tls_cert",
                "tls_cert and tls_key must be set together".into(),
            );
        }
        if g.max_message_bytes < 1024 || g.max_message_bytes > DEFAULT_MAX_MESSAGE_BYTES {
            return bad(
                "gateway",
                None,
                "max_message_bytes",
                "must be between 1024 and 1073741824".into(),
            );
        }
        for (key, v) in [
            ("startup_timeout", &g.startup_timeout),
            ("shutdown_grace", &g.shutdown_grace),
        ] {
            if parse_duration(v).is_none() {
                return bad(
                    "gateway",
                    None,
                    key,
                    format!("`{v}` is not a duration like 30s or 5m"),
                );
            }
        }
        if !matches!(g.user_match.as_str(), "claim" | "ignore") {
            return bad(
                "gateway",
                None,
                "user_match",
                "must be `claim` or `ignore`".into(),
            );
        }
        if !matches!(g.log_format.as_str(), "text" | "json") {
            return bad(
                "gateway",
                None,
                "log_format",
                "must be `text` or `json`".into(),
            );
        }
        if self.identity.issuers.is_empty() {
            return bad(
                "identity",
                None,
                "issuers",
                "at least one [[identity.issuers]] is required".into(),
            );
        }
        for (i, iss) in self.identity.issuers.iter().enumerate() {
            let t = "identity.issuers";
            if !(iss.issuer.starts_with("https://") || iss.issuer.starts_with("http://")) {
                return bad(t, Some(i), "issuer", "must be an http(s) URL".into());
            }
            if iss.audience.is_empty() {
                return bad(t, Some(i), "audience", "must not be empty".into());
            }
            if parse_duration(&iss.leeway).is_none() {
                return bad(
                    t,
                    Some(i),
                    "leeway",
                    format!("`{}` is not a duration", iss.leeway),
                );
            }
            for alg in &iss.algorithms {
                if crate::identity::parse_algorithm(alg).is_none() {
                    return bad(t, Some(i), "algorithms", format!("`{alg}` is not an accepted asymmetric algorithm (none and HS* are refused)"));
                }
            }
        }
        if self.policy.query.is_empty() || !self.policy.query.starts_with("data.") {
            return bad(
                "policy",
                None,
                "query",
                "must be a rule path starting with `data.`".into(),
            );
        }
        if !matches!(self.policy.engine.as_str(), "vm" | "interpreter") {
            return bad(
                "policy",
                None,
                "engine",
                "must be `vm` or `interpreter`".into(),
            );
        }
        if parse_duration(&self.policy.reload_interval).is_none() {
            return bad("policy", None, "reload_interval", "not a duration".into());
        }
        if !(self.store.url.starts_with("sqlite://")
            || self.store.url.starts_with("postgres://")
            || self.store.url.starts_with("postgresql://"))
        {
            return bad(
                "store",
                None,
                "url",
                "must start with sqlite:// or postgres://".into(),
            );
        }
        if let Some(t) = &self.approvals.hold_timeout {
            if parse_duration(t).is_none() {
                return bad("approvals", None, "hold_timeout", "not a duration".into());
            }
        }
        if self.connections.is_empty() {
            return bad(
                "connections",
                None,
                "name",
                "at least one [[connections]] is required".into(),
            );
        }
        for (i, c) in self.connections.iter().enumerate() {
            let t = "connections";
            if c.name.is_empty() {
                return bad(t, Some(i), "name", "must not be empty".into());
            }
            if self.connections[..i].iter().any(|o| o.name == c.name) {
                return bad(
                    t,
                    Some(i),
                    "name",
                    format!("duplicate connection name `{}`", c.name),
                );
            }
            if c.kind != "postgres" {
                return bad(
                    t,
                    Some(i),
                    "kind",
                    format!("`{}` is not supported yet (supported: postgres)", c.kind),
                );
            }
            if split_host_port(&c.upstream).is_none() {
                return bad(
                    t,
                    Some(i),
                    "upstream",
                    format!("`{}` is not host:port", c.upstream),
                );
            }
            if c.user.is_empty() {
                return bad(t, Some(i), "user", "must not be empty".into());
            }
            if c.password_env.is_some() == c.password_file.is_some() {
                return bad(
                    t,
                    Some(i),
                    "password_env",
                    "set exactly one of password_env and password_file".into(),
                );
            }
            if !matches!(c.tls.as_str(), "disable" | "require" | "verify-full") {
                return bad(
                    t,
                    Some(i),
                    "tls",
                    "must be disable, require or verify-full".into(),
                );
            }
        }
        Ok(())
    }

    /// Parsed startup timeout.
    pub fn startup_timeout(&self) -> Duration {
        parse_duration(&self.gateway.startup_timeout).unwrap_or(Duration::from_secs(15))
    }

    /// Parsed shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        parse_duration(&self.gateway.shutdown_grace).unwrap_or(Duration::from_secs(30))
    }
}

impl ConnectionConfig {
    /// Database name to use upstream.
    pub fn database(&self) -> &str {
        self.database.as_deref().unwrap_or(&self.name)
    }
}

/// Splits `host:port` (IPv6 in brackets).
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port))
}

/// Finds the 1-based line of `key` inside `[table]` (or the `idx`-th
/// `[[table]]`). Returns the table header's line if the key is absent, 0 if
/// neither is present.
fn locate(src: &str, table: &str, idx: Option<usize>, key: &str) -> usize {
    let mut in_table = table.is_empty();
    let mut seen = 0usize;
    let mut header_line = 0;
    for (n, raw) in src.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            let name = line.trim_matches(|c| c == '[' || c == ']').trim();
            let is_array = line.starts_with("[[");
            in_table = false;
            if name == table {
                match idx {
                    Some(i) if is_array => {
                        in_table = seen == i;
                        seen += 1;
                    }
                    None if !is_array => in_table = true,
                    _ => {}
                }
                if in_table {
                    header_line = n + 1;
                }
            }
            continue;
        }
        if in_table {
            if let Some((k, _)) = line.split_once('=') {
                if k.trim() == key {
                    return n + 1;
                }
            }
        }
    }
    header_line
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[gateway]
listen = "127.0.0.1:6432"

[[identity.issuers]]
issuer = "https://idp.example"
audience = "portcullis"

[[connections]]
name = "prod"
upstream = "127.0.0.1:5432"
user = "svc"
password_env = "PW"

[[connections]]
name = "stage"
upstream = "db:5432"
user = "svc"
password_env = "PW"
tls = "sometimes"
"#;

    #[test]
    fn names_key_and_line() {
        let cfg = Config::parse(GOOD, "p.toml").unwrap();
        let err = cfg.validate(GOOD, "p.toml").unwrap_err().to_string();
        assert_eq!(
            err,
            "p.toml:20: `connections[1].tls`: must be disable, require or verify-full"
        );
    }

    #[test]
    fn unknown_key_is_an_error_with_line() {
        let src = "[gateway]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n";
        let err = Config::parse(src, "p.toml").unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("x5s"), None);
    }
}
