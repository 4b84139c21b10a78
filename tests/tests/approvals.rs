//! Live approval of single statements, end to end: psql runs a statement
//! the policy sends for approval, sees the approval link, waits; approvers
//! (real OIDC tokens) decide through the approvals service's API; psql
//! gets the result, or the rejection with the approver's comment. Also:
//! self-approval refused, quorum of two distinct approvers, double votes,
//! expiry, cancel withdrawing the request, two gateways on one service,
//! decisions signed with another key refused, the service down.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use portcullis_e2e::approvals::Approvals;
use portcullis_e2e::clients::psql_cmd;
use portcullis_e2e::receiver::{receiver_with, Deliveries};
use portcullis_e2e::{idp, postgres, temp_dir, wait_for, Gateway, GatewayOptions};

const RILEY: &str = "riley@example.com";

const POLICY: &str = r#"package portcullis
import rego.v1

hold(quorum, timeout) := {"action": "approve", "reasons": ["schema changes need a DBA"],
  "approval": {"groups": ["dba"], "quorum": quorum, "mode": "hold", "timeout": timeout}}

default decision := {"action": "allow"}

decision := hold(1, "60s") if input.statement.kind == "create_table"

decision := hold(2, "60s") if input.statement.kind == "drop"

decision := hold(1, "2s") if input.statement.kind == "truncate"

decision := hold(1, "60s") if input.statement.kind == "delete"

decision := {"action": "approve", "reasons": ["role changes need a DBA"],
  "approval": {"groups": ["dba"], "quorum": 1, "mode": "retry", "timeout": "60s"}} if input.statement.kind == "alter_role"

decision := {"action": "approve", "reasons": ["customer data needs a DBA"],
  "mask": [{"table": "public.appr_people", "column": "email", "method": "partial"}],
  "approval": {"groups": ["dba"], "quorum": 1, "mode": "hold", "timeout": "60s"}} if {
	some t in input.statement.tables
	t.name == "appr_people"
}

decision := {"action": "approve", "reasons": ["views need a DBA"],
  "approval": {"groups": ["dba"], "quorum": 1, "mode": "retry", "timeout": "60s"}} if input.statement.kind == "create_view"
"#;

struct Env {
    approvals: Approvals,
    gateway: Gateway,
    /// A second gateway on the same service.
    second: Gateway,
}

fn policy_dir() -> std::path::PathBuf {
    let dir = temp_dir("approvals-policy");
    std::fs::write(dir.join("portcullis.rego"), POLICY).expect("policy");
    dir
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        // Made before the gateways start, so their catalogs know it.
        postgres().psql_super(
            "app",
            "create table appr_people (id int, email text); \
             insert into appr_people values (1, 'erin.north@corp.test'); \
             grant select on appr_people to svc",
        );
        let approvals = Approvals::start();
        let start = |id: &str| {
            Gateway::start(GatewayOptions {
                policy_dir: policy_dir(),
                extra: approvals.gateway_section(id),
                ..Default::default()
            })
        };
        let gateway = start("gw-one");
        let second = start("gw-two");
        Env {
            approvals,
            gateway,
            second,
        }
    })
}

/// psql running `sql` as riley through `gw`, in the background.
fn spawn_psql(gw: &Gateway, sql: &str) -> Child {
    psql_cmd(gw, RILEY, &idp().token("riley"), "app")
        .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql")
}

struct Finished {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn finish(child: Child) -> Finished {
    let out = child.wait_with_output().expect("psql");
    Finished {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// The pending request whose statement contains `marker` (waits for it).
fn pending(marker: &str) -> serde_json::Value {
    let a = &env().approvals;
    let mut found = serde_json::Value::Null;
    wait_for(
        &format!("a pending request for {marker}"),
        Duration::from_secs(20),
        || {
            found = a
                .list("dana", "pending")
                .into_iter()
                .find(|r| r["statement"].as_str().is_some_and(|s| s.contains(marker)))
                .unwrap_or_default();
            !found.is_null()
        },
    );
    found
}

fn state_of(id: &str) -> String {
    env()
        .approvals
        .list("dana", "all")
        .into_iter()
        .find(|r| r["id"] == id)
        .and_then(|r| r["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn table_exists(name: &str) -> bool {
    postgres().psql_super(
        "app",
        &format!("SELECT to_regclass('public.{name}') IS NOT NULL"),
    ) == "t"
}

#[test]
fn approved_statement_runs_and_its_result_reaches_the_waiting_client() {
    let e = env();
    let psql = spawn_psql(&e.gateway, "CREATE TABLE appr_ok (a int)");
    let req = pending("appr_ok");
    let id = req["id"].as_str().expect("id").to_string();
    assert_eq!(req["requester"]["email"], RILEY);
    assert_eq!(req["reasons"][0], "schema changes need a DBA");
    assert!(!table_exists("appr_ok"), "nothing runs before approval");

    // The requester cannot approve her own request, even as a DBA; a
    // non-approver cannot either.
    let (status, body) = e.approvals.decide("riley", &id, "approve", "");
    assert_eq!(status, 403, "{body}");
    let (status, body) = e.approvals.decide("bob", &id, "approve", "");
    assert_eq!(status, 403, "{body}");

    let (status, body) = e.approvals.decide("dana", &id, "approve", "looks fine");
    assert_eq!(status, 200, "{body}");
    // A double click changes nothing.
    let (status, _) = e.approvals.decide("dana", &id, "approve", "looks fine");
    assert_eq!(status, 200);
    let out = finish(psql);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("CREATE TABLE"), "{}", out.stdout);
    assert!(
        out.stderr.contains("waiting for approval") && out.stderr.contains(&id),
        "psql shows the approval link: {}",
        out.stderr
    );
    assert!(table_exists("appr_ok"));
    assert_eq!(state_of(&id), "approved");
    // The audit record of the run names the approval and the approver.
    let mut record = serde_json::Value::Null;
    wait_for(
        "the audit record of the approved run",
        Duration::from_secs(20),
        || {
            let config = e.gateway.dir.join("portcullis.toml").display().to_string();
            record = portcullis_e2e::audit_export(&["--config", &config])
                .into_iter()
                .find(|r| r["approval_id"] == id.as_str())
                .unwrap_or_default();
            !record.is_null()
        },
    );
    assert_eq!(
        record["approvers"],
        serde_json::json!(["dana@example.com"]),
        "{record}"
    );
    assert_eq!(record["command_tag"], "CREATE TABLE");
    assert_eq!(record["action"], "approve");
}

#[test]
fn approvers_see_a_password_redacted_the_statement_is_held_and_sets_it() {
    let e = env();
    postgres().psql_super("app", "CREATE ROLE appr_pw_role; ALTER ROLE svc CREATEROLE");
    let psql = spawn_psql(
        &e.gateway,
        "ALTER ROLE appr_pw_role PASSWORD 'pw-hunter2-appr'",
    );
    let req = pending("appr_pw_role");
    assert_eq!(
        req["statement"], "ALTER ROLE appr_pw_role PASSWORD '[redacted]'",
        "{req}"
    );
    assert_eq!(
        req["facts"][0]["text"],
        "ALTER ROLE appr_pw_role PASSWORD '[redacted]'"
    );
    // Asked for in retry mode, but a grant for the redacted text would
    // cover any password: the statement is held instead.
    assert_eq!(req["mode"], "hold", "{req}");
    let id = req["id"].as_str().expect("id").to_string();
    // The request as the service stores it (and its UI, e-mail and Slack
    // show it).
    assert!(
        !req.to_string().contains("hunter2"),
        "the password reaches no approver: {req}"
    );
    // The decision binds the text approvers saw; the statement that runs
    // is the client's own, password and all.
    let (status, body) = e.approvals.decide("dana", &id, "approve", "");
    assert_eq!(status, 200, "{body}");
    let out = finish(psql);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        postgres().psql_super(
            "app",
            "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'appr_pw_role'"
        ),
        "t"
    );
}

#[test]
fn approver_decides_in_the_web_ui_in_real_chromium() {
    let e = env();
    let psql = spawn_psql(&e.gateway, "CREATE TABLE appr_browser (a int)");
    let id = pending("appr_browser")["id"]
        .as_str()
        .expect("id")
        .to_string();
    // The link psql printed is the page the approver opens.
    let link = format!("{}/requests/{id}", e.approvals.url);
    let shot = temp_dir("approvals-ui").join("request.png");
    let page = e
        .approvals
        .decide_in_browser(&link, "dana", "approve", "ship it", Some(&shot));
    assert!(
        page["statement"]
            .as_str()
            .unwrap_or("")
            .contains("CREATE TABLE appr_browser"),
        "{page}"
    );
    assert_eq!(page["before"], "pending");
    assert_eq!(page["forged"], 403, "a post without the CSRF token: {page}");
    assert_eq!(page["after"], "approved", "{page}");
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000));
    let out = finish(psql);
    assert!(out.ok, "{}", out.stderr);
    assert!(table_exists("appr_browser"));
    assert!(
        out.stderr.contains(&link),
        "psql printed the link: {}",
        out.stderr
    );
    assert!(page["history"]
        .as_str()
        .unwrap_or("")
        .contains("appr_browser"));
}

#[test]
fn an_approved_statement_with_mask_rules_gets_masked_rows() {
    let e = env();
    // Masking that cannot be proven is refused before anyone is asked.
    let refused = finish(spawn_psql(
        &e.gateway,
        "SELECT upper(email) FROM appr_people",
    ));
    assert!(
        refused.stderr.contains("masking cannot be proven"),
        "{}",
        refused.stderr
    );
    let psql = spawn_psql(
        &e.gateway,
        "SELECT id, email FROM appr_people /* appr-mask */",
    );
    let id = pending("appr-mask")["id"].as_str().expect("id").to_string();
    let (status, body) = e.approvals.decide("dana", &id, "approve", "");
    assert_eq!(status, 200, "{body}");
    let out = finish(psql);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("e*********@corp.test"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("erin.north"), "{}", out.stdout);
}

#[test]
fn rejected_statement_fails_with_the_approvers_comment() {
    let e = env();
    let psql = spawn_psql(&e.gateway, "CREATE TABLE appr_rejected (a int)");
    let id = pending("appr_rejected")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, body) = e
        .approvals
        .decide("erin", &id, "reject", "not during the freeze");
    assert_eq!(status, 200, "{body}");
    let out = finish(psql);
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("rejected by erin@example.com: not during the freeze"),
        "{}",
        out.stderr
    );
    assert!(!table_exists("appr_rejected"));
    // A late approval of a rejected request is refused.
    let (status, _) = e.approvals.decide("dana", &id, "approve", "");
    assert_eq!(status, 409);
}

#[test]
fn quorum_of_two_needs_two_different_approvers() {
    let e = env();
    postgres().psql_super("app", "SET ROLE svc; CREATE TABLE appr_quorum (a int)");
    let psql = spawn_psql(&e.gateway, "DROP TABLE appr_quorum");
    let id = pending("appr_quorum")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, _) = e.approvals.decide("dana", &id, "approve", "");
    assert_eq!(status, 200);
    let (status, _) = e.approvals.decide("dana", &id, "approve", "");
    assert_eq!(status, 200, "the same approver twice counts once");
    assert_eq!(state_of(&id), "pending");
    assert!(table_exists("appr_quorum"));
    let (status, _) = e.approvals.decide("erin", &id, "approve", "");
    assert_eq!(status, 200);
    let out = finish(psql);
    assert!(out.ok, "{}", out.stderr);
    assert!(!table_exists("appr_quorum"));
}

#[test]
fn a_request_nobody_decides_expires() {
    let e = env();
    postgres().psql_super(
        "app",
        "SET ROLE svc; CREATE TABLE appr_expiry (a int); INSERT INTO appr_expiry VALUES (1)",
    );
    let out = finish(spawn_psql(&e.gateway, "TRUNCATE appr_expiry"));
    assert!(!out.ok);
    assert!(out.stderr.contains("expired"), "{}", out.stderr);
    assert_eq!(
        postgres().psql_super("app", "SELECT count(*) FROM appr_expiry"),
        "1"
    );
}

#[test]
fn cancelling_the_waiting_client_withdraws_the_request() {
    let e = env();
    let psql = spawn_psql(&e.gateway, "CREATE TABLE appr_cancel (a int)");
    let id = pending("appr_cancel")["id"]
        .as_str()
        .expect("id")
        .to_string();
    // psql sends a CancelRequest on SIGINT.
    let status = Command::new("kill")
        .args(["-INT", &psql.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = finish(psql);
    assert!(
        out.stderr
            .contains("canceling statement due to user request"),
        "{}",
        out.stderr
    );
    wait_for("the request withdrawn", Duration::from_secs(10), || {
        state_of(&id) == "withdrawn"
    });
    let (status, _) = e.approvals.decide("dana", &id, "approve", "");
    assert_eq!(status, 409, "a withdrawn request cannot be approved");
    assert!(!table_exists("appr_cancel"));
}

#[test]
fn two_gateways_share_one_service() {
    let e = env();
    let psql = spawn_psql(&e.second, "CREATE TABLE appr_second (a int)");
    let req = pending("appr_second");
    assert_eq!(req["gateway"], "gw-two");
    let id = req["id"].as_str().expect("id").to_string();
    let (status, _) = e.approvals.decide("dana", &id, "approve", "");
    assert_eq!(status, 200);
    let out = finish(psql);
    assert!(out.ok, "{}", out.stderr);
    assert!(table_exists("appr_second"));
}

#[test]
fn a_decision_signed_with_another_key_is_refused() {
    let e = env();
    // A gateway that trusts a different key: the service's genuine
    // approval does not verify there.
    let other = Approvals::start();
    let section = e
        .approvals
        .gateway_section("gw-forged")
        .replace(&e.approvals.public_key, &other.public_key);
    let gw = Gateway::start(GatewayOptions {
        policy_dir: policy_dir(),
        extra: section,
        ..Default::default()
    });
    let psql = spawn_psql(&gw, "CREATE TABLE appr_forged (a int)");
    let id = pending("appr_forged")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, _) = e.approvals.decide("dana", &id, "approve", "");
    assert_eq!(status, 200);
    let out = finish(psql);
    assert!(!out.ok);
    assert!(
        out.stderr.contains("signature does not verify"),
        "{}",
        out.stderr
    );
    assert!(!table_exists("appr_forged"));
}

#[test]
fn approvals_service_down_refuses_and_the_session_goes_on() {
    let e = env();
    let section = e.approvals.gateway_section("gw-down").replace(
        &e.approvals.url,
        &format!("http://127.0.0.1:{}", portcullis_e2e::free_port()),
    );
    let gw = Gateway::start(GatewayOptions {
        policy_dir: policy_dir(),
        extra: section,
        ..Default::default()
    });
    let out = psql_cmd(&gw, RILEY, &idp().token("riley"), "app")
        .args([
            "-c",
            "CREATE TABLE appr_down (a int)",
            "-c",
            "SELECT 'still usable'",
        ])
        .output()
        .expect("psql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be reached"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("still usable"));
    assert!(!table_exists("appr_down"));
}

#[test]
fn a_held_statement_inside_a_transaction_runs_in_it() {
    let e = env();
    let psql = psql_cmd(&e.gateway, RILEY, &idp().token("riley"), "app")
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "BEGIN",
            "-c",
            "CREATE TABLE appr_in_tx (a int)",
            "-c",
            "INSERT INTO appr_in_tx VALUES (1)",
            "-c",
            "COMMIT",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    let id = pending("appr_in_tx")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, _) = e.approvals.decide("dana", &id, "approve", "");
    assert_eq!(status, 200);
    let out = finish(psql);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        postgres().psql_super("app", "SELECT count(*) FROM appr_in_tx"),
        "1"
    );
}

#[test]
fn a_client_that_disconnects_while_held_withdraws_its_request() {
    let e = env();
    let mut psql = spawn_psql(&e.gateway, "CREATE TABLE appr_gone (a int)");
    let id = pending("appr_gone")["id"].as_str().expect("id").to_string();
    psql.kill().expect("kill psql");
    let _ = psql.wait();
    wait_for("the request withdrawn", Duration::from_secs(10), || {
        state_of(&id) == "withdrawn"
    });
    assert!(!table_exists("appr_gone"));
}

#[test]
fn concurrent_approvers_cannot_both_decide() {
    let e = env();
    let psql = spawn_psql(&e.gateway, "CREATE TABLE appr_race (a int)");
    let id = pending("appr_race")["id"].as_str().expect("id").to_string();
    let votes: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
        let a = s.spawn(|| e.approvals.decide("dana", &id, "approve", ""));
        let b = s.spawn(|| e.approvals.decide("erin", &id, "reject", "no"));
        vec![a.join().expect("dana"), b.join().expect("erin")]
    });
    let ok: Vec<_> = votes.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(ok.len(), 1, "exactly one vote decides: {votes:?}");
    assert!(votes.iter().any(|(s, _)| *s == 409), "{votes:?}");
    let out = finish(psql);
    let decided = ok[0].1["decision"]["payload"]["approvers"].clone();
    assert_eq!(decided.as_array().map(Vec::len), Some(1), "{decided}");
    assert_eq!(out.ok, table_exists("appr_race"));
    let metrics = reqwest::blocking::get(format!("{}/metrics", e.approvals.url))
        .and_then(|r| r.text())
        .expect("metrics");
    assert!(
        metrics.contains("portcullis_approvals_requests_total"),
        "{metrics}"
    );
}

/// psycopg (extended protocol) running `sql` with `params` as riley.
fn spawn_psycopg(gw: &Gateway, sql: &str, params: &[&str]) -> Child {
    Command::new("python3")
        .arg("clients/hold_ext.py")
        .arg(sql)
        .args(params)
        .current_dir(portcullis_e2e::root().join("tests"))
        .env("PCG_HOST", "127.0.0.1")
        .env("PCG_PORT", gw.port.to_string())
        .env("PCG_USER", RILEY)
        .env("PCG_PASSWORD", idp().token("riley"))
        .env("PCG_DB", "app")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3")
}

fn json_of(out: &Finished) -> serde_json::Value {
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {}{}", out.stdout, out.stderr))
}

#[test]
fn extended_protocol_hold_shows_the_bound_parameters() {
    let e = env();
    postgres().psql_super(
        "app",
        "SET ROLE svc; CREATE TABLE appr_params (a int); INSERT INTO appr_params VALUES (41), (42)",
    );
    let py = spawn_psycopg(&e.gateway, "DELETE FROM appr_params WHERE a = %s", &["42"]);
    let req = pending("appr_params");
    assert_eq!(req["params"], serde_json::json!(["42"]), "{req}");
    let id = req["id"].as_str().expect("id").to_string();
    let (status, _) = e.approvals.decide("dana", &id, "approve", "");
    assert_eq!(status, 200);
    let out = json_of(&finish(py));
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["status"], "DELETE 1");
    assert_eq!(out["usable"], "usable");
    assert!(
        out["notices"].to_string().contains("waiting for approval"),
        "{out}"
    );
    assert_eq!(
        postgres().psql_super("app", "SELECT string_agg(a::text, ',') FROM appr_params"),
        "41"
    );
}

#[test]
fn extended_protocol_rejection_and_ddl() {
    let e = env();
    let py = spawn_psycopg(&e.gateway, "CREATE TABLE appr_ext_rejected (a int)", &[]);
    let id = pending("appr_ext_rejected")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, _) = e.approvals.decide("erin", &id, "reject", "use a migration");
    assert_eq!(status, 200);
    let out = json_of(&finish(py));
    assert_eq!(out["ok"], false);
    assert_eq!(out["sqlstate"], "42501");
    assert!(
        out["message"]
            .as_str()
            .unwrap_or("")
            .contains("use a migration"),
        "{out}"
    );
    assert_eq!(
        out["usable"], "usable",
        "the session goes on after a rejected batch"
    );
    assert!(!table_exists("appr_ext_rejected"));
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Parse (named), Bind with one text parameter, Execute, Sync.
fn bind_execute(statement: &str, param: &str) -> Vec<u8> {
    use portcullis_e2e::raw::frame;
    let mut bind = cstr("");
    bind.extend(cstr(statement));
    bind.extend([0, 0, 0, 1]);
    bind.extend((param.len() as i32).to_be_bytes());
    bind.extend(param.as_bytes());
    bind.extend([0, 0]);
    let mut out = frame(b'B', &bind);
    let mut exec = cstr("");
    exec.extend([0, 0, 0, 0]);
    out.extend(frame(b'E', &exec));
    out.extend(frame(b'S', &[]));
    out
}

#[test]
fn each_execution_of_a_prepared_statement_needs_its_own_approval() {
    use std::io::Write;

    use portcullis_e2e::raw::{frame, logged_in, read_all_until_ready};
    let e = env();
    postgres().psql_super(
        "app",
        "SET ROLE svc; CREATE TABLE appr_named (a int); INSERT INTO appr_named VALUES (5), (6)",
    );
    let mut s = logged_in(&e.gateway, RILEY, &idp().token("riley"));
    let mut parse = cstr("s1");
    parse.extend(cstr("DELETE FROM appr_named WHERE a = $1"));
    parse.extend([0, 0]);
    let mut batch = frame(b'P', &parse);
    batch.extend(bind_execute("s1", "5"));
    s.write_all(&batch).expect("batch");
    let req = pending("appr_named");
    assert_eq!(req["params"], serde_json::json!(["5"]));
    let id = req["id"].as_str().expect("id").to_string();
    assert_eq!(e.approvals.decide("dana", &id, "approve", "").0, 200);
    let answer = read_all_until_ready(&mut s);
    assert!(
        answer
            .iter()
            .any(|(t, b)| *t == b'C' && b.starts_with(b"DELETE 1")),
        "{answer:?}"
    );
    // The same prepared statement again: not approved.
    s.write_all(&bind_execute("s1", "6")).expect("again");
    let answer = read_all_until_ready(&mut s);
    let error = answer
        .iter()
        .find(|(t, _)| *t == b'E')
        .map(|(_, b)| String::from_utf8_lossy(b).to_string())
        .unwrap_or_default();
    assert!(
        error.contains("needs approval for each execution"),
        "{answer:?}"
    );
    assert_eq!(
        postgres().psql_super("app", "SELECT string_agg(a::text, ',') FROM appr_named"),
        "6"
    );
}

#[test]
fn retry_mode_answers_at_once_and_the_approved_rerun_passes_once() {
    let e = env();
    let tok = idp().token("riley");
    let run = |sql: &str| {
        psql_cmd(&e.gateway, RILEY, &tok, "app")
            .args(["-c", sql])
            .output()
            .expect("psql")
    };
    let sql = "CREATE VIEW appr_retry_v AS SELECT 1 AS one";
    let first = run(sql);
    let stderr = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(!first.status.success());
    assert!(
        stderr.contains("approval required") && stderr.contains("/requests/"),
        "{stderr}"
    );
    let id = pending("appr_retry_v")["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(stderr.contains(&id), "the error carries the link: {stderr}");
    assert_eq!(e.approvals.decide("dana", &id, "approve", "").0, 200);
    let second = run(sql);
    assert!(
        second.status.success(),
        "the approved re-run passes: {}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(table_exists("appr_retry_v"));
    // Once per approval: a third run (another view, same text shape) asks again.
    let third = run("CREATE VIEW appr_retry_v2 AS SELECT 1 AS one");
    assert!(String::from_utf8_lossy(&third.stderr).contains("approval required"));
    let again = run(sql);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("approval required"),
        "the approval was used up"
    );
}

#[test]
fn sigterm_withdraws_held_statements_before_the_grace_period_ends() {
    let e = env();
    let gw = Gateway::start(GatewayOptions {
        policy_dir: policy_dir(),
        extra: e.approvals.gateway_section("gw-term"),
        ..Default::default()
    });
    let psql = spawn_psql(&gw, "CREATE TABLE appr_term (a int)");
    let id = pending("appr_term")["id"].as_str().expect("id").to_string();
    let pid = gw.pid().expect("gateway pid");
    let started = std::time::Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill")
        .success());
    let out = finish(psql);
    assert!(out.stderr.contains("shutting down"), "{}", out.stderr);
    wait_for("the request withdrawn", Duration::from_secs(10), || {
        state_of(&id) == "withdrawn"
    });
    // The harness's grace period is 5 s: the withdrawal does not wait for it.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!table_exists("appr_term"));
}

/// A webhook receiver: records each POST (headers and body); answers 500
/// to the first delivery, 200 afterwards.
fn receiver() -> (u16, Deliveries) {
    receiver_failing(1)
}

/// A receiver that answers 500 to the first `fail` deliveries.
fn receiver_failing(fail: usize) -> (u16, Deliveries) {
    receiver_with(fail, "")
}

#[test]
fn webhooks_get_signed_events_retried_and_never_block() {
    let (port, got) = receiver();
    // A second receiver accepts connections and never answers.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dir = temp_dir("webhook");
    std::fs::write(dir.join("hook.secret"), "s3cret-hook-key").expect("secret");
    let a = Approvals::start_with(&format!(
        "[[webhooks]]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_file = \"{}\"\n\n\
         [[webhooks]]\nurl = \"http://127.0.0.1:{}/never\"\nsecret_file = \"{}\"\nevents = [\"created\"]\n",
        dir.join("hook.secret").display(),
        black_hole.local_addr().expect("addr").port(),
        dir.join("hook.secret").display()
    ));
    let started = std::time::Instant::now();
    let id = create_request(&a, "DROP TABLE hooks");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a silent receiver does not block"
    );
    assert_eq!(a.decide("dana", &id, "approve", "ok").0, 200);
    // created: refused once, delivered on retry; decided: delivered.
    wait_for("webhook deliveries", Duration::from_secs(20), || {
        got.lock().map(|g| g.len() >= 3).unwrap_or(false)
    });
    let got = got.lock().expect("lock").clone();
    let events: Vec<String> = got
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<serde_json::Value>(b).unwrap_or_default()["event"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        events.iter().filter(|e| *e == "created").count(),
        2,
        "retried: {events:?}"
    );
    assert!(events.contains(&"decided".to_string()), "{events:?}");
    for (head, body) in &got {
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix(&format!("{name}:"))
                        .map(|v| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        let ts: i64 = header("x-portcullis-timestamp").parse().expect("timestamp");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret-hook-key");
        assert_eq!(
            header("x-portcullis-signature"),
            portcullis_approvals::notify::signature(&key, ts, body.as_bytes())
        );
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["id"], id.as_str());
        assert!(v["url"]
            .as_str()
            .unwrap_or("")
            .ends_with(&format!("/requests/{id}")));
    }
}

fn uuid_v7() -> String {
    // A time-ordered UUID is what gateways send; any valid UUID works.
    format!(
        "{:08x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
        rand::random::<u32>(),
        rand::random::<u16>(),
        rand::random::<u16>() & 0xfff,
        rand::random::<u16>() & 0xfff,
        rand::random::<u64>() & 0xffff_ffff_ffff
    )
}

fn create_request(a: &Approvals, statement: &str) -> String {
    let id = uuid_v7();
    let created = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/requests", a.url))
        .bearer_auth(&a.token)
        .json(&serde_json::json!({
            "id": id, "gateway": "gw", "requester": {"sub": "riley", "email": RILEY},
            "connection": "app", "statement": statement, "groups": ["dba"],
            "quorum": 1, "expires_in": 60, "mode": "hold", "reasons": ["schema changes need a DBA"]
        }))
        .send()
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);
    id
}

#[test]
fn approvers_get_an_email_with_a_working_link() {
    let port = portcullis_e2e::free_port();
    let dir = temp_dir("smtp");
    let _sink = portcullis_e2e::Guarded::spawn(
        "python3",
        &[
            portcullis_e2e::root()
                .join("tests/clients/smtp_sink.py")
                .display()
                .to_string(),
            port.to_string(),
            dir.join("mail").display().to_string(),
        ],
        "",
        &dir.join("sink.log"),
    );
    portcullis_e2e::wait_port(port, "SMTP sink");
    let a = Approvals::start_with(&format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
         from = \"Portcullis <approvals@example.com>\"\n\n[email.groups]\n\
         dba = [\"dana@example.com\", \"dba-team@example.com\"]\n"
    ));
    let id = create_request(&a, "DROP TABLE mailed");
    let mail = dir.join("mail/1.eml");
    wait_for("the approval e-mail", Duration::from_secs(20), || {
        mail.exists()
    });
    // The body is quoted-printable: join soft line breaks, decode `=`.
    let text = std::fs::read_to_string(&mail)
        .expect("mail")
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    assert!(
        text.starts_with("RCPT dana@example.com,dba-team@example.com"),
        "{text}"
    );
    assert!(
        text.contains("Subject: Approval needed: DROP TABLE mailed"),
        "{text}"
    );
    assert!(text.contains("riley@example.com"), "{text}");
    let link = format!("{}/requests/{id}", a.url);
    assert!(text.contains(&link), "{text}");
    // The link lands on the UI, which asks for a login first.
    let r = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(&link)
        .send()
        .expect("link");
    assert!(r.status().is_redirection(), "{}", r.status());
    let to = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(to.starts_with("/login?next="), "{to}");
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn slack_message_and_signed_button_clicks() {
    let (port, got) = receiver_failing(0);
    let dir = temp_dir("slack");
    std::fs::write(dir.join("slack.secret"), "slack-signing-secret").expect("secret");
    let a = Approvals::start_with(&format!(
        "[slack]\nwebhook_url = \"http://127.0.0.1:{port}/hook\"\nsigning_secret_file = \"{}\"\n\n\
         [slack.users.U_DANA]\nemail = \"dana@example.com\"\ngroups = [\"dba\"]\n\n\
         [slack.users.U_BOB]\nemail = \"bob@example.com\"\ngroups = [\"analyst\"]\n",
        dir.join("slack.secret").display()
    ));
    let id = create_request(&a, "DROP TABLE slacked");
    wait_for("the Slack message", Duration::from_secs(20), || {
        got.lock().map(|g| !g.is_empty()).unwrap_or(false)
    });
    let msg: serde_json::Value =
        serde_json::from_str(&got.lock().expect("lock")[0].1).expect("json");
    let blocks = msg["blocks"].to_string();
    assert!(
        blocks.contains("DROP TABLE slacked") && blocks.contains("Approve"),
        "{blocks}"
    );
    assert!(blocks.contains(&format!("/requests/{id}")), "{blocks}");

    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"slack-signing-secret");
    let click = |user: &str, ts: i64, good_key: bool| {
        let payload = serde_json::json!({
            "type": "block_actions", "user": {"id": user},
            "actions": [{"action_id": "approve", "value": id}],
            "response_url": format!("http://127.0.0.1:{port}/response"),
        });
        let body = format!("payload={}", form_encode(&payload.to_string()));
        let k = if good_key {
            key.clone()
        } else {
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"wrong")
        };
        let sig = ring::hmac::sign(&k, format!("v0:{ts}:{body}").as_bytes());
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/slack/interactive", a.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts.to_string())
            .header(
                "x-slack-signature",
                format!("v0={}", hex_encode(sig.as_ref())),
            )
            .body(body)
            .send()
            .expect("interactive");
        (r.status().as_u16(), r.text().unwrap_or_default())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    assert_eq!(click("U_DANA", now, false).0, 401, "bad signature");
    assert_eq!(click("U_DANA", now - 600, true).0, 401, "stale timestamp");
    let (status, text) = click("U_BOB", now, true);
    assert_eq!(status, 200);
    assert!(
        text.contains("not recorded") || text.contains("Not recorded"),
        "{text}"
    );
    let (status, text) = click("U_NOBODY", now, true);
    assert_eq!(status, 200);
    assert!(text.contains("not mapped"), "{text}");
    let (status, text) = click("U_DANA", now, true);
    assert_eq!(status, 200);
    assert!(text.contains("approved"), "{text}");
    assert_eq!(
        a.list("dana", "all")
            .into_iter()
            .find(|r| r["id"] == id.as_str())
            .map(|r| r["state"].clone()),
        Some(serde_json::json!("approved"))
    );
    // The message was updated through the response_url.
    let updates: Vec<serde_json::Value> = got
        .lock()
        .expect("lock")
        .iter()
        .filter(|(h, _)| h.starts_with("POST /response"))
        .filter_map(|(_, b)| serde_json::from_str(b).ok())
        .collect();
    assert!(
        updates.iter().any(|u| u["replace_original"] == true
            && u["text"].as_str().unwrap_or("").contains("approved")),
        "{updates:?}"
    );
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_server_that_ends_the_session_while_held_reaches_the_client_at_once() {
    let e = env();
    // Its own application name, so only this session's backend is ended.
    let psql = psql_cmd(&e.gateway, RILEY, &idp().token("riley"), "app")
        .env("PGAPPNAME", "appr-killed")
        .args(["-c", "CREATE TABLE appr_killed (a int)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    let id = pending("appr_killed")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let started = std::time::Instant::now();
    // An administrator ends the held session's upstream backend.
    postgres().psql_super(
        "app",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'appr-killed (portcullis:riley@example.com)'",
    );
    let out = finish(psql);
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("terminating connection due to administrator command"),
        "the server's own error: {}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
    wait_for("the request withdrawn", Duration::from_secs(10), || {
        state_of(&id) == "withdrawn"
    });
    assert!(!table_exists("appr_killed"));
}

#[test]
fn service_basics_health_tokens_expiry_cap_and_a_postgres_store() {
    let pg = postgres();
    pg.psql_super("postgres", "CREATE DATABASE approvals_store OWNER svc");
    let a = Approvals::start_with_store(
        &format!(
            "postgres://svc:{}@127.0.0.1:{}/approvals_store",
            pg.svc_password, pg.port
        ),
        "max_expiry = \"10m\"\n",
    );
    let http = reqwest::blocking::Client::new();
    let health = http
        .get(format!("{}/healthz", a.url))
        .send()
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    // A wrong gateway token is refused.
    let r = http
        .get(format!("{}/api/v1/requests/x", a.url))
        .bearer_auth("not-the-token-at-all")
        .send()
        .expect("read");
    assert_eq!(r.status().as_u16(), 401);
    // The expiry a gateway asks for is capped by max_expiry.
    let id = uuid_v7();
    let r = http
        .post(format!("{}/api/v1/requests", a.url))
        .bearer_auth(&a.token)
        .json(&serde_json::json!({
            "id": id, "gateway": "gw", "requester": {"sub": "riley", "email": RILEY},
            "connection": "app", "statement": "DROP TABLE capped", "groups": ["dba"],
            "quorum": 1, "expires_in": 86400 * 30, "mode": "hold"
        }))
        .send()
        .expect("create");
    assert_eq!(r.status().as_u16(), 201);
    let req = a
        .list("dana", "pending")
        .into_iter()
        .find(|r| r["id"] == id.as_str())
        .expect("listed");
    let life = req["expires_at"].as_i64().unwrap_or(0) - req["created_at"].as_i64().unwrap_or(0);
    assert!(life <= 600_000, "capped at 10 minutes: {life} ms");
    // The request and the vote live in PostgreSQL.
    assert_eq!(a.decide("dana", &id, "approve", "").0, 200);
    assert_eq!(
        pg.psql_super(
            "approvals_store",
            &format!("SELECT state FROM requests WHERE id = '{id}'")
        ),
        "approved"
    );
}

#[test]
fn a_short_gateway_token_is_refused_at_start() {
    let dir = temp_dir("approvals-short");
    std::fs::write(dir.join("t"), "short").expect("token");
    std::fs::write(dir.join("k"), "AAAA").expect("key");
    std::fs::write(
        dir.join("approvals.toml"),
        "gateway_token_file = \"t\"\nsigning_key_file = \"k\"\n",
    )
    .expect("config");
    let out = Command::new(portcullis_e2e::approvals::approvals_bin())
        .args(["serve", "--config"])
        .arg(dir.join("approvals.toml"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 16 characters"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_retry_grant_lapses_after_grant_lifetime() {
    let approvals = Approvals::start_with("grant_lifetime = \"1s\"\n");
    let gw = Gateway::start(GatewayOptions {
        policy_dir: policy_dir(),
        extra: approvals.gateway_section("gw-grant"),
        ..Default::default()
    });
    let tok = idp().token("riley");
    let run = |sql: &str| {
        psql_cmd(&gw, RILEY, &tok, "app")
            .args(["-c", sql])
            .output()
            .expect("psql")
    };
    let sql = "CREATE VIEW appr_grant_lapsed AS SELECT 1 AS one";
    let first = run(sql);
    assert!(String::from_utf8_lossy(&first.stderr).contains("approval required"));
    let mut id = String::new();
    wait_for("the retry request", Duration::from_secs(20), || {
        id = approvals
            .list("dana", "pending")
            .into_iter()
            .find(|r| r["statement"].as_str() == Some(sql))
            .and_then(|r| r["id"].as_str().map(str::to_string))
            .unwrap_or_default();
        !id.is_empty()
    });
    assert_eq!(approvals.decide("dana", &id, "approve", "").0, 200);
    // The signed decision says until when it may be used; wait past it.
    let view: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/requests/{id}", approvals.url))
        .bearer_auth(&approvals.token)
        .send()
        .and_then(|r| r.json())
        .expect("read request");
    let until = view["decision"]["payload"]["valid_until"]
        .as_i64()
        .unwrap_or_else(|| panic!("no valid_until: {view}"));
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    };
    assert!(
        until - now_ms() <= 1_500,
        "grant_lifetime 1s is stamped: {view}"
    );
    wait_for("the grant to lapse", Duration::from_secs(10), || {
        now_ms() > until
    });
    let again = run(sql);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("approval required"),
        "a lapsed grant does not pass: {err}"
    );
    assert!(!table_exists("appr_grant_lapsed"));
}

#[test]
fn the_listen_address_can_come_from_the_environment() {
    let twin = env().approvals.another_instance(true);
    let r = reqwest::blocking::get(format!("{}/healthz", twin.url)).expect("healthz");
    assert!(r.status().is_success());
}

#[test]
fn two_service_instances_on_one_postgres_store_decide_each_request_once() {
    let pg = postgres();
    pg.psql_super("postgres", "CREATE DATABASE approvals_shared OWNER svc");
    let a = Approvals::start_with_store(
        &format!(
            "postgres://svc:{}@127.0.0.1:{}/approvals_shared",
            pg.svc_password, pg.port
        ),
        "",
    );
    let b = a.another_instance(false);
    for i in 0..12 {
        let id = create_request(&a, &format!("DROP TABLE shared_{i}"));
        let votes: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
            let x = s.spawn(|| a.decide("dana", &id, "approve", ""));
            let y = s.spawn(|| b.decide("erin", &id, "reject", "no"));
            vec![x.join().expect("dana"), y.join().expect("erin")]
        });
        let ok = votes.iter().filter(|(s, _)| *s == 200).count();
        assert_eq!(ok, 1, "request {i}: exactly one vote decides: {votes:?}");
        let closed = pg.psql_super(
            "approvals_shared",
            &format!(
                "SELECT count(*) FROM events WHERE request_id = '{id}' AND action IN ('approved', 'rejected')"
            ),
        );
        assert_eq!(closed, "1", "request {i} is decided once");
        let recorded_votes = pg.psql_super(
            "approvals_shared",
            &format!("SELECT count(*) FROM votes WHERE request_id = '{id}'"),
        );
        assert_eq!(
            recorded_votes, "1",
            "request {i}: the losing vote is not recorded"
        );
    }
}

#[test]
fn slack_bot_message_is_updated_when_decided_in_the_web_ui_or_api() {
    let (port, got) = receiver_with(
        0,
        r#"{"ok":true,"channel":"C0APPROVALS","ts":"1790000000.000100"}"#,
    );
    let dir = temp_dir("slack-bot");
    std::fs::write(dir.join("slack.secret"), "slack-signing-secret").expect("secret");
    std::fs::write(dir.join("bot.token"), "xoxb-test-token\n").expect("token");
    let a = Approvals::start_with(&format!(
        "[slack]\nbot_token_file = \"{}\"\nchannel = \"C0APPROVALS\"\napi_url = \"http://127.0.0.1:{port}/api\"\nsigning_secret_file = \"{}\"\n",
        dir.join("bot.token").display(),
        dir.join("slack.secret").display()
    ));
    let id = create_request(&a, "DROP TABLE slack_bot");
    let posted = |path: &str| -> Vec<(String, serde_json::Value)> {
        got.lock()
            .expect("lock")
            .iter()
            .filter(|(h, _)| h.starts_with(&format!("POST /api/{path}")))
            .map(|(h, b)| (h.clone(), serde_json::from_str(b).unwrap_or_default()))
            .collect()
    };
    wait_for("chat.postMessage", Duration::from_secs(20), || {
        !posted("chat.postMessage").is_empty()
    });
    let (head, msg) = posted("chat.postMessage").remove(0);
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer xoxb-test-token"),
        "{head}"
    );
    assert_eq!(msg["channel"], "C0APPROVALS");
    assert!(msg["blocks"].to_string().contains("DROP TABLE slack_bot"));
    // Decided outside Slack (the approvers' API, as the web UI does).
    assert_eq!(a.decide("dana", &id, "reject", "not today").0, 200);
    wait_for("chat.update", Duration::from_secs(20), || {
        !posted("chat.update").is_empty()
    });
    let (_, update) = posted("chat.update").remove(0);
    assert_eq!(update["channel"], "C0APPROVALS");
    assert_eq!(update["ts"], "1790000000.000100");
    let text = update["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("rejected")
            && text.contains("dana@example.com")
            && text.contains("not today"),
        "{update}"
    );
    assert!(
        !update["blocks"].to_string().contains("\"action_id\""),
        "the buttons are gone: {update}"
    );
}

/// A CA, a server certificate for 127.0.0.1 and two client certificates
/// (one from the CA, one self-signed) in `dir`.
fn mtls_material(dir: &std::path::Path) {
    use portcullis_e2e::openssl;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                ext,
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }
    portcullis_e2e::self_signed(dir, "rogue", "/CN=rogue");
}

#[test]
fn gateways_can_be_required_to_present_a_client_certificate() {
    let dir = temp_dir("mtls");
    mtls_material(&dir);
    let p = |f: &str| dir.join(f).display().to_string();
    let a = Approvals::start_with(&format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n",
        p("server.crt"),
        p("server.key"),
        p("ca.crt")
    ));
    let https = a.url.replace("http://", "https://");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.crt")).expect("ca"))
        .expect("ca pem");
    let client = |identity: Option<(&str, &str)>| {
        let mut b = reqwest::blocking::Client::builder().add_root_certificate(ca.clone());
        if let Some((crt, key)) = identity {
            let mut pem = std::fs::read(dir.join(crt)).expect("crt");
            pem.extend(std::fs::read(dir.join(key)).expect("key"));
            b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
        }
        b.build().expect("client")
    };
    let read = |c: &reqwest::blocking::Client| {
        c.get(format!("{https}/api/v1/requests/01a2-none"))
            .bearer_auth(&a.token)
            .send()
            .map(|r| r.status().as_u16())
    };
    // The right token is not enough without the certificate ...
    assert_eq!(read(&client(None)).ok(), Some(401));
    // ... a certificate from another CA fails the handshake ...
    assert!(read(&client(Some(("rogue.crt", "rogue.key")))).is_err());
    // ... and with it the API answers (no such request).
    assert_eq!(
        read(&client(Some(("client.crt", "client.key")))).ok(),
        Some(404)
    );
    // Approvers' browsers need no certificate.
    assert_eq!(
        client(None)
            .get(format!("{https}/healthz"))
            .send()
            .map(|r| r.status().as_u16())
            .ok(),
        Some(200)
    );

    let section = |with_cert: bool, id: &str| {
        let mut s = a.gateway_section(id).replace(&a.url, &https);
        s.push_str(&format!("ca_file = \"{}\"\n", p("ca.crt")));
        if with_cert {
            s.push_str(&format!(
                "client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
                p("client.crt"),
                p("client.key")
            ));
        }
        s
    };
    let gw = Gateway::start(GatewayOptions {
        policy_dir: policy_dir(),
        extra: section(true, "gw-mtls"),
        ..Default::default()
    });
    let psql = psql_cmd(&gw, RILEY, &idp().token("riley"), "app")
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE TABLE appr_mtls (a int)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    let approver = client(None);
    let mut id = String::new();
    wait_for("the mTLS request", Duration::from_secs(20), || {
        let list: serde_json::Value = approver
            .get(format!("{https}/api/v1/requests?state=pending"))
            .bearer_auth(idp().token("dana"))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default();
        id = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| {
                r["statement"]
                    .as_str()
                    .is_some_and(|s| s.contains("appr_mtls"))
            })
            .and_then(|r| r["id"].as_str().map(str::to_string))
            .unwrap_or_default();
        !id.is_empty()
    });
    let r = approver
        .post(format!("{https}/api/v1/requests/{id}/decision"))
        .bearer_auth(idp().token("dana"))
        .json(&serde_json::json!({"outcome": "approve", "comment": ""}))
        .send()
        .expect("decide");
    assert_eq!(r.status().as_u16(), 200);
    let out = finish(psql);
    assert!(out.ok, "{}", out.stderr);
    assert!(table_exists("appr_mtls"));

    // A gateway without its certificate is refused: fail closed, clearly.
    let bare = Gateway::start(GatewayOptions {
        policy_dir: policy_dir(),
        extra: section(false, "gw-bare"),
        ..Default::default()
    });
    let out = psql_cmd(&bare, RILEY, &idp().token("riley"), "app")
        .args([
            "-c",
            "CREATE TABLE appr_mtls_bare (a int)",
            "-c",
            "select 1 as still_here",
        ])
        .output()
        .expect("psql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("approval could not be obtained"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("still_here"));
    assert!(!table_exists("appr_mtls_bare"));
}
