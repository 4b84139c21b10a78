//! Types whose use runs user code: a type with untrusted input functions,
//! a domain whose check is not read-only, the target of an untrusted cast —
//! and, closed over, every domain, array, composite, range and multirange
//! built on one. Relations with columns of such types (or of types with
//! untrusted implicit casts or casts to json, which run with no cast in
//! the text) count as running code when read.

use std::collections::{HashMap, HashSet};

use super::client::Client;
use super::load::{flag, text, TRUSTED};
use super::{Catalog, CatalogError};
use crate::sql::{analyze_with, ParseSettings};

/// What the loader learned about types.
#[derive(Debug, Default)]
pub(super) struct Types {
    /// Names of types a cast to which may run untrusted code.
    pub names: HashSet<String>,
    /// OIDs of types whose input (or checks) run untrusted code.
    pub untrusted: HashSet<u32>,
    /// OIDs of types whose values run untrusted code when compared, cast
    /// implicitly, turned into JSON or read in.
    risky: HashSet<u32>,
    /// Type names by OID (user types).
    name_of: HashMap<u32, String>,
}

impl Types {
    /// Why a column of type `oid` makes reading its relation run code.
    pub fn column_risk(&self, oid: u32) -> Option<String> {
        self.risky.contains(&oid).then(|| {
            let name = self.name_of.get(&oid).map_or("?", String::as_str);
            format!("a column of type {name}, whose casts, checks or input run user code")
        })
    }
}

/// Adds every type built on one in `set` (domain, array, composite,
/// range, multirange), until nothing changes.
fn close(set: &mut HashSet<u32>, parts: &HashMap<u32, Vec<u32>>) {
    loop {
        let before = set.len();
        for (t, components) in parts {
            if components.iter().any(|c| set.contains(c)) {
                set.insert(*t);
            }
        }
        if set.len() == before {
            return;
        }
    }
}

fn oid(s: &str) -> u32 {
    s.trim().parse().unwrap_or(0)
}

/// Reads the types and computes the sets, analysing domain checks with
/// the functions already in `cat`.
pub(super) async fn load(client: &mut Client, cat: &Catalog) -> Result<Types, CatalogError> {
    let mut t = Types::default();
    let rows = client
        .rows(
            "SELECT t.oid::text, t.typname, concat_ws(',', NULLIF(t.typbasetype, 0)::text, \
             NULLIF(t.typelem, 0)::text, \
             (SELECT r.rngsubtype::text FROM pg_range r WHERE r.rngtypid = t.oid), \
             (SELECT r.rngtypid::text FROM pg_range r WHERE r.rngmultitypid = t.oid), \
             (SELECT string_agg(a.atttypid::text, ',') FROM pg_attribute a \
              WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)) \
             FROM pg_type t WHERE t.oid >= 16384",
        )
        .await?;
    let mut parts: HashMap<u32, Vec<u32>> = HashMap::new();
    for r in &rows {
        let o = oid(&text(r, 0));
        t.name_of.insert(o, text(r, 1));
        let components = text(r, 2).split(',').map(oid).filter(|c| *c != 0).collect();
        parts.insert(o, components);
    }

    let io = client
        .rows(&format!(
            "SELECT DISTINCT t.oid::text FROM pg_type t JOIN pg_proc p \
             ON p.oid IN (t.typinput::oid, t.typreceive::oid) \
             JOIN pg_language l ON l.oid = p.prolang WHERE NOT {TRUSTED}"
        ))
        .await?;
    t.untrusted.extend(io.iter().map(|r| oid(&text(r, 0))));

    let checks = client
        .rows(
            "SELECT t.oid::text, 'SELECT 1 WHERE ' || pg_get_expr(k.conbin, 0) \
             FROM pg_constraint k JOIN pg_type t ON t.oid = k.contypid WHERE k.contype = 'c'",
        )
        .await?;
    for r in &checks {
        let writes = analyze_with(&text(r, 1), ParseSettings::default(), cat)
            .iter()
            .any(|f| !f.read_only);
        if writes {
            t.untrusted.insert(oid(&text(r, 0)));
        }
    }
    close(&mut t.untrusted, &parts);

    // Casts: a cast to the target runs the function; an implicit or
    // assignment cast, or one to json/jsonb (the JSON builders use it),
    // runs with no cast in the text.
    let casts = client
        .rows(&format!(
            "SELECT c.castsource::text, tt.typname, \
             c.castcontext IN ('i', 'a') OR tt.typname IN ('json', 'jsonb') \
             FROM pg_cast c JOIN pg_type tt ON tt.oid = c.casttarget \
             JOIN pg_proc p ON p.oid = c.castfunc JOIN pg_language l ON l.oid = p.prolang \
             WHERE NOT {TRUSTED}"
        ))
        .await?;
    t.names = t
        .untrusted
        .iter()
        .filter_map(|o| t.name_of.get(o).cloned())
        .collect();
    t.risky = t.untrusted.clone();
    for r in &casts {
        t.names.insert(text(r, 1));
        if flag(r, 2) {
            t.risky.insert(oid(&text(r, 0)));
        }
    }
    close(&mut t.risky, &parts);
    Ok(t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn closure_reaches_containers() {
        let parts = [(2, vec![1]), (3, vec![2]), (4, vec![25]), (5, vec![3, 23])]
            .into_iter()
            .collect();
        let mut set = [1].into_iter().collect();
        super::close(&mut set, &parts);
        let mut got: Vec<u32> = set.into_iter().collect();
        got.sort();
        assert_eq!(got, vec![1, 2, 3, 5]);
    }
}
