//! Reads a database's catalog over the connection's held credential: one
//! login, a handful of catalog queries, then the analyser itself decides
//! which views, row-security policies and domain checks run code that is
//! not read-only.

use std::collections::HashMap;

use super::client::{Client, Row};
use super::{Catalog, CatalogError, FnInfo, Mode, Relation};
use crate::config::ConnectionConfig;
use crate::sql::{analyze_with, ParseSettings};

/// `true` for a function the gateway trusts not to write: a built-in (OID
/// below FirstNormalObjectId), or a C/internal function (only a superuser
/// can create one) declared IMMUTABLE or STABLE.
const TRUSTED: &str = "(p.oid < 16384 OR (l.lanname IN ('c', 'internal') \
                       AND p.provolatile IN ('i', 's')))";

/// Nested views are re-analysed until nothing changes, at most this often.
const MAX_PASSES: usize = 8;

/// Logs in to the connection's database and reads its catalog.
pub async fn load(conn: &ConnectionConfig) -> Result<Catalog, CatalogError> {
    let mut client = Client::connect(conn, "portcullis catalog").await?;
    load_with(&mut client).await
}

/// Reads the catalog over an open client.
pub async fn load_with(client: &mut Client) -> Result<Catalog, CatalogError> {
    client.rows("SET search_path = pg_catalog, pg_temp").await?;
    let mut cat = Catalog::empty(Mode::Loaded);
    let functions = client
        .rows(&format!(
            "SELECT n.nspname, p.proname, p.oid < 16384 AND p.provolatile = 'v', NOT {TRUSTED} \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             JOIN pg_language l ON l.oid = p.prolang"
        ))
        .await?;
    for r in &functions {
        let info = FnInfo {
            builtin_volatile: flag(r, 2),
            user_untrusted: flag(r, 3),
        };
        let (schema, name) = (text(r, 0), text(r, 1));
        cat.functions.entry(name.clone()).or_default().merge(info);
        cat.qualified.entry((schema, name)).or_default().merge(info);
    }

    let columns = client
        .rows(
            "SELECT n.nspname, c.relname, a.attname FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid \
             WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p') AND a.attnum <> 0 \
             AND NOT a.attisdropped",
        )
        .await?;
    let mut by_rel: HashMap<(String, String), Relation> = HashMap::new();
    for r in &columns {
        let (schema, rel) = (text(r, 0), text(r, 1));
        by_rel
            .entry((schema.clone(), rel))
            .or_insert_with(|| Relation {
                schema,
                ..Relation::default()
            })
            .columns
            .insert(text(r, 2));
    }
    for ((_, name), rel) in by_rel {
        cat.relations.entry(name).or_default().push(rel);
    }

    let operators = client
        .rows(&format!(
            "SELECT DISTINCT o.oprname FROM pg_operator o \
             JOIN pg_proc p ON p.oid = o.oprcode JOIN pg_language l ON l.oid = p.prolang \
             WHERE NOT {TRUSTED}"
        ))
        .await?;
    cat.untrusted_operators = operators.iter().map(|r| text(r, 0)).collect();

    let types = client
        .rows(&format!(
            "SELECT t.typname FROM pg_cast c JOIN pg_type t ON t.oid = c.casttarget \
             JOIN pg_proc p ON p.oid = c.castfunc JOIN pg_language l ON l.oid = p.prolang \
             WHERE NOT {TRUSTED} \
             UNION SELECT t.typname FROM pg_type t JOIN pg_proc p ON p.oid = t.typinput \
             JOIN pg_language l ON l.oid = p.prolang WHERE NOT {TRUSTED}"
        ))
        .await?;
    cat.untrusted_types = types.iter().map(|r| text(r, 0)).collect();

    let settings = client
        .rows("SELECT lower(name) FROM pg_settings WHERE context <> 'user'")
        .await?;
    cat.privileged_settings = settings.iter().map(|r| text(r, 0)).collect();

    // Code that runs when a relation is read or a value is cast: user
    // views, row security policies, domain checks. Each is analysed as
    // the statement the server runs.
    let code = client
        .rows(
            "SELECT 'view', n.nspname, c.relname, pg_get_viewdef(c.oid) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'v' AND c.oid >= 16384 \
             UNION ALL SELECT 'policy', n.nspname, c.relname, \
             'SELECT 1 FROM ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
             || ' WHERE ' || pg_get_expr(p.polqual, p.polrelid) FROM pg_policy p \
             JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE p.polqual IS NOT NULL \
             UNION ALL SELECT 'domain', '', t.typname, 'SELECT 1 WHERE ' \
             || pg_get_expr(k.conbin, 0) FROM pg_constraint k \
             JOIN pg_type t ON t.oid = k.contypid WHERE k.contype = 'c'",
        )
        .await?;
    mark_code(&mut cat, &code);
    Ok(cat)
}

/// Analyses views, policies and domain checks with the catalog built so
/// far, until nested views stop changing.
fn mark_code(cat: &mut Catalog, code: &[Row]) {
    for _ in 0..MAX_PASSES {
        let mut marks = Vec::new();
        for r in code {
            let (what, schema, name, sql) = (text(r, 0), text(r, 1), text(r, 2), text(r, 3));
            let effect = analyze_with(&sql, ParseSettings::default(), cat)
                .into_iter()
                .find(|f| !f.read_only)
                .map(|f| f.flags.join(","));
            if let Some(flags) = effect {
                marks.push((what, schema, name, flags));
            }
        }
        let mut changed = false;
        for (what, schema, name, flags) in marks {
            let why = format!("{what} {schema}.{name}: {flags}");
            changed |= mark(cat, &what, &schema, name, why);
        }
        if !changed {
            return;
        }
    }
    // Still changing: views nested deeper than the passes count as running
    // code.
    for r in code {
        let (what, schema, name) = (text(r, 0), text(r, 1), text(r, 2));
        mark(
            cat,
            &what,
            &schema,
            name,
            "views nested too deep to analyse".into(),
        );
    }
}

/// Marks a domain as untrusted or a relation as running code; true when
/// that is new.
fn mark(cat: &mut Catalog, what: &str, schema: &str, name: String, why: String) -> bool {
    if what == "domain" {
        return cat.untrusted_types.insert(name);
    }
    match cat
        .relations
        .get_mut(&name)
        .and_then(|v| v.iter_mut().find(|r| r.schema == schema))
    {
        Some(rel) if rel.runs_code.is_none() => {
            rel.runs_code = Some(why);
            true
        }
        _ => false,
    }
}

fn text(r: &Row, i: usize) -> String {
    r.get(i).cloned().flatten().unwrap_or_default()
}

fn flag(r: &Row, i: usize) -> bool {
    r.get(i).and_then(|v| v.as_deref()) == Some("t")
}
