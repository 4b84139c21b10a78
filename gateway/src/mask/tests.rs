//! Plans from RowDescriptions against a hand-built catalog (pure logic),
//! and the proof against the parse tree.

use std::collections::HashMap;

use super::*;
use crate::catalog::{Mode, Origin, Relation};
use crate::pg::row::{decode_row, Field};

fn rule(table: &str, column: &str, method: &str) -> MaskRule {
    MaskRule {
        table: table.into(),
        column: column.into(),
        method: method.into(),
    }
}

fn catalog() -> Catalog {
    let mut c = Catalog::empty(Mode::Loaded);
    let rel = |schema: &str, name: &str, kind: char, cols: &[&str], parents: Vec<u32>| Origin {
        schema: schema.into(),
        name: name.into(),
        kind,
        columns: cols
            .iter()
            .enumerate()
            .map(|(i, n)| (i as i16 + 1, n.to_string()))
            .collect::<HashMap<_, _>>(),
        parents,
    };
    c.origins.insert(
        100,
        rel("public", "people", 'r', &["id", "email", "name"], vec![]),
    );
    c.origins
        .insert(200, rel("public", "people_v", 'v', &["email"], vec![]));
    // A partition whose columns are numbered differently.
    c.origins.insert(
        300,
        rel(
            "public",
            "people_2026",
            'r',
            &["name", "id", "email"],
            vec![100],
        ),
    );
    for (name, kind) in [
        ("people", 'r'),
        ("people_v", 'v'),
        ("people_2026", 'r'),
        ("other", 'r'),
    ] {
        c.relations.insert(
            name.into(),
            vec![Relation {
                schema: "public".into(),
                kind,
                ..Relation::default()
            }],
        );
    }
    // A view in information_schema, and a name that is a table in public
    // and a view in another schema (search_path decides).
    c.relations.insert(
        "tables".into(),
        vec![Relation {
            schema: "information_schema".into(),
            kind: 'v',
            ..Relation::default()
        }],
    );
    c.relations.insert(
        "pg_stats".into(),
        vec![Relation {
            schema: "pg_catalog".into(),
            kind: 'v',
            columns: ["most_common_vals".to_string()].into_iter().collect(),
            ..Relation::default()
        }],
    );
    c.relations.insert(
        "shadow".into(),
        ["public", "svc"]
            .iter()
            .zip(['r', 'v'])
            .map(|(schema, kind)| Relation {
                schema: schema.to_string(),
                kind,
                ..Relation::default()
            })
            .collect(),
    );
    c.untrusted_operators.insert("~<~".into());
    c.relations.insert(
        "people".into(),
        vec![Relation {
            schema: "public".into(),
            kind: 'r',
            columns: ["id", "email", "name", "age"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..Relation::default()
        }],
    );
    for f in ["lower", "count", "my_fn", "row_to_json", "to_json", "age"] {
        c.functions.insert(
            f.into(),
            crate::catalog::FnInfo {
                user_defined: f == "my_fn",
                ..Default::default()
            },
        );
    }
    c
}

fn field(name: &str, table_oid: u32, column: i16, type_oid: u32) -> Field {
    Field {
        name: name.as_bytes().to_vec(),
        table_oid,
        column,
        type_oid,
        type_len: -1,
        type_mod: -1,
        format: 0,
    }
}

#[test]
fn columns_are_placed_through_the_catalog_and_parents() {
    let cat = catalog();
    let rules = [rule("public.people", "email", "partial")];
    let p = Plan::new(
        &[
            field("id", 100, 1, 23),
            field("email", 100, 2, 25),
            field("n", 0, 0, 20),
        ],
        &rules,
        &cat,
    )
    .unwrap();
    assert_eq!(p.columns, vec![None, Some((Method::Partial, true)), None]);
    // The partition's email is attribute 3, and masked through its parent.
    let p = Plan::new(
        &[field("e", 300, 3, 25), field("n", 300, 1, 25)],
        &rules,
        &cat,
    )
    .unwrap();
    assert_eq!(p.columns, vec![Some((Method::Partial, true)), None]);
    // The strongest of several rules; an unqualified rule matches any schema.
    let two = [
        rule("public.people", "email", "hash"),
        rule("people", "email", "null"),
    ];
    let p = Plan::new(&[field("email", 100, 2, 25)], &two, &cat).unwrap();
    assert_eq!(p.columns, vec![Some((Method::Null, true))]);
    // A masked column of another type: not a string (becomes NULL).
    let p = Plan::new(
        &[field("id", 100, 1, 23)],
        &[rule("public.people", "id", "redact")],
        &cat,
    )
    .unwrap();
    assert_eq!(p.columns, vec![Some((Method::Redact, false))]);
}

#[test]
fn unplaceable_columns_stop_the_result() {
    let cat = catalog();
    let rules = [rule("public.people", "email", "redact")];
    let e = Plan::new(&[field("email", 200, 1, 25)], &rules, &cat).unwrap_err();
    assert!(e.contains("people_v, which is not a table"), "{e}");
    let e = Plan::new(&[field("email", 999, 1, 25)], &rules, &cat).unwrap_err();
    assert!(e.contains("OID 999"), "{e}");
    // A column added since the catalog was read.
    let e = Plan::new(&[field("card", 100, 7, 25)], &rules, &cat).unwrap_err();
    assert!(e.contains("column 7 of public.people"), "{e}");
    // System columns hold no user data.
    let p = Plan::new(&[field("ctid", 100, -1, 27)], &rules, &cat).unwrap();
    assert!(!p.masks());
}

#[test]
fn rows_are_rewritten() {
    let cat = catalog();
    let rules = [rule("public.people", "email", "partial")];
    let p = Plan::new(
        &[field("id", 100, 1, 23), field("email", 100, 2, 25)],
        &rules,
        &cat,
    )
    .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"k");
    let row = crate::pg::row::row_frame(&[Some(&b"7"[..]), Some(&b"alice@example.com"[..])]);
    let out = p.apply(&row.body, true, &key).unwrap();
    assert_eq!(
        decode_row(&out.body).unwrap(),
        vec![Some(&b"7"[..]), Some(&b"a****@example.com"[..])]
    );
    let row = crate::pg::row::row_frame::<&[u8]>(&[Some(b"7"), None]);
    let out = p.apply(&row.body, true, &key).unwrap();
    assert_eq!(decode_row(&out.body).unwrap(), vec![Some(&b"7"[..]), None]);
    assert!(p.apply(b"\x00\x02\x00", true, &key).is_err());
}

fn proof(sql: &str) -> Result<(), String> {
    let cat = catalog();
    let facts = crate::sql::analyze_with(sql, Default::default(), &cat);
    prove(
        sql,
        Default::default(),
        &facts,
        &[rule("public.people", "email", "redact")],
        &cat,
    )
}

#[test]
fn plain_selects_are_proven() {
    for sql in [
        "select email from people",
        "select * from people",
        "select p.* from people p",
        "select id, email from people where id = 1 order by email",
        "select email, count(*) from people group by email",
        "select * from (select id, name from people) s",
        "select name, 1 + 1 from people",
        "select lower(name) from people",
        "select email from people_2026",
        "select distinct on (email) email, name from people order by email, name",
        "select p.age, people.age from people p, people",
    ] {
        assert_eq!(proof(sql), Ok(()), "{sql}");
    }
}

#[test]
fn what_could_carry_a_masked_value_unlabelled_is_refused() {
    for (sql, why) in [
        (
            "select lower(email) from people",
            "masked column email is used",
        ),
        (
            "select id from people where email::int > 0",
            "masked column email is used",
        ),
        (
            "select name from people union select email from people",
            "UNION",
        ),
        (
            "select x from (select email as x from people) s",
            "masked column email is used",
        ),
        ("select * from (select * from people) s", "* inside"),
        ("select p from people p", "whole-row"),
        ("select row_to_json(people) from people", "whole-row"),
        ("select * from people natural full join other", "NATURAL"),
        (
            "select 1 from people join other using (email)",
            "USING column",
        ),
        ("select my_fn(id) from people", "user-defined"),
        ("select nosuch(id) from people", "unknown_function"),
        ("select * from people_v", "is a view"),
        ("select email into t2 from people", "select_into"),
        (
            "delete from people returning email",
            "only the results of SELECT",
        ),
        ("select email from people for update", "flagged"),
        (
            "copy (select email from people) to stdout",
            "only the results of SELECT",
        ),
        (
            "declare c cursor for select email from people",
            "only the results of SELECT",
        ),
        (
            "explain select email from people",
            "only the results of SELECT",
        ),
        (
            "with c as (select email from people) select email from c",
            "masked column email is used",
        ),
        ("select email from nowhere", "relation_runs_code"),
        (
            "select 1 from people where exists (select * from other)",
            "* inside",
        ),
        (
            "select email from people order by email using ~<~",
            "user-defined operator",
        ),
        (
            "select lower(e) from people p(i, n, e)",
            "column aliases on a table",
        ),
        (
            "select e from people p(i, n, e) full join other o(i2, e) using (e)",
            "column aliases",
        ),
        ("select email from other as email", "whole-row"),
        (
            "select s.most_common_vals from people p, pg_stats s",
            "sample values",
        ),
        ("select p.to_json from people p", "attribute notation"),
        (
            "select id from people p where p.to_json::text like '%x%'",
            "attribute notation",
        ),
        (
            "select s.age from (select age from people) s",
            "attribute notation",
        ),
        (
            "select p.age from other p where exists (select 1 from people p)",
            "attribute notation",
        ),
        (
            "create table t2 as select email from people",
            "only the results of SELECT",
        ),
        (
            "select email from people, information_schema.tables",
            "is a view",
        ),
        ("select email from people, shadow", "shadow is a view"),
    ] {
        let e = proof(sql).unwrap_err();
        assert!(e.contains(why), "{sql}: {e}");
    }
    let facts = crate::sql::analyze("select email from people", Default::default());
    let e = prove(
        "select email from people",
        Default::default(),
        &facts,
        &[rule("public.people", "email", "redact")],
        &Catalog::empty(Mode::Offline),
    )
    .unwrap_err();
    assert!(e.contains("catalog is not loaded"), "{e}");
}

#[test]
fn a_function_spelled_like_a_masked_column_refuses() {
    let mut cat = catalog();
    cat.functions.insert(
        "email".into(),
        crate::catalog::FnInfo {
            user_defined: true,
            ..Default::default()
        },
    );
    let sql = "select o.email from other o";
    let facts = crate::sql::analyze_with(sql, Default::default(), &cat);
    let e = prove(
        sql,
        Default::default(),
        &facts,
        &[rule("public.people", "email", "redact")],
        &cat,
    )
    .unwrap_err();
    assert!(e.contains("named like the masked column email"), "{e}");
}

#[test]
fn texts_that_name_a_prepared_statement_or_portal() {
    for sql in [
        "execute p(1)",
        "fetch all from c",
        "explain analyze execute p",
        "create table t as execute p",
        "select 1; fetch 1 in c",
        "do $$ begin perform 1; end $$",
        "call p()",
        "not sql at all (",
    ] {
        assert!(names_prepared(sql, Default::default()), "{sql}");
    }
    assert!(!names_prepared("select 1", Default::default()));
    assert!(!names_prepared("close c", Default::default()));
}

#[test]
fn rules_are_checked() {
    assert!(check_rules(&[rule("public.people", "email", "redact")]).is_ok());
    assert!(check_rules(&[rule("public.people", "email", "shuffle")])
        .unwrap_err()
        .contains("unknown masking method"));
    assert!(check_rules(&[rule("", "email", "null")]).is_err());
}

#[test]
fn the_hash_key_is_created_private_and_shared_through_its_file() {
    let dir = std::env::temp_dir().join(format!("mask-key-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = MaskingConfig {
        hash_key_file: dir.join("mask.key"),
    };
    let one = Masker::new(cfg.clone());
    let a = value::mask(Method::Hash, true, b"x", true, one.key().unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cfg.hash_key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Another gateway reading the same file hashes alike.
    let two = Masker::new(cfg.clone());
    assert_eq!(
        a,
        value::mask(Method::Hash, true, b"x", true, two.key().unwrap())
    );
    // A file that is not a key is an error naming it, not a panic.
    std::fs::write(dir.join("bad.key"), "not hex").unwrap();
    let bad = Masker::new(MaskingConfig {
        hash_key_file: dir.join("bad.key"),
    });
    assert!(bad.key().unwrap_err().to_string().contains("bad.key"));
    std::fs::remove_dir_all(dir).ok();
}
