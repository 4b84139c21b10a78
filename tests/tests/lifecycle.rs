//! Session lifecycle: NOTIFY/LISTEN relay, and graceful shutdown on SIGTERM
//! (stop accepting, let running sessions finish, then exit).

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use portcullis_e2e::clients::{psql, psql_cmd};
use portcullis_e2e::{gateway, idp, postgres, wait_for, Gateway, GatewayOptions};

const ALICE: &str = "alice@example.com";

#[test]
fn notifications_are_relayed() {
    let r = psql(
        gateway(),
        ALICE,
        &idp().token("alice"),
        &[
            "-c",
            "listen jobs",
            "-c",
            "notify jobs, 'built'",
            "-c",
            "select 1",
        ],
    );
    assert!(r.ok, "{}", r.all());
    assert!(
        r.stdout
            .contains("Asynchronous notification \"jobs\" with payload \"built\" received"),
        "{}",
        r.all()
    );
}

#[test]
fn sigterm_stops_accepting_and_lets_sessions_finish() {
    let gw = Gateway::start(GatewayOptions::default());
    let pid = gw.pid().expect("gateway pid");
    let running = psql_cmd(&gw, ALICE, &idp().token("alice"), "app")
        .args(["-c", "select pg_sleep(3), 'finished after shutdown began'"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    postgres().wait_value("app", "select count(*) from pg_stat_activity where state = 'active' and query like 'select pg_sleep(3)%'", "1");
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    wait_for("the listener to close", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", gw.port)).is_err()
    });
    let out = running.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("finished after shutdown began"), "{stdout}");
    wait_for("the gateway to exit", Duration::from_secs(15), || {
        gw.pid().is_none()
    });
    assert!(gw.log().contains("all sessions finished"), "{}", gw.log());
}

/// A session still running when the grace period ends gets FATAL 57P01
/// (as from a Postgres fast shutdown), and the gateway exits.
#[test]
fn sessions_past_the_grace_period_get_a_fatal() {
    let gw = Gateway::start(GatewayOptions::default());
    let pid = gw.pid().expect("gateway pid");
    let running = psql_cmd(&gw, ALICE, &idp().token("alice"), "app")
        .args(["-c", "select pg_sleep(60), 'outlived the grace period'"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    postgres().wait_value(
        "app",
        "select count(*) from pg_stat_activity where state = 'active' and query like 'select pg_sleep(60), ''outlived%'",
        "1",
    );
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let out = running.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("FATAL:  terminating connection because the gateway is shutting down"),
        "{stderr}"
    );
    wait_for("the gateway to exit", Duration::from_secs(20), || {
        gw.pid().is_none()
    });
    postgres().wait_value(
        "app",
        "select count(*) from pg_stat_activity where query like 'select pg_sleep(60), ''outlived%'",
        "0",
    );
}
