//! Bad input on the wire: junk, oversized and truncated messages, unknown
//! message types and slow clients get a clear protocol error or a closed
//! connection — never a crash — and the gateway keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use portcullis_e2e::clients::psql;
use portcullis_e2e::raw::{connect, frame, read_frame, read_until_ready};
use portcullis_e2e::{gateway, idp, Gateway, GatewayOptions};

const ALICE: &str = "alice@example.com";

/// Reads until the peer closes; returns everything received.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// An authenticated raw session as alice.
fn logged_in(gw: &Gateway) -> TcpStream {
    portcullis_e2e::raw::logged_in(gw, ALICE, &idp().token("alice"))
}

fn still_serves(gw: &Gateway) {
    let r = psql(
        gw,
        ALICE,
        &idp().token("alice"),
        &["-c", "select 'still serving'"],
    );
    assert!(r.ok && r.stdout.contains("still serving"), "{}", r.all());
}

#[test]
fn junk_instead_of_startup_gets_a_protocol_error() {
    let gw = gateway();
    let mut s = connect(gw);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let got = text(&read_to_close(&mut s));
    // "GET " read as a length is ~1.2 GB: refused before reading further.
    assert!(
        got.contains("FATAL") && got.contains("exceeds the maximum"),
        "{got}"
    );
    still_serves(gw);
}

#[test]
fn huge_startup_length_is_refused_without_buffering() {
    let gw = gateway();
    let mut s = connect(gw);
    s.write_all(&0x7fff_ffffu32.to_be_bytes()).unwrap();
    let got = text(&read_to_close(&mut s));
    assert!(got.contains("exceeds the maximum"), "{got}");
    still_serves(gw);
}

#[test]
fn truncated_startup_then_close_is_harmless() {
    let gw = gateway();
    let mut s = connect(gw);
    s.write_all(&[0, 0, 0, 40, 0, 3, 0, 0, b'u', b's']).unwrap();
    drop(s);
    still_serves(gw);
}

#[test]
fn unknown_message_type_is_a_protocol_violation() {
    let gw = gateway();
    let mut s = logged_in(gw);
    s.write_all(&frame(b'Y', b"whatever")).unwrap();
    let got = text(&read_to_close(&mut s));
    assert!(
        got.contains("08P01") && got.contains("invalid frontend message type"),
        "{got}"
    );
    still_serves(gw);
}

#[test]
fn malformed_query_is_a_protocol_violation() {
    let gw = gateway();
    let mut s = logged_in(gw);
    s.write_all(&frame(b'Q', b"select 1 without terminator"))
        .unwrap();
    let got = text(&read_to_close(&mut s));
    assert!(
        got.contains("08P01") && got.contains("malformed Query message"),
        "{got}"
    );
    still_serves(gw);
}

#[test]
fn extended_protocol_denial_discards_until_sync() {
    let gw = gateway();
    let mut s = logged_in(gw);
    let mut batch = Vec::new();
    batch.extend(frame(b'P', b"\0delete from items\0\0\0"));
    batch.extend(frame(b'B', b"\0\0\0\0\0\0\0\0"));
    batch.extend(frame(b'E', b"\0\0\0\0\0"));
    batch.extend(frame(b'S', b""));
    batch.extend(frame(b'Q', b"select 'next'\0"));
    s.write_all(&batch).unwrap();
    // Denied batch: exactly one ErrorResponse then ReadyForQuery.
    let (tag, body) = read_frame(&mut s);
    assert_eq!(tag, b'E');
    assert!(text(&body).contains("42501"), "{}", text(&body));
    assert_eq!(read_frame(&mut s).0, b'Z');
    // Then the next simple query runs normally.
    let tags = read_until_ready(&mut s);
    assert!(tags.contains(&b'D'), "{tags:?}");
}

#[test]
fn oversized_message_is_refused_and_the_gateway_keeps_serving() {
    let gw = Gateway::start(GatewayOptions {
        max_message_bytes: 4096,
        ..Default::default()
    });
    let long = format!("select '{}'", "x".repeat(10_000));
    let r = psql(&gw, ALICE, &idp().token("alice"), &["-c", &long]);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("exceeds the maximum of 4096 bytes"),
        "{}",
        r.all()
    );
    still_serves(&gw);
}

#[test]
fn slow_client_is_disconnected_after_the_startup_timeout() {
    let gw = Gateway::start(GatewayOptions {
        startup_timeout: "1s".into(),
        ..Default::default()
    });
    let mut s = connect(&gw);
    let started = Instant::now();
    let got = read_to_close(&mut s);
    assert!(got.is_empty(), "{}", text(&got));
    assert!(started.elapsed() < Duration::from_secs(10));
    still_serves(&gw);
}

#[test]
fn cancel_request_with_unknown_key_is_ignored() {
    let gw = gateway();
    let mut s = connect(gw);
    let mut pkt = 16u32.to_be_bytes().to_vec();
    pkt.extend_from_slice(&80_877_102u32.to_be_bytes());
    pkt.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 9]);
    s.write_all(&pkt).unwrap();
    assert!(read_to_close(&mut s).is_empty());
    still_serves(gw);
}

#[test]
fn fast_path_function_call_is_denied_and_the_session_continues() {
    let gw = gateway();
    let mut s = logged_in(gw);
    // FunctionCall of oid 1 with no arguments, text result.
    s.write_all(&frame(b'F', &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]))
        .unwrap();
    let (tag, body) = read_frame(&mut s);
    assert_eq!(tag, b'E');
    assert!(
        text(&body).contains("fast-path function calls are not allowed"),
        "{}",
        text(&body)
    );
    assert_eq!(read_frame(&mut s).0, b'Z');
    s.write_all(&frame(b'Q', b"select 'after'\0")).unwrap();
    assert!(read_until_ready(&mut s).contains(&b'D'));
}

#[test]
fn denied_parse_followed_by_flush_reports_without_waiting_for_sync() {
    let gw = gateway();
    let mut s = logged_in(gw);
    let mut batch = frame(b'P', b"s1\0truncate items\0\0\0");
    batch.extend(frame(b'H', b""));
    s.write_all(&batch).unwrap();
    // The refusal arrives on Flush, before any Sync is sent.
    let (tag, body) = read_frame(&mut s);
    assert_eq!(tag, b'E');
    assert!(text(&body).contains("42501"), "{}", text(&body));
    s.write_all(&frame(b'S', b"")).unwrap();
    assert_eq!(read_frame(&mut s).0, b'Z');
    assert_eq!(postgres_count(), "10");
}

fn postgres_count() -> String {
    portcullis_e2e::postgres().psql_super("app", "select count(*) from items")
}
