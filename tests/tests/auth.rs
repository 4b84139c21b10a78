//! Token authentication through the gateway: good tokens work; expired,
//! wrong-audience, `alg: none`, forged, garbage and mismatched-user tokens
//! are refused with FATAL 28P01 and a precise reason; TLS is required
//! unless plaintext on loopback is explicitly allowed.

use std::time::Duration;

use portcullis_e2e::clients::{psql, psql_cmd, Run};
use portcullis_e2e::idp::{alg_none, forged};
use portcullis_e2e::{gateway, idp, wait_for, Gateway, GatewayOptions};

const ALICE: &str = "alice@example.com";

fn refused(r: &Run, reason: &str) {
    assert!(!r.ok, "connection should have been refused:\n{}", r.all());
    assert!(r.stderr.contains("authentication failed"), "{}", r.all());
    assert!(
        r.stderr.contains(reason),
        "expected `{reason}` in:\n{}",
        r.all()
    );
}

#[test]
fn valid_token_connects_and_user_may_be_email_or_username() {
    let tok = idp().token("alice");
    let r = psql(gateway(), ALICE, &tok, &["-c", "select 'hello'"]);
    assert!(r.ok && r.stdout.contains("hello"), "{}", r.all());
    let r = psql(gateway(), "alice", &tok, &["-c", "select 'again'"]);
    assert!(r.ok && r.stdout.contains("again"), "{}", r.all());
}

#[test]
fn user_that_does_not_match_the_token_is_refused() {
    let tok = idp().token("alice");
    let r = psql(gateway(), "bob@example.com", &tok, &["-c", "select 1"]);
    refused(&r, "user \"bob@example.com\" does not match the token");
}

#[test]
fn expired_token_is_refused() {
    let tok = idp().token("shortlived");
    let mut last = String::new();
    wait_for(
        "the 1-second token to expire",
        Duration::from_secs(20),
        || {
            let r = psql(gateway(), "short@example.com", &tok, &["-c", "select 1"]);
            last = r.all();
            !r.ok
        },
    );
    assert!(last.contains("token expired"), "{last}");
}

#[test]
fn token_for_another_audience_is_refused() {
    let tok = idp().token_for("alice", "urn:other:api");
    refused(
        &psql(gateway(), ALICE, &tok, &["-c", "select 1"]),
        "audience does not include `urn:portcullis:db`",
    );
}

#[test]
fn alg_none_token_is_refused() {
    let tok = alg_none(&idp().token("alice"));
    refused(
        &psql(gateway(), ALICE, &tok, &["-c", "select 1"]),
        "algorithm `none` is not accepted",
    );
}

#[test]
fn token_signed_by_another_key_is_refused() {
    let tok = forged(&idp().token("alice"));
    refused(
        &psql(gateway(), ALICE, &tok, &["-c", "select 1"]),
        "signature does not verify",
    );
}

#[test]
fn garbage_token_is_refused_and_never_echoed() {
    let r = psql(
        gateway(),
        ALICE,
        "not-a-jwt-secretvalue",
        &["-c", "select 1"],
    );
    refused(&r, "not a well-formed JWT");
    assert!(!r.all().contains("secretvalue"));
    assert!(!gateway().log().contains("secretvalue"));
}

#[test]
fn user_outside_every_group_may_connect_but_not_query() {
    let tok = idp().token("mallory");
    let r = psql(gateway(), "mallory@example.com", &tok, &["-c", "select 1"]);
    assert!(
        r.stderr
            .contains("not in a group allowed to use this gateway"),
        "{}",
        r.all()
    );
}

#[test]
fn tls_is_required_unless_plaintext_loopback_is_allowed() {
    let gw = Gateway::start(GatewayOptions {
        tls: true,
        allow_plaintext_loopback: false,
        ..Default::default()
    });
    let tok = idp().token("alice");
    let plain = Run::from(
        psql_cmd(&gw, ALICE, &tok, "app")
            .env("PGSSLMODE", "disable")
            .args(["-c", "select 1"])
            .output()
            .unwrap(),
    );
    assert!(!plain.ok);
    assert!(
        plain.stderr.contains("accepts the token only over TLS"),
        "{}",
        plain.all()
    );
    let tls = Run::from(
        psql_cmd(&gw, ALICE, &tok, "app")
            .env("PGSSLMODE", "require")
            .args([
                "-c",
                "select 'over tls'",
                "-c",
                "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            ])
            .output()
            .unwrap(),
    );
    assert!(tls.ok, "{}", tls.all());
    assert!(tls.stdout.contains("over tls"), "{}", tls.all());
}
