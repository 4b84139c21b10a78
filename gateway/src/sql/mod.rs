//! Statement facts: every statement is parsed with `pg_query` (the real
//! Postgres parser) and described for the policy as DESIGN.md specifies.

pub(crate) mod functions;
mod kinds;
mod normalize;
mod redact;
mod walk;

#[doc(hidden)]
pub mod corpus_tests;

use serde::Serialize;

use crate::catalog::Catalog;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use kinds::Class;

pub(crate) use normalize::single_text;
pub use normalize::{normalize, FactsCache};
pub use redact::{
    may_carry_secrets, redact_secrets, redact_secrets_any_settings, was_redacted, REDACTED,
    WITHHELD,
};
use walk::{mentions_column, Walker};
pub(crate) use walk::{name_parts, node_of};

/// How a statement touches a relation; ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Reads rows.
    Read,
    /// Changes rows (or locks, vacuums, reindexes...).
    Write,
    /// Changes the relation's definition or privileges.
    Ddl,
}

impl Access {
    /// The name used in the policy input.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Ddl => "ddl",
        }
    }
}

/// What a statement does to the transaction block state (read from the
/// parse tree; not part of the policy input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxEffect {
    /// Leaves it as it is.
    #[default]
    None,
    /// Starts a block (BEGIN, START TRANSACTION).
    Begin,
    /// Ends the block (COMMIT, ROLLBACK, PREPARE TRANSACTION).
    End,
}

/// A relation a statement touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableFact {
    /// Schema (`public` when unqualified, `pg_catalog` for `pg_*`).
    pub schema: String,
    /// Relation name.
    pub name: String,
    /// Strongest access.
    pub access: Access,
}

/// A column a statement mentions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ColumnFact {
    /// `schema.table` when it can be resolved, else empty.
    pub table: String,
    /// Column name, or `*`.
    pub name: String,
    /// Clause: select, where, set, insert, from, group, having, order,
    /// returning, merge, other.
    pub used_in: &'static str,
}

/// The facts about one statement (`input.statement`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementFacts {
    /// The statement's own text.
    pub text: String,
    /// pg_query fingerprint (same shape, different constants → same value).
    pub fingerprint: String,
    /// Statement kind (`select`, `delete`, `create_table`, ..., `unparsed`).
    pub kind: String,
    /// Command tag Postgres reports.
    pub command_tag: String,
    /// True only when the statement provably changes nothing.
    pub read_only: bool,
    /// Every relation touched.
    pub tables: Vec<TableFact>,
    /// Columns mentioned.
    pub columns: Vec<ColumnFact>,
    /// Functions called (lower-case names).
    pub functions: Vec<String>,
    /// Top-level WHERE present and row-dependent.
    pub has_where: bool,
    /// Constant top-level LIMIT.
    pub limit: Option<i64>,
    /// Risk flags (see README).
    pub flags: Vec<String>,
    /// Why the statement could not be parsed, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// Effect on the transaction block (for the session pipeline).
    #[serde(skip)]
    pub tx_effect: TxEffect,
}

impl StatementFacts {
    fn unparsed(text: &str, why: String, flag: &str) -> Self {
        Self {
            text: text.to_string(),
            fingerprint: String::new(),
            kind: "unparsed".into(),
            command_tag: String::new(),
            read_only: false,
            tables: Vec::new(),
            columns: Vec::new(),
            functions: Vec::new(),
            has_where: false,
            limit: None,
            flags: vec![flag.to_string()],
            parse_error: Some(why),
            tx_effect: TxEffect::None,
        }
    }

    /// Whether running it may change the catalog (functions, columns,
    /// views) that later statements are analysed against: anything that is
    /// not read-only, except plain data changes.
    pub fn may_change_catalog(&self) -> bool {
        const DATA_ONLY: &[&str] = &[
            "bulk_write",
            "no_where",
            "constant_where",
            "row_lock",
            "write_in_cte",
            "volatile_function",
            "copy_from",
            "copy_to",
            "multi_statement",
            "explain",
            "explain_analyze",
            "search_path",
            "set_config",
            "privileged_setting",
            "role_change",
            "two_phase",
        ];
        !self.read_only && !self.flags.iter().all(|f| DATA_ONLY.contains(&f.as_str()))
    }

    /// Tables in `schema.name` form.
    pub fn table_names(&self) -> impl Iterator<Item = String> + '_ {
        self.tables
            .iter()
            .map(|t| format!("{}.{}", t.schema, t.name))
    }
}

/// Parser settings that change how text is read, mirrored from the session.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseSettings {
    /// `standard_conforming_strings = off` in the session.
    pub standard_strings_off: bool,
}

impl ParseSettings {
    /// The parser options that read text as the session's server does.
    pub fn parser_options(self) -> pg_query::ParserOptions {
        if self.standard_strings_off {
            pg_query::ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS
        } else {
            pg_query::ParserOptions::DEFAULT
        }
    }
}

/// [`analyze_with`] the offline catalog (a database with only built-ins):
/// what `portcullis policy test` and the policy's sample inputs use.
pub fn analyze(sql: &str, settings: ParseSettings) -> Vec<StatementFacts> {
    analyze_with(sql, settings, &Catalog::offline())
}

/// Splits and analyses a message's SQL text against what exists upstream.
/// Always returns at least one statement; an unparseable text becomes one
/// `unparsed` statement. When there are several statements each gets the
/// `multi_statement` flag.
pub fn analyze_with(sql: &str, settings: ParseSettings, cat: &Catalog) -> Vec<StatementFacts> {
    let parsed = match pg_query::parse(sql, settings.parser_options()) {
        Ok(p) => p,
        Err(e) => return vec![StatementFacts::unparsed(sql, e.to_string(), "parse_error")],
    };
    let tree = match serde_json::to_value(&parsed.protobuf) {
        Ok(t) => t,
        Err(e) => return vec![StatementFacts::unparsed(sql, e.to_string(), "parse_error")],
    };
    let no_stmts = Vec::new();
    let stmts = tree
        .get("stmts")
        .and_then(Value::as_array)
        .unwrap_or(&no_stmts);
    if stmts.is_empty() {
        // Only comments or whitespace: Postgres answers EmptyQueryResponse.
        let mut f = StatementFacts::unparsed(sql, String::new(), "empty");
        f.kind = "empty".into();
        f.read_only = true;
        f.parse_error = None;
        return vec![f];
    }
    let multi = stmts.len() > 1;
    stmts
        .iter()
        .map(|raw| {
            let text = statement_text(sql, raw);
            let mut facts = describe(text, raw.get("stmt").unwrap_or(&Value::Null), cat);
            if multi {
                facts.flags.push("multi_statement".into());
                facts.flags.sort();
            }
            facts
        })
        .collect()
}

/// The slice of `sql` a RawStmt covers (byte offsets from the parser).
fn statement_text<'a>(sql: &'a str, raw: &Value) -> &'a str {
    let loc = raw
        .get("stmt_location")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    let len = raw.get("stmt_len").and_then(Value::as_u64).unwrap_or(0) as usize;
    let end = if len == 0 { sql.len() } else { loc + len };
    sql.get(loc..end.min(sql.len())).unwrap_or(sql).trim()
}

fn describe(text: &str, stmt: &Value, cat: &Catalog) -> StatementFacts {
    let fingerprint = fingerprint(stmt);
    let Some((node, body)) = node_of(stmt) else {
        return StatementFacts::unparsed(text, "empty statement".into(), "parse_error");
    };
    let Some(kind) = kinds::lookup(node) else {
        let mut f = StatementFacts::unparsed(
            text,
            format!("unknown statement kind {node}"),
            "unknown_kind",
        );
        f.fingerprint = fingerprint;
        return f;
    };
    let mut w = Walker::new(cat);
    let mut tx_effect = TxEffect::None;
    let mut kind_name = kind.kind.to_string();
    let mut tag = kind.tag.to_string();
    match kind.class {
        Class::Ddl => {
            w.flags.insert("ddl");
        }
        Class::Privilege => {
            w.flags.insert("privilege");
        }
        Class::Admin => {
            w.flags.insert("admin");
        }
        _ => {}
    }
    match node {
        "ExplainStmt" => explain(&mut w, body),
        "TransactionStmt" => {
            let k = body.get("kind").and_then(Value::as_i64).unwrap_or(0) as i32;
            use pg_query::protobuf::TransactionStmtKind as T;
            tx_effect = match T::try_from(k) {
                Ok(T::TransStmtBegin | T::TransStmtStart) => TxEffect::Begin,
                Ok(T::TransStmtCommit | T::TransStmtRollback | T::TransStmtPrepare) => {
                    TxEffect::End
                }
                _ => TxEffect::None,
            };
            let (t, two_phase) = match T::try_from(k) {
                Ok(T::TransStmtBegin) => ("BEGIN", false),
                Ok(T::TransStmtStart) => ("START TRANSACTION", false),
                Ok(T::TransStmtCommit) => ("COMMIT", false),
                Ok(T::TransStmtRollback) => ("ROLLBACK", false),
                Ok(T::TransStmtSavepoint) => ("SAVEPOINT", false),
                Ok(T::TransStmtRelease) => ("RELEASE", false),
                Ok(T::TransStmtRollbackTo) => ("ROLLBACK", false),
                Ok(T::TransStmtPrepare) => ("PREPARE TRANSACTION", true),
                Ok(T::TransStmtCommitPrepared) => ("COMMIT PREPARED", true),
                Ok(T::TransStmtRollbackPrepared) => ("ROLLBACK PREPARED", true),
                _ => ("BEGIN", true),
            };
            tag = t.into();
            if two_phase {
                w.read_only = false;
                w.flags.insert("two_phase");
            }
        }
        "VariableSetStmt" => {
            if body.get("kind").and_then(Value::as_i64) != Some(1) {
                kind_name = "reset".into();
                tag = "RESET".into();
            }
            w.statement(node, body, kind.class);
        }
        "CopyStmt" => {
            let is_from = body
                .get("is_from")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let program = body
                .get("is_program")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let file = !body
                .get("filename")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty();
            w.flags
                .insert(if is_from { "copy_from" } else { "copy_to" });
            if program {
                w.flags.insert("copy_program");
            } else if file {
                w.flags.insert("copy_file");
            }
            let access = if is_from { Access::Write } else { Access::Read };
            w.field(body, "relation", access, "copy");
            w.field(body, "query", Access::Read, "copy");
            w.field(body, "where_clause", Access::Read, "where");
            if is_from {
                w.flags.insert("bulk_write");
            }
            w.read_only = w.read_only && !is_from && !program && !file;
        }
        "CreateTableAsStmt" => {
            w.read_only = false;
            w.field(body, "into", Access::Ddl, "other");
            w.field(body, "query", Access::Read, "select");
        }
        _ => w.statement(node, body, kind.class),
    }

    let mut has_where = false;
    let mut limit = None;
    // no_where / bulk_write are set by the walker for every UPDATE, DELETE
    // and INSERT ... SELECT wherever it sits (CTE, PREPARE, EXPLAIN
    // ANALYZE); has_where and limit describe the top-level statement.
    if matches!(node, "SelectStmt" | "UpdateStmt" | "DeleteStmt") {
        let clause = body.get("where_clause").filter(|c| !c.is_null());
        has_where = clause.is_some_and(mentions_column);
        if clause.is_some() && !has_where {
            w.flags.insert("constant_where");
        }
        limit = body
            .pointer("/limit_count/node/AConst/val/Ival/ival")
            .and_then(Value::as_i64)
            .or_else(|| {
                body.pointer("/limit_count/node/AConst")
                    .filter(|c| c.pointer("/val/Ival").is_some())
                    .map(|_| 0)
            });
    }
    if node == "TruncateStmt" {
        w.flags.insert("bulk_write");
    }
    if !w.read_only && kind.class == Class::Read && w.flags.is_empty() {
        w.flags.insert("side_effects");
    }

    StatementFacts {
        text: text.to_string(),
        fingerprint,
        kind: kind_name,
        command_tag: tag,
        read_only: w.read_only,
        tables: w
            .tables
            .into_iter()
            .map(|((schema, name), access)| TableFact {
                schema,
                name,
                access,
            })
            .collect(),
        columns: w.columns.into_iter().collect(),
        functions: w.functions.into_iter().collect(),
        has_where,
        limit,
        flags: w.flags.into_iter().map(str::to_string).collect(),
        parse_error: None,
        tx_effect,
    }
}

/// Structural fingerprint of a statement's parse tree: the same statement
/// shape with other constants or whitespace gives the same value. Computed
/// from the tree already parsed (no second parse): SHA-256 over node names,
/// field names and values, skipping source locations and constant values,
/// truncated to 16 hex digits.
/// Secret values (see [`redact`]) are left out like constants: the
/// fingerprint is logged and shown to approvers, and a hash of a password
/// would let anyone test guesses against it.
fn fingerprint(stmt: &Value) -> String {
    /// `secret_options`: inside a user mapping, whose options all carry
    /// credentials.
    fn feed(v: &Value, h: &mut Sha256, secret_options: bool) {
        match v {
            Value::Object(m) => {
                let secret_arg =
                    secret_options || m.get("defname").and_then(Value::as_str) == Some("password");
                for (k, x) in m {
                    // Positions, and values a literal spells (array
                    // bounds `int[3]`, `current_time(3)`), count no more
                    // than the constants themselves.
                    if k == "location"
                        || k.ends_with("_location")
                        || matches!(
                            k.as_str(),
                            "rexpr_list_start" | "rexpr_list_end" | "array_bounds" | "typmod"
                        )
                    {
                        continue;
                    }
                    h.update(k.as_bytes());
                    h.update([0]);
                    let skip = k == "AConst" || k == "conninfo" || (k == "arg" && secret_arg);
                    if !skip {
                        let mapping =
                            matches!(k.as_str(), "CreateUserMappingStmt" | "AlterUserMappingStmt");
                        feed(x, h, secret_options || mapping);
                    }
                }
                h.update([1]);
            }
            Value::Array(items) => {
                items.iter().for_each(|i| feed(i, h, secret_options));
                h.update([2]);
            }
            Value::String(s) => {
                h.update(s.as_bytes());
                h.update([0]);
            }
            other => h.update(other.to_string().as_bytes()),
        }
    }
    let mut h = Sha256::new();
    feed(stmt, &mut h, false);
    hex::encode(&h.finalize()[..8])
}

/// EXPLAIN runs its statement only with ANALYZE; plain EXPLAIN reads
/// nothing but the plan, so everything it mentions is a read.
fn explain(w: &mut Walker, body: &Value) {
    let analyze = body
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(node_of)
        .any(|(_, d)| {
            d.get("defname").and_then(Value::as_str) == Some("analyze")
                && !d
                    .pointer("/arg/node/String/sval")
                    .and_then(Value::as_str)
                    .is_some_and(|v| matches!(v, "false" | "off" | "0"))
                && d.pointer("/arg/node/Boolean/boolval")
                    .and_then(Value::as_bool)
                    != Some(false)
        });
    let query = body.get("query").unwrap_or(&Value::Null);
    let Some((inner, inner_body)) = node_of(query) else {
        return;
    };
    let Some(inner_kind) = kinds::lookup(inner) else {
        w.read_only = false;
        w.flags.insert("unknown_kind");
        return;
    };
    // Plain EXPLAIN runs no rows, but the planner evaluates STABLE and
    // IMMUTABLE functions (and a function mislabelled as such can write):
    // both carry the inner statement's facts, read_only and flags.
    w.flags.insert(if analyze {
        "explain_analyze"
    } else {
        "explain"
    });
    w.statement(inner, inner_body, inner_kind.class);
}
