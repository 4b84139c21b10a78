//! Unchanged drivers through the gateway: psycopg, asyncpg, node-pg, JDBC.
//! Each connects with a real OIDC token, reads rows, uses parameters and
//! prepared statements, gets 42501 for a denied statement and keeps
//! working, and (where the driver can) cancels a long pg_sleep.

use portcullis_e2e::clients::{client, Run};
use portcullis_e2e::{gateway, idp};
use serde_json::Value;

fn json(run: &Run) -> Value {
    assert!(run.ok, "client failed:\n{}", run.all());
    let line = run.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.all()))
}

fn token() -> String {
    idp().token("alice")
}

#[test]
fn psycopg() {
    let out = json(&client(
        "python3",
        &["clients/psycopg_client.py"],
        gateway(),
        "alice@example.com",
        &token(),
    ));
    assert_eq!(out["one"], 1);
    assert_eq!(out["param"], "item 3");
    assert_eq!(out["prepared"], serde_json::json!([1, 2, 3, 4, 5, 6]));
    assert_eq!(out["denied"], "42501", "{out}");
    assert!(
        out["denied_msg"]
            .as_str()
            .unwrap_or_default()
            .contains("DELETE without WHERE on public.items"),
        "{out}"
    );
    assert_eq!(out["after"], 10);
    assert_eq!(out["cancelled"], "57014", "{out}");
    assert!(out["cancel_secs"].as_f64().unwrap_or(99.0) < 30.0, "{out}");
    assert_eq!(out["after_cancel"], 2);
}

#[test]
fn asyncpg() {
    let out = json(&client(
        "python3",
        &["clients/asyncpg_client.py"],
        gateway(),
        "alice@example.com",
        &token(),
    ));
    assert_eq!(out["one"], 1);
    assert_eq!(out["param"], "item 3");
    assert_eq!(out["prepared"], serde_json::json!([1, 2, 3]));
    assert_eq!(out["denied"], "42501", "{out}");
    assert_eq!(out["after"], 10);
    assert_eq!(out["cancelled"], true, "{out}");
    assert!(out["cancel_secs"].as_f64().unwrap_or(99.0) < 30.0, "{out}");
    assert_eq!(out["after_cancel"], 2);
}

#[test]
fn node_pg() {
    let out = json(&client(
        "node",
        &["node/node_pg_client.mjs"],
        gateway(),
        "alice@example.com",
        &token(),
    ));
    assert_eq!(out["one"], 1);
    assert_eq!(out["param"], "item 3");
    assert_eq!(out["prepared"], serde_json::json!([4, 5]));
    assert_eq!(out["denied"], "42501", "{out}");
    assert_eq!(out["denied_extended"], "42501", "{out}");
    assert_eq!(out["after"], 10);
}

#[test]
fn jdbc() {
    let out = json(&client(
        "java",
        &[
            "-cp",
            "/usr/share/java/postgresql.jar",
            "clients/JdbcClient.java",
        ],
        gateway(),
        "alice@example.com",
        &token(),
    ));
    assert_eq!(out["one"], 1);
    assert_eq!(
        out["prepared"],
        serde_json::json!(["item 1", "item 2", "item 3", "item 4", "item 5"])
    );
    assert_eq!(out["denied"], "42501", "{out}");
    assert_eq!(out["after"], 10);
    assert_eq!(out["cancelled"], "57014", "{out}");
    assert!(out["cancel_secs"].as_f64().unwrap_or(99.0) < 30.0, "{out}");
    assert_eq!(out["after_cancel"], 2);
}
