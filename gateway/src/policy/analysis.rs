//! What a policy reads from `input`, found by walking its Rego AST (never by
//! searching its text), and the decision-cache mode that follows.
//!
//! The walk resolves every expression that denotes a part of `input` to a
//! path (`statement.tables[_].access`), through aliases (`stmt :=
//! input.statement`, top-level rules such as `stmt := input.statement`,
//! `some t in input.statement.tables`, `every`, imports) and through the
//! parameters of user functions (each call site is analysed with its
//! arguments bound). Any other use of an input value — a builtin argument,
//! a comparison, a head value, a variable key — reads that path and
//! everything beneath it. `with input` makes paths meaningless, so it
//! counts as reading all of `input`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use regorus::unstable::{Expr, Literal, Module, Query, Rule, RuleHead};

/// Builtins whose result is not a function of their arguments.
const NONDETERMINISTIC: &[&str] = &[
    "time.now_ns",
    "rand.intn",
    "uuid.rfc4122",
    "uuid.v4",
    "http.send",
    "opa.runtime",
    "net.lookup_ip_addr",
    "io.jwt.decode_verify",
    "trace",
];

/// Input paths that are arrays in the input schema (`[_]` selects an
/// element); any other iteration reads the whole value.
const ARRAYS: &[&str] = &[
    "statement.tables",
    "statement.columns",
    "statement.functions",
    "statement.flags",
    "user.groups",
    "request.include",
];

/// Input fields whose value differs between statements that share a
/// literal template (same text apart from literal values).
const LITERAL_DEPENDENT: &[&str] = &["statement.text", "statement.parse_error"];

/// Input fields that change over time within one session and statement.
const TIME_DEPENDENT: &[&str] = &["now"];

/// How decisions may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Per literal template: variants that differ only in literal values
    /// share one decision.
    Template,
    /// Per exact statement text.
    Exact,
    /// Every statement is evaluated.
    Off,
}

impl CacheMode {
    /// Name shown by `portcullis policy inspect` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Template => "template",
            Self::Exact => "exact",
            Self::Off => "off",
        }
    }
}

/// What a policy reads and uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputUse {
    /// Paths read (each with everything beneath it); `""` is all of input.
    pub paths: BTreeSet<String>,
    /// Non-deterministic builtins called.
    pub nondeterministic: BTreeSet<String>,
    /// Uses `with input ...`.
    pub with_input: bool,
}

impl InputUse {
    /// Whether `path` (or anything beneath or above it) is read.
    pub fn reads(&self, path: &str) -> bool {
        self.paths
            .iter()
            .any(|p| p.is_empty() || p == path || is_beneath(path, p) || is_beneath(p, path))
    }

    /// The cache mode these uses allow, with the reason.
    pub fn cache_mode(&self) -> (CacheMode, String) {
        if !self.nondeterministic.is_empty() {
            let names: Vec<&str> = self.nondeterministic.iter().map(String::as_str).collect();
            return (
                CacheMode::Off,
                format!("calls non-deterministic builtins: {}", names.join(", ")),
            );
        }
        if let Some(p) = TIME_DEPENDENT.iter().find(|p| self.reads(p)) {
            return (
                CacheMode::Off,
                format!("reads input.{p}, which changes over time"),
            );
        }
        if self.with_input {
            return (
                CacheMode::Exact,
                "replaces input with `with input`, so which fields it reads cannot be known".into(),
            );
        }
        if let Some(p) = LITERAL_DEPENDENT.iter().find(|p| self.reads(p)) {
            return (
                CacheMode::Exact,
                format!("reads input.{p}, which depends on literal values"),
            );
        }
        (
            CacheMode::Template,
            "deterministic, and reads no field that depends on literal values or time".into(),
        )
    }
}

/// A plain `a.b.c` reference (no brackets, no calls).
fn is_dot_chain(e: &Expr) -> bool {
    match e {
        Expr::Var { .. } => true,
        Expr::RefDot { refr, .. } => is_dot_chain(refr),
        _ => false,
    }
}

/// `child` is strictly beneath `parent` (`a.b[_]` is beneath `a.b`).
fn is_beneath(child: &str, parent: &str) -> bool {
    child.len() > parent.len()
        && child.starts_with(parent)
        && matches!(child.as_bytes()[parent.len()], b'.' | b'[')
}

/// Analyses every module of a compiled engine.
pub fn analyze(modules: &[regorus::unstable::Ref<Module>]) -> InputUse {
    let mut a = Analyzer::default();
    for m in modules {
        let pkg = m.package.refr.span().text().to_string();
        for imp in &m.imports {
            let text = imp.refr.span().text();
            if let Some(rest) = text.strip_prefix("input") {
                let path = rest.trim_start_matches('.').to_string();
                let alias = match &imp.r#as {
                    Some(s) => s.text().to_string(),
                    None => text.rsplit('.').next().unwrap_or(text).to_string(),
                };
                a.globals.insert(alias, path);
            }
        }
        for rule in &m.policy {
            if let Rule::Spec {
                head:
                    RuleHead::Compr {
                        refr,
                        assign: Some(assign),
                        ..
                    },
                ..
            } = rule.as_ref()
            {
                let scope = Scope::default();
                if let Some(p) = a.resolve(&assign.value, &scope) {
                    let name = refr.span().text().to_string();
                    a.globals.insert(format!("data.{pkg}.{name}"), p.clone());
                    a.globals.insert(name, p);
                }
            }
            if let Rule::Spec {
                head: RuleHead::Func { refr, .. },
                ..
            } = rule.as_ref()
            {
                let name = refr.span().text();
                let short = name.rsplit('.').next().unwrap_or(name).to_string();
                a.functions.entry(short).or_default().push(rule.clone());
            }
        }
    }
    for m in modules {
        for rule in &m.policy {
            a.rule(rule, &Scope::default());
        }
    }
    a.uses
}

/// Variables bound to input paths in the query being walked.
#[derive(Default, Clone)]
struct Scope {
    vars: BTreeMap<String, String>,
}

#[derive(Default)]
struct Analyzer {
    uses: InputUse,
    /// Top-level rules and imports that alias an input path.
    globals: BTreeMap<String, String>,
    /// User functions by their last name segment.
    functions: BTreeMap<String, Vec<regorus::unstable::Ref<Rule>>>,
    /// (function, argument paths) already analysed.
    visited: HashSet<(String, Vec<Option<String>>)>,
}

fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_string()
    } else {
        format!("{base}.{field}")
    }
}

impl Analyzer {
    fn read(&mut self, path: String) {
        self.uses.paths.insert(path);
    }

    /// The input path `e` denotes, if it denotes one.
    fn resolve(&self, e: &Expr, scope: &Scope) -> Option<String> {
        match e {
            Expr::Var { span, .. } => {
                let name = span.text();
                if let Some(p) = scope.vars.get(name) {
                    return Some(p.clone());
                }
                if name == "input" {
                    return Some(String::new());
                }
                self.globals.get(name).cloned()
            }
            Expr::RefDot { refr, field, .. } => {
                let field = field.0.text();
                match self.resolve(refr, scope) {
                    Some(base) => Some(join(&base, field)),
                    None => self.globals.get(e.span().text()).cloned(),
                }
            }
            Expr::RefBrack { refr, index, .. } => {
                let base = self.resolve(refr, scope)?;
                match index.as_ref() {
                    Expr::String { value, .. } | Expr::RawString { value, .. } => {
                        Some(join(&base, value.as_string().ok()?.as_ref()))
                    }
                    _ if ARRAYS.contains(&base.as_str()) => Some(format!("{base}[_]")),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// `data` or `data.pkg` used whole includes the values of rules that
    /// alias input paths.
    fn data_prefix(&mut self, text: &str) {
        if text != "data" && !text.starts_with("data.") {
            return;
        }
        let prefix = format!("{text}.");
        let hits: Vec<String> = self
            .globals
            .iter()
            .filter(|(name, _)| name.starts_with(&prefix))
            .map(|(_, p)| p.clone())
            .collect();
        for p in hits {
            self.read(p);
        }
    }

    /// The element path when iterating over `path`, if it is an array.
    fn element(path: &str) -> Option<String> {
        ARRAYS.contains(&path).then(|| format!("{path}[_]"))
    }

    fn expr(&mut self, e: &Expr, scope: &mut Scope) {
        if let Some(p) = self.resolve(e, scope) {
            self.read(p);
            return;
        }
        match e {
            Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. } => {}
            Expr::Var { span, .. } => self.data_prefix(span.text()),
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                for i in items {
                    self.expr(i, scope);
                }
            }
            Expr::Object { fields, .. } => {
                for (_, k, v) in fields {
                    self.expr(k, scope);
                    self.expr(v, scope);
                }
            }
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                let mut inner = scope.clone();
                self.query(query, &mut inner);
                self.expr(term, &mut inner);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                let mut inner = scope.clone();
                self.query(query, &mut inner);
                self.expr(key, &mut inner);
                self.expr(value, &mut inner);
            }
            Expr::Call { fcn, params, .. } => self.call(fcn, params, scope),
            Expr::UnaryExpr { expr, .. } => self.expr(expr, scope),
            Expr::RefDot { refr, .. } => {
                if is_dot_chain(refr) {
                    // `data.pkg.rule`: only the whole chain names a value.
                    self.data_prefix(e.span().text());
                } else {
                    self.expr(refr, scope);
                }
            }
            Expr::RefBrack { refr, index, .. } => {
                // A variable key over an input value reads all of it.
                match self.resolve(refr, scope) {
                    Some(p) => self.read(p),
                    None => self.expr(refr, scope),
                }
                self.expr(index, scope);
            }
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. } => {
                self.expr(lhs, scope);
                self.expr(rhs, scope);
            }
            Expr::AssignExpr { lhs, rhs, .. } => {
                if let Expr::Var { span, .. } = lhs.as_ref() {
                    if let Some(p) = self.resolve(rhs, scope) {
                        scope.vars.insert(span.text().to_string(), p);
                        return;
                    }
                }
                if let Expr::Var { span, .. } = rhs.as_ref() {
                    if let Some(p) = self.resolve(lhs, scope) {
                        if !scope.vars.contains_key(span.text()) {
                            scope.vars.insert(span.text().to_string(), p);
                            return;
                        }
                    }
                }
                self.expr(lhs, scope);
                self.expr(rhs, scope);
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    self.expr(k, scope);
                }
                self.expr(value, scope);
                self.expr(collection, scope);
            }
            #[allow(unreachable_patterns)]
            _ => {
                // An expression kind this analysis does not know: assume
                // the worst.
                self.read(String::new());
            }
        }
    }

    fn call(&mut self, fcn: &Expr, params: &[regorus::unstable::Ref<Expr>], scope: &mut Scope) {
        let name = fcn.span().text().to_string();
        if NONDETERMINISTIC.contains(&name.as_str()) {
            self.uses.nondeterministic.insert(name.clone());
        }
        let short = name.rsplit('.').next().unwrap_or(&name).to_string();
        let defs = self.functions.get(&short).cloned();
        // `lib.f` may be an imported package's function or a builtin of the
        // same short name (`time.parse_ns`): then the arguments count as
        // read too.
        let maybe_builtin = name.contains('.') && !name.starts_with("data.");
        let args: Vec<Option<String>> = params.iter().map(|p| self.resolve(p, scope)).collect();
        match defs {
            Some(defs) => {
                for (p, a) in params.iter().zip(&args) {
                    if a.is_none() || maybe_builtin {
                        self.expr(p, scope);
                    }
                }
                if !self.visited.insert((short.clone(), args.clone())) {
                    return;
                }
                for d in defs {
                    if let Rule::Spec {
                        head: RuleHead::Func { args: formals, .. },
                        ..
                    } = d.as_ref()
                    {
                        let mut inner = Scope::default();
                        for (formal, actual) in formals.iter().zip(&args) {
                            match (formal.as_ref(), actual) {
                                (Expr::Var { span, .. }, Some(p)) => {
                                    inner.vars.insert(span.text().to_string(), p.clone());
                                }
                                (_, Some(p)) => self.read(p.clone()),
                                _ => {}
                            }
                        }
                        self.rule(&d, &inner);
                    }
                }
            }
            None => {
                for p in params {
                    self.expr(p, scope);
                }
            }
        }
    }

    fn query(&mut self, q: &Query, scope: &mut Scope) {
        for stmt in &q.stmts {
            for w in &stmt.with_mods {
                // The replaced parts come from `as` (analysed as a use);
                // the rest still reads the real input at the same paths.
                if w.refr.span().text().starts_with("input") {
                    self.uses.with_input = true;
                }
                self.expr(&w.r#as, scope);
            }
            match &stmt.literal {
                Literal::SomeVars { .. } => {}
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => self.iterate(key.as_ref().map(|k| k.as_ref()), value, collection, scope),
                Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => {
                    self.expr(expr, scope)
                }
                Literal::Every {
                    key,
                    value,
                    domain,
                    query,
                    ..
                } => {
                    let mut inner = scope.clone();
                    match self.resolve(domain, scope).map(|p| (Self::element(&p), p)) {
                        Some((Some(elem), _)) => {
                            inner.vars.insert(value.text().to_string(), elem);
                        }
                        Some((None, p)) => self.read(p),
                        None => self.expr(domain, scope),
                    }
                    if let Some(k) = key {
                        inner.vars.remove(k.text());
                    }
                    self.query(query, &mut inner);
                }
            }
        }
    }

    /// `some [key,] value in collection`.
    fn iterate(&mut self, key: Option<&Expr>, value: &Expr, coll: &Expr, scope: &mut Scope) {
        if let Some(k) = key {
            self.expr(k, scope);
        }
        match self.resolve(coll, scope) {
            Some(p) => match (Self::element(&p), value) {
                (Some(elem), Expr::Var { span, .. }) => {
                    scope.vars.insert(span.text().to_string(), elem);
                }
                (Some(elem), _) => self.read(elem),
                (None, _) => self.read(p),
            },
            None => {
                self.expr(value, scope);
                self.expr(coll, scope);
            }
        }
    }

    fn rule(&mut self, rule: &Rule, scope: &Scope) {
        match rule {
            Rule::Spec { head, bodies, .. } => {
                for body in bodies {
                    let mut s = scope.clone();
                    self.query(&body.query, &mut s);
                    if let Some(a) = &body.assign {
                        if self.resolve(&a.value, &s).is_none() {
                            self.expr(&a.value, &mut s);
                        }
                    }
                    self.head(head, &mut s);
                }
                if bodies.is_empty() {
                    self.head(head, &mut scope.clone());
                }
            }
            Rule::Default { value, args, .. } => {
                let mut s = scope.clone();
                for a in args {
                    self.expr(a, &mut s);
                }
                self.expr(value, &mut s);
            }
        }
    }

    fn head(&mut self, head: &RuleHead, scope: &mut Scope) {
        match head {
            RuleHead::Compr { refr, assign, .. } => {
                self.head_ref(refr, scope);
                if let Some(a) = assign {
                    // `stmt := input.statement` is an alias (followed where
                    // it is used), not a read.
                    if self.resolve(&a.value, scope).is_none() {
                        self.expr(&a.value, scope);
                    }
                }
            }
            RuleHead::Set { refr, key, .. } => {
                self.head_ref(refr, scope);
                if let Some(k) = key {
                    self.expr(k, scope);
                }
            }
            RuleHead::Func { assign, .. } => {
                if let Some(a) = assign {
                    self.expr(&a.value, scope);
                }
            }
        }
    }

    /// Keys inside a rule head reference (`p[input.x] := ...`).
    fn head_ref(&mut self, refr: &Expr, scope: &mut Scope) {
        if let Expr::RefBrack { refr, index, .. } = refr {
            self.head_ref(refr, scope);
            self.expr(index, scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(src: &str) -> InputUse {
        let mut e = regorus::Engine::new();
        e.add_policy("p.rego".into(), src.into()).unwrap();
        analyze(e.get_modules())
    }

    fn mode(src: &str) -> CacheMode {
        uses(src).cache_mode().0
    }

    #[test]
    fn shipped_policy_is_template_cacheable() {
        let src = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/portcullis.rego"),
        )
        .unwrap();
        let u = uses(&src);
        assert_eq!(u.cache_mode().0, CacheMode::Template, "{u:?}");
        assert!(u.paths.contains("statement.kind"), "{u:?}");
        assert!(u.paths.contains("user.groups[_]"), "{u:?}");
        assert!(!u.reads("statement.text"), "{u:?}");
    }

    #[test]
    fn aliases_and_functions_are_followed() {
        let u = uses(
            "package p\nimport rego.v1\nstmt := input.statement\nf(s) := lower(s.text)\n\
             d if { x := stmt; f(x) == \"a\" }",
        );
        assert!(u.paths.contains("statement.text"), "{u:?}");
        assert_eq!(u.cache_mode().0, CacheMode::Exact);
    }

    #[test]
    fn uncacheable_policies() {
        for src in [
            // time, directly and through a builtin
            "package p\nimport rego.v1\nd if input.now > \"2026\"",
            "package p\nimport rego.v1\nd if time.now_ns() > 0",
            "package p\nimport rego.v1\nd if { t := time.now_ns(); t > 0 }",
            "package p\nimport rego.v1\nd if rand.intn(\"x\", 10) > 5",
            "package p\nimport rego.v1\nd if uuid.rfc4122(\"x\") != \"\"",
            // input wholesale: it contains `now`
            "package p\nimport rego.v1\nd if contains(json.marshal(input), \"x\")",
            "package p\nimport rego.v1\nd if { some k; input[k] == \"x\" }",
            "package p\nimport rego.v1\nd if { x := input; x.now != \"\" }",
            "package p\nimport rego.v1\nd if { walk(input, [p, v]); v == 1 }",
            "package p\nimport rego.v1\nn := input.now\nd if count(json.marshal(data.p)) > 1",
            "package p\nimport rego.v1\nd if count(object.keys(input)) > 3",
            "package p\nimport rego.v1\nf(x) := x.now\nd if f(input) != \"\"",
            "package p\nimport rego.v1\nd if { some k, v in input; v == 1 }",
        ] {
            assert_eq!(mode(src), CacheMode::Off, "{src}: {:?}", uses(src));
        }
    }

    #[test]
    fn literal_dependent_policies_use_exact_cache() {
        for src in [
            "package p\nimport rego.v1\nd if contains(input.statement.text, \"x\")",
            "package p\nimport rego.v1\nd if { s := input.statement; s.text == \"x\" }",
            "package p\nimport rego.v1\nd if { s := input.statement; json.marshal(s) != \"\" }",
            "package p\nimport rego.v1\nd if { some k; input.statement[k] == \"x\" }",
            "package p\nimport rego.v1\nd if input[\"statement\"][\"text\"] == \"x\"",
            "package p\nimport rego.v1\nimport input.statement as st\nd if st.text == \"x\"",
            "package p\nimport rego.v1\nd if { x := data.p.e with input.statement.kind as \"y\" }\ne := 1",
        ] {
            assert_eq!(mode(src), CacheMode::Exact, "{src}: {:?}", uses(src));
        }
    }

    #[test]
    fn field_reads_stay_template() {
        let src = "package p\nimport rego.v1\nd if { some t in input.statement.tables; t.access == \"read\" }\n\
                   e if { every f in input.statement.flags { f != \"ddl\" } }\n\
                   g := [c.name | some c in input.statement.columns]";
        let u = uses(src);
        assert_eq!(u.cache_mode().0, CacheMode::Template, "{u:?}");
        assert!(u.paths.contains("statement.tables[_].access"), "{u:?}");
        assert!(u.paths.contains("statement.flags[_]"), "{u:?}");
        assert!(u.paths.contains("statement.columns[_].name"), "{u:?}");
    }
}
