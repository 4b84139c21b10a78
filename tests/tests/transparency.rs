//! What a client can tell of the gateway apart from policy decisions:
//! nothing. Backend pid, NOTIFY sender pid, ParameterStatus
//! application_name, client encodings (set at startup and mid-session,
//! including SJIS whose characters contain a backslash byte), startup
//! settings in `options`, and a server FATAL relayed exactly once.

use std::process::Stdio;
use std::time::Duration;

use portcullis_e2e::clients::{client, client_direct, psql_cmd};
use portcullis_e2e::{gateway, idp, postgres, wait_for};
use serde_json::Value;

const ALICE: &str = "alice@example.com";

#[test]
fn psycopg_sees_the_real_session() {
    let run = client(
        "python3",
        &["clients/transparency.py"],
        gateway(),
        ALICE,
        &idp().token("alice"),
    );
    assert!(run.ok, "{}", run.all());
    let line = run.stdout.lines().last().unwrap_or_default();
    let out: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {}", run.all()));
    assert_eq!(out["pid_told"], out["pid_real"], "{out}");
    assert_eq!(out["notify_pid"], out["pid_real"], "{out}");
    assert_eq!(out["notify_payload"], "hello", "{out}");
    assert_eq!(out["app_reported"], "transparency-e2e", "{out}");
    assert_eq!(
        out["app_show"], "transparency-e2e (portcullis:alice@example.com)",
        "SHOW shows the user suffix by design: {out}"
    );
    assert_eq!(out["enc_after_set"], "LATIN9", "{out}");
    assert_eq!(out["latin9_literal"], "prix: 5 €", "{out}");
    assert_eq!(out["latin9_column"], "Café", "{out}");
    assert_eq!(out["sjis_literal"], "表示", "{out}");
    assert_eq!(out["sjis_column"], "列表", "{out}");
    assert_eq!(out["sjis_param"], "表", "{out}");
    assert_eq!(out["sjis_startup_enc"], "SJIS", "{out}");
    assert_eq!(out["sjis_startup"], "表示", "{out}");
    assert_eq!(out["isolation"], "serializable", "{out}");
    assert_eq!(out["statement_timeout"], "4321ms", "{out}");
    let role = out["role_option"].as_str().unwrap_or_default();
    assert!(
        role.contains("startup setting role=postgres denied"),
        "{out}"
    );
}

/// Terminates (as an administrator, directly) the backend running
/// `select pg_sleep(60)` for application `app`, once it is running.
fn terminate_when_running(app: &str) {
    wait_for("the statement to run", Duration::from_secs(20), || {
        postgres().psql_super(
            "app",
            &format!(
                "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' \
                 and application_name like '{app}%'"
            ),
        ) == "1"
    });
    postgres().psql_super(
        "app",
        &format!(
            "select pg_terminate_backend(pid) from pg_stat_activity \
             where query = 'select pg_sleep(60)' and application_name like '{app}%'"
        ),
    );
}

/// psql: the server's FATAL once, nothing made up after it.
#[test]
fn terminated_backend_gives_exactly_one_fatal_to_psql() {
    let child = psql_cmd(gateway(), ALICE, &idp().token("alice"), "app")
        .env("PGAPPNAME", "psql-terminated")
        .args(["-c", "select pg_sleep(60)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    terminate_when_running("psql-terminated");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("FATAL").count(), 1, "{err}");
    assert!(
        err.contains("terminating connection due to administrator command"),
        "{err}"
    );
    assert!(!err.contains("portcullis"), "{err}");
}

/// psycopg: the driver gets 57P01 and a closed connection.
#[test]
fn terminated_backend_gives_psycopg_the_servers_error() {
    let out = run_terminated(
        false,
        "python3",
        &["clients/terminated.py"],
        "to-be-terminated",
    );
    assert_eq!(out["error"], "57P01", "{out}");
    assert_eq!(out["closed"], true, "{out}");
}

/// psql through the gateway with `PGOPTIONS` set: (success, stdout,
/// stderr).
fn psql_with_options(options: &str, sql: &str) -> (bool, String, String) {
    let out = psql_cmd(gateway(), ALICE, &idp().token("alice"), "app")
        .env("PGOPTIONS", options)
        .args(["-Atc", sql])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A startup parameter the policy refuses ends the session with FATAL
/// 42501 and the policy's reason; one it allows takes effect.
#[test]
fn startup_parameters_are_decided() {
    let (ok, out, err) = psql_with_options("-c statement_timeout=1234", "show statement_timeout");
    assert!(ok, "{err}");
    assert_eq!(out, "1234ms");
    let (ok, _, err) = psql_with_options("-c session_authorization=postgres", "select 1");
    assert!(!ok);
    assert!(
        err.contains("FATAL:  portcullis: startup setting session_authorization=postgres denied"),
        "{err}"
    );
    let (_, _, err) = psql_with_options("-d 5", "select 1");
    assert!(
        err.contains("option -d is not supported through the gateway"),
        "{err}"
    );
}

/// Runs a driver's script with its final `select pg_sleep(60)`
/// (application `app`) terminated by an administrator once it runs.
fn run_terminated(direct: bool, program: &str, args: &'static [&'static str], app: &str) -> Value {
    let program = program.to_string();
    let handle = std::thread::spawn(move || {
        if direct {
            client_direct(&program, args)
        } else {
            client(&program, args, gateway(), ALICE, &idp().token("alice"))
        }
    });
    terminate_when_running(app);
    let run = handle.join().unwrap();
    assert!(run.ok, "{}", run.all());
    serde_json::from_str(run.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {}", run.all()))
}

/// A driver's transparency script through the gateway sees the real
/// session, and its termination exactly as it does directly.
fn driver(program: &str, args: &'static [&'static str], app: &str) {
    let direct = run_terminated(true, program, args, app);
    let out = run_terminated(false, program, args, app);
    assert_eq!(out["pid_told"], out["pid_real"], "{out}");
    assert_eq!(out["notify_pid"], out["pid_real"], "{out}");
    assert_eq!(out["app_reported"], app, "{out}");
    assert_eq!(out["isolation"], "serializable", "{out}");
    assert_eq!(out["statement_timeout"], "4321ms", "{out}");
    assert_eq!(
        out["terminated"], direct["terminated"],
        "gateway {out} / direct {direct}"
    );
    assert_eq!(
        out["closed"], direct["closed"],
        "gateway {out} / direct {direct}"
    );
}

#[test]
fn asyncpg_sees_the_real_session() {
    driver(
        "python3",
        &["clients/asyncpg_transparency.py"],
        "asyncpg-tr",
    );
}

#[test]
fn node_pg_sees_the_real_session() {
    driver("node", &["node/node_pg_transparency.mjs"], "nodepg-tr");
}

#[test]
fn jdbc_sees_the_real_session() {
    driver(
        "java",
        &[
            "-cp",
            "/usr/share/java/postgresql.jar",
            "clients/JdbcTransparency.java",
        ],
        "jdbc-tr",
    );
}

/// A startup setting the policy allows but the server rejects gets the
/// server's own error (and SQLSTATE), as without the gateway.
#[test]
fn a_setting_the_server_rejects_keeps_its_sqlstate() {
    let (ok, _, err) = psql_with_options("-c statement_timeout=soon", "select 1");
    assert!(!ok);
    assert!(
        err.contains("FATAL:  invalid value for parameter \"statement_timeout\": \"soon\""),
        "{err}"
    );
    assert!(!err.contains("refused"), "{err}");
}

/// psql in LATIN9 (startup) and SJIS (`\encoding` mid-session), with
/// non-ASCII identifiers and literals: the text reaches the server and
/// comes back in the client's encoding.
#[test]
fn psql_in_latin9_and_sjis() {
    let dir = portcullis_e2e::temp_dir("enc");
    let latin9 = dir.join("latin9.sql");
    // 'prix: 5 €' AS "Café" in LATIN9 (€ = 0xA4, é = 0xE9).
    std::fs::write(&latin9, b"select 'prix: 5 \xa4' as \"Caf\xe9\";\n").unwrap();
    let out = psql_cmd(gateway(), ALICE, &idp().token("alice"), "app")
        .env("PGCLIENTENCODING", "LATIN9")
        .args(["-At", "-f"])
        .arg(&latin9)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"prix: 5 \xa4\n");
    let sjis = dir.join("sjis.sql");
    // \encoding SJIS, then '表示' (0x95 0x5c 0x8e 0xa6): the first
    // character's second byte is a backslash.
    std::fs::write(
        &sjis,
        b"\\encoding SJIS\nselect '\x95\x5c\x8e\xa6' as \"\x97\xf1\";\n",
    )
    .unwrap();
    let out = psql_cmd(gateway(), ALICE, &idp().token("alice"), "app")
        .args(["-At", "-f"])
        .arg(&sjis)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"\x95\x5c\x8e\xa6\n");
    std::fs::remove_dir_all(dir).ok();
}

/// A client that renames itself mid-session still shows the real user in
/// `pg_stat_activity`.
#[test]
fn renaming_the_application_keeps_the_user_visible() {
    let r = portcullis_e2e::clients::psql(
        gateway(),
        ALICE,
        &idp().token("alice"),
        &[
            "-At",
            "-c",
            "set application_name = 'renamed by client'",
            "-c",
            "select application_name from pg_stat_activity where pid = pg_backend_pid()",
        ],
    );
    assert!(r.ok, "{}", r.all());
    assert!(
        r.stdout
            .contains("renamed by client (portcullis:alice@example.com)"),
        "{}",
        r.all()
    );
}
