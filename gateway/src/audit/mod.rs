//! The audit record: every session and statement, with identity,
//! decision, approvers, parameters and (masked) result rows, written off
//! the hot path ([`writer`]), hash-chained per gateway instance with
//! signed checkpoints ([`verify`]), optionally sealed at rest ([`crypt`]),
//! pruned to a checkpoint after `retention`, streamed to SIEM sinks
//! ([`sink`]) and read back as exports and transcripts ([`export`]).
//! In strict mode on SQLite, clients wait for a journal ([`journal`])
//! rather than for the store's commit.
//! SQLite or PostgreSQL ([`store`]).

pub mod cli;
pub mod commit;
pub mod config;
pub mod crypt;
pub mod export;
pub mod journal;
pub mod record;
pub mod recorder;
pub mod sink;
pub mod store;
pub mod verify;
pub mod writer;

pub use record::Record;
pub use writer::{Ack, Auditor};

/// Errors of the audit layer.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Starting the writer.
    #[error(transparent)]
    Start(#[from] writer::StartError),
    /// Reading out.
    #[error(transparent)]
    Export(#[from] export::ExportError),
    /// Keys.
    #[error(transparent)]
    Crypt(#[from] crypt::CryptError),
    /// The strict-mode journal.
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
}

/// Opens the store at `url` and starts the writer, when recording is on.
pub async fn start(url: &str, cfg: &config::AuditConfig) -> Result<Option<Auditor>, AuditError> {
    if !cfg.enabled {
        tracing::warn!("audit recording is off (audit.enabled = false)");
        return Ok(None);
    }
    let store = store::Store::open_writer(url, cfg.sync).await?;
    // SQLite: a journal left by a strict run is recovered in any mode;
    // in strict mode clients wait for it, not for the commit.
    let auditor = writer::start(cfg, store, journal::paths_for(url)).await?;
    tracing::info!(instance = %cfg.instance, durability = ?cfg.durability, "audit recording on");
    Ok(Some(auditor))
}

/// Environment variable holding the current encryption key (base64 of 32
/// bytes); it takes precedence over `audit.encryption_key_file`.
pub const KEY_ENV: &str = "PORTCULLIS_AUDIT_KEY";

/// The keys to seal and read records with: the current key (from
/// [`KEY_ENV`] or `encryption_key_file`) and the older ones.
pub fn read_keys(cfg: &config::AuditConfig) -> Result<crypt::Keys, AuditError> {
    let mut keys = crypt::Keys::default();
    if let Ok(v) = std::env::var(KEY_ENV) {
        keys.current = Some(crypt::Key::from_base64(&v, KEY_ENV)?);
    } else if let Some(f) = &cfg.encryption_key_file {
        keys.current = Some(crypt::Key::from_file(f)?);
    }
    for f in &cfg.decryption_key_files {
        keys.old.push(crypt::Key::from_file(f)?);
    }
    Ok(keys)
}
