//! The audit record, end to end: psql and psycopg sessions through the
//! gateway produce records (statements, bound parameters, decisions, rows
//! up to the caps, errors, session start and end) in SQLite and in
//! PostgreSQL; `portcullis audit verify` passes on an untouched log and
//! names the record after an edit, a deletion, a reorder and an inserted
//! forgery done directly in the store; strict durability survives kill -9;
//! export streams in bounded memory; replay prints a transcript.

use std::process::{Command, Stdio};
use std::time::Duration;

use portcullis_e2e::clients::psql_cmd;
use portcullis_e2e::receiver::receiver_with;
use portcullis_e2e::{
    idp, portcullis_bin, postgres, root, temp_dir, wait_for, Gateway, GatewayOptions,
};

const ALICE: &str = "alice@example.com";

fn audit_cli(gw: &Gateway, args: &[&str]) -> std::process::Output {
    Command::new(portcullis_bin())
        .args(["audit", "--config"])
        .arg(gw.dir.join("portcullis.toml"))
        .args(args)
        .output()
        .expect("portcullis audit")
}

fn export(gw: &Gateway) -> Vec<serde_json::Value> {
    let out = audit_cli(gw, &["export", "--format", "jsonl"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Waits until the store has a record matching `pred`; returns all.
fn records_until(
    gw: &Gateway,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    wait_for(what, Duration::from_secs(20), || {
        all = export(gw);
        all.iter().any(&pred)
    });
    all
}

fn psql(gw: &Gateway, sql: &[&str]) -> std::process::Output {
    let mut c = psql_cmd(gw, ALICE, &idp().token("alice"), "app");
    for s in sql {
        c.args(["-c", s]);
    }
    c.output().expect("psql")
}

fn statement<'a>(all: &'a [serde_json::Value], text: &str) -> &'a serde_json::Value {
    all.iter()
        .find(|r| {
            r["kind"] == "statement" && r["statement"].as_str().is_some_and(|s| s.contains(text))
        })
        .unwrap_or_else(|| panic!("no record of {text}: {all:#?}"))
}

fn check_sessions_and_statements(gw: &Gateway, tag: &str) {
    let table = format!("audit_{tag}");
    // The shipped policy sends DDL for approval: the table is made directly.
    postgres().psql_super(
        "app",
        &format!(
            "create table {table} (id int, secret text); grant all on {table} to svc; \
             insert into {table} select g, 's' || g from generate_series(1, 49) g"
        ),
    );
    let out = psql(
        gw,
        &[
            &format!("insert into {table} values (50, 's50')"),
            &format!("select id, secret from {table} order by id"),
            &format!("delete from {table}"),
            &format!("alter role audit_{tag} password 'pw-{tag}-hunter2'"),
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DELETE without WHERE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // psycopg: a prepared statement with bound parameters.
    let script = format!(
        "import psycopg, os\n\
         c = psycopg.connect(host='127.0.0.1', port={port}, dbname='app', user='{ALICE}', password=os.environ['TOKEN'], sslmode='disable')\n\
         print(c.execute('select id from {table} where id = %s and secret = %s', (7, 's7'), prepare=True).fetchall())\n\
         c.close()\n",
        port = gw.port
    );
    let py = Command::new("python3")
        .args(["-c", &script])
        .env("TOKEN", idp().token("alice"))
        .output()
        .expect("python3");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );

    let all = records_until(gw, "the psycopg session's end", |r| {
        r["kind"] == "session_end"
            && r["application"]
                .as_str()
                .is_some_and(|a| !a.contains("psql"))
    });
    let select = statement(&all, &format!("select id, secret from {table}"));
    assert_eq!(select["user"], ALICE);
    assert_eq!(select["action"], "allow");
    assert_eq!(select["connection"], "app");
    assert_eq!(select["command_tag"], "SELECT 50");
    assert_eq!(select["rows_affected"], 50);
    assert_eq!(select["columns"], serde_json::json!(["id", "secret"]));
    // max_rows = 10 in these gateways' config.
    assert_eq!(
        select["rows"].as_array().map(Vec::len),
        Some(10),
        "{select}"
    );
    assert_eq!(select["rows"][0], serde_json::json!(["1", "s1"]));
    assert_eq!(select["rows_truncated"], true);
    assert!(select["policy_hash"]
        .as_str()
        .is_some_and(|h| !h.is_empty()));
    let denied = statement(&all, &format!("delete from {table}"));
    assert_eq!(denied["action"], "deny");
    assert_eq!(denied["error_code"], "42501");
    assert!(denied["reasons"][0]
        .as_str()
        .unwrap_or("")
        .contains("DELETE without WHERE"));
    // A password in a statement is not recorded (nor shown anywhere).
    let role = statement(&all, &format!("alter role audit_{tag}"));
    assert_eq!(
        role["statement"],
        format!("alter role audit_{tag} password '[redacted]'")
    );
    assert!(!serde_json::to_string(&all)
        .unwrap_or_default()
        .contains("hunter2"));
    let prepared = statement(&all, "where id = $1 and secret = $2");
    // psycopg sends the int in binary: recorded as hex, the text as text.
    assert_eq!(
        prepared["params"],
        serde_json::json!(["\\x0007", "s7"]),
        "{prepared}"
    );
    assert_eq!(prepared["rows"], serde_json::json!([["7"]]));
    assert_eq!(
        prepared["columns"],
        serde_json::json!(["id"]),
        "from the Describe"
    );
    let starts = all.iter().filter(|r| r["kind"] == "session_start").count();
    let ends = all.iter().filter(|r| r["kind"] == "session_end").count();
    assert!(starts >= 2 && ends >= 2, "{starts} starts, {ends} ends");
    assert!(all
        .iter()
        .all(|r| r["hash"].as_str().is_some_and(|h| h.len() == 64)));

    let out = audit_cli(gw, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));

    // Export filters.
    let sid = select["session_id"].as_str().unwrap_or_default();
    let out = audit_cli(gw, &["export", "--session", sid]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty() && lines.iter().all(|r| r["session_id"] == sid));
    let out = audit_cli(
        gw,
        &[
            "export",
            "--since",
            "2999-01-01T00:00:00Z",
            "--format",
            "csv",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "only the CSV header"
    );
    for (flag, value, field) in [
        ("--user", ALICE, "user"),
        ("--connection", "app", "connection"),
    ] {
        let out = audit_cli(gw, &["export", flag, value]);
        let got: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert!(
            !got.is_empty() && got.iter().all(|r| r[field] == value),
            "{flag}"
        );
    }
    let out = audit_cli(gw, &["export", "--until", "2000-01-01T00:00:00Z"]);
    assert!(out.stdout.is_empty(), "nothing before 2000");
    let out = audit_cli(gw, &["export", "--since", "yesterday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since yesterday"));

    // Sessions and a transcript.
    let out = audit_cli(gw, &["sessions", "--user", ALICE]);
    let sessions = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(sessions.contains(sid), "{sessions}");
    let out = audit_cli(gw, &["replay", sid]);
    let transcript = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        transcript.contains(&format!("app=> select id, secret from {table}")),
        "{transcript}"
    );
    assert!(
        transcript.contains(" 1  | s1"),
        "a result table: {transcript}"
    );
    assert!(
        transcript.contains("-- deny: DELETE without WHERE"),
        "{transcript}"
    );
    assert!(transcript.contains("-- session ended"), "{transcript}");
    let out = audit_cli(
        gw,
        &[
            "replay",
            prepared["session_id"].as_str().unwrap_or_default(),
        ],
    );
    let transcript = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        transcript.contains("-- parameters: $1='\\x0007', $2='s7'"),
        "{transcript}"
    );
}

fn caps() -> String {
    "[audit]\nmax_rows = 10\ncheckpoint_every = 5\n".into()
}

#[test]
fn sessions_in_sqlite_record_statements_parameters_rows_and_decisions() {
    let gw = Gateway::start(GatewayOptions {
        extra: caps(),
        ..Default::default()
    });
    check_sessions_and_statements(&gw, "sqlite");
    assert!(
        gw.dir.join("portcullis.db").exists(),
        "the SQLite store next to the config"
    );
}

fn postgres_store(db: &str) -> String {
    let pg = postgres();
    pg.psql_super("postgres", &format!("CREATE DATABASE {db} OWNER svc"));
    format!(
        "postgres://svc:{}@127.0.0.1:{}/{db}",
        pg.svc_password, pg.port
    )
}

#[test]
fn sessions_in_postgres_record_the_same_and_verify_names_tampering() {
    let url = postgres_store("audit_pg");
    let gw = Gateway::start(GatewayOptions {
        // sync = "normal": the writer's PostgreSQL sessions run with
        // synchronous_commit off (the records must still all arrive).
        extra: format!("[store]\nurl = \"{url}\"\n\n{}sync = \"normal\"\n", caps()),
        ..Default::default()
    });
    check_sessions_and_statements(&gw, "pg");
    // What `sync` sets on the writer's PostgreSQL sessions.
    let settings = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            use portcullis::audit::{config::SyncMode, store::Store};
            let mut out = Vec::new();
            for mode in [SyncMode::Normal, SyncMode::Full] {
                let s = Store::open_writer(&url, mode).await.expect("store");
                out.push(s.commit_setting().await.expect("setting"));
            }
            out
        });
    assert_eq!(settings, ["off", "on"]);
    let pg = postgres();
    let sql = |s: &str| pg.psql_super("audit_pg", s);
    // Verify against a key held outside the store.
    let key = sql("SELECT public_key FROM audit_instances WHERE instance = 'gateway'");
    let out = audit_cli(&gw, &["verify", "--public-key", &format!("gateway={key}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified with the given public key"));
    let other = base64_32(9);
    let out = audit_cli(
        &gw,
        &["verify", "--public-key", &format!("gateway={other}")],
    );
    assert!(
        !out.status.success(),
        "another key does not verify the checkpoints"
    );
    assert!(
        sql("SELECT count(*) FROM audit_records")
            .parse::<i64>()
            .unwrap_or(0)
            >= 8
    );
    sql("CREATE TABLE pristine AS SELECT * FROM audit_records");
    let restore = || {
        sql("DELETE FROM audit_records");
        sql("INSERT INTO audit_records SELECT * FROM pristine");
    };
    let broken = |what: &str| -> String {
        let out = audit_cli(&gw, &["verify"]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!out.status.success(), "{what} must be detected: {stdout}");
        assert!(stdout.contains("BROKEN at record"), "{stdout}");
        stdout
    };
    // Edited.
    sql("UPDATE audit_records SET user_name = 'mallory@example.com' WHERE seq = 3");
    let out = broken("an edit");
    assert!(
        out.contains("record 3 (") && out.contains("edited"),
        "{out}"
    );
    restore();
    assert!(audit_cli(&gw, &["verify"]).status.success(), "restored");
    // Deleted.
    sql("DELETE FROM audit_records WHERE seq = 4");
    let out = broken("a deletion");
    assert!(out.contains("record 4: missing (deleted)"), "{out}");
    restore();
    // Reordered.
    sql("UPDATE audit_records SET seq = -1 WHERE seq = 3; UPDATE audit_records SET seq = 3 WHERE seq = 4; UPDATE audit_records SET seq = 4 WHERE seq = -1");
    let out = broken("a reorder");
    assert!(out.contains("record 3 ("), "{out}");
    restore();
    // An inserted forgery (later records shifted to make room).
    sql("UPDATE audit_records SET seq = seq + 100000 WHERE seq >= 5; UPDATE audit_records SET seq = seq - 99999 WHERE seq >= 100000");
    sql("INSERT INTO audit_records SELECT instance, 5, id || '-forged', at_us, kind, session_id, 'forger@example.com', groups_json, client_addr, application, connection, 'allow', approval_id, command_tag, rows_affected, duration_us, error_code, key_id, body, (SELECT hash FROM audit_records WHERE seq = 4), repeat('f', 64) FROM pristine WHERE seq = 5");
    let out = broken("an inserted record");
    assert!(
        out.contains("record 5 (") && out.contains("-forged"),
        "{out}"
    );
    restore();
    assert!(
        audit_cli(&gw, &["verify"]).status.success(),
        "restored again"
    );
    // The session index: a session's span narrowed (its last record
    // hidden from replay and the viewer), then a session's row deleted.
    sql("CREATE TABLE pristine_sessions AS SELECT * FROM audit_sessions");
    let restore_sessions = || {
        sql("DELETE FROM audit_sessions");
        sql("INSERT INTO audit_sessions SELECT * FROM pristine_sessions");
    };
    sql("UPDATE audit_sessions SET last_seq = last_seq - 1 WHERE last_seq = (SELECT MAX(last_seq) FROM audit_sessions)");
    let out = broken("a narrowed session span");
    assert!(
        out.contains("the session index (audit_sessions) row of session")
            && out.contains("(edited)"),
        "{out}"
    );
    restore_sessions();
    sql("DELETE FROM audit_sessions WHERE first_seq = (SELECT MIN(first_seq) FROM audit_sessions)");
    let out = broken("a deleted session row");
    assert!(out.contains("no row in the session index"), "{out}");
    restore_sessions();
    assert!(
        audit_cli(&gw, &["verify"]).status.success(),
        "session index restored"
    );
    // A row under an instance with neither records nor a key (a fake
    // session at the top of the viewer's list) is checked too.
    sql("INSERT INTO audit_sessions VALUES ('fake-1', 'zz', 'alice@example.com', 'c', '10.0.0.9', 'psql', 1, 1, 9000000000000000, 9000000000000000, 0, 0)");
    let out = audit_cli(&gw, &["verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("zz: BROKEN"), "{stdout}");
    sql("DELETE FROM audit_sessions WHERE instance = 'zz'");
    // A store made before the session index: the next open fills it from
    // the records and drops the per-record indexes it replaces.
    sql("DROP TABLE audit_sessions; CREATE INDEX audit_records_session ON audit_records (session_id); CREATE INDEX audit_records_user ON audit_records (user_name)");
    assert!(audit_cli(&gw, &["verify"]).status.success(), "upgraded");
    assert_eq!(
        sql("SELECT count(*) FROM ((SELECT * FROM audit_sessions EXCEPT SELECT * FROM pristine_sessions) UNION ALL (SELECT * FROM pristine_sessions EXCEPT SELECT * FROM audit_sessions)) d"),
        "0",
        "the same rows as the writer kept"
    );
    assert_eq!(
        sql("SELECT count(*) FROM pg_indexes WHERE indexname IN ('audit_records_session', 'audit_records_user')"),
        "0"
    );
    // An instance's key row deleted: its records are still checked, and
    // reported as having no key.
    sql("DELETE FROM audit_instances WHERE instance = 'gateway'");
    let out = audit_cli(&gw, &["verify"]);
    assert!(!out.status.success(), "a deleted key row must be detected");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("gateway: BROKEN — records of an instance with no public key"),
        "{out}"
    );
    sql(&format!(
        "INSERT INTO audit_instances (instance, public_key, created_us) VALUES ('gateway', '{key}', 0)"
    ));
    // A key given for an instance the store does not hold.
    let out = audit_cli(&gw, &["verify", "--public-key", &format!("ghost={key}")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ghost: BROKEN — no records and no key"),
        "{stdout}"
    );
    assert!(audit_cli(&gw, &["verify"]).status.success(), "key restored");
    // A checkpoint signed with another key.
    sql("UPDATE audit_checkpoints SET signature = 'AAAA' WHERE seq = (SELECT min(seq) FROM audit_checkpoints)");
    let out = broken("a forged checkpoint");
    assert!(out.contains("signature does not verify"), "{out}");
}

#[test]
fn strict_durability_loses_no_acknowledged_statement_on_kill_9() {
    strict_kill_9("durability = \"strict\"\n", "strict_log", false);
}

/// The store commits only every 30 s here, so what the client saw
/// complete at the kill is in the journal alone: `audit verify` must
/// move it into the store.
#[test]
fn strict_records_only_the_journal_holds_are_recovered_after_kill_9() {
    strict_kill_9(
        "durability = \"strict\"\nflush_interval = \"30s\"\n",
        "strict_journal_log",
        true,
    );
}

#[test]
fn strict_with_sync_normal_loses_no_acknowledged_statement_on_kill_9() {
    strict_kill_9(
        "durability = \"strict\"\nsync = \"normal\"\n",
        "strict_normal_log",
        false,
    );
}

/// A client inserts one row per statement through a strict gateway
/// (`audit` settings), counting what the gateway acknowledged; the
/// gateway is killed with SIGKILL; every acknowledged INSERT has its
/// record. `journal_only`: the store cannot have committed them all, so
/// the journal's recovery must be seen.
fn strict_kill_9(audit: &str, table: &str, journal_only: bool) {
    let gw = Gateway::start(GatewayOptions {
        extra: format!("[audit]\n{audit}"),
        ..Default::default()
    });
    postgres().psql_super(
        "app",
        &format!("create table {table} (n int); grant all on {table} to svc"),
    );
    // A client inserting one row per statement, printing each one the
    // gateway acknowledged.
    let script = format!(
        "import psycopg, os, sys\n\
         c = psycopg.connect(host='127.0.0.1', port={port}, dbname='app', user='{ALICE}', password=os.environ['TOKEN'], sslmode='disable', autocommit=True)\n\
         for i in range(100000):\n    c.execute('insert into {table} values (%s)', (i,))\n    print(i, flush=True)\n",
        port = gw.port
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .env("TOKEN", idp().token("alice"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut acked = 0u64;
    for l in lines.by_ref() {
        if l.is_err() {
            break;
        }
        acked += 1;
        if acked == 300 {
            let pid = gw.pid().expect("gateway pid");
            // With sync full the journal's fdatasync runs on a thread of
            // its own; with sync normal the append is a plain write on the
            // runtime.
            let names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
                .expect("tasks")
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .collect();
            let own = names.iter().any(|n| n.trim() == "portcullis-audi");
            assert_eq!(own, !audit.contains("normal"), "{names:?}");
            let st = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .expect("kill");
            assert!(st.success());
        }
    }
    let _ = child.wait();
    assert!(acked >= 300, "{acked}");
    // Strict on SQLite: the clients waited for the journal beside the
    // database. `audit verify` (no gateway holds the journal now) first
    // moves the records the store lacks into it, then verifies.
    let db = gw.dir.join("portcullis.db");
    assert!(
        gw.dir.join("portcullis.db.audit-journal.0").exists(),
        "strict mode on SQLite writes a journal"
    );
    // Count the INSERT records the store has (SQLite, read by python).
    let count = || {
        let out = Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute(\"select count(*) from audit_records where command_tag = 'INSERT 0 1'\").fetchone()[0])",
            ])
            .arg(&db)
            .output()
            .expect("python3");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
    };
    let before = count();
    let out = audit_cli(&gw, &["verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    // What the killed gateway left verifies, and verify says how many
    // records only the chain covers.
    assert!(
        stdout.contains("records after the last checkpoint are covered by the chain only"),
        "{stdout}"
    );
    let stored = count();
    assert!(
        stored >= acked,
        "every statement the client saw complete has its record: {stored} stored ({before} before the journal's), {acked} acknowledged"
    );
    if journal_only {
        assert!(before < acked, "{before} committed before the kill");
    }
    if stored > before {
        assert!(
            stderr.contains("records recovered from the journal"),
            "{stderr}"
        );
    }
    // The journal was emptied into the store.
    for i in 0..2 {
        let j = gw.dir.join(format!("portcullis.db.audit-journal.{i}"));
        assert_eq!(
            std::fs::metadata(&j).map(|m| m.len()).unwrap_or(0),
            0,
            "{}",
            j.display()
        );
    }
}

#[test]
fn export_of_a_million_records_streams_in_bounded_memory() {
    let gw = Gateway::start(GatewayOptions::default());
    // The store exists once the gateway started; fill it with a million
    // records directly (python sqlite3), as a busy gateway would.
    let db = gw.dir.join("portcullis.db");
    let fill = root().join("tests/clients/audit_fill.py");
    let out = Command::new("python3")
        .arg(&fill)
        .arg(&db)
        .arg("1000000")
        .output()
        .expect("fill");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for format in ["jsonl", "csv"] {
        let file = temp_dir("export").join(format!("out.{format}"));
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(portcullis_bin())
            .args(["audit", "--config"])
            .arg(gw.dir.join("portcullis.toml"))
            .args(["export", "--format", format, "--output"])
            .arg(&file)
            .output()
            .expect("time");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        let rss_kb: u64 = stderr
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(u64::MAX);
        assert!(rss_kb < 150 * 1024, "{format}: peak RSS {rss_kb} KiB");
        // A standard parser reads every line.
        let check = Command::new("python3")
            .arg(root().join("tests/clients/audit_parse.py"))
            .arg(&file)
            .arg(format)
            .output()
            .expect("parse");
        let n: u64 = String::from_utf8_lossy(&check.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(
            n >= 1_000_000,
            "{format}: parsed {n} ({})",
            String::from_utf8_lossy(&check.stderr)
        );
        println!(
            "export {format}: {n} records, peak RSS {} MiB",
            rss_kb / 1024
        );
    }
}

#[test]
fn sealed_bodies_rotation_retention_sinks_and_metrics() {
    let dir = temp_dir("audit-keys");
    let key = |name: &str, byte: u8| {
        let path = dir.join(name);
        std::fs::write(&path, base64_32(byte)).expect("key");
        path
    };
    let (old, new) = (key("old.key", 1), key("new.key", 2));
    let sink = dir.join("siem.jsonl");
    std::fs::write(dir.join("hook.secret"), "siem-secret").expect("secret");
    let (hook_port, hook) = receiver_with(1, "");
    let start = |current: &std::path::Path, extra: &str| {
        Gateway::start(GatewayOptions {
            extra: format!(
                "[audit]\nencryption_key_file = \"{}\"\ncheckpoint_every = 3\n{extra}\n[[audit.sinks]]\nkind = \"file\"\npath = \"{}\"\n\n[[audit.sinks]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/siem\"\nsecret_file = \"{}\"\n",
                current.display(),
                sink.display(),
                dir.join("hook.secret").display()
            ),
            ..Default::default()
        })
    };
    let gw = start(&old, "");
    assert!(psql(&gw, &["select 'sealed-text-one' as marker"])
        .status
        .success());
    records_until(&gw, "the sealed record", |r| {
        r["statement"]
            .as_str()
            .is_some_and(|s| s.contains("sealed-text-one"))
    });
    // At rest the statement is not readable; metadata is.
    let db = gw.dir.join("portcullis.db");
    let raw = std::fs::read(&db).unwrap_or_default();
    let wal = std::fs::read(gw.dir.join("portcullis.db-wal")).unwrap_or_default();
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(&raw, b"sealed-text-one") && !contains(&wal, b"sealed-text-one"));
    assert!(contains(&raw, ALICE.as_bytes()) || contains(&wal, ALICE.as_bytes()));
    // The file sink got the committed records as JSON lines (still sealed).
    wait_for("the file sink", Duration::from_secs(20), || {
        std::fs::read_to_string(&sink).is_ok_and(|s| s.lines().count() >= 2)
    });
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&sink)
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or(""),
    )
    .expect("json line");
    assert_eq!(first["kind"], "session_start");
    // The webhook sink: signed batches, retried after a failure.
    wait_for("the webhook sink", Duration::from_secs(20), || {
        hook.lock().map(|g| g.len() >= 2).unwrap_or(false)
    });
    let (head, body) = hook.lock().expect("lock")[1].clone();
    let lower = head.to_ascii_lowercase();
    let ts = lower
        .lines()
        .find_map(|l| l.strip_prefix("x-portcullis-timestamp:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"siem-secret");
    let want = ring::hmac::sign(&key, format!("{ts}.{body}").as_bytes());
    let want: String = want.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        lower.contains(&format!("x-portcullis-signature: sha256={want}")),
        "{head}"
    );
    assert!(body
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    // Metrics: records written, none dropped.
    let metrics = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", gw.admin_port))
        .and_then(|r| r.text())
        .expect("metrics");
    assert!(
        metrics.contains("portcullis_audit_records_dropped_total 0"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("portcullis_audit_records_written_total 0\n"),
        "{metrics}"
    );
    for name in [
        "portcullis_audit_queue_depth",
        "portcullis_audit_commits_total",
        "portcullis_audit_commit_seconds_sum",
        "portcullis_audit_store_failing 0",
    ] {
        assert!(metrics.contains(name), "{name}: {metrics}");
    }

    // Rotate: the new key seals, the old one still opens older records.
    let cfg = gw.dir.join("portcullis.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(
        &cfg,
        text.replace(
            &format!("encryption_key_file = \"{}\"", old.display()),
            &format!(
                "encryption_key_file = \"{}\"\ndecryption_key_files = [\"{}\"]",
                new.display(),
                old.display()
            ),
        ),
    )
    .expect("rotate");
    let all = export(&gw);
    assert!(all.iter().any(|r| r["statement"]
        .as_str()
        .is_some_and(|s| s.contains("sealed-text-one"))));
    // Without the old key, the old records read as sealed (and verify
    // still passes: the chain covers the sealed form).
    std::fs::write(
        &cfg,
        text.replace(&old.display().to_string(), &new.display().to_string()),
    )
    .expect("cfg");
    let all = export(&gw);
    let sealed = statement_or_none(&all);
    assert!(
        sealed
            .iter()
            .any(|r| r["error"].as_str().is_some_and(|e| e.contains("(sealed:"))),
        "{all:#?}"
    );
    assert!(audit_cli(&gw, &["verify"]).status.success());
    // The key may come from the environment instead.
    let out = Command::new(portcullis_bin())
        .env("PORTCULLIS_AUDIT_KEY", base64_32(1))
        .args(["audit", "--config"])
        .arg(&cfg)
        .arg("export")
        .output()
        .expect("export");
    assert!(String::from_utf8_lossy(&out.stdout).contains("sealed-text-one"));
    std::fs::write(&cfg, text).expect("restore");
    drop(gw);

    // Retention: records older than the last checkpoint signed before the
    // cut-off are pruned; what remains still verifies.
    let gw = start(
        &old,
        "retention = \"1s\"\ncheckpoint_interval = \"200ms\"\n",
    );
    for i in 0..3 {
        assert!(psql(&gw, &[&format!("select {i} as early")])
            .status
            .success());
    }
    records_until(&gw, "the early records", |r| {
        r["statement"]
            .as_str()
            .is_some_and(|s| s.contains("select 2 as early"))
    });
    wait_for(
        "the early records to be pruned",
        Duration::from_secs(30),
        || {
            // New activity makes the writer sign checkpoints (and prune).
            let _ = psql(&gw, &["select 'late' as late"]);
            !export(&gw).iter().any(|r| {
                r["statement"]
                    .as_str()
                    .is_some_and(|s| s.contains("as early"))
            })
        },
    );
    let out = audit_cli(&gw, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn statement_or_none(all: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    all.iter().filter(|r| r["kind"] == "statement").collect()
}

fn base64_32(byte: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

#[test]
fn an_unwritable_store_refuses_new_statements_in_strict_mode() {
    let url = postgres_store("audit_down");
    let gw = Gateway::start(GatewayOptions {
        extra: format!("[store]\nurl = \"{url}\"\n\n[audit]\ndurability = \"strict\"\n"),
        ..Default::default()
    });
    assert!(psql(&gw, &["select 1"]).status.success());
    let pg = postgres();
    // The store stops taking records.
    pg.psql_super("audit_down", "ALTER TABLE audit_records OWNER TO postgres");
    let out = psql(&gw, &["select 'during' as d", "select 'after' as a"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("the audit store cannot be written"),
        "statements are refused with a clear error: {stderr}"
    );
    // It recovers: the kept records are written, statements run again.
    pg.psql_super("audit_down", "ALTER TABLE audit_records OWNER TO svc");
    wait_for("the store to recover", Duration::from_secs(30), || {
        psql(&gw, &["select 'recovered' as r"]).status.success()
    });
    let n = pg.psql_super(
        "audit_down",
        "SELECT count(*) FROM audit_records WHERE body LIKE '%during%'",
    );
    assert_eq!(
        n, "1",
        "the statement that ran while the store was down is recorded"
    );
    assert!(audit_cli(&gw, &["verify"]).status.success());
}

#[test]
fn an_unwritable_store_in_batched_mode_buffers_up_to_its_limit_then_refuses() {
    let url = postgres_store("audit_full");
    let gw = Gateway::start(GatewayOptions {
        extra: format!("[store]\nurl = \"{url}\"\n\n[audit]\nbuffer_limit = 6\n"),
        ..Default::default()
    });
    assert!(psql(&gw, &["select 1"]).status.success());
    let pg = postgres();
    wait_for("the first records", Duration::from_secs(20), || {
        pg.psql_super("audit_full", "SELECT count(*) FROM audit_records") != "0"
    });
    pg.psql_super("audit_full", "ALTER TABLE audit_records OWNER TO postgres");
    let sql: Vec<String> = (0..12).map(|i| format!("select {i} as buffered")).collect();
    let refs: Vec<&str> = sql.iter().map(String::as_str).collect();
    let out = psql(&gw, &refs);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(
        stdout.contains("buffered"),
        "the first statements run: {stdout}"
    );
    assert!(stderr.contains("the audit buffer is full"), "{stderr}");
    pg.psql_super("audit_full", "ALTER TABLE audit_records OWNER TO svc");
    wait_for("the buffer to drain", Duration::from_secs(30), || {
        psql(&gw, &["select 'drained'"]).status.success()
    });
    // Every statement that ran is recorded.
    let ran = stdout.matches("buffered").count() as i64;
    wait_for("the buffered records", Duration::from_secs(20), || {
        pg.psql_super(
            "audit_full",
            "SELECT count(*) FROM audit_records WHERE body LIKE '%as buffered%' AND error_code = ''",
        )
        .parse::<i64>()
        .unwrap_or(0)
            >= ran
    });
}

fn viewer(
    base: &str,
    user: &str,
    session: &str,
    shot: Option<&std::path::Path>,
) -> serde_json::Value {
    let shot = shot.map(|s| s.display().to_string());
    let mut args = vec![base, user, session];
    if let Some(s) = &shot {
        args.push(s);
    }
    portcullis_e2e::node_json("audit_ui.mjs", &args, &[("AUDIT_FILTER_USER", ALICE)])
}

#[test]
fn auditors_read_sessions_in_the_web_viewer_in_real_chromium() {
    let mut gw = Gateway::start(GatewayOptions {
        extra: format!(
            "[audit.viewer]\nissuer = \"{}\"\nclient_id = \"portcullis-audit\"\n",
            idp().issuer
        ),
        ..Default::default()
    });
    postgres().psql_super(
        "app",
        "create table viewer_t (id int, note text); grant all on viewer_t to svc; insert into viewer_t values (1, 'first'), (2, 'second')",
    );
    let out = psql(
        &gw,
        &[
            "select id, note from viewer_t order by id",
            "delete from viewer_t",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("second"));
    let all = records_until(&gw, "the viewer session's end", |r| {
        r["kind"] == "session_end"
    });
    let sid = statement(&all, "select id, note from viewer_t")["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let base = format!("http://127.0.0.1:{}", gw.admin_port);
    let shot = std::env::var_os("PORTCULLIS_AUDIT_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| gw.dir.join("viewer.png"));
    let page = viewer(&base, "audrey", &sid, Some(&shot));
    assert_eq!(page["status"], 200, "{page}");
    assert!(
        page["list"].as_str().unwrap_or("").contains(ALICE),
        "{page}"
    );
    // The filter form narrows the list by user.
    assert_eq!(page["filtered"]["other"]["links"], 0, "{page}");
    assert!(
        page["filtered"]["other"]["url"]
            .as_str()
            .unwrap_or("")
            .contains("user=nobody%40example.com"),
        "{page}"
    );
    assert_eq!(page["filtered"]["own"]["links"], 1, "{page}");
    let statements = page["statements"].to_string();
    assert!(
        statements.contains("select id, note from viewer_t"),
        "{page}"
    );
    assert!(statements.contains("delete from viewer_t"), "{page}");
    assert!(page["badges"].to_string().contains("deny"), "{page}");
    let results = page["results"].to_string();
    assert!(
        results.contains("first") && results.contains("second"),
        "{page}"
    );
    assert!(page["exported_lines"].as_u64().unwrap_or(0) >= 4, "{page}");
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000));
    // Someone outside the auditor group is turned away.
    let page_bob = viewer(&base, "bob", &sid, None);
    assert_eq!(page_bob["status"], 403, "{page_bob}");
    // The sign-in outlives a restart of the gateway; a made-up cookie
    // gets the sign-in page.
    let cookie = page["cookie"].as_str().unwrap_or_default().to_string();
    assert!(!cookie.is_empty(), "{page}");
    // (status, Location, Set-Cookie, body) of a request with `cookie`.
    let call = |post: bool, path: &str, cookie: &str| {
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let url = format!("{base}{path}");
        let r = if post {
            client.post(url)
        } else {
            client.get(url)
        }
        .header("Cookie", format!("pca_session={cookie}"))
        .send()
        .expect(path);
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (location, set_cookie) = (header("location"), header("set-cookie"));
        (
            r.status().as_u16(),
            location,
            set_cookie,
            r.text().unwrap_or_default(),
        )
    };
    let list = |cookie: &str| {
        let (status, location, _, body) = call(false, "/audit/sessions", cookie);
        (status, location, body)
    };
    let (status, _, body) = list(&cookie);
    assert!(status == 200 && body.contains(&sid), "{status} {body}");
    gw.restart();
    let (status, _, body) = list(&cookie);
    assert!(
        status == 200 && body.contains(&sid),
        "after a restart: {status} {body}"
    );
    let (status, location, _) = list("made-up");
    assert!(
        (300..400).contains(&status) && location.starts_with("/audit/login"),
        "{status} {location}"
    );
    // Signing out ends it: the cookie is cleared and no longer admits.
    let (status, _, cleared, _) = call(true, "/audit/logout", &cookie);
    assert!(
        status == 200 && cleared.starts_with("pca_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (status, location, _) = list(&cookie);
    assert!(
        (300..400).contains(&status) && location.starts_with("/audit/login"),
        "after signing out: {status} {location}"
    );
}
