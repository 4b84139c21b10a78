//! Walks a parse tree (pg_query's protobuf, viewed as JSON so every node
//! kind is visited, including ones no helper knows) and collects tables,
//! columns, functions, effects and flags.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Map, Value};

use super::functions::FnEffect;
use super::kinds::Class;
use super::{Access, ColumnFact};
use crate::catalog::{Catalog, RelRef};

/// Context passed down the tree.
#[derive(Clone, Copy)]
pub(super) struct Ctx {
    /// Access mode a relation found here gets.
    pub access: Access,
    /// Clause a column found here is used in.
    pub used_in: &'static str,
}

/// A FROM item's name as the statement gives it.
struct Alias {
    /// The name columns are qualified with.
    name: String,
    /// `schema.table` for the facts (empty for subqueries and functions).
    table: String,
    /// The relation as written (schema if given, name), for catalog
    /// lookups.
    rel: Option<(Option<String>, String)>,
}

/// Everything collected from one statement.
pub(super) struct Walker<'c> {
    pub tables: BTreeMap<(String, String), Access>,
    pub columns: BTreeSet<ColumnFact>,
    pub functions: BTreeSet<String>,
    pub flags: BTreeSet<&'static str>,
    /// Becomes false as soon as anything with an effect is seen.
    pub read_only: bool,
    /// What exists upstream.
    cat: &'c Catalog,
    /// Output names the statement defines (subquery and CTE columns,
    /// column aliases): `s.name` with such a name is a field, not a call.
    known_names: HashSet<String>,
    ctes: Vec<Vec<String>>,
    scopes: Vec<Vec<Alias>>,
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn present(v: &Value, key: &str) -> bool {
    v.get(key)
        .is_some_and(|x| !x.is_null() && x.as_array().is_none_or(|a| !a.is_empty()))
}

/// Unwraps `{"node": {"Name": body}}` or `{"Name": body}` into (name, body).
pub(crate) fn node_of(v: &Value) -> Option<(&str, &Value)> {
    let v = v.get("node").unwrap_or(v);
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let (k, body) = obj.iter().next()?;
    k.starts_with(|c: char| c.is_ascii_uppercase())
        .then_some((k.as_str(), body))
}

/// Reads the `sval`s of a list of String nodes (names like `schema.fn`).
pub(crate) fn name_parts(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| node_of(i).filter(|(n, _)| *n == "String"))
                .map(|(_, b)| s(b, "sval"))
                .collect()
        })
        .unwrap_or_default()
}

/// Schema a relation name resolves to when unqualified.
pub(super) fn qualify(schema: &str, name: &str) -> (String, String) {
    let schema = if !schema.is_empty() {
        schema.to_string()
    } else if name.starts_with("pg_") {
        "pg_catalog".to_string()
    } else {
        "public".to_string()
    };
    (schema, name.to_string())
}

fn is_range_var(v: &Map<String, Value>) -> bool {
    v.contains_key("relname") && v.contains_key("relpersistence")
}

/// True when an expression mentions no column: a WHERE clause that does not
/// depend on the row (e.g. `WHERE 1=1`, `WHERE true`).
pub(super) fn mentions_column(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, x)| k == "ColumnRef" || mentions_column(x)),
        Value::Array(a) => a.iter().any(mentions_column),
        _ => false,
    }
}

impl<'c> Walker<'c> {
    pub fn new(cat: &'c Catalog) -> Self {
        Self {
            tables: BTreeMap::new(),
            columns: BTreeSet::new(),
            functions: BTreeSet::new(),
            flags: BTreeSet::new(),
            read_only: true,
            cat,
            known_names: HashSet::new(),
            ctes: Vec::new(),
            scopes: Vec::new(),
        }
    }

    fn effect(&mut self, flag: &'static str) {
        self.read_only = false;
        self.flags.insert(flag);
    }

    fn table(&mut self, schema: &str, name: &str, access: Access) {
        // A CTE can shadow a table only for reading: the target of
        // INSERT/UPDATE/DELETE is always a real table.
        if access == Access::Read
            && schema.is_empty()
            && self.ctes.iter().flatten().any(|c| c == name)
        {
            return;
        }
        if access > Access::Read {
            self.read_only = false;
        }
        let written = RelRef {
            schema: (!schema.is_empty()).then_some(schema),
            name,
        };
        if access == Access::Read && self.cat.relation_runs_code(written).is_some() {
            self.effect("relation_runs_code");
            if let Some(flag) = self.cat.unknown_flag() {
                self.flags.insert(flag);
            }
        }
        let e = self.tables.entry(qualify(schema, name)).or_insert(access);
        *e = (*e).max(access);
    }

    /// Walks any value.
    pub fn walk(&mut self, v: &Value, ctx: Ctx) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| self.walk(i, ctx)),
            Value::Object(obj) => {
                if let Some((name, body)) = node_of(v) {
                    self.node(name, body, ctx);
                } else if is_range_var(obj) {
                    self.table(s(v, "schemaname"), s(v, "relname"), ctx.access);
                } else {
                    obj.iter().for_each(|(k, x)| self.child(k, x, ctx));
                }
            }
            _ => {}
        }
    }

    /// Walks `body[key]` if present.
    pub fn field(&mut self, body: &Value, key: &str, access: Access, used_in: &'static str) {
        self.field_ctx(body, key, Ctx { access, used_in });
    }

    fn field_ctx(&mut self, body: &Value, key: &str, ctx: Ctx) {
        if let Some(v) = body.get(key) {
            self.walk(v, ctx);
        }
    }

    fn fields_except(&mut self, body: &Value, skip: &[&str], ctx: Ctx) {
        if let Some(obj) = body.as_object() {
            for (k, v) in obj {
                if !skip.contains(&k.as_str()) {
                    self.child(k, v, ctx);
                }
            }
        }
    }

    /// Walks field `key` of a node; a type name anywhere (casts, column
    /// definition lists, XMLTABLE columns, CTE cycle marks...) is checked
    /// for types whose input or checks run user code.
    fn child(&mut self, key: &str, v: &Value, ctx: Ctx) {
        if key == "type_name" {
            self.type_name(v);
        }
        self.walk(v, ctx);
    }

    fn type_name(&mut self, v: &Value) {
        let ty = v.get("names").map(name_parts).unwrap_or_default();
        if let Some(ty) = ty.last().filter(|t| self.cat.cast_untrusted(t)) {
            self.call(FnEffect::Unknown, &format!("cast({ty})"));
        }
    }

    /// Operators the server applies for `names` (and the comparison a
    /// construct implies); untrusted user operators count as unknown calls.
    fn operators(&mut self, names: &[&str]) {
        for op in names {
            if self.cat.operator_untrusted(op) {
                self.call(FnEffect::Unknown, &format!("operator({op})"));
            }
        }
    }

    /// Runs `f` with the CTE names and FROM aliases of `body` in scope.
    fn scoped(&mut self, body: &Value, from_keys: &[&str], f: impl FnOnce(&mut Self)) {
        let ctes: Vec<String> = body
            .get("with_clause")
            .and_then(|w| w.get("ctes"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(node_of)
                    .map(|(_, c)| s(c, "ctename").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let mut aliases = Vec::new();
        for k in from_keys {
            if let Some(v) = body.get(*k) {
                collect_aliases(v, &mut aliases);
            }
        }
        self.ctes.push(ctes);
        self.scopes.push(aliases);
        f(self);
        self.scopes.pop();
        self.ctes.pop();
    }

    fn column(&mut self, body: &Value, used_in: &'static str) {
        let fields = body.get("fields").and_then(Value::as_array);
        let parts: Vec<&str> = fields
            .map(|f| {
                f.iter()
                    .filter_map(node_of)
                    .map(|(n, b)| if n == "AStar" { "*" } else { s(b, "sval") })
                    .collect()
            })
            .unwrap_or_default();
        let (qualifier, name) = match parts.as_slice() {
            [name] => (None, *name),
            [.., q, name] => (Some(*q), *name),
            [] => return,
        };
        let table = self.resolve(qualifier);
        self.columns.insert(ColumnFact {
            table,
            name: name.to_string(),
            used_in,
        });
    }

    fn resolve(&self, qualifier: Option<&str>) -> String {
        for scope in self.scopes.iter().rev() {
            match qualifier {
                Some(q) => {
                    if let Some(a) = scope.iter().find(|a| a.name == q) {
                        return a.table.clone();
                    }
                }
                None if scope.len() == 1 => return scope[0].table.clone(),
                None if !scope.is_empty() => return String::new(),
                None => {}
            }
        }
        String::new()
    }

    /// The relation a qualifier names, as written, when it names a table
    /// (not a CTE, subquery or function).
    fn resolve_rel(&self, qualifier: &str) -> Option<RelRef<'_>> {
        let alias = self
            .scopes
            .iter()
            .rev()
            .find_map(|scope| scope.iter().find(|a| a.name == qualifier))?;
        let (schema, name) = alias.rel.as_ref()?;
        if schema.is_none() && self.ctes.iter().flatten().any(|c| c == name) {
            return None;
        }
        Some(RelRef {
            schema: schema.as_deref(),
            name,
        })
    }

    /// `q.name`, `s.t.name`: the server calls `name(q)` when `q` has no
    /// column `name` (attribute notation).
    fn attribute_ref(&mut self, body: &Value) {
        let fields: Vec<Option<&str>> = body
            .get("fields")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter_map(node_of)
                    .map(|(n, b)| (n == "String").then(|| s(b, "sval")))
                    .collect()
            })
            .unwrap_or_default();
        let [.., qualifier, Some(name)] = fields.as_slice() else {
            return;
        };
        let rel = match (fields.len(), qualifier) {
            (2, Some(q)) => self.resolve_rel(q),
            (3, Some(q)) => self.resolve_rel(q).filter(|r| r.schema == fields[0]),
            _ => None,
        };
        let effect = self.cat.attribute_call(name, rel, &self.known_names);
        if let Some(effect) = effect {
            self.call(effect, name);
        }
    }

    fn function(&mut self, body: &Value) {
        let parts = body.get("funcname").map(name_parts).unwrap_or_default();
        let parts: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let effect = self.cat.classify(&parts);
        if let Some(name) = parts.last() {
            self.call(effect, name);
        }
        if effect == FnEffect::SetConfig {
            let first = body
                .get("args")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(node_of)
                .filter(|(n, _)| *n == "AConst")
                .and_then(|(_, c)| c.pointer("/val/Sval/sval"))
                .and_then(Value::as_str);
            let first = first.map(str::to_ascii_lowercase);
            match first.as_deref() {
                Some(name) if !matches!(name, "role" | "session_authorization") => {
                    self.setting(name);
                }
                _ => {
                    self.flags.insert("role_change");
                }
            }
        }
    }

    /// A setting changed by name: settings only a superuser (or the
    /// server's configuration) may change are flagged.
    fn setting(&mut self, name: &str) {
        if self.cat.setting_privileged(&name.to_ascii_lowercase()) {
            self.flags.insert("privileged_setting");
        }
    }

    /// Records a call of `name` with its effect.
    fn call(&mut self, effect: FnEffect, name: &str) {
        self.functions.insert(name.to_ascii_lowercase());
        match effect {
            FnEffect::ReadOnly => return,
            FnEffect::DynamicSql => self.effect("dynamic_sql"),
            FnEffect::FileAccess => self.effect("file_access"),
            FnEffect::Admin => self.effect("admin_function"),
            FnEffect::Writes => self.effect("volatile_function"),
            FnEffect::Unknown => self.effect("unknown_function"),
            FnEffect::SetConfig => self.effect("set_config"),
        }
        if let Some(flag) = self.cat.unknown_flag() {
            self.flags.insert(flag);
        }
    }

    /// Handles a typed node.
    fn node(&mut self, name: &str, body: &Value, ctx: Ctx) {
        let read = Ctx {
            access: Access::Read,
            ..ctx
        };
        let write = Ctx {
            access: Access::Write,
            ..ctx
        };
        let ddl = Ctx {
            access: Access::Ddl,
            ..ctx
        };
        let used = |used_in| Ctx { used_in, ..read };
        match name {
            "RangeVar" => self.table(s(body, "schemaname"), s(body, "relname"), ctx.access),
            "ColumnRef" => {
                self.column(body, ctx.used_in);
                self.attribute_ref(body);
            }
            "AIndirection" => {
                // `(expr).name`: a field, or a call of `name(expr)`.
                for field in body
                    .get("indirection")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(node_of)
                    .filter(|(n, _)| *n == "String")
                {
                    let name = s(field.1, "sval");
                    if let Some(effect) = self.cat.attribute_call(name, None, &self.known_names) {
                        self.call(effect, name);
                    }
                }
                self.walk_children(body, ctx);
            }
            "AExpr" => {
                let names = body.get("name").map(name_parts).unwrap_or_default();
                match names.last() {
                    // BETWEEN is >= and <= (NOT BETWEEN: < and >).
                    Some(op) if op.contains("BETWEEN") => self.operators(&[">=", "<=", "<", ">"]),
                    Some(op) => self.operators(&[op]),
                    None => {}
                }
                self.walk_children(body, ctx);
            }
            "CaseExpr" if present(body, "arg") => {
                // CASE x WHEN y compares with =.
                self.operators(&["="]);
                self.walk_children(body, ctx);
            }
            "SubLink" => {
                // IN / ANY / ALL (subquery) compare with their operator,
                // = when none is written.
                let names = body.get("oper_name").map(name_parts).unwrap_or_default();
                if let Some(op) = names.last() {
                    self.operators(&[op]);
                } else if body
                    .get("sub_link_type")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    > 0
                {
                    self.operators(&["="]);
                }
                self.walk_children(body, read);
            }
            "JoinExpr"
                if present(body, "using_clause")
                    || body.get("is_natural") == Some(&Value::Bool(true)) =>
            {
                self.operators(&["="]);
                self.walk_children(body, ctx);
            }
            "DiscardStmt" => {
                use pg_query::protobuf::DiscardMode as D;
                let target = body.get("target").and_then(Value::as_i64).unwrap_or(0) as i32;
                // ALL and TEMP drop temp tables and release advisory locks.
                if !matches!(
                    D::try_from(target),
                    Ok(D::DiscardPlans | D::DiscardSequences)
                ) {
                    self.effect("discard");
                }
            }
            "FuncCall" => {
                self.function(body);
                self.fields_except(body, &["funcname"], ctx);
            }
            "SelectStmt" => self.scoped(body, &["from_clause"], |w| {
                w.field_ctx(body, "with_clause", read);
                if present(body, "into_clause") {
                    w.flags.insert("select_into");
                    w.field_ctx(body, "into_clause", ddl);
                }
                if present(body, "locking_clause") {
                    w.effect("row_lock");
                }
                w.field_ctx(body, "target_list", used("select"));
                w.field_ctx(body, "from_clause", used("from"));
                w.field_ctx(body, "where_clause", used("where"));
                w.field_ctx(body, "group_clause", used("group"));
                w.field_ctx(body, "having_clause", used("having"));
                w.field_ctx(body, "sort_clause", used("order"));
                w.fields_except(
                    body,
                    &[
                        "with_clause",
                        "into_clause",
                        "target_list",
                        "from_clause",
                        "where_clause",
                        "group_clause",
                        "having_clause",
                        "sort_clause",
                    ],
                    read,
                );
            }),
            "InsertStmt" => self.scoped(body, &["relation"], |w| {
                let from_query =
                    body.get("select_stmt")
                        .and_then(node_of)
                        .is_some_and(|(_, sel)| {
                            sel.get("values_lists")
                                .and_then(Value::as_array)
                                .is_none_or(|v| v.is_empty())
                        });
                if from_query {
                    w.flags.insert("bulk_write");
                }
                w.field_ctx(body, "with_clause", read);
                w.field_ctx(body, "relation", write);
                if let Some(cols) = body.get("cols").and_then(Value::as_array) {
                    let table = w.resolve(None);
                    for c in cols.iter().filter_map(node_of) {
                        w.columns.insert(ColumnFact {
                            table: table.clone(),
                            name: s(c.1, "name").to_string(),
                            used_in: "insert",
                        });
                    }
                }
                w.field_ctx(body, "select_stmt", used("insert"));
                w.field_ctx(
                    body,
                    "on_conflict_clause",
                    Ctx {
                        used_in: "set",
                        ..write
                    },
                );
                w.field_ctx(body, "returning_clause", used("returning"));
            }),
            "UpdateStmt" => self.scoped(body, &["relation", "from_clause"], |w| {
                w.check_where(body);
                w.field_ctx(body, "with_clause", read);
                w.field_ctx(body, "relation", write);
                if let Some(targets) = body.get("target_list").and_then(Value::as_array) {
                    let table = body
                        .get("relation")
                        .map(|r| {
                            let (a, b) = qualify(s(r, "schemaname"), s(r, "relname"));
                            format!("{a}.{b}")
                        })
                        .unwrap_or_default();
                    for (_, t) in targets.iter().filter_map(node_of) {
                        w.columns.insert(ColumnFact {
                            table: table.clone(),
                            name: s(t, "name").to_string(),
                            used_in: "set",
                        });
                        w.field_ctx(t, "val", used("set"));
                    }
                }
                w.field_ctx(body, "from_clause", used("from"));
                w.field_ctx(body, "where_clause", used("where"));
                w.field_ctx(body, "returning_clause", used("returning"));
            }),
            "DeleteStmt" => self.scoped(body, &["relation", "using_clause"], |w| {
                w.check_where(body);
                w.field_ctx(body, "with_clause", read);
                w.field_ctx(body, "relation", write);
                w.field_ctx(body, "using_clause", used("from"));
                w.field_ctx(body, "where_clause", used("where"));
                w.field_ctx(body, "returning_clause", used("returning"));
            }),
            "MergeStmt" => self.scoped(body, &["relation", "source_relation"], |w| {
                w.field_ctx(body, "with_clause", read);
                w.field_ctx(body, "relation", write);
                w.fields_except(body, &["with_clause", "relation"], used("merge"));
            }),
            "CommonTableExpr" => {
                let query = body.get("ctequery");
                if query
                    .and_then(node_of)
                    .is_some_and(|(n, _)| n != "SelectStmt")
                {
                    self.effect("write_in_cte");
                }
                self.field_ctx(body, "ctequery", read);
                // SEARCH / CYCLE clauses hold typed values too.
                self.fields_except(body, &["ctequery", "ctename"], read);
            }
            "RangeSubselect" => self.walk_children(body, read),
            "DoStmt" => self.effect("dynamic_sql"),
            "CallStmt" => {
                self.effect("procedure_call");
                self.walk_children(body, read);
            }
            "ExecuteStmt" => {
                self.effect("execute_prepared");
                self.walk_children(body, read);
            }
            "VariableSetStmt" => {
                let var = s(body, "name").to_ascii_lowercase();
                let sets_value = body.get("kind").and_then(Value::as_i64) == Some(1);
                if sets_value && matches!(var.as_str(), "role" | "session_authorization") {
                    self.effect("role_change");
                }
                if var == "search_path" {
                    self.flags.insert("search_path");
                }
                self.setting(&var);
            }
            "AlterSystemStmt" => {
                self.effect("alter_system");
                self.walk_children(body, ddl);
            }
            "CreateRoleStmt" | "AlterRoleStmt" | "AlterRoleSetStmt" | "DropRoleStmt"
            | "GrantRoleStmt" => {
                self.effect("role_change");
                self.walk_children(body, ddl);
            }
            "DropStmt" => {
                let table_like = body
                    .get("remove_type")
                    .and_then(Value::as_i64)
                    .and_then(|t| pg_query::protobuf::ObjectType::try_from(t as i32).ok())
                    .is_some_and(|t| {
                        use pg_query::protobuf::ObjectType as O;
                        matches!(
                            t,
                            O::ObjectTable
                                | O::ObjectView
                                | O::ObjectMatview
                                | O::ObjectIndex
                                | O::ObjectSequence
                                | O::ObjectForeignTable
                        )
                    });
                if table_like {
                    for obj in body
                        .get("objects")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let parts = node_of(obj)
                            .and_then(|(_, l)| l.get("items"))
                            .map(name_parts)
                            .unwrap_or_default();
                        match parts.as_slice() {
                            [name] => self.table("", name, Access::Ddl),
                            [.., schema, name] => self.table(schema, name, Access::Ddl),
                            [] => {}
                        }
                    }
                }
                self.read_only = false;
            }
            _ => self.walk_children(body, ctx),
        }
    }

    /// An UPDATE or DELETE whose WHERE is missing or does not depend on
    /// the row touches every row.
    fn check_where(&mut self, body: &Value) {
        let clause = body.get("where_clause").filter(|c| !c.is_null());
        if !clause.is_some_and(mentions_column) {
            self.flags.insert("no_where");
            self.flags.insert("bulk_write");
        }
    }

    fn walk_children(&mut self, body: &Value, ctx: Ctx) {
        if let Some(obj) = body.as_object() {
            if is_range_var(obj) {
                self.table(s(body, "schemaname"), s(body, "relname"), ctx.access);
                return;
            }
            obj.iter().for_each(|(k, x)| self.child(k, x, ctx));
        }
    }

    /// Walks a whole top-level statement of the given class.
    pub fn statement(&mut self, name: &str, body: &Value, class: Class) {
        collect_names(body, &mut self.known_names);
        let access = match class {
            Class::Read | Class::Session | Class::Transaction => Access::Read,
            Class::Write | Class::Opaque => Access::Write,
            Class::Ddl | Class::Privilege | Class::Admin => Access::Ddl,
        };
        if !matches!(class, Class::Read | Class::Session | Class::Transaction) {
            self.read_only = false;
        }
        self.node(
            name,
            body,
            Ctx {
                access,
                used_in: "other",
            },
        );
    }
}

/// Output names a statement defines: target names (`AS x`), column alias
/// lists, CTE column names and column definitions.
fn collect_names(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_names(i, out)),
        Value::Object(obj) => {
            for (k, x) in obj {
                match k.as_str() {
                    "ResTarget" | "ColumnDef" => {
                        let key = if k == "ResTarget" { "name" } else { "colname" };
                        if let Some(n) = x.get(key).and_then(Value::as_str) {
                            out.insert(n.to_string());
                        }
                    }
                    "colnames" | "aliascolnames" => {
                        out.extend(name_parts(x).into_iter().map(str::to_string));
                    }
                    _ => {}
                }
                collect_names(x, out);
            }
        }
        _ => {}
    }
}

fn collect_aliases(v: &Value, out: &mut Vec<Alias>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_aliases(i, out)),
        Value::Object(obj) => {
            let (name, body) = match node_of(v) {
                Some(nb) => nb,
                None if is_range_var(obj) => ("RangeVar", v),
                None => return,
            };
            match name {
                "RangeVar" => {
                    let (schema, rel) = qualify(s(body, "schemaname"), s(body, "relname"));
                    let alias = body
                        .pointer("/alias/aliasname")
                        .and_then(Value::as_str)
                        .unwrap_or(&rel)
                        .to_string();
                    let written = s(body, "schemaname");
                    out.push(Alias {
                        name: alias,
                        table: format!("{schema}.{rel}"),
                        rel: Some((
                            (!written.is_empty()).then(|| written.to_string()),
                            rel.clone(),
                        )),
                    });
                }
                "JoinExpr" => {
                    collect_aliases(&body["larg"], out);
                    collect_aliases(&body["rarg"], out);
                }
                "RangeSubselect" | "RangeFunction" | "RangeTableFunc" => {
                    if let Some(a) = body.pointer("/alias/aliasname").and_then(Value::as_str) {
                        out.push(Alias {
                            name: a.to_string(),
                            table: String::new(),
                            rel: None,
                        });
                    }
                }
                "RangeTableSample" => collect_aliases(&body["relation"], out),
                _ => {}
            }
        }
        _ => {}
    }
}
