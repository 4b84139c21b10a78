//! `portcullis.toml`: one typed configuration, documented field by field,
//! validated once at load. Errors name the key and the line it is on.

use std::net::SocketAddr;
use std::ops::Range;
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
/// Default `approvals.gateway_id`.
pub const DEFAULT_GATEWAY_ID: &str = "portcullis";
/// Default `connections[].catalog_refresh`.
pub const DEFAULT_CATALOG_REFRESH: &str = "30s";

/// How the client's `user` startup parameter is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserMatch {
    /// Must equal one of `user_claims` of the token.
    Claim,
    /// Not checked.
    Ignore,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines.
    Json,
}

/// Which engine evaluates policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyEngine {
    /// regorus' bytecode VM (checked against the interpreter).
    Vm,
    /// The interpreter only.
    Interpreter,
}

/// Kind of database behind a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    /// PostgreSQL wire protocol.
    Postgres,
}

impl ConnectionKind {
    /// The name used in config and policy input.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
        }
    }
}

/// TLS toward the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// Encrypted, certificate not checked.
    Require,
    /// Encrypted, chain and host name verified.
    VerifyFull,
}

/// Durations written as `250ms`, `30s`, `5m`, `1h 30m`.
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|_| {
            serde::de::Error::custom(format!("`{text}` is not a duration like 30s or 5m"))
        })
    }

    /// The same for optional durations.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => humantime::parse_duration(&text).map(Some).map_err(|_| {
                    serde::de::Error::custom(format!("`{text}` is not a duration like 30s or 5m"))
                }),
            }
        }
    }
}

/// Parses a built-in default duration.
pub(crate) fn dur(text: &str) -> Duration {
    humantime::parse_duration(text).unwrap_or(Duration::from_secs(1))
}

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
    /// The audit record (stored at `store.url`).
    #[serde(default)]
    pub audit: crate::audit::config::AuditConfig,
    /// How masked values are computed.
    #[serde(default)]
    pub masking: crate::mask::MaskingConfig,
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
    #[serde(default = "d_startup_timeout", with = "duration")]
    pub startup_timeout: Duration,
    /// Time sessions get to finish after SIGTERM. Default
    /// [`DEFAULT_SHUTDOWN_GRACE`].
    #[serde(default = "d_shutdown_grace", with = "duration")]
    pub shutdown_grace: Duration,
    /// How the client's `user` is checked: `claim` (must equal one of
    /// `user_claims`) or `ignore`. Default `claim`.
    #[serde(default = "d_user_match")]
    pub user_match: UserMatch,
    /// Claims compared with the client's `user`. Default
    /// [`DEFAULT_USER_CLAIMS`].
    #[serde(default = "d_user_claims")]
    pub user_claims: Vec<String>,
    /// Log format: `text` or `json`. Default `text`.
    #[serde(default = "d_log_format")]
    pub log_format: LogFormat,
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
    #[serde(default = "d_leeway", with = "duration")]
    pub leeway: Duration,
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
    #[serde(default = "d_reload_interval", with = "duration")]
    pub reload_interval: Duration,
    /// Cache decisions per session. Default true; automatically off when a
    /// policy refers to the time (`now`).
    #[serde(default = "d_true")]
    pub decision_cache: bool,
    /// `vm`: run the policy on regorus' bytecode VM when it compiles and
    /// agrees with the interpreter on probe inputs (VM errors fall back to
    /// the interpreter); `interpreter`: always the interpreter. Default `vm`.
    #[serde(default = "d_engine")]
    pub engine: PolicyEngine,
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Base URL of the approvals service. Default: none (statements that
    /// need approval are refused).
    #[serde(default)]
    pub url: Option<String>,
    /// File holding the bearer token for the approvals API.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// How long a held statement waits when the policy gives no
    /// `approval.timeout`. Default [`DEFAULT_HOLD_TIMEOUT`].
    #[serde(default, with = "duration::option")]
    pub hold_timeout: Option<Duration>,
    /// The service's Ed25519 public key (base64; `portcullis-approvals
    /// keygen` prints it). Required with `url`: decisions whose signature
    /// does not verify are refused.
    #[serde(default)]
    pub public_key: Option<String>,
    /// URL approvers open, when it differs from `url`. Default: `url`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// This gateway's id; decisions are bound to it, so gateways sharing
    /// one service need different ids. Default [`DEFAULT_GATEWAY_ID`].
    #[serde(default = "d_gateway_id")]
    pub gateway_id: String,
    /// CA (PEM) to trust for an `https://` service with a private CA.
    /// Default: none (the Mozilla roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for services that require mTLS
    /// (`tls.client_ca_file` there). Default: none.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Its private key (PEM). Required with `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

impl ApprovalsConfig {
    /// The hold timeout in force.
    pub fn hold_timeout(&self) -> Duration {
        self.hold_timeout
            .unwrap_or_else(|| dur(DEFAULT_HOLD_TIMEOUT))
    }
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            url: None,
            token_file: None,
            hold_timeout: None,
            public_key: None,
            public_url: None,
            gateway_id: d_gateway_id(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

fn d_gateway_id() -> String {
    DEFAULT_GATEWAY_ID.into()
}

/// `[[connections]]`: one upstream database.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Name the client puts in `dbname`. Required, unique.
    pub name: String,
    /// Protocol: `postgres` (others are reserved). Default `postgres`.
    #[serde(default = "d_kind")]
    pub kind: ConnectionKind,
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
    pub tls: TlsMode,
    /// CA bundle (PEM) for `verify-full`; default: the Mozilla roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Groups allowed to use this connection; empty = every authenticated
    /// user. Default empty.
    #[serde(default)]
    pub groups: Vec<String>,
    /// How often the gateway re-reads the database's catalog (functions,
    /// columns, views) that statement facts depend on; a statement through
    /// the gateway that may change it triggers a re-read at once. Default
    /// [`DEFAULT_CATALOG_REFRESH`].
    #[serde(default = "d_catalog_refresh", with = "duration")]
    pub catalog_refresh: Duration,
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
fn d_startup_timeout() -> Duration {
    dur(DEFAULT_STARTUP_TIMEOUT)
}
fn d_catalog_refresh() -> Duration {
    dur(DEFAULT_CATALOG_REFRESH)
}
fn d_shutdown_grace() -> Duration {
    dur(DEFAULT_SHUTDOWN_GRACE)
}
fn d_user_match() -> UserMatch {
    UserMatch::Claim
}
fn d_user_claims() -> Vec<String> {
    DEFAULT_USER_CLAIMS.iter().map(|s| s.to_string()).collect()
}
fn d_log_format() -> LogFormat {
    LogFormat::Text
}
fn d_groups_claim() -> String {
    DEFAULT_GROUPS_CLAIM.into()
}
fn d_algorithms() -> Vec<String> {
    DEFAULT_ALGORITHMS.iter().map(|s| s.to_string()).collect()
}
fn d_leeway() -> Duration {
    dur(DEFAULT_LEEWAY)
}
fn d_policy_dir() -> PathBuf {
    DEFAULT_POLICY_DIR.into()
}
fn d_policy_query() -> String {
    DEFAULT_POLICY_QUERY.into()
}
fn d_reload_interval() -> Duration {
    dur(DEFAULT_RELOAD_INTERVAL)
}
fn d_engine() -> PolicyEngine {
    PolicyEngine::Vm
}
fn d_true() -> bool {
    true
}
fn d_store_url() -> String {
    DEFAULT_STORE_URL.into()
}
fn d_kind() -> ConnectionKind {
    ConnectionKind::Postgres
}
fn d_tls() -> TlsMode {
    TlsMode::Disable
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

impl Config {
    /// Reads, applies environment overrides and validates a config file.
    /// Relative paths are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg = Self::parse(&src, &path.display().to_string())?;
        cfg.apply_env()?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        cfg.validate(&src, &path.display().to_string())?;
        Ok(cfg)
    }

    /// Parses TOML text without validating. Errors name the line (from
    /// the parser's spans) and the key.
    pub fn parse(src: &str, path: &str) -> Result<Self, ConfigError> {
        toml::from_str(src).map_err(|e| parse_error(src, path, &e))
    }

    /// Environment overrides (documented in the README).
    fn apply_env(&mut self) -> Result<(), ConfigError> {
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
            match v.as_str() {
                "json" => self.gateway.log_format = LogFormat::Json,
                "text" => self.gateway.log_format = LogFormat::Text,
                _ => {
                    return Err(ConfigError::Invalid {
                        path: "environment".into(),
                        line: 0,
                        key: "PORTCULLIS_LOG_FORMAT".into(),
                        why: format!("`{v}`: must be `text` or `json`"),
                    })
                }
            }
        }
        if let Some(n) = std::env::var("PORTCULLIS_WORKER_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            self.gateway.worker_threads = n;
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.policy.dir);
        for p in [
            &mut self.audit.signing_key_file,
            &mut self.masking.hash_key_file,
        ]
        .into_iter()
        .chain(self.audit.encryption_key_file.as_mut())
        .chain(self.audit.decryption_key_files.iter_mut())
        .chain(
            self.audit
                .sinks
                .iter_mut()
                .flat_map(|s| s.secret_file.as_mut().into_iter().chain(s.path.as_mut())),
        ) {
            fix(p);
        }
        if let Some(file) = self.store.url.strip_prefix("sqlite://") {
            if !file.starts_with('/') && !file.starts_with(':') {
                self.store.url = format!("sqlite://{}", base.join(file).display());
            }
        }
        for p in [
            &mut self.approvals.token_file,
            &mut self.approvals.ca_file,
            &mut self.approvals.client_cert_file,
            &mut self.approvals.client_key_file,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
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
            let dotted = match (table, idx) {
                ("", _) => key.to_string(),
                (t, Some(i)) => format!("{t}[{i}].{key}"),
                (t, None) => format!("{t}.{key}"),
            };
            let line = locate(src, &dotted);
            Err(ConfigError::Invalid {
                path: path.to_string(),
                line,
                key: dotted,
                why,
            })
        };
        let a = &self.approvals;
        if a.client_cert_file.is_some() != a.client_key_file.is_some() {
            return bad(
                "approvals",
                None,
                "client_cert_file",
                "client_cert_file and client_key_file go together".into(),
            );
        }
        if a.url.is_some() {
            if a.token_file.is_none() {
                return bad(
                    "approvals",
                    None,
                    "token_file",
                    "required when `approvals.url` is set".into(),
                );
            }
            let key_ok = a.public_key.as_deref().is_some_and(|k| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(k.trim())
                    .is_ok_and(|b| b.len() == 32)
            });
            if !key_ok {
                return bad(
                    "approvals",
                    None,
                    "public_key",
                    "required when `approvals.url` is set: the service's base64 Ed25519 public key (portcullis-approvals keygen prints it)".into(),
                );
            }
        }
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
        }
        Ok(())
    }

    /// Startup timeout.
    pub fn startup_timeout(&self) -> Duration {
        self.gateway.startup_timeout
    }

    /// Shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        self.gateway.shutdown_grace
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

/// Where each key of a TOML document sits, from the parser's spans:
/// (dotted path such as `connections[1].tls`, byte range of the key, byte
/// range of its value or table).
fn key_spans(src: &str) -> Vec<(String, Range<usize>, Range<usize>)> {
    fn walk(
        t: &toml_edit::Table,
        prefix: &str,
        out: &mut Vec<(String, Range<usize>, Range<usize>)>,
    ) {
        for (k, item) in t.iter() {
            let path = if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            };
            let key_span = t.key(k).and_then(|k| k.span());
            match item {
                toml_edit::Item::Table(tt) => {
                    if let Some(sp) = tt.span() {
                        out.push((path.clone(), sp.clone(), sp));
                    }
                    walk(tt, &path, out);
                }
                toml_edit::Item::ArrayOfTables(a) => {
                    for (i, tt) in a.iter().enumerate() {
                        let p = format!("{path}[{i}]");
                        if let Some(sp) = tt.span() {
                            out.push((p.clone(), sp.clone(), sp));
                        }
                        walk(tt, &p, out);
                    }
                }
                toml_edit::Item::Value(v) => {
                    if let (Some(ks), Some(vs)) = (key_span, v.span()) {
                        out.push((path, ks, vs));
                    }
                }
                toml_edit::Item::None => {}
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(doc) = toml_edit::ImDocument::parse(src) {
        walk(doc.as_table(), "", &mut out);
    }
    out
}

/// 1-based line of a byte offset.
fn line_of(src: &str, offset: usize) -> usize {
    src.get(..offset.min(src.len()))
        .map_or(0, |s| s.bytes().filter(|&b| b == b'\n').count() + 1)
}

/// The line of `key` (dotted, e.g. `connections[1].tls`): its own line, or
/// its table's when it is absent, or 0.
fn locate(src: &str, key: &str) -> usize {
    let spans = key_spans(src);
    if let Some((_, ks, _)) = spans.iter().find(|(p, _, _)| p == key) {
        return line_of(src, ks.start);
    }
    let table = key.rsplit_once('.').map_or("", |(t, _)| t);
    spans
        .iter()
        .find(|(p, _, _)| p == table)
        .map_or(0, |(_, ks, _)| line_of(src, ks.start))
}

/// Turns a deserialization error into one naming the line and the key.
fn parse_error(src: &str, path: &str, e: &toml::de::Error) -> ConfigError {
    let Some(span) = e.span() else {
        return ConfigError::Parse {
            path: path.to_string(),
            message: e.message().trim_end().to_string(),
        };
    };
    // The innermost key whose key or value contains the error.
    let key = key_spans(src)
        .into_iter()
        .filter(|(_, ks, vs)| {
            (ks.start <= span.start && span.end <= ks.end)
                || (vs.start <= span.start && span.end <= vs.end)
        })
        .min_by_key(|(_, ks, vs)| (vs.end - vs.start).min(ks.end - ks.start + vs.end - vs.start))
        .map(|(p, _, _)| p);
    match key {
        Some(key) => ConfigError::Invalid {
            path: path.to_string(),
            line: line_of(src, span.start),
            key,
            why: e.message().trim_end().to_string(),
        },
        None => ConfigError::Parse {
            path: path.to_string(),
            message: format!(
                "line {}: {}",
                line_of(src, span.start),
                e.message().trim_end()
            ),
        },
    }
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
        let err = Config::parse(GOOD, "p.toml").unwrap_err().to_string();
        assert_eq!(
            err,
            "p.toml:20: `connections[1].tls`: unknown variant `sometimes`, expected one of `disable`, `require`, `verify-full`"
        );
        let src = GOOD
            .replace("sometimes", "require")
            .replace("db:5432", "db");
        let cfg = Config::parse(&src, "p.toml").unwrap();
        let err = cfg.validate(&src, "p.toml").unwrap_err().to_string();
        assert_eq!(
            err,
            "p.toml:17: `connections[1].upstream`: `db` is not host:port"
        );
        let src = GOOD
            .replace("tls = \"sometimes\"", "")
            .replace("listen = \"127.0.0.1:6432\"", "shutdown_grace = \"soon\"");
        let err = Config::parse(&src, "p.toml").unwrap_err().to_string();
        assert_eq!(
            err,
            "p.toml:3: `gateway.shutdown_grace`: `soon` is not a duration like 30s or 5m"
        );
    }

    #[test]
    fn unknown_key_is_an_error_with_line() {
        let src = "[gateway]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n";
        let err = Config::parse(src, "p.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("p.toml:3: `gateway.listne`: unknown field `listne`"),
            "{err}"
        );
    }

    #[test]
    fn key_files_are_relative_to_the_config_file() {
        let dir = std::env::temp_dir().join(format!("cfg-rel-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("portcullis.toml");
        let src = GOOD.replace("sometimes", "require");
        std::fs::write(&path, src).unwrap();
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.masking.hash_key_file, dir.join("mask-hash.key"));
        assert_eq!(cfg.audit.signing_key_file, dir.join("audit-signing.key"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn durations() {
        let cfg = Config::parse(
            "[gateway]\nstartup_timeout = \"250ms\"\nshutdown_grace = \"1m 30s\"\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(cfg.gateway.startup_timeout, Duration::from_millis(250));
        assert_eq!(cfg.gateway.shutdown_grace, Duration::from_secs(90));
        assert_eq!(
            Config::parse("", "p.toml").unwrap().gateway.shutdown_grace,
            Duration::from_secs(30)
        );
        for bad in ["5", "x5s"] {
            let src = format!("[gateway]\nstartup_timeout = \"{bad}\"\n");
            assert!(Config::parse(&src, "p.toml").is_err(), "{bad}");
        }
    }
}
