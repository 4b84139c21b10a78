//! A raw Postgres-protocol client for tests that need exact control of the
//! messages (pipelines, named statements, malformed input).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::Gateway;

/// A TCP connection to the gateway with a read deadline.
pub fn connect(gw: &Gateway) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s
}

/// A StartupMessage (protocol 3.0).
pub fn startup(user: &str, db: &str) -> Vec<u8> {
    let mut body = vec![0, 3, 0, 0];
    for (k, v) in [("user", user), ("database", db)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// One tagged frame.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads one frame: (tag, body).
pub fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).expect("frame header");
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(4)];
    s.read_exact(&mut body).expect("frame body");
    (head[0], body)
}

/// Reads frames until ReadyForQuery; returns the tags seen (panics on an
/// ErrorResponse).
pub fn read_until_ready(s: &mut TcpStream) -> Vec<u8> {
    read_all_until_ready(s)
        .into_iter()
        .map(|(tag, body)| {
            assert_ne!(
                tag,
                b'E',
                "unexpected error: {}",
                String::from_utf8_lossy(&body)
            );
            tag
        })
        .collect()
}

/// Reads frames until ReadyForQuery; returns them all.
pub fn read_all_until_ready(s: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let f = read_frame(s);
        let done = f.0 == b'Z';
        out.push(f);
        if done {
            return out;
        }
    }
}

/// An authenticated raw session (token as the cleartext password).
pub fn logged_in(gw: &Gateway, user: &str, token: &str) -> TcpStream {
    let mut s = connect(gw);
    s.write_all(&startup(user, "app")).expect("startup");
    let mut r = [0u8; 9];
    s.read_exact(&mut r).expect("auth request");
    assert_eq!(r[0], b'R');
    let mut pw = token.as_bytes().to_vec();
    pw.push(0);
    s.write_all(&frame(b'p', &pw)).expect("password");
    let tags = read_until_ready(&mut s);
    assert!(tags.contains(&b'K'), "no BackendKeyData");
    s
}
