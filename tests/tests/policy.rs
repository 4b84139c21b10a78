//! Policy tooling and live policy behaviour: `portcullis policy test` and
//! `policy eval`, hot reload, a broken reload keeping the old policy, and
//! unparseable statements being denied.

use std::process::Command;
use std::time::Duration;

use portcullis_e2e::clients::{psql, Run};
use portcullis_e2e::{
    gateway, idp, portcullis_bin, root, temp_dir, wait_for, Gateway, GatewayOptions,
};

const ALICE: &str = "alice@example.com";

fn portcullis(args: &[&str]) -> Run {
    Command::new(portcullis_bin())
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
        .into()
}

#[test]
fn shipped_policy_tests_pass() {
    let r = portcullis(&["policy", "test", "policies"]);
    assert!(r.ok, "{}", r.all());
    assert!(
        r.stdout
            .contains("PASS data.portcullis_test.test_delete_without_where_denied"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains(", 0 failed"), "{}", r.all());
}

#[test]
fn a_broken_policy_test_fails_visibly() {
    let dir = temp_dir("poltest");
    for f in ["portcullis.rego", "data.json", "portcullis_test.rego"] {
        std::fs::copy(root().join("policies").join(f), dir.join(f)).unwrap();
    }
    let t = std::fs::read_to_string(dir.join("portcullis_test.rego")).unwrap();
    let broken = t.replacen(
        "d.approval.groups == [\"dba\"]",
        "d.approval.groups == [\"nobody\"]",
        1,
    );
    assert_ne!(t, broken);
    std::fs::write(dir.join("portcullis_test.rego"), broken).unwrap();
    let r = portcullis(&["policy", "test", dir.to_str().unwrap()]);
    assert!(!r.ok, "{}", r.all());
    assert!(
        r.stdout
            .contains("FAIL data.portcullis_test.test_ddl_needs_dba_approval"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains(", 1 failed"), "{}", r.all());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn policy_eval_prints_the_decision() {
    let dir = temp_dir("poleval");
    let input = dir.join("input.json");
    std::fs::write(&input, r#"{"version":1,"user":{"sub":"a","email":"a@x","name":"","groups":["dev"],"issuer":"i"},
        "client":{"addr":"127.0.0.1","application_name":"psql"},"connection":{"name":"app","kind":"postgres","database":"app"},
        "session":{"id":"s","in_transaction":false},
        "statement":{"text":"truncate t","fingerprint":"","kind":"truncate","command_tag":"TRUNCATE TABLE","read_only":false,
          "tables":[{"schema":"public","name":"t","access":"write"}],"columns":[],"functions":[],"has_where":false,"limit":null,
          "flags":["bulk_write"]},"now":"2026-11-23T10:00:00Z"}"#).unwrap();
    let r = portcullis(&[
        "policy",
        "eval",
        "--input",
        input.to_str().unwrap(),
        "--dir",
        "policies",
    ]);
    assert!(r.ok, "{}", r.all());
    let d: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(d["action"], "approve");
    assert_eq!(d["approval"]["groups"], serde_json::json!(["dba"]));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn unparseable_statement_is_denied_and_session_continues() {
    let r = psql(
        gateway(),
        ALICE,
        &idp().token("alice"),
        &["-c", "selec 1 from", "-c", "select 'ok after'"],
    );
    assert!(r.stderr.contains("could not be parsed"), "{}", r.all());
    assert!(r.stdout.contains("ok after"), "{}", r.all());
}

#[test]
fn policy_hot_reload_and_broken_reload_keeps_the_old_policy() {
    let dir = temp_dir("polreload");
    for f in ["portcullis.rego", "data.json"] {
        std::fs::copy(root().join("policies").join(f), dir.join(f)).unwrap();
    }
    let gw = Gateway::start(GatewayOptions {
        policy_dir: dir.clone(),
        reload_interval: "200ms".into(),
        ..Default::default()
    });
    let tok = idp().token("alice");
    let run = |gw: &Gateway| psql(gw, ALICE, &tok, &["-c", "select 'allowed'"]);
    assert!(run(&gw).stdout.contains("allowed"));

    std::fs::write(dir.join("portcullis.rego"), "package portcullis\nimport rego.v1\ndecision := {\"action\": \"deny\", \"reasons\": [\"maintenance window\"]}\n").unwrap();
    wait_for("the new policy", Duration::from_secs(20), || {
        run(&gw).stderr.contains("maintenance window")
    });

    std::fs::write(
        dir.join("portcullis.rego"),
        "package portcullis\nimport rego.v1\n\ndecision := {\"action\": \n",
    )
    .unwrap();
    wait_for(
        "the reload error in the log",
        Duration::from_secs(20),
        || gw.log().contains("policy reload failed"),
    );
    let log = gw.log();
    assert!(
        log.contains("portcullis.rego:4") || log.contains("portcullis.rego:5"),
        "{log}"
    );
    assert!(
        run(&gw).stderr.contains("maintenance window"),
        "old policy must stay in force"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn interpreter_engine_decides_the_same() {
    let gw = Gateway::start(GatewayOptions {
        policy_engine: "interpreter".into(),
        ..Default::default()
    });
    let r = psql(
        &gw,
        ALICE,
        &idp().token("alice"),
        &["-c", "select 'interpreted'", "-c", "delete from items"],
    );
    assert!(r.stdout.contains("interpreted"), "{}", r.all());
    assert!(
        r.stderr.contains("DELETE without WHERE on public.items"),
        "{}",
        r.all()
    );
    assert!(
        gw.log().contains("policy runs on the interpreter"),
        "{}",
        gw.log()
    );
}

#[test]
fn policy_sees_the_transaction_state() {
    let dir = temp_dir("poltx");
    std::fs::write(
        dir.join("p.rego"),
        "package portcullis\nimport rego.v1\n\ndecision := {\"action\": \"deny\", \"reasons\": [\"not inside transactions\"]} if {\n\tinput.session.in_transaction\n\tinput.statement.kind == \"select\"\n}\n\nelse := {\"action\": \"allow\"}\n",
    )
    .unwrap();
    let gw = Gateway::start(GatewayOptions {
        policy_dir: dir.clone(),
        ..Default::default()
    });
    let r = psql(
        &gw,
        ALICE,
        &idp().token("alice"),
        &[
            "-c",
            "select 'outside'",
            "-c",
            "begin",
            "-c",
            "select 'outside'",
            "-c",
            "rollback",
            "-c",
            "select 'outside'",
        ],
    );
    assert_eq!(r.stdout.matches("outside").count(), 2, "{}", r.all());
    assert!(r.stdout.contains("ROLLBACK"), "{}", r.all());
    assert!(r.stderr.contains("not inside transactions"), "{}", r.all());
    std::fs::remove_dir_all(dir).ok();
}
