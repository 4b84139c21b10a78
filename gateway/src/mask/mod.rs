//! Masking: a decision's `mask` rules rewrite the named columns of a
//! statement's results before the client (and the audit record) sees them.
//!
//! Fails closed in two steps. Before the statement is forwarded,
//! [`prove`] shows from the parse tree and the catalog that masked values
//! can leave only as plainly selected columns; otherwise it is refused.
//! When its RowDescription arrives, [`Plan::new`] reads each column's
//! origin (table OID and attribute number, as the server labels it) and
//! matches it, through the catalog and the table's inheritance parents,
//! against the rules; a column it cannot place stops the result (no row is
//! relayed, the client gets an error). Each DataRow is then rewritten.

mod prove;
pub mod value;

use std::path::PathBuf;
use std::sync::OnceLock;

use ring::hmac;
use serde::{Deserialize, Serialize};

pub use prove::{names_prepared, prove};

use crate::catalog::Catalog;
use crate::pg::row::{self, Field};
use crate::pg::{CodecError, Frame};
use crate::policy::MaskRule;

/// Default `masking.hash_key_file`.
pub const DEFAULT_HASH_KEY_FILE: &str = "mask-hash.key";

/// `[masking]`: how masked values are computed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// Key of the `hash` method (HMAC-SHA256), created (mode 0600) at the
    /// first hash if missing. Gateways that must produce the same hashes
    /// share the file. Default [`DEFAULT_HASH_KEY_FILE`].
    #[serde(default = "d_hash_key_file")]
    pub hash_key_file: PathBuf,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        Self {
            hash_key_file: d_hash_key_file(),
        }
    }
}

fn d_hash_key_file() -> PathBuf {
    PathBuf::from(DEFAULT_HASH_KEY_FILE)
}

/// How a column is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    /// Keeps part of the value (see [`value::partial`]).
    Partial,
    /// A keyed hash: equal values give equal hashes.
    Hash,
    /// A fixed placeholder.
    Redact,
    /// NULL.
    Null,
}

impl Method {
    /// The method a rule names.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "partial" => Self::Partial,
            "hash" => Self::Hash,
            "redact" => Self::Redact,
            "null" => Self::Null,
            _ => return None,
        })
    }
}

/// Errors of masking.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    /// The hash key could not be read or created.
    #[error("masking.hash_key_file {path}: {why}")]
    Key {
        /// File.
        path: String,
        /// Reason.
        why: String,
    },
}

/// The gateway's masking state: the hash key, read once.
#[derive(Debug)]
pub struct Masker {
    cfg: MaskingConfig,
    key: OnceLock<Result<hmac::Key, String>>,
}

impl Masker {
    /// A masker for `cfg` (nothing is read until a hash is needed).
    pub fn new(cfg: MaskingConfig) -> Self {
        Self {
            cfg,
            key: OnceLock::new(),
        }
    }

    /// The hash key, reading or creating its file the first time.
    pub fn key(&self) -> Result<&hmac::Key, MaskError> {
        let path = &self.cfg.hash_key_file;
        let k = self.key.get_or_init(|| {
            let seed =
                crate::secrets::read_or_create(path, || hex::encode(rand::random::<[u8; 32]>()))
                    .map_err(|e| e.to_string())?;
            let bytes = hex::decode(seed.trim())
                .ok()
                .filter(|b| b.len() >= 16)
                .ok_or("not a hex key of at least 16 bytes")?;
            Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
        });
        k.as_ref().map_err(|why| MaskError::Key {
            path: path.display().to_string(),
            why: why.clone(),
        })
    }
}

/// Which columns of one result are masked, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Per column: the method and whether the column is a string.
    columns: Vec<Option<(Method, bool)>>,
}

impl Plan {
    /// Matches a result's columns against `rules`. `Err`: a column whose
    /// origin the catalog cannot place (the result must not be relayed).
    pub fn new(fields: &[Field], rules: &[MaskRule], cat: &Catalog) -> Result<Self, String> {
        let mut columns = Vec::with_capacity(fields.len());
        for f in fields {
            if f.table_oid == 0 {
                columns.push(None);
                continue;
            }
            let label = String::from_utf8_lossy(&f.name);
            let lineage = cat.lineage(f.table_oid);
            let Some(rel) = lineage.first() else {
                return Err(format!(
                    "result column {label} comes from a relation (OID {}) the gateway's catalog does not know",
                    f.table_oid
                ));
            };
            if !matches!(rel.kind, 'r' | 'p') {
                return Err(format!(
                    "result column {label} comes from {}.{}, which is not a table",
                    rel.schema, rel.name
                ));
            }
            // System columns (negative numbers) hold no user data.
            if f.column < 0 {
                columns.push(None);
                continue;
            }
            let Some(col) = rel.columns.get(&f.column) else {
                return Err(format!(
                    "result column {label} is column {} of {}.{}, which the gateway's catalog does not know",
                    f.column, rel.schema, rel.name
                ));
            };
            let method = rules
                .iter()
                .filter(|r| r.column == *col)
                .filter(|r| {
                    lineage.iter().any(|t| match r.table.split_once('.') {
                        Some((s, n)) => s == t.schema && n == t.name,
                        None => r.table == t.name,
                    })
                })
                .filter_map(|r| Method::parse(&r.method))
                .max();
            columns.push(method.map(|m| (m, value::is_string(f.type_oid))));
        }
        Ok(Self { columns })
    }

    /// Whether any column is masked.
    pub fn masks(&self) -> bool {
        self.columns.iter().any(Option::is_some)
    }

    /// A DataRow with the masked columns rewritten. `utf8`: the client's
    /// encoding is UTF-8.
    pub fn apply(&self, body: &[u8], utf8: bool, key: &hmac::Key) -> Result<Frame, CodecError> {
        let values = row::decode_row(body)?;
        let out: Vec<Option<std::borrow::Cow<'_, [u8]>>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| match (self.columns.get(i).copied().flatten(), v) {
                (Some((m, string)), Some(v)) => {
                    value::mask(m, string, v, utf8, key).map(std::borrow::Cow::Owned)
                }
                (_, v) => v.map(std::borrow::Cow::Borrowed),
            })
            .collect();
        Ok(row::row_frame(&out))
    }
}

/// Checks a decision's rules: each names a column and a known method.
pub fn check_rules(rules: &[MaskRule]) -> Result<(), String> {
    for r in rules {
        if Method::parse(&r.method).is_none() {
            return Err(format!(
                "unknown masking method {:?} for {}.{} (redact, hash, partial or null)",
                r.method, r.table, r.column
            ));
        }
        if r.table.is_empty() || r.column.is_empty() {
            return Err("a mask rule needs a table and a column".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
