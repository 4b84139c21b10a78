//! The policy input document (`input.version = 1`), built directly as
//! regorus values: one type for the session, `policy eval`'s sample and
//! the README's example.

use std::collections::BTreeMap;

use regorus::Value;

use crate::sql::StatementFacts;

fn obj(fields: Vec<(&str, Value)>) -> Value {
    let map: BTreeMap<Value, Value> = fields
        .into_iter()
        .map(|(k, v)| (Value::from(k), v))
        .collect();
    Value::from(map)
}

fn strings<'a>(items: impl Iterator<Item = &'a str>) -> Value {
    Value::from(items.map(Value::from).collect::<Vec<_>>())
}

/// `input.statement` for one statement's facts.
pub fn statement_value(f: &StatementFacts) -> Value {
    let tables = f
        .tables
        .iter()
        .map(|t| {
            obj(vec![
                ("schema", Value::from(t.schema.as_str())),
                ("name", Value::from(t.name.as_str())),
                ("access", Value::from(t.access.as_str())),
            ])
        })
        .collect::<Vec<_>>();
    let columns = f
        .columns
        .iter()
        .map(|c| {
            obj(vec![
                ("table", Value::from(c.table.as_str())),
                ("name", Value::from(c.name.as_str())),
                ("used_in", Value::from(c.used_in)),
            ])
        })
        .collect::<Vec<_>>();
    let mut fields = vec![
        ("text", Value::from(f.text.as_str())),
        ("fingerprint", Value::from(f.fingerprint.as_str())),
        ("kind", Value::from(f.kind.as_str())),
        ("command_tag", Value::from(f.command_tag.as_str())),
        ("read_only", Value::from(f.read_only)),
        ("tables", Value::from(tables)),
        ("columns", Value::from(columns)),
        ("functions", strings(f.functions.iter().map(String::as_str))),
        ("has_where", Value::from(f.has_where)),
        ("limit", f.limit.map(Value::from).unwrap_or(Value::Null)),
        ("flags", strings(f.flags.iter().map(String::as_str))),
    ];
    if let Some(e) = &f.parse_error {
        fields.push(("parse_error", Value::from(e.as_str())));
    }
    obj(fields)
}

/// The session-constant part of the input and the per-message parts,
/// assembled for each decision.
#[derive(Clone)]
pub struct InputBuilder {
    base: Value,
    sessions: [Value; 2],
}

/// Who and where a session is, for [`InputBuilder::new`].
pub struct SessionInfo<'a> {
    /// `input.user` (as JSON: the identity's serialisation).
    pub user: serde_json::Value,
    /// Client address.
    pub client_addr: &'a str,
    /// The client's own `application_name`.
    pub application_name: &'a str,
    /// Connection name, kind and upstream database.
    pub connection: (&'a str, &'a str, &'a str),
    /// Session id.
    pub session_id: &'a str,
}

impl InputBuilder {
    /// Converts the session-constant parts once.
    pub fn new(s: &SessionInfo<'_>) -> Self {
        let base = obj(vec![
            ("version", Value::from(1u32)),
            ("user", Value::from(s.user.clone())),
            (
                "client",
                obj(vec![
                    ("addr", Value::from(s.client_addr)),
                    ("application_name", Value::from(s.application_name)),
                ]),
            ),
            (
                "connection",
                obj(vec![
                    ("name", Value::from(s.connection.0)),
                    ("kind", Value::from(s.connection.1)),
                    ("database", Value::from(s.connection.2)),
                ]),
            ),
        ]);
        let session = |in_tx: bool| {
            obj(vec![
                ("id", Value::from(s.session_id)),
                ("in_transaction", Value::from(in_tx)),
            ])
        };
        Self {
            base,
            sessions: [session(false), session(true)],
        }
    }

    /// The input for one statement.
    pub fn build(&self, statement: Value, in_transaction: bool, now: &str) -> Value {
        let mut input = self.base.clone();
        if let Ok(o) = input.as_object_mut() {
            o.insert(
                Value::from("session"),
                self.sessions[usize::from(in_transaction)].clone(),
            );
            o.insert(Value::from("statement"), statement);
            o.insert(Value::from("now"), Value::from(now));
        }
        input
    }
}

/// A representative input (warm-up, `policy eval` sample, probes).
pub fn sample_input() -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "user": {"sub": "warmup", "email": "", "name": "", "groups": [], "issuer": ""},
        "client": {"addr": "127.0.0.1", "application_name": ""},
        "connection": {"name": "", "kind": "postgres", "database": ""},
        "session": {"id": "", "in_transaction": false},
        "statement": {"text": "select 1", "fingerprint": "", "kind": "select", "command_tag": "SELECT",
            "read_only": true, "tables": [], "columns": [], "functions": [], "has_where": false,
            "limit": null, "flags": []},
        "now": "1970-01-01T00:00:00Z"
    })
}

#[cfg(test)]
mod tests {
    use crate::sql::{analyze, ParseSettings};

    /// The direct conversion equals the serde route for every corpus
    /// statement.
    #[test]
    fn statement_value_equals_serde_conversion() {
        for sql in crate::sql::corpus_tests::corpus_sql() {
            for f in analyze(sql, ParseSettings::default()) {
                let via_json = regorus::Value::from(serde_json::to_value(&f).unwrap());
                assert_eq!(super::statement_value(&f), via_json, "{sql}");
            }
        }
    }
}
