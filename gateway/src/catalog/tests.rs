//! The analyser against an in-memory catalog (pure logic; the loader is
//! tested against a real cluster in `tests/tests/soundness.rs`).

use std::collections::HashSet;

use super::{Catalog, FnInfo, Mode, Relation};
use crate::sql::{analyze_with, ParseSettings, StatementFacts};

/// A database with table `public.t(a, b)`, a user function `bump(t)` in
/// plpgsql, a user `lower(int)` shadowing the built-in name, built-ins
/// `upper` and `nextval`, and a view `public.v` whose query calls `bump`.
fn catalog() -> Catalog {
    let mut c = Catalog::empty(Mode::Loaded);
    let builtin = FnInfo::default();
    let user = FnInfo {
        user_untrusted: true,
        ..FnInfo::default()
    };
    for (schema, name, info) in [
        ("pg_catalog", "upper", builtin),
        ("pg_catalog", "lower", builtin),
        ("public", "lower", user),
        (
            "pg_catalog",
            "nextval",
            FnInfo {
                builtin_volatile: true,
                ..builtin
            },
        ),
        ("public", "bump", user),
        ("pg_catalog", "count", builtin),
    ] {
        c.functions.entry(name.into()).or_default().merge(info);
        c.qualified
            .entry((schema.into(), name.into()))
            .or_default()
            .merge(info);
    }
    let cols = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<HashSet<_>>();
    c.relations.insert(
        "t".into(),
        vec![Relation {
            schema: "public".into(),
            columns: cols(&["a", "b", "bump", "ctid"]),
            runs_code: None,
            kind: 'r',
        }],
    );
    c.relations.insert(
        "u".into(),
        vec![
            Relation {
                schema: "public".into(),
                columns: cols(&["a", "bump"]),
                runs_code: None,
                kind: 'r',
            },
            Relation {
                schema: "other".into(),
                columns: cols(&["a"]),
                runs_code: None,
                kind: 'r',
            },
        ],
    );
    c.relations.insert(
        "v".into(),
        vec![Relation {
            schema: "public".into(),
            columns: cols(&["a"]),
            runs_code: Some("view public.v: unknown_function".into()),
            kind: 'v',
        }],
    );
    c.untrusted_operators.insert("===".into());
    c.untrusted_types.insert("checked".into());
    c.privileged_settings
        .insert("session_replication_role".into());
    c
}

fn facts(sql: &str) -> StatementFacts {
    analyze_with(sql, ParseSettings::default(), &catalog()).remove(0)
}

fn read_only(sql: &str) -> bool {
    facts(sql).read_only
}

#[test]
fn columns_stay_columns() {
    for sql in [
        "SELECT t.a, t.b FROM t",
        "SELECT x.a FROM t AS x WHERE x.b > 1",
        "SELECT t.bump FROM t",
        "SELECT public.t.a FROM public.t",
        "SELECT u.bump FROM public.u",
        "SELECT upper(t.a) FROM t",
        "SELECT t.ctid FROM t",
        "SELECT count(*) FROM t",
    ] {
        let f = facts(sql);
        assert!(f.read_only, "{sql}: {:?}", f.flags);
    }
}

#[test]
fn attribute_notation_reaches_functions() {
    for sql in [
        // t has no column nextval: the server calls nextval(t).
        "SELECT t.nextval FROM t",
        "SELECT (t).nextval FROM t",
        "SELECT (t.*).bump FROM t",
        "SELECT s.bump FROM (SELECT 1 AS a) s",
        "WITH t AS (SELECT 1 AS a) SELECT t.bump FROM t",
        // u resolves through search_path: other.u has no column bump.
        "SELECT u.bump FROM u",
        "SELECT 1 FROM t WHERE (t).bump IS NULL",
        "DECLARE c CURSOR FOR SELECT x.nextval FROM t x",
        "COPY (SELECT t.nextval FROM t) TO STDOUT",
        "EXPLAIN SELECT t.nextval FROM t",
        "SELECT (ROW(1)).bump",
    ] {
        let f = facts(sql);
        assert!(!f.read_only, "{sql} counted read-only");
        assert!(
            f.functions.iter().any(|n| n == "nextval" || n == "bump"),
            "{sql}: {:?}",
            f.functions
        );
    }
}

#[test]
fn user_functions_shadowing_builtins_are_unknown() {
    assert!(read_only("SELECT upper('a')"));
    let f = facts("SELECT lower(1)");
    assert!(!f.read_only);
    assert!(f.flags.contains(&"unknown_function".to_string()));
    assert!(!read_only("SELECT public.bump(t) FROM t"));
    assert!(!read_only("SELECT no_such_function()"));
}

#[test]
fn relations_operators_and_casts_that_run_code() {
    let f = facts("SELECT a FROM v");
    assert!(!f.read_only);
    assert!(f.flags.contains(&"relation_runs_code".to_string()));
    assert!(!read_only("SELECT 1 === 2"));
    assert!(read_only("SELECT 1 + 2"));
    assert!(!read_only("SELECT 'x'::checked"));
    assert!(!read_only("SELECT CAST('x' AS checked)"));
    assert!(read_only("SELECT '1'::int"));
}

#[test]
fn privileged_settings_are_flagged() {
    for sql in [
        "SET session_replication_role = replica",
        "SELECT set_config('session_replication_role', 'replica', false)",
    ] {
        assert!(
            facts(sql).flags.contains(&"privileged_setting".to_string()),
            "{sql}"
        );
    }
    assert!(!facts("SET work_mem = '64MB'")
        .flags
        .contains(&"privileged_setting".to_string()));
}

#[test]
fn unknown_catalogs_assume_the_worst_and_say_so() {
    let f = analyze_with(
        "SELECT t.a FROM t",
        ParseSettings::default(),
        &Catalog::unavailable(),
    )
    .remove(0);
    assert!(!f.read_only);
    assert!(f.flags.contains(&"catalog_unavailable".to_string()));
    let f = analyze_with("SELECT 1", ParseSettings::default(), &Catalog::stale()).remove(0);
    assert!(f.read_only, "no name that could be a call");
    let f = analyze_with(
        "SELECT upper('a')",
        ParseSettings::default(),
        &Catalog::stale(),
    )
    .remove(0);
    assert!(f.flags.contains(&"catalog_stale".to_string()));
}

#[test]
fn offline_assumes_builtins_only() {
    let off = Catalog::offline();
    let f = analyze_with("SELECT t.a FROM t", ParseSettings::default(), &off).remove(0);
    assert!(f.read_only);
    let f = analyze_with("SELECT t.nextval FROM t", ParseSettings::default(), &off).remove(0);
    assert!(
        !f.read_only,
        "a known writing built-in by attribute notation"
    );
}

#[test]
fn catalog_changes_are_detected_from_facts() {
    for (sql, changes) in [
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            true,
        ),
        ("ALTER TABLE t DROP COLUMN a", true),
        ("SELECT bump(t) FROM t", true),
        ("DO 'BEGIN END'", true),
        ("INSERT INTO t VALUES (1)", false),
        ("UPDATE t SET a = 1", false),
        ("SELECT 1", false),
        ("SELECT nextval('s')", false),
    ] {
        assert_eq!(facts(sql).may_change_catalog(), changes, "{sql}");
    }
}

#[test]
fn calls_the_text_does_not_show_are_named() {
    assert!(facts("SELECT 1 === 2")
        .functions
        .contains(&"operator(===)".to_string()));
    assert!(facts("SELECT 'x'::checked")
        .functions
        .contains(&"cast(checked)".to_string()));
    assert!(facts("SELECT t.nextval FROM t")
        .functions
        .contains(&"nextval".to_string()));
}

#[test]
fn notify_writes_listen_reads() {
    assert!(!read_only("NOTIFY chan, 'x'"));
    assert!(read_only("LISTEN chan"));
}

#[tokio::test]
async fn a_catalog_that_cannot_be_read_is_the_unavailable_one() {
    let conn: crate::config::ConnectionConfig = toml::from_str(
        "name = \"x\"\nupstream = \"127.0.0.1:1\"\nuser = \"svc\"\npassword_env = \"PORTCULLIS_TEST_NO_SUCH_VAR\"",
    )
    .expect("config");
    let cache = super::CatalogCache::new(std::sync::Arc::new(conn));
    cache.ready(std::time::Duration::from_secs(10)).await;
    let (generation, cat) = cache.current();
    assert_eq!(generation, 1, "the failed first load is published");
    assert_eq!(cat.mode, Mode::Unavailable("catalog_unavailable"));
    let ticket = cache.request_refresh();
    assert!(!cache.covers(ticket), "a failed load covers no request");
}

/// The review's cases (each verified to write on a real server).
#[test]
fn review_cases_are_not_read_only() {
    let mut c = catalog();
    c.untrusted_types.insert("d2".into());
    c.untrusted_type_oids.insert(16394);
    c.untrusted_operators.insert("=".into());
    c.untrusted_operators.insert(">=".into());
    c.field_names.insert("a".into());
    let f = |sql: &str| analyze_with(sql, ParseSettings::default(), &c).remove(0);
    for sql in [
        "SELECT 'x'::d2",
        "SELECT * FROM jsonb_to_record('{\"a\":\"x\"}') AS t(a checked)",
        "SELECT * FROM xmltable('/r' PASSING '<r/>'::xml COLUMNS a checked PATH 'a')",
        "SELECT array_in('{x}', 16394, -1)",
        "SELECT CASE t.a WHEN t.b THEN 1 END FROM t",
        "SELECT 1 FROM t WHERE t.a IN (SELECT b FROM t)",
        "SELECT t.a BETWEEN 1 AND 2 FROM t",
        "SELECT 1 FROM t JOIN u USING (a)",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 2) \
         CYCLE n SET c TO checked 'x' DEFAULT checked 'y' USING p SELECT n FROM r",
        "SELECT t.fresh FROM t",
        "SELECT s.fresh FROM (SELECT 1 AS a) s",
        "SELECT * FROM new_view",
        "DISCARD ALL",
    ] {
        assert!(!f(sql).read_only, "{sql}");
    }
    // Fields the statement or the catalog defines stay fields.
    for sql in [
        "SELECT s.total FROM (SELECT count(*) AS total FROM t) s",
        "SELECT s.a FROM (SELECT 1 AS x) s",
        "SELECT f.x FROM upper('a') AS f(x)",
        "DISCARD PLANS",
    ] {
        assert!(f(sql).read_only, "{sql}: {:?}", f(sql).flags);
    }
    assert!(f("SELECT set_config('ROLE', 'x', false)")
        .flags
        .contains(&"role_change".to_string()));
    let unavailable = Catalog::unavailable();
    let v = analyze_with("SELECT * FROM v", ParseSettings::default(), &unavailable).remove(0);
    assert!(
        !v.read_only,
        "no catalog: a relation may be a view that writes"
    );
    assert!(v.flags.contains(&"catalog_unavailable".to_string()));
}

#[tokio::test]
async fn a_failed_catalog_read_is_retried() {
    // A server that accepts and hangs up: every load fails; count the tries.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let tries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = tries.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(s);
        }
    });
    std::env::set_var("PORTCULLIS_TEST_CATALOG_PW", "x");
    let conn: crate::config::ConnectionConfig = toml::from_str(&format!(
        "name = \"x\"\nupstream = \"127.0.0.1:{port}\"\nuser = \"svc\"\npassword_env = \"PORTCULLIS_TEST_CATALOG_PW\""
    ))
    .expect("config");
    let cache = super::CatalogCache::new(std::sync::Arc::new(conn));
    cache.ready(std::time::Duration::from_secs(10)).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while tries.load(std::sync::atomic::Ordering::SeqCst) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not retried within 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        cache.current().1.mode,
        Mode::Unavailable("catalog_unavailable")
    );
}
