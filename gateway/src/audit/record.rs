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

/// One column in the canonical encoding.
enum Col<'a> {
    Text(&'a str),
    Int(i64),
}

impl Stored {
    /// Every column but the two hashes, in the canonical order.
    fn columns(&self) -> [Col<'_>; 19] {
        use Col::{Int, Text};
        [
            Text(&self.instance),
            Int(self.seq),
            Text(&self.id),
            Int(self.at_us),
            Text(&self.kind),
            Text(&self.session_id),
            Text(&self.user),
            Text(&self.groups_json),
            Text(&self.client_addr),
            Text(&self.application),
            Text(&self.connection),
            Text(&self.action),
            Text(&self.approval_id),
            Text(&self.command_tag),
            Int(self.rows_affected),
            Int(self.duration_us),
            Text(&self.error_code),
            Text(&self.key_id),
            Text(&self.body),
        ]
    }

    /// Appends the canonical encoding the hash covers to `out`: every
    /// column but the two hashes, in a fixed order, each text as its
    /// length (8 bytes, big-endian) and bytes, each integer as 8 bytes
    /// big-endian — unambiguous.
    fn canonical(&self, out: &mut Vec<u8>) {
        for c in self.columns() {
            match c {
                Col::Text(s) => put_text(out, s),
                Col::Int(i) => out.extend_from_slice(&i.to_be_bytes()),
            }
        }
    }

    /// Bytes of [`Stored::canonical`].
    fn canonical_len(&self) -> usize {
        self.columns()
            .iter()
            .map(|c| match c {
                Col::Text(s) => 8 + s.len(),
                Col::Int(_) => 8,
            })
            .sum()
    }

    /// Appends the record as one binary frame (the journal's): a version
    /// byte ([`FRAME_V1`]), the canonical encoding, then `prev_hash` and
    /// `hash` as texts. [`Stored::from_frame`] reads it back.
    pub fn put_frame(&self, out: &mut Vec<u8>) {
        out.reserve(1 + self.canonical_len() + 16 + self.prev_hash.len() + self.hash.len());
        out.push(FRAME_V1);
        self.canonical(out);
        put_text(out, &self.prev_hash);
        put_text(out, &self.hash);
    }

    /// Reads a frame [`Stored::put_frame`] made: all of `frame`, nothing
    /// more or less.
    pub fn from_frame(frame: &[u8]) -> Result<Self, String> {
        Self::parse_frame(frame).map_err(|e| match e {
            FrameError::Short(why) => why.to_string(),
            FrameError::Bad(why) => why,
        })
    }

    /// Whether `bytes` are the beginning of a frame cut short: read as a
    /// frame, they end inside a column (what a write cut short by a crash
    /// leaves), rather than holding a whole frame or bytes no frame
    /// begins with.
    pub fn is_cut_frame(bytes: &[u8]) -> bool {
        bytes.is_empty() || matches!(Self::parse_frame(bytes), Err(FrameError::Short(_)))
    }

    fn parse_frame(frame: &[u8]) -> Result<Self, FrameError> {
        let Some((&FRAME_V1, rest)) = frame.split_first() else {
            return Err(FrameError::Bad("not a version 1 record frame".into()));
        };
        let mut r = Reader(rest);
        // Fields are read in the order written: the order of `columns`.
        let s = Stored {
            instance: r.text()?,
            seq: r.int()?,
            id: r.text()?,
            at_us: r.int()?,
            kind: r.text()?,
            session_id: r.text()?,
            user: r.text()?,
            groups_json: r.text()?,
            client_addr: r.text()?,
            application: r.text()?,
            connection: r.text()?,
            action: r.text()?,
            approval_id: r.text()?,
            command_tag: r.text()?,
            rows_affected: r.int()?,
            duration_us: r.int()?,
            error_code: r.text()?,
            key_id: r.text()?,
            body: r.text()?,
            prev_hash: r.text()?,
            hash: r.text()?,
        };
        match r.0.len() {
            0 => Ok(s),
            n => Err(FrameError::Bad(format!("{n} bytes after the last column"))),
        }
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

    /// The hash this record should carry after `prev_hash`: SHA-256 of
    /// `portcullis-audit-v1\n`, `prev_hash`, `\n` and the canonical
    /// encoding, hashed at once from one buffer.
    pub fn expected_hash(&self) -> String {
        const PREFIX: &[u8] = b"portcullis-audit-v1\n";
        let mut buf =
            Vec::with_capacity(PREFIX.len() + self.prev_hash.len() + 1 + self.canonical_len());
        buf.extend_from_slice(PREFIX);
        buf.extend_from_slice(self.prev_hash.as_bytes());
        buf.push(b'\n');
        self.canonical(&mut buf);
        lower_hex(&Sha256::digest(&buf))
    }
}

/// `bytes` as lowercase hex (as `hex::encode`, without its per-char
/// iterator: this runs once per record).
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The first byte of a record frame of this encoding (JSON frames, which
/// earlier versions wrote, begin with `{`).
pub const FRAME_V1: u8 = 1;

fn put_text(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Why bytes are not a record frame.
enum FrameError {
    /// They end inside a column: the beginning of a frame, or a frame
    /// whose length was cut.
    Short(&'static str),
    /// No frame holds them.
    Bad(String),
}

/// Reads a frame's columns in turn.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn int(&mut self) -> Result<i64, FrameError> {
        let (n, rest) = self
            .0
            .split_first_chunk::<8>()
            .ok_or(FrameError::Short("the frame ends inside a column"))?;
        self.0 = rest;
        Ok(i64::from_be_bytes(*n))
    }

    fn text(&mut self) -> Result<String, FrameError> {
        let len = usize::try_from(self.int()?)
            .map_err(|_| FrameError::Bad("a text column has a negative length".into()))?;
        if len > self.0.len() {
            return Err(FrameError::Short("a text column is longer than the frame"));
        }
        let (t, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(t.to_vec())
            .map_err(|_| FrameError::Bad("a text column is not UTF-8".into()))
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
pub(crate) mod tests {
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

    /// A record with every column set, none empty.
    pub(crate) fn full() -> Stored {
        Stored {
            instance: "gw-1".into(),
            seq: 42,
            id: "01a21bbf-a358-73fa-8f1a-92e8a1252410".into(),
            at_us: 1_764_115_200_123_456,
            kind: KIND_STATEMENT.into(),
            session_id: "01a21bbf-a358-7000-8000-000000000001".into(),
            user: "alice@example.com".into(),
            groups_json: r#"["dev","oncall"]"#.into(),
            client_addr: "10.0.0.7:51234".into(),
            application: "psql".into(),
            connection: "prod".into(),
            action: "allow".into(),
            approval_id: "req-7".into(),
            command_tag: "SELECT 1".into(),
            rows_affected: 1,
            duration_us: -3,
            error_code: "42501".into(),
            key_id: "k1".into(),
            body: r#"{"statement":"select 1 — é"}"#.into(),
            prev_hash: "ab".repeat(32),
            hash: String::new(),
        }
    }

    #[test]
    fn the_canonical_encoding_is_fixed() {
        // Computed by the first implementation of this encoding (SHA-256
        // fed column by column, 2026-11-26): stores hold records hashed so,
        // and a change of the encoding would make every one of them fail
        // `audit verify`.
        assert_eq!(
            full().expected_hash(),
            "fcca2abc381adc48a06c644fefc425ee19b08fed64402949eb73fb956cd041e4"
        );
    }

    #[test]
    fn hex_is_lowercase_and_whole() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(lower_hex(&bytes), hex::encode(&bytes));
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
