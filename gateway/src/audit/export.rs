//! Reading the record back: `portcullis audit export` (JSON lines or CSV,
//! streamed: constant memory however many records), `audit sessions` and
//! `audit replay` (a session as a psql-like transcript: statements,
//! decisions, approvals, result tables).

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::{json, Value};

use super::crypt::Keys;
use super::record::{Body, Stored, KIND_SESSION_END, KIND_SESSION_START};
use super::store::{Filter, Store, StoreError};

/// Errors of reading out.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output.
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
}

/// RFC 3339 time of `us`.
pub fn rfc3339(us: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_micros(us.max(0) as u64);
    humantime::format_rfc3339_micros(t).to_string()
}

/// The body of `r`, opened with `keys`; a sealed body without its key
/// reads as a note in `error`.
pub fn body(r: &Stored, keys: &Keys) -> Body {
    match keys.open(&r.key_id, &r.body) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_default(),
        Err(e) => Body {
            error: format!("(sealed: {e})"),
            ..Default::default()
        },
    }
}

/// One record as a JSON object.
pub fn to_json(r: &Stored, b: &Body) -> Value {
    json!({
        "id": r.id, "instance": r.instance, "seq": r.seq, "at": rfc3339(r.at_us),
        "kind": r.kind, "session_id": r.session_id, "user": r.user,
        "groups": serde_json::from_str::<Value>(&r.groups_json).unwrap_or(Value::Null),
        "client_addr": r.client_addr, "application": r.application, "connection": r.connection,
        "action": r.action, "reasons": b.reasons, "policy_hash": b.policy_hash,
        "approval_id": r.approval_id, "approvers": b.approvers,
        "statement": b.statement, "params": b.params,
        "command_tag": r.command_tag, "rows_affected": r.rows_affected,
        "columns": b.columns, "rows": b.rows, "rows_truncated": b.rows_truncated,
        "error_code": r.error_code, "error": b.error, "detail": b.detail,
        "duration_ms": r.duration_us as f64 / 1000.0, "hash": r.hash,
    })
}

/// CSV header of [`csv_line`].
pub const CSV_HEADER: &str = "at,instance,seq,id,kind,session_id,user,groups,client_addr,application,connection,action,reasons,approval_id,approvers,statement,params,command_tag,rows_affected,error_code,error,duration_ms,hash";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One record as a CSV line (RFC 4180 quoting).
pub fn csv_line(r: &Stored, b: &Body) -> String {
    let groups: Vec<String> = serde_json::from_str(&r.groups_json).unwrap_or_default();
    [
        rfc3339(r.at_us),
        r.instance.clone(),
        r.seq.to_string(),
        r.id.clone(),
        r.kind.clone(),
        r.session_id.clone(),
        r.user.clone(),
        groups.join(";"),
        r.client_addr.clone(),
        r.application.clone(),
        r.connection.clone(),
        r.action.clone(),
        b.reasons.join("; "),
        r.approval_id.clone(),
        b.approvers.join(";"),
        b.statement.clone(),
        serde_json::to_string(&b.params).unwrap_or_default(),
        r.command_tag.clone(),
        r.rows_affected.to_string(),
        r.error_code.clone(),
        b.error.clone(),
        format!("{:.3}", r.duration_us as f64 / 1000.0),
        r.hash.clone(),
    ]
    .iter()
    .map(|f| csv_field(f))
    .collect::<Vec<_>>()
    .join(",")
}

/// Streams the records matching `f` to `out` as `jsonl` or `csv`; returns
/// how many.
pub async fn export(
    store: &Store,
    f: &Filter,
    keys: &Keys,
    csv: bool,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let mut rows = store.stream(f);
    let mut n = 0;
    if csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    while let Some(r) = rows.next().await {
        let r = r?;
        let b = body(&r, keys);
        if csv {
            writeln!(out, "{}", csv_line(&r, &b))?;
        } else {
            serde_json::to_writer(&mut *out, &to_json(&r, &b)).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// A result table the way psql prints it.
pub fn table(columns: &[String], rows: &[Vec<Option<String>>]) -> String {
    if columns.is_empty() {
        return String::new();
    }
    let cell = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut w: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for r in rows {
        for (i, v) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(cell(v).chars().count());
            }
        }
    }
    let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n.saturating_sub(s.chars().count())));
    let mut out = String::new();
    let head: Vec<String> = columns
        .iter()
        .zip(&w)
        .map(|(c, n)| format!(" {} ", pad(c, *n)))
        .collect();
    out.push_str(head.join("|").trim_end());
    out.push('\n');
    let rule: Vec<String> = w.iter().map(|n| "-".repeat(n + 2)).collect();
    out.push_str(&rule.join("+"));
    out.push('\n');
    for r in rows {
        let line: Vec<String> = w
            .iter()
            .enumerate()
            .map(|(i, n)| format!(" {} ", pad(&r.get(i).map(cell).unwrap_or_default(), *n)))
            .collect();
        out.push_str(line.join("|").trim_end());
        out.push('\n');
    }
    out
}

/// `portcullis audit replay`: the session as a transcript.
pub async fn replay(
    store: &Store,
    session: &str,
    keys: &Keys,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let f = Filter {
        session: Some(session.to_string()),
        ..Default::default()
    };
    let mut rows = store.stream(&f);
    let mut records: Vec<Stored> = Vec::new();
    while let Some(r) = rows.next().await {
        records.push(r?);
    }
    records.sort_by_key(|r| (r.at_us, r.seq));
    for r in &records {
        let b = body(r, keys);
        let at = rfc3339(r.at_us);
        match r.kind.as_str() {
            KIND_SESSION_START => writeln!(
                out,
                "-- session {} · {} from {} ({}) on {} · {at}",
                r.session_id, r.user, r.client_addr, r.application, r.connection
            )?,
            KIND_SESSION_END => writeln!(out, "-- session ended ({}) · {at}", b.detail)?,
            _ => {
                writeln!(out, "{}=> {}", r.connection, b.statement)?;
                if !b.params.is_empty() {
                    let ps: Vec<String> = b
                        .params
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            format!(
                                "${}={}",
                                i + 1,
                                p.as_deref().map_or("NULL".into(), |v| format!("'{v}'"))
                            )
                        })
                        .collect();
                    writeln!(out, "   -- parameters: {}", ps.join(", "))?;
                }
                let mut decision = format!("   -- {}", r.action);
                if !b.reasons.is_empty() {
                    decision.push_str(&format!(": {}", b.reasons.join("; ")));
                }
                if !b.approvers.is_empty() {
                    decision.push_str(&format!(
                        " · approved by {} (request {})",
                        b.approvers.join(", "),
                        r.approval_id
                    ));
                }
                writeln!(out, "{decision} · {at}")?;
                out.write_all(table(&b.columns, &b.rows).as_bytes())?;
                if !b.columns.is_empty() {
                    let n = b.rows.len();
                    writeln!(
                        out,
                        "({n} row{}{})",
                        if n == 1 { "" } else { "s" },
                        if b.rows_truncated {
                            ", more not recorded"
                        } else {
                            ""
                        }
                    )?;
                }
                if !b.error.is_empty() {
                    writeln!(out, "ERROR:  {}", b.error)?;
                } else if !r.command_tag.is_empty() {
                    writeln!(out, "{}", r.command_tag)?;
                }
                writeln!(out)?;
            }
        }
    }
    out.flush()?;
    Ok(records.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
    }

    #[test]
    fn tables_look_like_psql() {
        let t = table(
            &["id".into(), "name".into()],
            &[
                vec![Some("1".into()), Some("alice".into())],
                vec![Some("10".into()), None],
            ],
        );
        assert_eq!(t, " id | name\n----+-------\n 1  | alice\n 10 |\n");
    }
}
