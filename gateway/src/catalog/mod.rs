//! What exists upstream, as the statement analyser needs it: functions
//! (name, builtin or not, volatility, language), relations and their
//! columns, operators, casts and types that run user code, and relations
//! whose reading runs code (views, row-level security policies).
//!
//! The server resolves `rel.name` and `(expr).name` as a call of
//! `name(rel)` when no column of that name exists, and an unqualified call
//! may reach a user function that shadows a built-in. Neither can be told
//! from the statement alone; the catalog of the connection decides it.
//! Three modes:
//! - **loaded** from the database (the gateway, per connection; see
//!   [`cache`]),
//! - **offline** (`portcullis policy test`, unit tests): a database with
//!   no user-defined objects is assumed,
//! - **unavailable** (the load failed, or this session changed the
//!   catalog and the reload is not in yet): every name that could be a
//!   call counts as an unknown function, flagged.

pub mod cache;
pub mod client;
mod load;
mod types;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

pub use cache::CatalogCache;
pub use load::{load, load_with};

use crate::sql::functions::{classify as classify_static, FnEffect};

/// Catalog errors (loading; the analyser never fails).
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Login failed.
    #[error(transparent)]
    Upstream(#[from] crate::session::upstream::UpstreamError),
    /// Protocol error.
    #[error("database protocol error: {0}")]
    Codec(#[from] crate::pg::CodecError),
    /// The database closed the connection.
    #[error("database closed the connection")]
    Closed,
    /// A catalog query failed.
    #[error("catalog query failed: {0}")]
    Query(String),
}

/// How much the catalog knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Loaded from the database.
    Loaded,
    /// No database: only built-ins are assumed to exist.
    Offline,
    /// Nothing is known; the flag says why (`catalog_unavailable`,
    /// `catalog_stale`).
    Unavailable(&'static str),
}

/// What is known about the functions of one name (all overloads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FnInfo {
    /// A built-in overload is VOLATILE.
    pub builtin_volatile: bool,
    /// A user-defined overload is not trusted to be read-only.
    pub user_untrusted: bool,
    /// An overload is user-defined (not built in).
    pub user_defined: bool,
}

impl FnInfo {
    /// Merges another overload.
    pub fn merge(&mut self, other: FnInfo) {
        self.builtin_volatile |= other.builtin_volatile;
        self.user_untrusted |= other.user_untrusted;
        self.user_defined |= other.user_defined;
    }
}

/// A relation's columns, and whether reading it runs code the gateway
/// cannot show to be read-only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relation {
    /// Schema.
    pub schema: String,
    /// Column names, system columns included.
    pub columns: HashSet<String>,
    /// Why reading it may have an effect (a view's query or a row security
    /// policy that is not read-only).
    pub runs_code: Option<String>,
    /// `pg_class.relkind` (`r` table, `p` partitioned, `v` view, ...).
    pub kind: char,
}

/// A relation by OID, for reading where a result column comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// `pg_class.relkind`.
    pub kind: char,
    /// Column names by attribute number.
    pub columns: HashMap<i16, String>,
    /// The tables it inherits from (partition parents included).
    pub parents: Vec<u32>,
}

/// A relation as a statement names it.
#[derive(Debug, Clone, Copy)]
pub struct RelRef<'a> {
    /// Schema as written (`None`: resolved through `search_path`).
    pub schema: Option<&'a str>,
    /// Relation name.
    pub name: &'a str,
}

/// A snapshot of one database's catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// What it knows.
    pub mode: Mode,
    /// Functions by name (any schema).
    pub functions: HashMap<String, FnInfo>,
    /// Functions by (schema, name).
    pub qualified: HashMap<(String, String), FnInfo>,
    /// Relations by name, one entry per schema.
    pub relations: HashMap<String, Vec<Relation>>,
    /// Operator names with an overload that runs untrusted user code.
    pub untrusted_operators: HashSet<String>,
    /// Type names whose casts or input may run untrusted user code.
    pub untrusted_types: HashSet<String>,
    /// Every column name of every relation and composite type, and every
    /// OUT parameter name of every function: names a `(value).name` may
    /// select as a field.
    pub field_names: HashSet<String>,
    /// OIDs of types whose input or checks run untrusted user code (a
    /// Parse naming one as a parameter type runs it at Bind).
    pub untrusted_type_oids: HashSet<u32>,
    /// Settings only a superuser or the server configuration may change
    /// (`pg_settings.context` other than `user`).
    pub privileged_settings: HashSet<String>,
    /// Relations by OID (where result columns come from).
    pub origins: HashMap<u32, Origin>,
}

/// Built-ins that read values of a type given by OID or by a record
/// template: they run that type's input and checks, so they count as
/// unknown when any type runs untrusted code.
const TYPE_INPUT_FUNCTIONS: &[&str] = &[
    "array_in",
    "array_recv",
    "record_in",
    "record_recv",
    "domain_in",
    "domain_recv",
    "range_in",
    "range_recv",
    "multirange_in",
    "multirange_recv",
    "json_populate_record",
    "json_populate_recordset",
    "jsonb_populate_record",
    "jsonb_populate_recordset",
    "json_to_record",
    "json_to_recordset",
    "jsonb_to_record",
    "jsonb_to_recordset",
];

/// Settings a session can use to change what later statements do, which
/// only a superuser may set (assumed when no catalog is loaded).
const PRIVILEGED_SETTINGS: &[&str] = &[
    "session_replication_role",
    "session_preload_libraries",
    "local_preload_libraries",
    "allow_system_table_mods",
    "ignore_system_indexes",
    "zero_damaged_pages",
    "ignore_checksum_failure",
    "log_statement",
    "log_min_duration_statement",
    "log_min_messages",
    "lo_compat_privileges",
    "jit_provider",
];

static OFFLINE: LazyLock<Arc<Catalog>> = LazyLock::new(|| Arc::new(Catalog::empty(Mode::Offline)));
static UNAVAILABLE: LazyLock<Arc<Catalog>> =
    LazyLock::new(|| Arc::new(Catalog::empty(Mode::Unavailable("catalog_unavailable"))));
static STALE: LazyLock<Arc<Catalog>> =
    LazyLock::new(|| Arc::new(Catalog::empty(Mode::Unavailable("catalog_stale"))));

impl Catalog {
    /// A catalog with no entries.
    pub fn empty(mode: Mode) -> Self {
        Self {
            mode,
            functions: HashMap::new(),
            qualified: HashMap::new(),
            relations: HashMap::new(),
            untrusted_operators: HashSet::new(),
            untrusted_types: HashSet::new(),
            untrusted_type_oids: HashSet::new(),
            field_names: HashSet::new(),
            privileged_settings: HashSet::new(),
            origins: HashMap::new(),
        }
    }

    /// The offline catalog (only built-ins exist).
    pub fn offline() -> Arc<Catalog> {
        OFFLINE.clone()
    }

    /// The catalog of a database that could not be read.
    pub fn unavailable() -> Arc<Catalog> {
        UNAVAILABLE.clone()
    }

    /// The catalog of a session that changed it and waits for the reload.
    pub fn stale() -> Arc<Catalog> {
        STALE.clone()
    }

    /// The flag to add when a decision depended on a catalog that knows
    /// nothing.
    pub fn unknown_flag(&self) -> Option<&'static str> {
        match self.mode {
            Mode::Unavailable(flag) => Some(flag),
            _ => None,
        }
    }

    /// Classifies a call of the function named by `parts` (`name` or
    /// `schema.name`): the gateway's own knowledge of dangerous built-ins
    /// first, then what exists upstream. A user-defined overload is
    /// trusted only when written in C (only a superuser can create one)
    /// and declared IMMUTABLE or STABLE; SQL and procedural functions can
    /// call volatile functions whatever they are declared.
    pub fn classify(&self, parts: &[&str]) -> FnEffect {
        let fixed = classify_static(parts);
        if !matches!(fixed, FnEffect::ReadOnly | FnEffect::Unknown) {
            return fixed;
        }
        match self.mode {
            Mode::Offline => fixed,
            Mode::Unavailable(_) => FnEffect::Unknown,
            Mode::Loaded => {
                let info = match parts {
                    [name] => self.functions.get(*name),
                    [schema, name] => self
                        .qualified
                        .get(&((*schema).to_string(), (*name).to_string())),
                    _ => None,
                };
                // No such function: the server refuses the call; the
                // gateway does not guess.
                let Some(info) = info else {
                    return FnEffect::Unknown;
                };
                let name = parts.last().copied().unwrap_or_default();
                if info.user_untrusted
                    || (!self.untrusted_type_oids.is_empty()
                        && TYPE_INPUT_FUNCTIONS.contains(&name))
                {
                    FnEffect::Unknown
                } else if fixed == FnEffect::ReadOnly || !info.builtin_volatile {
                    FnEffect::ReadOnly
                } else {
                    FnEffect::Unknown
                }
            }
        }
    }

    /// Whether `rel.name` / `(expr).name` may be a call of `name(…)`, and
    /// how that call is classified. `rel` is the relation the qualifier
    /// names, when the statement shows it; a column of that name on every
    /// relation it may resolve to makes it a column (the server tries the
    /// column first). `None`: not a call.
    ///
    /// `known_names` are output names the statement itself defines (column
    /// aliases of its subqueries and CTEs).
    pub fn attribute_call(
        &self,
        name: &str,
        rel: Option<RelRef<'_>>,
        known_names: &HashSet<String>,
    ) -> Option<FnEffect> {
        match self.mode {
            // Offline: report only names the gateway knows to be risky.
            Mode::Offline => Some(classify_static(&[name]))
                .filter(|e| !matches!(e, FnEffect::ReadOnly | FnEffect::Unknown)),
            Mode::Unavailable(_) => Some(FnEffect::Unknown),
            Mode::Loaded => {
                if rel.is_some_and(|r| self.has_column(r, name)) {
                    return None;
                }
                if self.functions.contains_key(name) {
                    return Some(self.classify(&[name]));
                }
                // Neither a column nor a function the catalog knows: a
                // field of a composite value, or a function created since
                // the catalog was read. Known relations say which.
                match rel {
                    Some(r) if self.relations.contains_key(r.name) => Some(FnEffect::Unknown),
                    _ if known_names.contains(name) || self.field_names.contains(name) => None,
                    _ => Some(FnEffect::Unknown),
                }
            }
        }
    }

    /// True when every relation `rel` may resolve to has column `column`.
    pub fn has_column(&self, rel: RelRef<'_>, column: &str) -> bool {
        let Some(all) = self.relations.get(rel.name) else {
            return false;
        };
        let mut candidates = all
            .iter()
            .filter(|r| rel.schema.is_none_or(|s| s == r.schema))
            .peekable();
        candidates.peek().is_some() && candidates.all(|r| r.columns.contains(column))
    }

    /// Why reading `rel` may have an effect, if it may: a relation it may
    /// resolve to runs code (a view, a row security policy, a foreign
    /// table, a column type whose casts run user code), or the catalog
    /// does not know it (created since it was read, or no catalog at all).
    /// System schemas are never in doubt.
    pub fn relation_runs_code(&self, rel: RelRef<'_>) -> Option<&str> {
        if matches!(rel.schema, Some("pg_catalog" | "information_schema")) {
            return None;
        }
        match self.mode {
            Mode::Offline => return None,
            Mode::Unavailable(_) => {
                return Some("no catalog: the relation may be a view that runs code")
            }
            Mode::Loaded => {}
        }
        let Some(all) = self.relations.get(rel.name) else {
            return Some("the relation is not in the catalog (created since it was read?)");
        };
        let mut candidates = all
            .iter()
            .filter(|r| rel.schema.is_none_or(|s| s == r.schema))
            .peekable();
        if candidates.peek().is_none() {
            return Some("the relation is not in the catalog (created since it was read?)");
        }
        candidates.find_map(|r| r.runs_code.as_deref())
    }

    /// The kinds (`pg_class.relkind`) `rel` may resolve to; empty when
    /// the catalog does not know it.
    pub fn relation_kinds(&self, rel: RelRef<'_>) -> Vec<char> {
        self.relations
            .get(rel.name)
            .map(|all| {
                all.iter()
                    .filter(|r| rel.schema.is_none_or(|s| s == r.schema))
                    .map(|r| r.kind)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `schema.name` of the relation with OID `oid` and of every table it
    /// inherits from, nearest first (a partition's parents included).
    pub fn lineage(&self, oid: u32) -> Vec<&Origin> {
        let mut out: Vec<&Origin> = Vec::new();
        let mut todo = vec![oid];
        let mut seen = HashSet::new();
        while let Some(o) = todo.pop() {
            if !seen.insert(o) {
                continue;
            }
            if let Some(rel) = self.origins.get(&o) {
                out.push(rel);
                todo.extend(rel.parents.iter().copied());
            }
        }
        out
    }

    /// Whether operator `name` may run untrusted user code.
    pub fn operator_untrusted(&self, name: &str) -> bool {
        match self.mode {
            Mode::Loaded => self.untrusted_operators.contains(name),
            Mode::Offline => false,
            Mode::Unavailable(_) => true,
        }
    }

    /// Whether setting `name` (lower case) is one only a superuser or the
    /// server configuration may change.
    pub fn setting_privileged(&self, name: &str) -> bool {
        match self.mode {
            Mode::Loaded => self.privileged_settings.contains(name),
            _ => PRIVILEGED_SETTINGS.contains(&name),
        }
    }

    /// Whether a cast to type `name` may run untrusted user code.
    pub fn cast_untrusted(&self, name: &str) -> bool {
        match self.mode {
            Mode::Loaded => self.untrusted_types.contains(name),
            Mode::Offline => false,
            Mode::Unavailable(_) => true,
        }
    }
}

#[cfg(test)]
mod tests;
