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

/// Who and where: the same for every record of a session (shared by its
/// records, not copied into each).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionInfo {
    /// Session id.
    pub session_id: String,
    /// User.
    pub user: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Client address.
    pub client_addr: String,
    /// application_name.
    pub application: String,
    /// Connection.
    pub connection: String,
    /// Token issuer.
    pub issuer: String,
}

/// A record as the session hands it over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// uuid v7.
    pub id: String,
    /// When (Unix microseconds).
    pub at_us: i64,
    /// [`KIND_SESSION_START`], [`KIND_STATEMENT`] or [`KIND_SESSION_END`].
    pub kind: &'static str,
    /// The session's who and where.
    pub session: std::sync::Arc<SessionInfo>,
    /// The session's groups as a JSON array (computed once per session).
    pub groups_json: std::sync::Arc<str>,
    /// `allow`, `deny`, `approve` (statements), empty otherwise.
    pub action: &'static str,
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
    /// Feeds the canonical encoding the hash covers into `h`: every
    /// column but the two hashes, in a fixed order, each text as its
    /// length (8 bytes, big-endian) and bytes, each integer as 8 bytes
    /// big-endian — unambiguous without building an intermediate buffer.
    fn canonical(&self, h: &mut Sha256) {
        fn text(h: &mut Sha256, s: &str) {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
        fn int(h: &mut Sha256, i: i64) {
            h.update(i.to_be_bytes());
        }
        text(h, &self.instance);
        int(h, self.seq);
        text(h, &self.id);
        int(h, self.at_us);
        text(h, &self.kind);
        text(h, &self.session_id);
        text(h, &self.user);
        text(h, &self.groups_json);
        text(h, &self.client_addr);
        text(h, &self.application);
        text(h, &self.connection);
        text(h, &self.action);
        text(h, &self.approval_id);
        text(h, &self.command_tag);
        int(h, self.rows_affected);
        int(h, self.duration_us);
        text(h, &self.error_code);
        text(h, &self.key_id);
        text(h, &self.body);
    }

    /// Whether `hash` is this record's hash after `prev_hash`, in the
    /// current encoding or in the first one (a JSON array of the same
    /// columns), which stores written before 2026-11-26 hold: a chain may
    /// hold both, and each is a SHA-256 over every column.
    pub fn hash_matches(&self) -> bool {
        self.hash == self.expected_hash() || self.hash == self.legacy_hash()
    }

    /// The first encoding's hash (see [`Stored::hash_matches`]).
    fn legacy_hash(&self) -> String {
        let canonical = serde_json::to_vec(&(
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
        .unwrap_or_default();
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        h.update(canonical);
        hex::encode(h.finalize())
    }

    /// The hash this record should carry after `prev_hash`.
    pub fn expected_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"portcullis-audit-v1\n");
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        self.canonical(&mut h);
        hex::encode(h.finalize())
    }
}

/// A uuid v7 for a record made at `at_us` (Unix microseconds): the
/// millisecond timestamp, then random bits from the thread's generator
/// (no system call per record, unlike `Uuid::now_v7`).
pub fn new_id(at_us: i64) -> String {
    let ms = u64::try_from(at_us / 1000).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(ms, &rand::random::<[u8; 10]>())
        .into_uuid()
        .to_string()
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
        // Bytes moved from one column to the next change the hash.
        let (mut a, mut b) = (base.clone(), base.clone());
        (a.user, a.groups_json) = ("ab".into(), "c".into());
        (b.user, b.groups_json) = ("a".into(), "bc".into());
        assert_ne!(a.expected_hash(), b.expected_hash());
        let mut other = base;
        other.hash = "x".into();
        assert_eq!(
            other.expected_hash(),
            h,
            "the stored hash itself is not covered"
        );
    }

    #[test]
    fn records_hashed_in_the_first_encoding_still_verify() {
        let mut r = Stored {
            instance: "gw".into(),
            seq: 1,
            body: "{}".into(),
            prev_hash: GENESIS.into(),
            ..Default::default()
        };
        r.hash = r.legacy_hash();
        assert_ne!(r.hash, r.expected_hash());
        assert!(r.hash_matches());
        r.rows_affected = 2;
        assert!(!r.hash_matches(), "an edit breaks it in either encoding");
        r.hash = r.expected_hash();
        assert!(r.hash_matches());
    }

    #[test]
    fn ids_are_uuid_v7_of_the_record_time() {
        let at = 1_764_115_200_123_456;
        let id = uuid::Uuid::parse_str(&new_id(at)).unwrap();
        assert_eq!(id.get_version_num(), 7);
        let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(
            secs * 1000 + u64::from(nanos) / 1_000_000,
            1_764_115_200_123
        );
        assert_ne!(new_id(at), new_id(at), "random bits differ");
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
