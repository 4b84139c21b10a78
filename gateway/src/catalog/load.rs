//! Reads a database's catalog over the connection's held credential: one
//! login, a handful of catalog queries, then the analyser itself decides
//! which views and row-security policies run code that is not read-only
//! (types: [`super::types`]).

use std::collections::HashMap;

use super::client::{Client, Row};
use super::{types, Catalog, CatalogError, FnInfo, Mode, Relation};
use crate::config::ConnectionConfig;
use crate::sql::{analyze_with, ParseSettings};

/// `true` for a function `p` (language `l`) the gateway trusts not to
/// write: a built-in (OID below FirstNormalObjectId), or a plain C/internal
/// function (only a superuser can create one) declared IMMUTABLE or STABLE.
/// Aggregates are `internal` and IMMUTABLE whatever their support
/// functions do, so they are judged by those ([`AGG_TRUSTED`]).
pub(super) const TRUSTED: &str = "(p.oid < 16384 OR (p.prokind = 'f' \
    AND l.lanname IN ('c', 'internal') AND p.provolatile IN ('i', 's')))";

/// `true` for an aggregate `p` all of whose support functions are trusted.
const AGG_TRUSTED: &str = "(p.prokind = 'a' AND NOT EXISTS (SELECT 1 FROM pg_aggregate g \
    JOIN pg_proc s ON s.oid IN (g.aggtransfn::oid, g.aggfinalfn::oid, g.aggcombinefn::oid, \
    g.aggserialfn::oid, g.aggdeserialfn::oid, g.aggmtransfn::oid, g.aggminvtransfn::oid, \
    g.aggmfinalfn::oid) JOIN pg_language sl ON sl.oid = s.prolang WHERE g.aggfnoid = p.oid \
    AND NOT (s.oid < 16384 OR (s.prokind = 'f' AND sl.lanname IN ('c', 'internal') \
    AND s.provolatile IN ('i', 's')))))";

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
            "SELECT n.nspname, p.proname, p.oid < 16384 AND p.provolatile = 'v', \
             NOT ({TRUSTED} OR {AGG_TRUSTED}), p.oid >= 16384 \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             JOIN pg_language l ON l.oid = p.prolang"
        ))
        .await?;
    for r in &functions {
        let info = FnInfo {
            builtin_volatile: flag(r, 2),
            user_untrusted: flag(r, 3),
            user_defined: flag(r, 4),
        };
        let (schema, name) = (text(r, 0), text(r, 1));
        cat.functions.entry(name.clone()).or_default().merge(info);
        cat.qualified.entry((schema, name)).or_default().merge(info);
    }

    let columns = client
        .rows(
            "SELECT n.nspname, c.relname, a.attname, c.relkind, a.atttypid::text, c.oid::text, \
             a.attnum::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid \
             WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p', 'c') AND a.attnum <> 0 \
             AND NOT a.attisdropped",
        )
        .await?;
    let mut by_rel: HashMap<(String, String), Relation> = HashMap::new();
    let mut column_types: Vec<((String, String), u32)> = Vec::new();
    for r in &columns {
        let key = (text(r, 0), text(r, 1));
        let kind = text(r, 3).chars().next().unwrap_or('?');
        let rel = by_rel.entry(key.clone()).or_insert_with(|| Relation {
            schema: key.0.clone(),
            kind,
            ..Relation::default()
        });
        let origin = cat
            .origins
            .entry(text(r, 5).parse().unwrap_or(0))
            .or_insert_with(|| crate::catalog::Origin {
                schema: key.0.clone(),
                name: key.1.clone(),
                kind,
                ..Default::default()
            });
        if let Ok(n) = text(r, 6).parse::<i16>() {
            origin.columns.insert(n, text(r, 2));
        }
        rel.columns.insert(text(r, 2));
        cat.field_names.insert(text(r, 2));
        if text(r, 3) == "f" {
            // Reading a foreign table runs its wrapper (a program, a
            // remote query...).
            rel.runs_code = Some("foreign table: reading it runs its wrapper's code".into());
        }
        column_types.push((key, text(r, 4).parse().unwrap_or(0)));
    }

    let parents = client
        .rows("SELECT inhrelid::text, inhparent::text FROM pg_inherits")
        .await?;
    for r in &parents {
        let (child, parent) = (
            text(r, 0).parse().unwrap_or(0),
            text(r, 1).parse().unwrap_or(0),
        );
        if let Some(o) = cat.origins.get_mut(&child) {
            o.parents.push(parent);
        }
    }

    let outs = client
        .rows(
            "SELECT DISTINCT n FROM pg_proc p, unnest(p.proargnames, p.proargmodes) AS a(n, m) \
             WHERE m IN ('o', 'b', 't') AND n <> ''",
        )
        .await?;
    cat.field_names.extend(outs.iter().map(|r| text(r, 0)));

    let operators = client
        .rows(&format!(
            "SELECT DISTINCT o.oprname FROM pg_operator o \
             JOIN pg_proc p ON p.oid = o.oprcode JOIN pg_language l ON l.oid = p.prolang \
             WHERE NOT {TRUSTED}"
        ))
        .await?;
    cat.untrusted_operators = operators.iter().map(|r| text(r, 0)).collect();

    let settings = client
        .rows("SELECT lower(name) FROM pg_settings WHERE context <> 'user'")
        .await?;
    cat.privileged_settings = settings.iter().map(|r| text(r, 0)).collect();

    // Types whose casts, input or checks run user code, and the relations
    // whose columns have them.
    let types = types::load(client, &cat).await?;
    cat.untrusted_types = types.names.clone();
    cat.untrusted_type_oids = types.untrusted.clone();
    for ((schema, name), oid) in column_types {
        if let Some(why) = types.column_risk(oid) {
            let rel = by_rel.entry((schema.clone(), name)).or_default();
            if rel.runs_code.is_none() {
                rel.runs_code = Some(why);
            }
        }
    }
    for ((_, name), rel) in by_rel {
        cat.relations.entry(name).or_default().push(rel);
    }

    // Code that runs when a relation is read: user views and row security
    // policies, each analysed as the statement the server runs.
    let code = client
        .rows(
            "SELECT 'view', n.nspname, c.relname, pg_get_viewdef(c.oid) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'v' AND c.oid >= 16384 \
             UNION ALL SELECT 'policy', n.nspname, c.relname, \
             'SELECT 1 FROM ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
             || ' WHERE ' || pg_get_expr(p.polqual, p.polrelid) FROM pg_policy p \
             JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE p.polqual IS NOT NULL",
        )
        .await?;
    mark_code(&mut cat, &code);
    Ok(cat)
}

/// Analyses views and policies with the catalog built so far, until
/// nested views stop changing.
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

/// Marks a relation as running code; true when that is new.
fn mark(cat: &mut Catalog, _what: &str, schema: &str, name: String, why: String) -> bool {
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

pub(super) fn text(r: &Row, i: usize) -> String {
    r.get(i).cloned().flatten().unwrap_or_default()
}

pub(super) fn flag(r: &Row, i: usize) -> bool {
    r.get(i).and_then(|v| v.as_deref()) == Some("t")
}
