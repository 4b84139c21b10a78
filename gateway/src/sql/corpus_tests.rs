//! A corpus of real statements and the facts the gateway must derive.
//! Each case lists the kind, read_only, the exact set of tables with their
//! access, and flags that must be present (`!flag`: must be absent).

#[cfg(test)]
use super::{analyze, ParseSettings, StatementFacts};

#[cfg_attr(not(test), allow(dead_code))]
struct Case {
    sql: &'static str,
    kind: &'static str,
    read_only: bool,
    tables: &'static [&'static str],
    flags: &'static [&'static str],
}

const fn c(
    sql: &'static str,
    kind: &'static str,
    read_only: bool,
    tables: &'static [&'static str],
    flags: &'static [&'static str],
) -> Case {
    Case {
        sql,
        kind,
        read_only,
        tables,
        flags,
    }
}

#[rustfmt::skip]
const CORPUS: &[Case] = &[
    // reads
    c("select 1", "select", true, &[], &[]),
    c("SELECT * FROM users WHERE id = 1", "select", true, &["public.users:read"], &["!no_where"]),
    c("select u.email from public.users u join orders o on o.user_id = u.id where o.total > 10", "select", true, &["public.orders:read", "public.users:read"], &[]),
    c("select count(*) from users limit 10", "select", true, &["public.users:read"], &[]),
    c("select * from sales.orders tablesample system (1)", "select", true, &["sales.orders:read"], &[]),
    c("select * from (select id from a) s where exists (select 1 from b where b.id = s.id)", "select", true, &["public.a:read", "public.b:read"], &[]),
    c("with recent as (select * from orders where created > now() - interval '1 day') select count(*) from recent", "select", true, &["public.orders:read"], &[]),
    c("with recursive t(n) as (select 1 union all select n + 1 from t where n < 10) select sum(n) from t", "select", true, &[], &[]),
    c("select * from a union select * from b except select * from c", "select", true, &["public.a:read", "public.b:read", "public.c:read"], &[]),
    c("select lower(email), upper(name), coalesce(x, 0) from users", "select", true, &["public.users:read"], &[]),
    c("select jsonb_build_object('a', 1) -> 'a'", "select", true, &[], &[]),
    c("select id from items order by embedding <-> '[1,2,3]' limit 5", "select", true, &["public.items:read"], &[]),
    c("select id from items order by embedding <=> '[1,2,3]' limit 5", "select", true, &["public.items:read"], &[]),
    c("select id, embedding <+> '[1,2,3]' as d from items", "select", true, &["public.items:read"], &[]),
    c("select id from items order by embedding <#> $1 limit $2", "select", true, &["public.items:read"], &[]),
    c("select * from pg_class where relname = 'x'", "select", true, &["pg_catalog.pg_class:read"], &[]),
    c("select * from information_schema.tables", "select", true, &["information_schema.tables:read"], &[]),
    c("select n.nspname, c.relname from pg_catalog.pg_class c left join pg_catalog.pg_namespace n on n.oid = c.relnamespace where pg_catalog.pg_table_is_visible(c.oid)", "select", true, &["pg_catalog.pg_class:read", "pg_catalog.pg_namespace:read"], &[]),
    c("select pg_sleep(1)", "select", true, &[], &[]),
    c("select * from users for update", "select", false, &["public.users:read"], &["row_lock"]),
    c("select nextval('s')", "select", false, &[], &["volatile_function"]),
    c("select my_schema.do_things(1)", "select", false, &[], &["unknown_function"]),
    c("select set_config('role', 'admin', false)", "select", false, &[], &["role_change", "set_config"]),
    c("select set_config('work_mem', '64MB', false)", "select", false, &[], &["set_config", "!role_change"]),
    c("select dblink_exec('host=x', 'drop table t')", "select", false, &[], &["dynamic_sql"]),
    c("select query_to_xml('select * from secrets', true, false, '')", "select", false, &[], &["dynamic_sql"]),
    c("select pg_read_file('/etc/passwd')", "select", false, &[], &["file_access"]),
    c("select pg_terminate_backend(123)", "select", false, &[], &["admin_function"]),
    c("select * into newtable from users", "select", false, &["public.newtable:ddl", "public.users:read"], &["select_into"]),
    c("values (1), (2)", "select", true, &[], &[]),
    c("table users", "select", true, &["public.users:read"], &[]),
    // writes
    c("insert into users (email) values ('a@b')", "insert", false, &["public.users:write"], &["!bulk_write"]),
    c("insert into archive select * from users where created < '2020-01-01'", "insert", false, &["public.archive:write", "public.users:read"], &["bulk_write"]),
    c("insert into users (id, email) values (1, 'x') on conflict (id) do update set email = excluded.email", "insert", false, &["public.users:write"], &[]),
    c("insert into t default values returning id", "insert", false, &["public.t:write"], &[]),
    c("update users set email = 'x' where id = 1", "update", false, &["public.users:write"], &["!no_where"]),
    c("update users set active = false", "update", false, &["public.users:write"], &["no_where", "bulk_write"]),
    c("update users set active = false where 1 = 1", "update", false, &["public.users:write"], &["no_where", "constant_where"]),
    c("update users u set email = x.e from staging x where u.id = x.id", "update", false, &["public.staging:read", "public.users:write"], &["!no_where"]),
    c("DELETE FROM users", "delete", false, &["public.users:write"], &["no_where", "bulk_write"]),
    c("delete from users where true", "delete", false, &["public.users:write"], &["no_where"]),
    c("delete from users where id in (select user_id from bans)", "delete", false, &["public.bans:read", "public.users:write"], &["!no_where"]),
    c("delete from orders o using users u where o.user_id = u.id and u.banned", "delete", false, &["public.orders:write", "public.users:read"], &[]),
    c("merge into accounts a using payments p on a.id = p.account_id when matched then update set balance = a.balance - p.amount when not matched then insert (id, balance) values (p.account_id, 0)", "merge", false, &["public.accounts:write", "public.payments:read"], &[]),
    c("with d as (delete from sessions where expires < now() returning *) select count(*) from d", "select", false, &["public.sessions:write"], &["write_in_cte"]),
    c("with moved as (delete from a returning *) insert into b select * from moved", "insert", false, &["public.a:write", "public.b:write"], &["write_in_cte", "bulk_write"]),
    c("with users as (select 1 as id) delete from users", "delete", false, &["public.users:write"], &["no_where"]),
    // An UPDATE/DELETE without WHERE hidden in a CTE, PREPARE or EXPLAIN ANALYZE is still one.
    c("with x as (delete from users returning *) select count(*) from x", "select", false, &["public.users:write"], &["no_where", "bulk_write", "write_in_cte"]),
    c("with x as (update users set a = 1 returning id) select * from x", "select", false, &["public.users:write"], &["no_where", "write_in_cte"]),
    c("prepare wipe as delete from users", "prepare", false, &["public.users:write"], &["no_where"]),
    c("explain analyze update users set a = 1", "explain", false, &["public.users:write"], &["no_where", "explain_analyze"]),
    c("with x as (insert into a select * from b returning 1) select 1", "select", false, &["public.a:write", "public.b:read"], &["bulk_write", "write_in_cte"]),
    c("truncate users, orders", "truncate", false, &["public.orders:write", "public.users:write"], &["bulk_write"]),
    c("lock table users in access exclusive mode", "lock", false, &["public.users:write"], &[]),
    c("notify channel, 'payload'", "notify", false, &[], &[]),
    // COPY
    c("copy users to stdout with csv", "copy", true, &["public.users:read"], &["copy_to"]),
    c("copy (select email from users) to stdout", "copy", true, &["public.users:read"], &["copy_to"]),
    c("copy users from stdin", "copy", false, &["public.users:write"], &["copy_from", "bulk_write"]),
    c("copy users to '/tmp/users.csv'", "copy", false, &["public.users:read"], &["copy_file"]),
    c("copy users from program 'curl http://x'", "copy", false, &["public.users:write"], &["copy_program"]),
    c("copy users to program 'gzip > /tmp/x.gz'", "copy", false, &["public.users:read"], &["copy_program"]),
    // DDL
    c("create table t (id int primary key, email text)", "create_table", false, &["public.t:ddl"], &["ddl"]),
    // A foreign key adds triggers to the referenced table: it is changed too.
    c("create table child (id int references parent(id))", "create_table", false, &["public.child:ddl", "public.parent:ddl"], &["ddl"]),
    c("create table t2 as select * from users", "create_table_as", false, &["public.t2:ddl", "public.users:read"], &["ddl"]),
    c("create materialized view mv as select count(*) from orders", "create_table_as", false, &["public.mv:ddl", "public.orders:read"], &["ddl"]),
    c("create view v as select * from users", "create_view", false, &["public.users:read", "public.v:ddl"], &["ddl"]),
    c("create index concurrently idx on users (email)", "create_index", false, &["public.users:ddl"], &["ddl"]),
    c("alter table users add column age int", "alter_table", false, &["public.users:ddl"], &["ddl"]),
    c("alter table users rename to people", "rename", false, &["public.users:ddl"], &["ddl"]),
    c("drop table users, s.orders cascade", "drop", false, &["public.users:ddl", "s.orders:ddl"], &["ddl"]),
    c("drop index if exists idx", "drop", false, &["public.idx:ddl"], &["ddl"]),
    c("drop function f(int)", "drop", false, &[], &["ddl"]),
    c("create function f() returns int language sql as 'select 1'", "create_function", false, &[], &["ddl"]),
    c("create trigger trg before insert on users for each row execute function f()", "create_trigger", false, &["public.users:ddl"], &["ddl"]),
    c("create extension vector", "create_extension", false, &[], &["ddl"]),
    c("create schema reporting", "create_schema", false, &[], &["ddl"]),
    c("create sequence s", "create_sequence", false, &["public.s:ddl"], &["ddl"]),
    c("comment on table users is 'people'", "comment", false, &[], &["ddl"]),
    c("create policy p on users using (owner = current_user)", "create_policy", false, &["public.users:ddl"], &["ddl"]),
    c("refresh materialized view mv", "refresh_materialized_view", false, &["public.mv:write"], &[]),
    // privileges and roles
    c("grant select on users to bob", "grant", false, &["public.users:ddl"], &["privilege"]),
    c("revoke all on users from public", "grant", false, &["public.users:ddl"], &["privilege"]),
    c("grant admin to bob", "grant_role", false, &[], &["privilege", "role_change"]),
    c("create role hacker superuser login", "create_role", false, &[], &["role_change"]),
    c("alter role bob with superuser", "alter_role", false, &[], &["role_change"]),
    c("alter default privileges grant select on tables to bob", "alter_default_privileges", false, &[], &["privilege"]),
    c("set role admin", "set", false, &[], &["role_change"]),
    c("set session authorization postgres", "set", false, &[], &["role_change"]),
    c("reset role", "reset", true, &[], &["!role_change"]),
    // session, transactions, utility
    c("set search_path = app, public", "set", true, &[], &["search_path"]),
    c("set local statement_timeout = '5s'", "set", true, &[], &[]),
    c("show work_mem", "show", true, &[], &[]),
    c("begin isolation level serializable", "transaction", true, &[], &[]),
    c("commit", "transaction", true, &[], &[]),
    c("savepoint a", "transaction", true, &[], &[]),
    c("prepare transaction 'x'", "transaction", false, &[], &["two_phase"]),
    c("prepare q (int) as delete from users where id = $1", "prepare", false, &["public.users:write"], &[]),
    c("execute q(1)", "execute", false, &[], &["execute_prepared"]),
    c("deallocate all", "deallocate", true, &[], &[]),
    c("discard all", "discard", false, &[], &["discard"]),
    c("discard temp", "discard", false, &[], &["discard"]),
    c("discard plans", "discard", true, &[], &["!discard"]),
    c("declare c cursor for select * from users", "declare_cursor", true, &["public.users:read"], &[]),
    c("fetch 10 from c", "fetch", true, &[], &[]),
    c("listen events", "listen", true, &[], &[]),
    c("explain select * from users", "explain", true, &["public.users:read"], &["explain"]),
    c("explain delete from users", "explain", false, &["public.users:write"], &["no_where", "explain"]),
    c("explain select nextval('s')", "explain", false, &[], &["explain", "volatile_function"]),
    c("explain analyze delete from users", "explain", false, &["public.users:write"], &["explain_analyze"]),
    c("explain (analyze false) delete from users", "explain", false, &["public.users:write"], &["no_where", "explain", "!explain_analyze"]),
    // maintenance and administration
    c("vacuum (verbose, analyze) users", "vacuum", false, &["public.users:write"], &[]),
    c("analyze users", "vacuum", false, &["public.users:write"], &[]),
    c("reindex table users", "reindex", false, &["public.users:write"], &[]),
    c("cluster users using users_pkey", "cluster", false, &["public.users:write"], &[]),
    c("checkpoint", "checkpoint", false, &[], &["admin"]),
    c("alter system set wal_level = logical", "alter_system", false, &[], &["admin", "alter_system"]),
    c("load 'auto_explain'", "load", false, &[], &["admin"]),
    c("create database other", "create_database", false, &[], &["admin"]),
    // opaque code
    c("do $$ begin execute 'drop table users'; end $$", "do", false, &[], &["dynamic_sql"]),
    c("call refresh_everything()", "call", false, &[], &["procedure_call"]),
    // unparseable
    c("selec 1 from", "unparsed", false, &[], &["parse_error"]),
    c("delete from", "unparsed", false, &[], &["parse_error"]),
];

/// The corpus statements, for other tests (VM vs interpreter, the
/// soundness oracle in `tests/`).
pub fn corpus_sql() -> impl Iterator<Item = &'static str> {
    CORPUS.iter().map(|c| c.sql)
}

#[cfg(test)]
fn one(sql: &str) -> StatementFacts {
    let mut v = analyze(sql, ParseSettings::default());
    assert_eq!(v.len(), 1, "{sql}");
    v.remove(0)
}

#[test]
fn corpus_facts() {
    assert!(CORPUS.len() >= 80, "corpus has {} statements", CORPUS.len());
    let mut failures = Vec::new();
    for case in CORPUS {
        let f = one(case.sql);
        let tables: Vec<String> = f
            .tables
            .iter()
            .map(|t| {
                format!(
                    "{}.{}:{}",
                    t.schema,
                    t.name,
                    serde_json::to_value(t.access).unwrap().as_str().unwrap()
                )
            })
            .collect();
        let mut want: Vec<String> = case.tables.iter().map(|s| s.to_string()).collect();
        want.sort();
        let mut problems = Vec::new();
        if f.kind != case.kind {
            problems.push(format!("kind {} != {}", f.kind, case.kind));
        }
        if f.read_only != case.read_only {
            problems.push(format!("read_only {} != {}", f.read_only, case.read_only));
        }
        if tables != want {
            problems.push(format!("tables {tables:?} != {want:?}"));
        }
        for flag in case.flags {
            match flag.strip_prefix('!') {
                Some(absent) if f.flags.iter().any(|x| x == absent) => {
                    problems.push(format!("flag {absent} present"))
                }
                None if !f.flags.iter().any(|x| x == flag) => {
                    problems.push(format!("flag {flag} missing"))
                }
                _ => {}
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}\n    {}\n    flags: {:?}",
                case.sql,
                problems.join("; "),
                f.flags
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        CORPUS.len(),
        failures.join("\n")
    );
}

#[test]
fn multi_statement_is_split_and_flagged() {
    let v = analyze("select 1; delete from users; ", ParseSettings::default());
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].text, "select 1");
    assert_eq!(v[1].text, "delete from users");
    assert!(v
        .iter()
        .all(|f| f.flags.iter().any(|x| x == "multi_statement")));
}

#[test]
fn fingerprint_ignores_constants() {
    assert_eq!(
        one("select * from t where id = 1").fingerprint,
        one("select * from t where id = 42").fingerprint
    );
    assert_ne!(
        one("select * from t where id = 1").fingerprint,
        one("delete from t where id = 1").fingerprint
    );
}

#[test]
fn fingerprint_ignores_literals_in_types_and_lists() {
    for (a, b) in [
        ("select '{}'::int[3]", "select '{}'::int[5]"),
        ("select current_time(1)", "select current_time(3)"),
        ("select 1 where 2 in (1, 2)", "select 1 where 2 in (10, 2)"),
    ] {
        assert_eq!(one(a).fingerprint, one(b).fingerprint, "{a}");
    }
}

#[test]
fn columns_limit_and_where() {
    let f = one("select u.email, name from users u where u.id = 3 limit 7");
    assert_eq!(f.limit, Some(7));
    assert!(f.has_where);
    let cols: Vec<(String, String, &str)> = f
        .columns
        .iter()
        .map(|c| (c.table.clone(), c.name.clone(), c.used_in))
        .collect();
    assert!(
        cols.contains(&("public.users".into(), "email".into(), "select")),
        "{cols:?}"
    );
    assert!(
        cols.contains(&("public.users".into(), "name".into(), "select")),
        "{cols:?}"
    );
    assert!(
        cols.contains(&("public.users".into(), "id".into(), "where")),
        "{cols:?}"
    );
    let f = one("update users set email = 'x' where id = 1");
    assert!(f
        .columns
        .iter()
        .any(|c| c.name == "email" && c.used_in == "set" && c.table == "public.users"));
}

#[test]
fn standard_conforming_strings_off_changes_parsing() {
    // With standard_conforming_strings off, \' escapes the quote and the
    // text is one statement; the gateway must parse it the way the server
    // will.
    let sql = r"select 'a\'; delete from users; --'";
    let on = analyze(sql, ParseSettings::default());
    let off = analyze(
        sql,
        ParseSettings {
            standard_strings_off: true,
        },
    );
    assert_eq!(on.len(), 2, "{on:?}");
    assert_eq!(off.len(), 1, "{off:?}");
    assert_eq!(off[0].kind, "select");
}

#[test]
fn empty_query_is_empty() {
    let f = one("  -- just a comment\n");
    assert_eq!(f.kind, "empty");
}
