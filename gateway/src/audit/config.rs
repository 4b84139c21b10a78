//! `[audit]`: what is recorded, how durably, signed with which key,
//! sealed with which key, kept how long, and streamed where. The store's
//! location is `store.url`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default `audit.flush_interval`.
pub const DEFAULT_FLUSH_INTERVAL: &str = "20ms";
/// Default `audit.batch_size`.
pub const DEFAULT_BATCH_SIZE: usize = 20_000;
/// Default `audit.buffer_limit`.
pub const DEFAULT_BUFFER_LIMIT: usize = 100_000;
/// Default `audit.max_rows`.
pub const DEFAULT_MAX_ROWS: usize = 100;
/// Default `audit.max_result_bytes`.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 64 * 1024;
/// Default `audit.max_param_bytes`.
pub const DEFAULT_MAX_PARAM_BYTES: usize = 4096;
/// Default `audit.signing_key_file`.
pub const DEFAULT_SIGNING_KEY_FILE: &str = "audit-signing.key";
/// Default `audit.checkpoint_every`.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1000;
/// Default `audit.checkpoint_interval`.
pub const DEFAULT_CHECKPOINT_INTERVAL: &str = "1m";

/// When the client may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Records are written in the background, every `flush_interval`.
    #[default]
    Batched,
    /// A statement's ReadyForQuery waits until its record is committed.
    Strict,
}

/// What "committed" means to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// SQLite: a commit is on disk (fsync, `synchronous = FULL`) before it
    /// counts, so it survives a power loss. PostgreSQL: as the server's
    /// `synchronous_commit` says (on by default: flushed to its WAL).
    #[default]
    Full,
    /// SQLite: a commit is written to the operating system (WAL, no
    /// fsync). PostgreSQL: the writer's sessions set `synchronous_commit
    /// = off`. It survives a crash or kill -9 of the gateway, but not a
    /// crash of the machine (or of the PostgreSQL server, or a failover to
    /// a standby): the last commits before one may be lost, and their
    /// sequence numbers are then reused by later records.
    Normal,
}

/// A live sink for SIEMs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// `webhook` (batched JSON POSTs, HMAC-signed, retried) or `file`
    /// (JSON lines appended).
    pub kind: String,
    /// Webhook URL.
    #[serde(default)]
    pub url: Option<String>,
    /// File with the webhook's HMAC secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// File to append to.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Record sessions and statements. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// This gateway's id in the store: its records form one hash chain.
    /// Gateways sharing a store need different ids. Default: `gateway`.
    #[serde(default = "d_instance")]
    pub instance: String,
    /// `batched` (default) or `strict`.
    #[serde(default)]
    pub durability: Durability,
    /// `full` (default: each commit is durable) or `normal` (each commit
    /// reaches the OS or the PostgreSQL server; survives a gateway crash,
    /// not a machine crash). See [`SyncMode`].
    #[serde(default)]
    pub sync: SyncMode,
    /// How often batched records (and, in strict mode on SQLite, records
    /// already in the journal) are committed. Default
    /// [`DEFAULT_FLUSH_INTERVAL`].
    #[serde(default = "d_flush", with = "crate::config::duration")]
    pub flush_interval: Duration,
    /// Most records per commit. Default [`DEFAULT_BATCH_SIZE`].
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Records kept in memory while the store cannot be written; beyond
    /// it new statements are refused. Default [`DEFAULT_BUFFER_LIMIT`].
    #[serde(default = "d_buffer")]
    pub buffer_limit: usize,
    /// Result rows kept per statement. Default [`DEFAULT_MAX_ROWS`].
    #[serde(default = "d_rows")]
    pub max_rows: usize,
    /// Result bytes kept per statement. Default
    /// [`DEFAULT_MAX_RESULT_BYTES`].
    #[serde(default = "d_result_bytes")]
    pub max_result_bytes: usize,
    /// Bytes kept of each bound parameter. Default
    /// [`DEFAULT_MAX_PARAM_BYTES`].
    #[serde(default = "d_param_bytes")]
    pub max_param_bytes: usize,
    /// Ed25519 key (base64 seed) that signs checkpoints; created (mode
    /// 0600) when missing. Default [`DEFAULT_SIGNING_KEY_FILE`], relative
    /// to the config file.
    #[serde(default = "d_signing_key")]
    pub signing_key_file: PathBuf,
    /// Sign a checkpoint after this many records. Default
    /// [`DEFAULT_CHECKPOINT_EVERY`].
    #[serde(default = "d_cp_every")]
    pub checkpoint_every: u64,
    /// ... or after this long with new records. Default
    /// [`DEFAULT_CHECKPOINT_INTERVAL`].
    #[serde(default = "d_cp_interval", with = "crate::config::duration")]
    pub checkpoint_interval: Duration,
    /// AES-256 key (base64 of 32 bytes) sealing statement text,
    /// parameters and rows. Default: none (stored in the clear).
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
    /// Older keys, to read records sealed before a rotation.
    #[serde(default)]
    pub decryption_key_files: Vec<PathBuf>,
    /// Prune records older than this (down to a signed checkpoint, so the
    /// rest still verifies). Default: none (keep everything).
    #[serde(default, with = "crate::config::duration::option")]
    pub retention: Option<Duration>,
    /// Live sinks.
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    /// The web audit viewer on the admin listener. Default: none.
    #[serde(default)]
    pub viewer: Option<ViewerConfig>,
}

/// `[audit.viewer]`: auditors sign in with OIDC.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ViewerConfig {
    /// Issuer URL (discovery at `/.well-known/openid-configuration`).
    pub issuer: String,
    /// OIDC client id registered for the viewer (redirect URI
    /// `<public_url>/audit/callback`).
    pub client_id: String,
    /// Client secret, for confidential clients. Default: none (PKCE).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Claim holding groups. Default `groups`.
    #[serde(default = "d_groups_claim")]
    pub groups_claim: String,
    /// Groups allowed in. Default `["auditor"]`.
    #[serde(default = "d_auditor_groups")]
    pub groups: Vec<String>,
    /// Base URL auditors open. Default `http://` + `gateway.admin_listen`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How long a sign-in lasts. Default 8h.
    #[serde(default = "d_session_ttl", with = "crate::config::duration")]
    pub session_ttl: Duration,
}

fn d_groups_claim() -> String {
    "groups".into()
}
fn d_auditor_groups() -> Vec<String> {
    vec!["auditor".into()]
}
fn d_session_ttl() -> Duration {
    Duration::from_secs(8 * 3600)
}

impl Default for AuditConfig {
    fn default() -> Self {
        // The same defaults as an empty `[audit]` table.
        toml::from_str("").unwrap_or_else(|_| Self {
            enabled: true,
            instance: d_instance(),
            durability: Durability::Batched,
            sync: SyncMode::Full,
            flush_interval: d_flush(),
            batch_size: DEFAULT_BATCH_SIZE,
            buffer_limit: DEFAULT_BUFFER_LIMIT,
            max_rows: DEFAULT_MAX_ROWS,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            max_param_bytes: DEFAULT_MAX_PARAM_BYTES,
            signing_key_file: d_signing_key(),
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            checkpoint_interval: d_cp_interval(),
            encryption_key_file: None,
            decryption_key_files: Vec::new(),
            retention: None,
            sinks: Vec::new(),
            viewer: None,
        })
    }
}

fn yes() -> bool {
    true
}
fn d_instance() -> String {
    "gateway".into()
}
fn d_flush() -> Duration {
    humantime::parse_duration(DEFAULT_FLUSH_INTERVAL).unwrap_or(Duration::from_millis(20))
}
fn d_batch() -> usize {
    DEFAULT_BATCH_SIZE
}
fn d_buffer() -> usize {
    DEFAULT_BUFFER_LIMIT
}
fn d_rows() -> usize {
    DEFAULT_MAX_ROWS
}
fn d_result_bytes() -> usize {
    DEFAULT_MAX_RESULT_BYTES
}
fn d_param_bytes() -> usize {
    DEFAULT_MAX_PARAM_BYTES
}
fn d_signing_key() -> PathBuf {
    PathBuf::from(DEFAULT_SIGNING_KEY_FILE)
}
fn d_cp_every() -> u64 {
    DEFAULT_CHECKPOINT_EVERY
}
fn d_cp_interval() -> Duration {
    humantime::parse_duration(DEFAULT_CHECKPOINT_INTERVAL).unwrap_or(Duration::from_secs(60))
}
