//! What is recorded: one [`Record`] per session start, statement (or
//! request: a simple Query message, an Execute) and session end; how it is
//! stored ([`Stored`]: queryable metadata columns plus a body that may be
//! sealed) and the canonical encoding its chain hash covers.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Kinds of record.
pub const KIND_SESSION_START: &str = "session_start";
/// A statement or request.
pub const KIND_STATEMENT: &str = "statement";
/// The end of a session.
pub const KIND_SESSION_END: &str = "session_end";

/// The hash before the first record of an instance.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A record as the session hands it over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// uuid v7.
    pub id: String,
    /// When (Unix microseconds).
    pub at_us: i64,
    /// [`KIND_SESSION_START`], [`KIND_STATEMENT`] or [`KIND_SESSION_END`].
    pub kind: &'static str,
    /// Session id.
    pub session_id: String,
    /// Who (email, else preferred_username, else sub).
    pub user: String,
    /// Their groups.
    pub groups: Vec<String>,
    /// Client address.
    pub client_addr: String,
    /// The client's application_name.
    pub application: String,
    /// Connection name.
    pub connection: String,
    /// `allow`, `deny`, `approve` (statements), empty otherwise.
    pub action: String,
    /// Approval request id, when approvers let it run.
    pub approval_id: String,
    /// Command tag(s) (`SELECT 3`; several for a multi-statement Query).
    pub command_tag: String,
    /// Rows affected or returned, from the command tags.
    pub rows_affected: i64,
    /// From the first message to the last answer (microseconds).
    pub duration_us: i64,
    /// SQLSTATE of the error, if any.
    pub error_code: String,
    /// The rest, kept sealed when encryption is on.
    pub body: Body,
}

/// The part of a record that may be encrypted at rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// Statement text as the client sent it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub statement: String,
    /// Bound parameters in text form (binary as `\x` hex), each capped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Option<String>>,
    /// The policy's reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Hash of the policy bundle that decided.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub policy_hash: String,
    /// Who approved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Result column names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Result rows as the client received them (after masking), text form,
    /// up to the configured caps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows were left out by the caps.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rows_truncated: bool,
    /// Error message (the client's view).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Session records: issuer of the token; how the session ended.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A record as stored: metadata columns in the clear, the body as JSON or
/// sealed (`key_id` names the key), chained to the previous record of the
/// same instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// Gateway instance whose chain this is in.
    pub instance: String,
    /// Position in that chain (1, 2, ...).
    pub seq: i64,
    /// uuid v7.
    pub id: String,
    /// Unix microseconds.
    pub at_us: i64,
    /// Kind.
    pub kind: String,
    /// Session id.
    pub session_id: String,
    /// User.
    pub user: String,
    /// Groups (JSON array).
    pub groups_json: String,
    /// Client address.
    pub client_addr: String,
    /// application_name.
    pub application: String,
    /// Connection.
    pub connection: String,
    /// Decision action.
    pub action: String,
    /// Approval request id.
    pub approval_id: String,
    /// Command tag(s).
    pub command_tag: String,
    /// Rows.
    pub rows_affected: i64,
    /// Duration (µs).
    pub duration_us: i64,
    /// SQLSTATE.
    pub error_code: String,
    /// Encryption key id; empty: `body` is plain JSON.
    pub key_id: String,
    /// [`Body`] as JSON, or sealed (base64).
    pub body: String,
    /// Hash of the previous record of the instance ([`GENESIS`] first).
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and the canonical encoding of the rest.
    pub hash: String,
}

impl Stored {
    /// The canonical encoding the hash covers: a JSON array of every
    /// column but the two hashes, in a fixed order.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(&(
            (
                &self.instance,
                self.seq,
                &self.id,
                self.at_us,
                &self.kind,
                &self.session_id,
                &self.user,
                &self.groups_json,
                &self.client_addr,
                &self.application,
            ),
            (
                &self.connection,
                &self.action,
                &self.approval_id,
                &self.command_tag,
                self.rows_affected,
                self.duration_us,
                &self.error_code,
                &self.key_id,
                &self.body,
            ),
        ))
        .unwrap_or_default()
    }

    /// The hash this record should carry after `prev_hash`.
    pub fn expected_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        h.update(self.canonical());
        hex::encode(h.finalize())
    }
}

/// A uuid v7 for a record.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Now, Unix microseconds.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_column_and_the_previous_hash() {
        let base = Stored {
            instance: "gw".into(),
            seq: 1,
            body: "{}".into(),
            prev_hash: GENESIS.into(),
            ..Default::default()
        };
        let h = base.expected_hash();
        assert_eq!(h.len(), 64);
        let mut other = base.clone();
        other.rows_affected = 1;
        assert_ne!(other.expected_hash(), h);
        let mut other = base.clone();
        other.body = "{ }".into();
        assert_ne!(other.expected_hash(), h);
        let mut other = base.clone();
        other.prev_hash = "1".repeat(64);
        assert_ne!(other.expected_hash(), h);
        let mut other = base;
        other.hash = "x".into();
        assert_eq!(
            other.expected_hash(),
            h,
            "the stored hash itself is not covered"
        );
    }

    #[test]
    fn empty_body_fields_are_left_out() {
        let b = Body {
            statement: "select 1".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"statement":"select 1"}"#
        );
    }
}
