//! The session side of recording: builds one record per request (a
//! simple Query message, or an Execute) from the statement, its decision,
//! its bound parameters and the backend messages attributed to it (column
//! names, rows up to the caps, command tags, error), plus records for
//! refused statements and for the session's start and end. Records go to
//! the writer as they complete; in strict mode the acks are kept for the
//! I/O loop, which holds ReadyForQuery until they resolve.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

pub use super::record::SessionInfo;
use super::record::{
    new_id, now_us, Body, Record, KIND_SESSION_END, KIND_SESSION_START, KIND_STATEMENT,
};
use super::writer::{Ack, Auditor, Caps};
use crate::pg::backend::BackendMessage;
use crate::pg::ErrorFields;
use crate::session::registry::Statement;
use crate::sql::{redact_secrets, redact_secrets_any_settings, was_redacted};

/// Which in-flight request a backend message belongs to.
pub enum Front<'a> {
    /// A simple Query (ends at ReadyForQuery).
    Query(&'a Statement),
    /// An Execute of a portal (ends at its completion), with its bound
    /// parameters.
    Execute(Option<&'a Statement>, Option<&'a [Option<String>]>),
}

struct Open {
    key: usize,
    started: Instant,
    record: Record,
    bytes: usize,
    binary: Vec<bool>,
    /// The statement's text carried a secret (its record shows it
    /// redacted): a syntax error's message, which may quote the text
    /// near the error, is not recorded.
    secret: bool,
}

/// What a record holds instead of a syntax error's message when the
/// statement carried a secret.
const ERROR_WITHHELD: &str =
    "[message withheld: a syntax error in a statement carrying a secret may quote it]";

/// A session's recorder.
pub struct Recorder {
    auditor: Auditor,
    info: Arc<SessionInfo>,
    groups_json: Arc<str>,
    open: Option<Open>,
    /// Approvals of admitted approved statements, oldest first: (request
    /// id, approvers).
    approvals: VecDeque<(String, Vec<String>)>,
    acks: Vec<Ack>,
    /// The last RowDescription answering a Describe: the columns of the
    /// Execute that follows (extended protocol).
    described: Option<(Vec<String>, Vec<bool>)>,
}

fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Column names and whether each is binary, from a RowDescription body.
fn columns(body: &[u8]) -> (Vec<String>, Vec<bool>) {
    let (mut names, mut binary) = (Vec::new(), Vec::new());
    let Some(n) = body.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
        return (names, binary);
    };
    let mut pos = 2;
    for _ in 0..n.max(0) {
        let Some(len) = body.get(pos..).and_then(|r| r.iter().position(|&b| b == 0)) else {
            break;
        };
        names.push(String::from_utf8_lossy(&body[pos..pos + len]).into_owned());
        pos += len + 1;
        // table oid 4, attnum 2, type oid 4, typlen 2, typmod 4, format 2
        let fmt = body
            .get(pos + 16..pos + 18)
            .map(|b| i16::from_be_bytes([b[0], b[1]]));
        binary.push(fmt == Some(1));
        pos += 18;
    }
    (names, binary)
}

/// Values of a DataRow body, text form (binary as `\x` hex).
fn values(body: &[u8], binary: &[bool]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let Some(n) = body.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
        return out;
    };
    let mut pos = 2;
    for i in 0..n.max(0) as usize {
        let Some(len) = body
            .get(pos..pos + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            break;
        };
        pos += 4;
        if len < 0 {
            out.push(None);
            continue;
        }
        let Some(v) = body.get(pos..pos + len as usize) else {
            break;
        };
        pos += len as usize;
        out.push(Some(if binary.get(i).copied().unwrap_or(false) {
            format!("\\x{}", hex::encode(v))
        } else {
            String::from_utf8_lossy(v).into_owned()
        }));
    }
    out
}

/// SQLSTATE of a syntax error (its message quotes the text near it).
const SYNTAX_ERROR: &str = "42601";

/// Rows a command tag reports (`INSERT 0 5` → 5, `SELECT 3` → 3).
fn tag_rows(tag: &str) -> i64 {
    tag.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Recorder {
    /// A recorder for one session.
    pub fn new(auditor: Auditor, info: SessionInfo) -> Self {
        let groups_json = serde_json::to_string(&info.groups)
            .unwrap_or_else(|_| "[]".into())
            .into();
        Self {
            auditor,
            info: Arc::new(info),
            groups_json,
            open: None,
            approvals: VecDeque::new(),
            acks: Vec::new(),
            described: None,
        }
    }

    fn caps(&self) -> Caps {
        self.auditor.caps
    }

    fn base(&self, kind: &'static str) -> Record {
        let at_us = now_us();
        Record {
            id: new_id(at_us),
            at_us,
            kind,
            session: self.info.clone(),
            groups_json: self.groups_json.clone(),
            ..Default::default()
        }
    }

    fn submit(&mut self, r: Record) {
        if let Some(ack) = self.auditor.submit(r) {
            self.acks.push(ack);
        }
    }

    /// Why statements must be refused now (audit store unwritable or
    /// buffer full).
    pub fn refusal(&self) -> Option<&'static str> {
        self.auditor.refusal()
    }

    /// Acks the I/O loop must await before the client sees ReadyForQuery
    /// (strict mode; empty otherwise).
    pub fn take_acks(&mut self) -> Vec<Ack> {
        std::mem::take(&mut self.acks)
    }

    /// The session started.
    pub fn session_start(&mut self) {
        let mut r = self.base(KIND_SESSION_START);
        r.body.detail = format!("issuer {}", self.info.issuer);
        self.submit(r);
    }

    /// The session ended (`how`: client closed, server closed, error ...).
    pub fn session_end(&mut self, how: &str) {
        self.finish();
        let mut r = self.base(KIND_SESSION_END);
        r.body.detail = how.to_string();
        self.submit(r);
    }

    /// An approved statement was admitted: its record names the approval.
    pub fn approved(&mut self, request_id: String, approvers: Vec<String>) {
        self.approvals.push_back((request_id, approvers));
    }

    /// The record of `stmt`, and whether its text carried a secret.
    fn statement_record(&mut self, stmt: &Statement) -> (Record, bool) {
        let mut r = self.base(KIND_STATEMENT);
        let v = &stmt.verdict;
        r.action = v.decision.action.as_str();
        let shown = redact_secrets(&stmt.text, stmt.settings, Some(&v.statements));
        let secret = was_redacted(&shown, &stmt.text);
        r.body = Body {
            statement: shown.into_owned(),
            reasons: v.decision.reasons.clone(),
            policy_hash: v.policy_hash.clone(),
            ..Default::default()
        };
        if stmt.approved {
            if let Some((id, by)) = self.approvals.pop_front() {
                r.approval_id = id;
                r.body.approvers = by;
            }
        }
        (r, secret)
    }

    /// A statement refused before it ran (policy, approval rejected or
    /// expired, audit refusal): recorded at once with the client's error.
    pub fn refused(&mut self, stmt: Option<&Statement>, text: &str, e: &ErrorFields) {
        let mut r = match stmt {
            Some(s) => self.statement_record(s).0,
            None => {
                let mut r = self.base(KIND_STATEMENT);
                r.action = "deny";
                r.body.statement = redact_secrets_any_settings(text).into_owned();
                r
            }
        };
        r.error_code = e.code.clone();
        r.body.error = e.message.clone();
        self.submit(r);
    }

    /// A RowDescription answering a Describe.
    pub fn described(&mut self, body: &[u8]) {
        self.described = Some(columns(body));
    }

    /// A backend message attributed to `front`, whose message went
    /// upstream at `sent`.
    pub fn observe(&mut self, front: Front<'_>, sent: Instant, msg: &BackendMessage<'_>) {
        let (stmt, params, simple) = match front {
            Front::Query(s) => (Some(s), None, true),
            Front::Execute(s, p) => (s, p, false),
        };
        let key = stmt.map_or(0, |s| s as *const Statement as usize);
        if self.open.as_ref().is_some_and(|o| o.key != key) {
            self.finish();
        }
        if self.open.is_none() {
            let (mut record, secret) = match stmt {
                Some(s) => self.statement_record(s),
                None => (self.base(KIND_STATEMENT), false),
            };
            let caps = self.caps();
            if let Some(p) = params {
                record.body.params = p
                    .iter()
                    .map(|v| v.as_deref().map(|v| cap(v, caps.param_bytes)))
                    .collect();
            }
            let (names, binary) = if simple {
                (Vec::new(), Vec::new())
            } else {
                self.described.take().unwrap_or_default()
            };
            record.body.columns = names;
            self.open = Some(Open {
                key,
                started: sent,
                record,
                bytes: 0,
                binary,
                secret,
            });
        }
        let caps = self.caps();
        let Some(o) = self.open.as_mut() else {
            return;
        };
        let mut done = false;
        match msg {
            BackendMessage::RowDescription(body) => {
                let (names, binary) = columns(body);
                if o.record.body.columns.is_empty() {
                    o.record.body.columns = names;
                    o.binary = binary;
                }
            }
            BackendMessage::DataRow(body) => {
                if o.record.body.rows.len() < caps.rows && o.bytes + body.len() <= caps.result_bytes
                {
                    o.bytes += body.len();
                    o.record.body.rows.push(values(body, &o.binary));
                } else {
                    o.record.body.rows_truncated = true;
                }
            }
            BackendMessage::CommandComplete(tag) => {
                let tag = String::from_utf8_lossy(tag.strip_suffix(b"\0").unwrap_or(tag));
                o.record.rows_affected += tag_rows(&tag);
                if !o.record.command_tag.is_empty() {
                    o.record.command_tag.push_str("; ");
                }
                o.record.command_tag.push_str(&tag);
                done = !simple;
            }
            BackendMessage::ErrorResponse(body) => {
                if let Ok(e) = crate::pg::backend::error_fields(body) {
                    o.record.body.error = if o.secret && e.code == SYNTAX_ERROR {
                        ERROR_WITHHELD.to_string()
                    } else {
                        e.message
                    };
                    o.record.error_code = e.code;
                }
                done = !simple;
            }
            BackendMessage::EmptyQueryResponse | BackendMessage::PortalSuspended => done = !simple,
            BackendMessage::ReadyForQuery(_) => done = simple,
            _ => {}
        }
        if done {
            self.finish();
        }
    }

    /// Submits the open record, if any.
    pub fn finish(&mut self) {
        if let Some(mut o) = self.open.take() {
            o.record.duration_us = o.started.elapsed().as_micros() as i64;
            self.submit(o.record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_descriptions_and_rows_decode() {
        // Two columns: "id" (text), "b" (binary).
        let mut rd = vec![0, 2];
        for (name, fmt) in [("id", 0i16), ("b", 1)] {
            rd.extend(name.as_bytes());
            rd.push(0);
            rd.extend([0u8; 16]);
            rd.extend(fmt.to_be_bytes());
        }
        let (names, binary) = columns(&rd);
        assert_eq!(names, ["id", "b"]);
        assert_eq!(binary, [false, true]);
        let mut row = vec![0, 3];
        row.extend(1i32.to_be_bytes());
        row.push(b'7');
        row.extend(2i32.to_be_bytes());
        row.extend([0xde, 0xad]);
        row.extend((-1i32).to_be_bytes());
        assert_eq!(
            values(&row, &binary),
            [Some("7".into()), Some("\\xdead".into()), None]
        );
        assert_eq!(
            values(&[0, 1, 0, 0, 0, 9], &[]),
            Vec::<Option<String>>::new(),
            "truncated"
        );
        assert_eq!(tag_rows("INSERT 0 5"), 5);
        assert_eq!(tag_rows("CREATE TABLE"), 0);
        assert_eq!(cap("héllo", 2), "h…");
    }

    #[test]
    fn passwords_and_syntax_errors_quoting_them_are_not_recorded() {
        use crate::pg::ready::TxStatus;
        let (auditor, mut drain) = Auditor::capturing();
        let mut rec = Recorder::new(auditor, SessionInfo::default());
        let mut error = Vec::new();
        for (field, value) in [
            (b'S', "ERROR"),
            (b'C', "42601"),
            (b'M', "syntax error at or near \"'pw-1'\""),
        ] {
            error.push(field);
            error.extend(value.as_bytes());
            error.push(0);
        }
        error.push(0);
        for text in ["ALTER ROLE x PASSWORD 'pw-1'", "SELECT 'pw-1'"] {
            let s = Statement::allowed(text);
            for msg in [
                BackendMessage::ErrorResponse(&error),
                BackendMessage::ReadyForQuery(TxStatus::Idle),
            ] {
                rec.observe(Front::Query(&s), Instant::now(), &msg);
            }
        }
        let got = drain();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].body.statement, "ALTER ROLE x PASSWORD '[redacted]'");
        assert_eq!(got[0].body.error, ERROR_WITHHELD);
        assert_eq!(got[0].error_code, "42601");
        // Without a secret in the text, the server's message is kept.
        assert_eq!(got[1].body.statement, "SELECT 'pw-1'");
        assert_eq!(got[1].body.error, "syntax error at or near \"'pw-1'\"");
    }
}
