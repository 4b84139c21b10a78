//! psql through the gateway: queries, meta-commands, \copy, denials that
//! leave the session usable, transactions, cancel, connection selection,
//! and the held credential staying hidden.

use std::process::Stdio;
use std::time::{Duration, Instant};

use portcullis_e2e::clients::{psql, psql_cmd};
use portcullis_e2e::{gateway, idp, postgres, temp_dir, wait_for};

const ALICE: &str = "alice@example.com";

fn alice() -> String {
    idp().token("alice")
}

#[test]
fn select_then_denied_then_select_again() {
    let r = psql(
        gateway(),
        ALICE,
        &alice(),
        &[
            "-c",
            "select count(*) from items",
            "-c",
            "delete from items",
            "-c",
            "with gone as (delete from items returning *) select count(*) from gone",
            "-c",
            "select name from items where id = 3",
        ],
    );
    assert!(r.stdout.contains("10"), "{}", r.all());
    assert!(
        r.stderr
            .contains("ERROR:  portcullis: statement denied: DELETE without WHERE on public.items"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr
            .contains("(inside a CTE, PREPARE or EXPLAIN) without WHERE on public.items"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("item 3"), "{}", r.all());
    assert_eq!(
        postgres().psql_super("app", "select count(*) from items"),
        "10"
    );
}

#[test]
fn meta_commands_work() {
    let r = psql(
        gateway(),
        ALICE,
        &alice(),
        &["-c", "\\d", "-c", "\\d items", "-c", "\\dt"],
    );
    assert!(r.ok, "{}", r.all());
    assert!(r.stdout.contains("items"), "{}", r.all());
    assert!(r.stdout.contains("Table \"public.items\""), "{}", r.all());
    assert!(r.stdout.contains("secret"), "{}", r.all());
}

#[test]
fn copy_out_and_in_for_the_etl_group() {
    let dir = temp_dir("copy");
    let csv = dir.join("notes.csv");
    std::fs::write(&csv, "copied one\ncopied two\n").unwrap();
    let r = psql(
        gateway(),
        ALICE,
        &alice(),
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "\\copy items (id, name) to stdout with csv",
            "-c",
            &format!("\\copy notes (body) from '{}' with csv", csv.display()),
        ],
    );
    assert!(r.ok, "{}", r.all());
    assert!(r.stdout.contains("7,item 7"), "{}", r.all());
    assert!(r.stdout.contains("COPY 2"), "{}", r.all());
    assert_eq!(
        postgres().psql_super(
            "app",
            "select count(*) from notes where body like 'copied %'"
        ),
        "2"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn reader_cannot_write_and_ddl_needs_approval() {
    let bob = idp().token("bob");
    let r = psql(
        gateway(),
        "bob@example.com",
        &bob,
        &[
            "-c",
            "insert into notes (body) values ('bob was here')",
            "-c",
            "create table bob_t (x int)",
            "-c",
            "select 42",
        ],
    );
    assert!(
        r.stderr
            .contains("read-only access: insert is not a read-only statement"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr
            .contains("approval required: approvals service not configured"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("42"), "{}", r.all());
    assert_eq!(
        postgres().psql_super(
            "app",
            "select count(*) from notes where body = 'bob was here'"
        ),
        "0"
    );
}

#[test]
fn multi_statement_message_gets_the_strictest_decision() {
    let r = psql(
        gateway(),
        ALICE,
        &alice(),
        &[
            "-c",
            "insert into notes (body) values ('multi'); delete from items",
        ],
    );
    assert!(
        r.stderr.contains("42501") || r.stderr.contains("statement denied"),
        "{}",
        r.all()
    );
    assert_eq!(
        postgres().psql_super("app", "select count(*) from notes where body = 'multi'"),
        "0"
    );
}

#[test]
fn denial_inside_a_transaction_aborts_it_like_postgres() {
    let r = psql(
        gateway(),
        ALICE,
        &alice(),
        &[
            "-c",
            "begin",
            "-c",
            "insert into notes (body) values ('in tx')",
            "-c",
            "delete from items",
            "-c",
            "select 1",
            "-c",
            "commit",
            "-c",
            "select 'usable'",
        ],
    );
    assert!(r.stderr.contains("statement denied"), "{}", r.all());
    assert!(
        r.stderr.contains("current transaction is aborted"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("ROLLBACK"), "{}", r.all());
    assert!(r.stdout.contains("usable"), "{}", r.all());
    assert_eq!(
        postgres().psql_super("app", "select count(*) from notes where body = 'in tx'"),
        "0"
    );
}

#[test]
fn long_sleep_is_cancelled_from_psql() {
    let child = psql_cmd(gateway(), ALICE, &alice(), "app")
        .args(["-c", "select pg_sleep(61)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pg = postgres();
    pg.wait_value("app", "select count(*) from pg_stat_activity where state = 'active' and query = 'select pg_sleep(61)'", "1");
    let started = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("canceling statement due to user request"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn unknown_connection_lists_the_ones_open_to_the_user() {
    let r = portcullis_e2e::clients::Run::from(
        psql_cmd(gateway(), ALICE, &alice(), "nope")
            .args(["-c", "select 1"])
            .output()
            .unwrap(),
    );
    assert!(!r.ok);
    assert!(r.stderr.contains("connection \"nope\" does not exist or is not open to you; connections you may use: app, app_tls, app_verified, app_wrong_ca"), "{}", r.all());
    // `restricted` is for dba only and is neither listed nor usable.
    let r = portcullis_e2e::clients::Run::from(
        psql_cmd(gateway(), ALICE, &alice(), "restricted")
            .args(["-c", "select 1"])
            .output()
            .unwrap(),
    );
    assert!(
        r.stderr.contains("3D000") || r.stderr.contains("is not open to you"),
        "{}",
        r.all()
    );
}

#[test]
fn upstream_shows_the_real_user_and_never_the_credential() {
    let pg = postgres();
    let r = psql(
        gateway(),
        ALICE,
        &alice(),
        &[
            "-c",
            "select application_name, usename from pg_stat_activity where pid = pg_backend_pid()",
            "-c",
            "show all",
            "-c",
            "select current_setting('application_name')",
            "-c",
            "select * from no_such_table",
        ],
    );
    assert!(
        r.stdout.contains("portcullis:alice@example.com"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("svc"), "{}", r.all());
    assert!(
        !r.all().contains(&pg.svc_password),
        "credential leaked to the client"
    );
    assert!(
        !gateway().log().contains(&pg.svc_password),
        "credential leaked to the log"
    );
}

#[test]
fn admin_endpoints_report_health_and_metrics() {
    let gw = gateway();
    let r = psql(gw, ALICE, &alice(), &["-c", "delete from items"]);
    assert!(r.stderr.contains("denied"), "{}", r.all());
    assert_eq!(gw.admin_get("/healthz").0, 200);
    let (code, body) = gw.admin_get("/readyz");
    assert_eq!(code, 200);
    assert!(body.contains("policy="), "{body}");
    wait_for("deny counter", Duration::from_secs(10), || {
        let m = gw.admin_get("/metrics").1;
        m.lines().any(|l| {
            l.starts_with("portcullis_statements_total{action=\"deny\"}") && !l.ends_with(" 0")
        })
    });
    let m = gw.admin_get("/metrics").1;
    assert!(m.contains("portcullis_parse_seconds_bucket"), "{m}");
    assert!(m.contains("portcullis_decision_seconds_count"), "{m}");
    assert!(m.contains("portcullis_connections_total"), "{m}");
}

#[test]
fn upstream_tls_require_and_verify_full() {
    let tok = alice();
    for db in ["app_tls", "app_verified"] {
        let r = portcullis_e2e::clients::Run::from(
            psql_cmd(gateway(), ALICE, &tok, db)
                .args([
                    "-A",
                    "-t",
                    "-c",
                    "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
                ])
                .output()
                .unwrap(),
        );
        assert!(r.ok, "{db}: {}", r.all());
        assert_eq!(r.stdout.trim(), "t", "{db}: upstream link is not encrypted");
    }
    let r = portcullis_e2e::clients::Run::from(
        psql_cmd(gateway(), ALICE, &tok, "app_wrong_ca")
            .args(["-c", "select 1"])
            .output()
            .unwrap(),
    );
    assert!(!r.ok);
    assert!(r.stderr.contains("TLS to database"), "{}", r.all());
}

/// Plain EXPLAIN carries the inner statement's facts: a reader cannot
/// EXPLAIN a statement that calls a writing function (the planner may run
/// functions), while EXPLAIN of a plain SELECT works.
#[test]
fn explain_carries_the_inner_statements_facts() {
    let bob = idp().token("bob");
    let r = psql(
        gateway(),
        "bob@example.com",
        &bob,
        &[
            "-c",
            "explain select nextval('notes_id_seq')",
            "-c",
            "explain select * from items",
        ],
    );
    assert!(
        r.stderr
            .contains("read-only access: explain is not a read-only statement"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("Seq Scan on items"), "{}", r.all());
}
