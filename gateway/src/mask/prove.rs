//! Before a statement whose decision masks columns is forwarded: can the
//! gateway show that every value of a masked column reaches the client
//! only as a result column the server labels with its table and column
//! (RowDescription's origin), where the mask stage rewrites it? If not,
//! the statement is refused before it runs.
//!
//! Read from the parse tree and the catalog, never from the text: a masked
//! column may be selected as it is (`SELECT email`, `SELECT *`, through a
//! subquery's `*` at the top), sorted and grouped by; it may not be used
//! in any expression, condition, join, function argument or subquery (an
//! error message, a computed column or a filter could carry its value), and
//! the statement may not read views (their columns are labelled with the
//! view), call user-defined functions (they may read any table), combine
//! results (UNION labels columns with its first branch) or store results
//! (`SELECT INTO`).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::catalog::{Catalog, Mode, RelRef};
use crate::policy::MaskRule;
use crate::sql::{node_of, ParseSettings, StatementFacts};

/// Catalog relations that hold sample values of every column (most
/// common values, histogram bounds).
const STATISTICS: &[&str] = &[
    "pg_statistic",
    "pg_statistic_ext_data",
    "pg_stats",
    "pg_stats_ext",
    "pg_stats_ext_exprs",
];

/// Flags a statement may carry and still be masked.
const BENIGN_FLAGS: &[&str] = &["multi_statement", "no_where", "constant_where"];

/// Why masking cannot be proven for `text` (`facts`: its analysis), or
/// `Ok` when it can.
pub fn prove(
    text: &str,
    settings: ParseSettings,
    facts: &[StatementFacts],
    rules: &[MaskRule],
    cat: &Catalog,
) -> Result<(), String> {
    match cat.mode {
        Mode::Loaded => {}
        Mode::Unavailable("catalog_stale") => {
            return Err("this session ran a statement that may have changed the catalog; masked statements wait until the gateway has read it again (moments after the session is idle)".into())
        }
        _ => return Err("the database's catalog is not loaded".into()),
    }
    for f in facts {
        if f.kind != "select" {
            return Err(format!(
                "only the results of SELECT statements can be masked (this is {})",
                f.command_tag
            ));
        }
        if let Some(flag) = f.flags.iter().find(|g| !BENIGN_FLAGS.contains(&g.as_str())) {
            return Err(format!("the statement is flagged {flag}"));
        }
        if !f.read_only {
            return Err("the statement is not provably read-only".into());
        }
        for t in &f.tables {
            if t.schema == "pg_catalog" && STATISTICS.contains(&t.name.as_str()) {
                return Err(format!(
                    "pg_catalog.{} holds sample values of columns",
                    t.name
                ));
            }
            // Every relation of that name: an unqualified name resolves
            // through the session's search_path, which facts do not follow.
            let kinds = cat.relation_kinds(RelRef {
                schema: None,
                name: &t.name,
            });
            if kinds.is_empty() {
                return Err(format!(
                    "{}.{} is not in the gateway's catalog",
                    t.schema, t.name
                ));
            }
            if kinds.iter().any(|k| !matches!(k, 'r' | 'p')) {
                return Err(format!(
                    "{}.{} is a view or a foreign table (its columns cannot be traced to the masked ones)",
                    t.schema, t.name
                ));
            }
        }
    }
    let tree = parse_tree(text, settings)?;
    // `t.email` is a call of a function `email(t)` when `t` has no such
    // column (attribute notation): the result is computed, yet spelled
    // like a plain column.
    for r in rules {
        if cat.functions.get(&r.column).is_some_and(|f| f.user_defined) {
            return Err(format!(
                "a user-defined function is named like the masked column {}",
                r.column
            ));
        }
    }
    let mut p = Prover {
        masked: rules.iter().map(|r| r.column.as_str()).collect(),
        names: HashSet::new(),
        tables: HashMap::new(),
        cat,
    };
    collect_names(&tree, &mut p.names);
    collect_tables(&tree, &mut p.tables);
    for raw in tree
        .get("stmts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match raw.get("stmt").and_then(node_of) {
            Some(("SelectStmt", body)) => p.top(body)?,
            _ => return Err("not a SELECT".into()),
        }
    }
    Ok(())
}

struct Prover<'a> {
    /// Names of masked columns (any table: a name that might resolve to
    /// one counts).
    masked: HashSet<&'a str>,
    /// Every relation name, alias and CTE name in the statement: a column
    /// reference by one of them is a whole row.
    names: HashSet<String>,
    /// Tables by the name or alias that qualifies their columns: (schema
    /// as written, relation name); a name used for several, all of them.
    tables: HashMap<String, Vec<(Option<String>, String)>>,
    cat: &'a Catalog,
}

/// Collects relation names, aliases and CTE names anywhere in `v`.
fn collect_names(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if matches!(k.as_str(), "relname" | "aliasname" | "ctename") {
                    if let Some(s) = x.as_str() {
                        out.insert(s.to_string());
                    }
                }
                collect_names(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_names(x, out)),
        _ => {}
    }
}

/// Collects each RangeVar by the name that qualifies its columns (its
/// alias, else its name).
fn collect_tables(v: &Value, out: &mut HashMap<String, Vec<(Option<String>, String)>>) {
    match v {
        Value::Object(m) => {
            if let Some(("RangeVar", body)) = node_of(v) {
                let text = |k: &str| {
                    body.get(k)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                };
                if let Some(rel) = text("relname") {
                    let by = body
                        .pointer("/alias/aliasname")
                        .and_then(Value::as_str)
                        .unwrap_or(rel);
                    out.entry(by.to_string())
                        .or_default()
                        .push((text("schemaname").map(str::to_string), rel.to_string()));
                }
            }
            m.values().for_each(|x| collect_tables(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_tables(x, out)),
        _ => {}
    }
}

/// Whether a RangeVar's or JoinExpr's alias names columns.
fn renames(body: &Value) -> bool {
    body.pointer("/alias/colnames")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// Whether `text` runs a prepared statement or reads a portal by name
/// (SQL `EXECUTE`, `FETCH`, also inside `EXPLAIN` or `CREATE TABLE AS`),
/// or runs procedural code that may (`DO`, `CALL`); a text that does not
/// parse counts.
pub fn names_prepared(text: &str, settings: ParseSettings) -> bool {
    fn find(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.iter().any(|(k, x)| {
                matches!(
                    k.as_str(),
                    "ExecuteStmt" | "FetchStmt" | "DoStmt" | "CallStmt"
                ) || find(x)
            }),
            Value::Array(a) => a.iter().any(find),
            _ => false,
        }
    }
    match parse_tree(text, settings) {
        Ok(tree) => find(&tree),
        Err(_) => true,
    }
}

/// The parse tree of `text` as JSON, read as the session's settings say.
fn parse_tree(text: &str, settings: ParseSettings) -> Result<Value, String> {
    let parsed = pg_query::parse(text, settings.parser_options()).map_err(|e| e.to_string())?;
    serde_json::to_value(&parsed.protobuf).map_err(|e| e.to_string())
}

/// The parts of a ColumnRef: names, and `None` for `*`.
fn column_ref(body: &Value) -> Vec<Option<&str>> {
    body.get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(node_of)
        .map(|(n, b)| match n {
            "String" => Some(b.get("sval").and_then(Value::as_str).unwrap_or("")),
            _ => None,
        })
        .collect()
}

impl Prover<'_> {
    /// The top-level SELECT: its plain column references (and `*`) are
    /// what the server labels with their origin.
    fn top(&self, body: &Value) -> Result<(), String> {
        self.select_shape(body)?;
        for (key, v) in body.as_object().into_iter().flatten() {
            match key.as_str() {
                "target_list" => {
                    for t in v.as_array().into_iter().flatten() {
                        let rt = node_of(t).map(|(_, b)| b).unwrap_or(&Value::Null);
                        let plain = rt
                            .get("indirection")
                            .is_none_or(|i| i.as_array().is_none_or(Vec::is_empty));
                        match rt.get("val").and_then(node_of) {
                            Some(("ColumnRef", c)) if plain => self.plain_ref(c)?,
                            _ => self.walk(t)?,
                        }
                    }
                }
                "sort_clause" | "group_clause" | "distinct_clause" => {
                    for item in v.as_array().into_iter().flatten() {
                        let inner = match node_of(item) {
                            Some(("SortBy", b)) => {
                                self.sort_operator(b)?;
                                b.get("node").unwrap_or(&Value::Null)
                            }
                            _ => item,
                        };
                        match node_of(inner) {
                            Some(("ColumnRef", c)) => self.plain_ref(c)?,
                            _ => self.walk(inner)?,
                        }
                    }
                }
                _ => self.walk(v)?,
            }
        }
        Ok(())
    }

    /// `ORDER BY x USING op`: the operator sees the values.
    fn sort_operator(&self, sort_by: &Value) -> Result<(), String> {
        let ops = crate::sql::name_parts(sort_by.get("use_op").unwrap_or(&Value::Null));
        match ops.last() {
            Some(op) if self.cat.operator_untrusted(op) => Err(format!(
                "ORDER BY ... USING {op}: a user-defined operator sees the values"
            )),
            _ => Ok(()),
        }
    }

    /// A column reference whose value is labelled with its origin: any
    /// column or `*`, but not a whole row.
    fn plain_ref(&self, body: &Value) -> Result<(), String> {
        let parts = column_ref(body);
        match parts.last() {
            Some(Some(name)) if self.names.contains(*name) => {
                Err(format!("{name} may be a whole-row reference"))
            }
            _ => self.attribute_call(&parts),
        }
    }

    /// `q.f` where `f` names a function is a call `f(q)` on the whole row
    /// unless the table `q` stands for has a column `f`.
    fn attribute_call(&self, parts: &[Option<&str>]) -> Result<(), String> {
        let [.., qual, Some(col)] = parts else {
            return Ok(());
        };
        if !self.cat.functions.contains_key(*col) {
            return Ok(());
        }
        let schema = parts.len().checked_sub(3).and_then(|i| parts[i]);
        let column = qual.and_then(|q| self.tables.get(q)).is_some_and(|all| {
            all.iter().all(|(written, rel)| {
                self.cat.has_column(
                    RelRef {
                        schema: schema.or(written.as_deref()),
                        name: rel,
                    },
                    col,
                )
            })
        });
        if column {
            Ok(())
        } else {
            Err(format!(
                "{}.{col} may call the function {col} on a whole row (attribute notation)",
                qual.unwrap_or("*")
            ))
        }
    }

    /// A SELECT anywhere: no set operation, no INTO.
    fn select_shape(&self, body: &Value) -> Result<(), String> {
        let op = body.get("op").and_then(Value::as_i64).unwrap_or(0);
        if op > 1 {
            return Err(
                "UNION, INTERSECT and EXCEPT label result columns with their first branch".into(),
            );
        }
        if body.get("into_clause").is_some_and(|v| !v.is_null()) {
            return Err("SELECT INTO stores the result unmasked".into());
        }
        Ok(())
    }

    /// Everything else: a masked column, `*` or a whole row here could
    /// reach the client unlabelled.
    fn walk(&self, v: &Value) -> Result<(), String> {
        match v {
            Value::Array(a) => a.iter().try_for_each(|x| self.walk(x)),
            Value::Object(m) => {
                if let Some((name, body)) = node_of(v) {
                    self.node(name, body)?;
                }
                m.values().try_for_each(|x| self.walk(x))
            }
            _ => Ok(()),
        }
    }

    fn node(&self, name: &str, body: &Value) -> Result<(), String> {
        match name {
            "ColumnRef" => {
                let parts = column_ref(body);
                match parts.last() {
                    Some(None) => Err("* inside an expression or subquery".into()),
                    Some(Some(col)) if self.masked.contains(col) => Err(format!(
                        "masked column {col} is used in an expression, condition, join or subquery"
                    )),
                    Some(Some(col)) if self.names.contains(*col) => {
                        Err(format!("{col} may be a whole-row reference"))
                    }
                    _ => self.attribute_call(&parts),
                }
            }
            "SelectStmt" => self.select_shape(body),
            "RangeVar" if renames(body) => {
                Err("column aliases on a table (FROM t AS a(x, y)) rename its columns".into())
            }
            "JoinExpr" if renames(body) => {
                Err("column aliases on a join rename its columns".into())
            }
            "JoinExpr" => {
                if body.get("is_natural").and_then(Value::as_bool) == Some(true) {
                    return Err("a NATURAL join merges columns unlabelled".into());
                }
                let using =
                    crate::sql::name_parts(body.get("using_clause").unwrap_or(&Value::Null));
                match using.iter().find(|c| self.masked.contains(*c)) {
                    Some(c) => Err(format!("masked column {c} is a join's USING column")),
                    None => Ok(()),
                }
            }
            "FuncCall" => {
                let parts = crate::sql::name_parts(body.get("funcname").unwrap_or(&Value::Null));
                let info = match parts.as_slice() {
                    [n] => self.cat.functions.get(*n),
                    [s, n] => self.cat.qualified.get(&(s.to_string(), n.to_string())),
                    _ => None,
                };
                let name = parts.join(".");
                match info {
                    None => Err(format!("function {name} is not in the gateway's catalog")),
                    Some(i) if i.user_defined => Err(format!(
                        "function {name} is user-defined (it may read any table)"
                    )),
                    Some(_) => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}
