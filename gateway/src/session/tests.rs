//! In-process session tests: the real pipeline and I/O loop, with the
//! client and the database played by scripts over `tokio::io::duplex`.
//! The shipped policy decides (an in-memory fake is used only for the
//! byte streams).

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::cancel::CancelRegistry;
use super::decide::Decider;
use super::pipeline::{Pipeline, Relay, Step};
use super::startup::Ready;
use super::upstream::Upstream;
use super::Shared;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::identity::{Identity, Verifier};
use crate::metrics::Metrics;
use crate::pg::backend_key::BackendKey;
use crate::pg::bind::Bind;
use crate::pg::frontend::{flush_frame, sync_frame};
use crate::pg::parse::Parse;
use crate::pg::ready::TxStatus;
use crate::pg::{describe, param_status, query, ErrorFields, Frame, Severity};
use crate::policy::PolicyStore;

fn shared() -> Arc<Shared> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let config = Config::parse("", "test.toml").unwrap();
    Arc::new(Shared {
        connections: Vec::new(),
        catalogs: Default::default(),
        approvals: None,
        audit: None,
        verifier: Verifier::new(&[]),
        policy: PolicyStore::open(&dir, "data.portcullis.decision", true).unwrap(),
        metrics: Arc::new(Metrics::default()),
        cancels: CancelRegistry::default(),
        tls: None,
        masker: crate::mask::Masker::new(config.masking.clone()),
        config,
    })
}

fn alice() -> Identity {
    Identity {
        sub: "alice".into(),
        email: "alice@example.com".into(),
        name: String::new(),
        preferred_username: String::new(),
        groups: vec!["dev".into()],
        issuer: "https://idp".into(),
    }
}

fn pipeline(shared: &Arc<Shared>) -> Pipeline {
    let conn: crate::config::ConnectionConfig = toml::from_str(
        "name = \"app\"\nupstream = \"127.0.0.1:1\"\nuser = \"svc\"\npassword_env = \"X\"",
    )
    .unwrap();
    let catalog = crate::catalog::CatalogCache::fixed(Arc::new(conn.clone()), Catalog::offline());
    let decider = Decider::new(
        shared.clone(),
        catalog,
        &alice(),
        &conn,
        "127.0.0.1",
        "test",
        "s1",
    );
    let params = vec![
        ("client_encoding".to_string(), "UTF8".to_string()),
        ("server_encoding".to_string(), "UTF8".to_string()),
        ("standard_conforming_strings".to_string(), "on".to_string()),
    ];
    Pipeline::new(
        decider,
        &params,
        "test".into(),
        "test (portcullis:alice)".into(),
        "alice",
    )
}

fn frames(mut buf: BytesMut) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(f) = crate::pg::split_frame(&mut buf, 1 << 30).unwrap() {
        out.push(f);
    }
    out
}

fn tags(buf: &BytesMut) -> String {
    frames(buf.clone()).iter().map(|f| f.tag as char).collect()
}

fn server(p: &mut Pipeline, msgs: &[Frame]) -> BytesMut {
    let mut out = BytesMut::new();
    for m in msgs {
        match p.server(&m.to_bytes()).unwrap() {
            Relay::Forward => m.encode(&mut out),
            Relay::Replace(f) => f.encode(&mut out),
            Relay::Drop => {}
        }
    }
    out
}

fn f(tag: u8, body: &[u8]) -> Frame {
    Frame::new(tag, body.to_vec())
}

fn rfq(s: TxStatus) -> Frame {
    s.to_frame()
}

fn error(code: &str) -> Frame {
    ErrorFields::new(Severity::Error, code, "server says no").to_frame()
}

fn messages(buf: &BytesMut) -> Vec<String> {
    frames(buf.clone())
        .iter()
        .filter(|f| f.tag == b'E')
        .map(|f| ErrorFields::decode(&f.body).unwrap().message)
        .collect()
}

#[test]
fn refusal_inside_a_transaction_aborts_it_like_postgres() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let mut up = BytesMut::new();
    for sql in ["begin", "delete from t", "select 1"] {
        assert_eq!(
            p.client(&query::to_frame(sql), &mut up).unwrap(),
            Step::Continue
        );
    }
    // Upstream: BEGIN, the stand-in (not the DELETE), SELECT.
    let sent = frames(up);
    assert_eq!(sent.len(), 3);
    assert_eq!(query::decode(&sent[1].body).unwrap(), b"portcullis_denied");
    let out = server(
        &mut p,
        &[
            f(b'C', b"BEGIN\0"),
            rfq(TxStatus::InTransaction),
            error("42601"),
            rfq(TxStatus::Failed),
            error("25P02"),
            rfq(TxStatus::Failed),
        ],
    );
    let errs = messages(&out);
    assert!(
        errs[0].contains("statement denied: DELETE without WHERE"),
        "{errs:?}"
    );
    assert_eq!(errs[1], "server says no", "the server's own error passes");
    assert_eq!(tags(&out), "CZEZEZ");
    assert_eq!(p.in_flight(), 0);
}

#[test]
fn extended_refusal_discards_to_sync_and_keeps_pipelining() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let mut up = BytesMut::new();
    let parse = |name: &'static [u8], sql: &'static [u8]| Parse {
        name,
        sql,
        param_types: vec![],
    };
    let bind = Bind {
        portal: b"",
        statement: b"s1",
        param_formats: vec![],
        params: vec![],
        result_formats: vec![],
    };
    let msgs = [
        parse(b"s1", b"select 1").to_frame(),
        bind.to_frame(),
        f(b'E', b"\0\0\0\0\0"),
        sync_frame(),
        parse(b"s2", b"delete from t").to_frame(),
        bind.to_frame(),
        f(b'E', b"\0\0\0\0\0"),
        sync_frame(),
        parse(b"s3", b"select 3").to_frame(),
        flush_frame(),
    ];
    for m in &msgs {
        assert_eq!(p.client(m, &mut up).unwrap(), Step::Continue);
    }
    // The refused Parse becomes a stand-in Parse of the same name; its Bind
    // and Execute are dropped until Sync, as the server would skip them.
    let sent = frames(up);
    let t: String = sent.iter().map(|f| f.tag as char).collect();
    assert_eq!(t, "PBESPSPH");
    assert_eq!(
        Parse::decode(&sent[4].body).unwrap().sql,
        b"portcullis_denied"
    );
    assert_eq!(Parse::decode(&sent[4].body).unwrap().name, b"s2");
    let out = server(
        &mut p,
        &[
            f(b'1', b""),
            f(b'2', b""),
            f(b'D', b"\0\x01\0\0\0\x011"),
            f(b'C', b"SELECT 1\0"),
            rfq(TxStatus::Idle),
            error("42601"),
            rfq(TxStatus::Idle),
            f(b'1', b""),
        ],
    );
    assert_eq!(tags(&out), "12DCZEZ1");
    assert!(messages(&out)[0].contains("statement denied"));
    assert_eq!(p.in_flight(), 0, "Flush-without-Sync answered");
    assert_eq!(p.counts().rows, 1);
    assert_eq!(p.counts().refused, 1);
}

#[test]
fn portal_suspension_and_copy_are_attributed() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let mut up = BytesMut::new();
    let parse = Parse {
        name: b"",
        sql: b"select * from t",
        param_types: vec![],
    };
    let bind = Bind {
        portal: b"c",
        statement: b"",
        param_formats: vec![],
        params: vec![],
        result_formats: vec![],
    };
    for m in [
        parse.to_frame(),
        bind.to_frame(),
        describe::to_frame(b'P', "c"),
        f(b'E', b"c\0\0\0\0\x01"),
        f(b'E', b"c\0\0\0\0\x01"),
        sync_frame(),
    ] {
        p.client(&m, &mut up).unwrap();
    }
    let out = server(
        &mut p,
        &[
            f(b'1', b""),
            f(b'2', b""),
            f(b'T', b"\0\0"),
            f(b'D', b"\0\0"),
            f(b's', b""),
            f(b'D', b"\0\0"),
            f(b'C', b"SELECT 1\0"),
            // NOTIFY from another session arrives between statements.
            f(b'A', b"\0\0\0\x07chan\0hi\0"),
            rfq(TxStatus::Idle),
        ],
    );
    assert_eq!(tags(&out), "12TDsDCAZ");
    assert_eq!(p.counts().rows, 2);
    assert_eq!(p.in_flight(), 0);

    // COPY FROM STDIN: data messages pass, the statement completes.
    let mut up = BytesMut::new();
    for m in [
        query::to_frame("copy notes (body) from stdin"),
        f(b'd', b"x\n"),
        f(b'c', b""),
    ] {
        p.client(&m, &mut up).unwrap();
    }
    let sent = tags(&up);
    // The shipped policy sends COPY to approval: a stand-in goes instead,
    // and the COPY data still passes (the server discards it).
    assert_eq!(sent, "Qdc");
    let out = server(&mut p, &[error("42601"), rfq(TxStatus::Idle)]);
    assert!(messages(&out)[0].contains("approval required"));
}

#[test]
fn a_decision_waits_for_the_settings_that_apply() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let mut up = BytesMut::new();
    p.client(
        &query::to_frame("set standard_conforming_strings = off"),
        &mut up,
    )
    .unwrap();
    // Text whose reading depends on the setting waits for the server.
    let next = query::to_frame("select 'a\\' from t");
    assert_eq!(p.client(&next, &mut up).unwrap(), Step::Wait);
    // Text that reads the same either way does not.
    assert_eq!(
        p.client(&query::to_frame("select 1"), &mut up).unwrap(),
        Step::Continue
    );
    server(
        &mut p,
        &[
            f(b'C', b"SET\0"),
            param_status::to_frame("standard_conforming_strings", "off"),
            rfq(TxStatus::Idle),
        ],
    );
    assert_eq!(p.client(&next, &mut up).unwrap(), Step::Continue);
}

#[test]
fn application_name_is_the_clients_own() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let out = server(
        &mut p,
        &[param_status::to_frame(
            "application_name",
            "test (portcullis:alice)",
        )],
    );
    let f = frames(out).remove(0);
    assert_eq!(
        param_status::decode(&f.body).unwrap(),
        ("application_name", "test")
    );
}

/// The one-task loop over duplex streams: a pipelining client, a scripted
/// server answering late, a FATAL relayed once and the session closed.
#[tokio::test]
async fn io_loop_relays_pipelined_work_and_the_servers_fatal() {
    let sh = shared();
    let (client_side, gw_client) = tokio::io::duplex(64 * 1024);
    let (server_side, gw_server) = tokio::io::duplex(64 * 1024);
    let conn: crate::config::ConnectionConfig = toml::from_str(
        "name = \"app\"\nupstream = \"127.0.0.1:1\"\nuser = \"svc\"\npassword_env = \"X\"",
    )
    .unwrap();
    let (_tx, control) = tokio::sync::mpsc::channel(1);
    let ready = Ready {
        client: Box::new(gw_client),
        identity: alice(),
        conn: Arc::new(conn),
        upstream: Upstream {
            stream: Box::new(gw_server),
            params: Vec::new(),
            key: BackendKey { pid: 7, key: 7 },
            leftover: BytesMut::new(),
        },
        key: BackendKey { pid: 7, key: 8 },
        peer: "127.0.0.1:1".parse().unwrap(),
        session_id: "s".into(),
        pipeline: pipeline(&sh),
        control,
    };
    let session = tokio::spawn(super::relay::run(ready, sh.clone()));
    let (mut c, mut s) = (client_side, server_side);
    let mut batch = BytesMut::new();
    query::to_frame("select 1").encode(&mut batch);
    query::to_frame("select 2").encode(&mut batch);
    c.write_all(&batch).await.unwrap();
    // The server sees both before answering either.
    let got = read_frames(&mut s, 2).await;
    assert_eq!(got.len(), 2);
    let mut answer = BytesMut::new();
    for fr in [
        f(b'C', b"SELECT 1\0"),
        rfq(TxStatus::Idle),
        ErrorFields::new(Severity::Fatal, "57P01", "terminating connection").to_frame(),
    ] {
        fr.encode(&mut answer);
    }
    s.write_all(&answer).await.unwrap();
    drop(s);
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut all))
        .await
        .expect("session closes")
        .unwrap();
    let out = frames(BytesMut::from(&all[..]));
    let t: String = out.iter().map(|f| f.tag as char).collect();
    assert_eq!(t, "CZE", "exactly the server's messages, one FATAL");
    tokio::time::timeout(Duration::from_secs(10), session)
        .await
        .unwrap()
        .unwrap();
}

async fn read_frames(s: &mut DuplexStream, n: usize) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    while out.len() < n {
        let mut chunk = [0u8; 4096];
        let k = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("frames arrive")
            .unwrap();
        assert!(k > 0, "stream closed early");
        buf.put_slice(&chunk[..k]);
        while let Some(fr) = crate::pg::split_frame(&mut buf, 1 << 30).unwrap() {
            out.push(fr);
        }
    }
    out
}

#[test]
fn settings_changed_in_an_open_batch_refuse_sensitive_text() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let mut up = BytesMut::new();
    let parse = |sql: &'static [u8]| Parse {
        name: b"",
        sql,
        param_types: vec![],
    };
    let bind = Bind {
        portal: b"",
        statement: b"",
        param_formats: vec![],
        params: vec![],
        result_formats: vec![],
    };
    for m in [
        parse(b"set standard_conforming_strings = off").to_frame(),
        bind.to_frame(),
        f(b'E', b"\0\0\0\0\0"),
    ] {
        assert_eq!(p.client(&m, &mut up).unwrap(), Step::Continue);
    }
    // No Sync yet: nothing will report the new setting before this runs.
    let risky = parse(b"select 'a\\' from t").to_frame();
    assert_eq!(p.client(&risky, &mut up).unwrap(), Step::Continue);
    let sent = frames(up);
    assert_eq!(
        Parse::decode(&sent.last().unwrap().body).unwrap().sql,
        b"portcullis_denied"
    );
    let out = server(
        &mut p,
        &[
            f(b'1', b""),
            f(b'2', b""),
            f(b'C', b"SET\0"),
            error("42601"),
        ],
    );
    assert!(
        messages(&out)[0].contains("cannot be read as the server will read it"),
        "{:?}",
        messages(&out)
    );
}

/// Reviewer's finding: COMMIT undoes SET LOCAL, so text pipelined behind
/// it waits for the server instead of being read with the stale setting.
#[test]
fn commit_that_undoes_set_local_makes_sensitive_text_wait() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let mut up = BytesMut::new();
    p.client(&query::to_frame("begin"), &mut up).unwrap();
    p.client(
        &query::to_frame("set local standard_conforming_strings = off"),
        &mut up,
    )
    .unwrap();
    server(
        &mut p,
        &[
            f(b'C', b"BEGIN\0"),
            rfq(TxStatus::InTransaction),
            f(b'C', b"SET\0"),
            param_status::to_frame("standard_conforming_strings", "off"),
            rfq(TxStatus::InTransaction),
        ],
    );
    assert_eq!(
        p.client(&query::to_frame("commit"), &mut up).unwrap(),
        Step::Continue
    );
    let smuggle = query::to_frame("select 'a\\'; delete from demo_users; --'");
    assert_eq!(p.client(&smuggle, &mut up).unwrap(), Step::Wait);
    server(
        &mut p,
        &[
            f(b'C', b"COMMIT\0"),
            param_status::to_frame("standard_conforming_strings", "on"),
            rfq(TxStatus::Idle),
        ],
    );
    // Read with the setting the server will use: the DELETE is seen.
    let mut up = BytesMut::new();
    assert_eq!(p.client(&smuggle, &mut up).unwrap(), Step::Continue);
    let sent = frames(up);
    assert_eq!(query::decode(&sent[0].body).unwrap(), b"portcullis_denied");
}

/// Reviewer's finding: an error in a transaction block undoes its SETs;
/// text pipelined behind any statement in a block waits.
#[test]
fn work_in_a_block_makes_sensitive_text_wait() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let mut up = BytesMut::new();
    p.client(&query::to_frame("begin"), &mut up).unwrap();
    server(&mut p, &[f(b'C', b"BEGIN\0"), rfq(TxStatus::InTransaction)]);
    assert_eq!(
        p.client(&query::to_frame("select 1/0"), &mut up).unwrap(),
        Step::Continue
    );
    let next = query::to_frame("rollback; select 'a\\'");
    assert_eq!(p.client(&next, &mut up).unwrap(), Step::Wait);
    // ASCII text without a backslash reads the same either way.
    assert_eq!(
        p.client(&query::to_frame("select 2"), &mut up).unwrap(),
        Step::Continue
    );
}

/// Reviewer's finding: after an extended-protocol error with no Sync
/// queued, the server skips what the client sends up to its Sync; the
/// gateway must not queue answers for those messages.
#[test]
fn server_skipping_to_sync_keeps_the_queue_in_step() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let mut up = BytesMut::new();
    let bad = Parse {
        name: b"",
        sql: b"select * from nosuch",
        param_types: vec![],
    };
    p.client(&bad.to_frame(), &mut up).unwrap();
    p.client(&flush_frame(), &mut up).unwrap();
    server(&mut p, &[error("42P01")]);
    assert_eq!(p.in_flight(), 0);
    let mut up = BytesMut::new();
    p.client(&query::to_frame("select 1"), &mut up).unwrap();
    p.client(&sync_frame(), &mut up).unwrap();
    // The Query is not sent (the server would ignore it); the Sync is.
    assert_eq!(tags(&up), "S");
    server(&mut p, &[rfq(TxStatus::Idle)]);
    assert_eq!(p.in_flight(), 0, "queue in step with the server");
    // A Sync or Flush with a body is malformed, not forwarded.
    let mut up = BytesMut::new();
    assert!(p.client(&f(b'H', b"x"), &mut up).is_err());
    assert!(up.is_empty());
}

/// What runs upstream is what the registry says: a re-Parse of an existing
/// name fails on the server (the old statement stays), a skipped Parse
/// changes nothing, a failed unnamed Parse drops the unnamed statement.
#[test]
fn registry_follows_what_the_server_did() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let mut up = BytesMut::new();
    let parse = |name: &'static [u8], sql: &'static [u8]| {
        Parse {
            name,
            sql,
            param_types: vec![],
        }
        .to_frame()
    };
    p.client(&parse(b"s1", b"select 1"), &mut up).unwrap();
    p.client(&sync_frame(), &mut up).unwrap();
    server(&mut p, &[f(b'1', b""), rfq(TxStatus::Idle)]);
    // Re-Parse of s1 fails (already exists); the Parse of s2 behind it is
    // skipped by the server.
    p.client(&parse(b"s1", b"select 2"), &mut up).unwrap();
    p.client(&parse(b"s2", b"select 3"), &mut up).unwrap();
    p.client(&sync_frame(), &mut up).unwrap();
    assert_eq!(&*p.statement(b"s1").unwrap().text, "select 2");
    server(&mut p, &[error("42P05"), rfq(TxStatus::Idle)]);
    assert_eq!(&*p.statement(b"s1").unwrap().text, "select 1");
    assert!(p.statement(b"s2").is_none());
    // A failed unnamed Parse drops the unnamed statement, as the server does.
    p.client(&parse(b"", b"select 4"), &mut up).unwrap();
    p.client(&sync_frame(), &mut up).unwrap();
    server(&mut p, &[f(b'1', b""), rfq(TxStatus::Idle)]);
    p.client(&parse(b"", b"select 5"), &mut up).unwrap();
    p.client(&sync_frame(), &mut up).unwrap();
    server(&mut p, &[error("42601"), rfq(TxStatus::Idle)]);
    assert!(p.statement(b"").is_none());
    assert_eq!(p.in_flight(), 0);
}

/// A transaction that ends (Idle ReadyForQuery) takes its portals, not
/// those of Binds forwarded after its Sync: the server runs those later.
#[test]
fn portals_bound_after_a_sync_outlive_its_ready_for_query() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let mut up = BytesMut::new();
    let bind = |portal: &'static [u8]| {
        Bind {
            portal,
            statement: b"s1",
            param_formats: vec![],
            params: vec![],
            result_formats: vec![],
        }
        .to_frame()
    };
    let parse = Parse {
        name: b"s1",
        sql: b"select 1",
        param_types: vec![],
    };
    for m in [
        parse.to_frame(),
        bind(b"old"),
        sync_frame(),
        bind(b""),
        flush_frame(),
    ] {
        p.client(&m, &mut up).unwrap();
    }
    server(&mut p, &[f(b'1', b""), f(b'2', b""), rfq(TxStatus::Idle)]);
    assert!(p.portal(b"old").is_none(), "gone with its transaction");
    assert_eq!(
        &*p.portal(b"").expect("bound after the Sync").text,
        "select 1"
    );
    server(&mut p, &[f(b'2', b"")]);
    assert!(p.portal(b"").is_some());
}

/// Random interleavings of client and server messages — including ones a
/// real server would never send — never panic and never leave a refused
/// statement's text on the upstream wire.
#[test]
fn random_interleavings_do_not_panic() {
    use rand::{Rng, SeedableRng};
    let sh = shared();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let texts: [&[u8]; 6] = [
        b"select 1",
        b"delete from t",
        b"begin",
        b"commit",
        b"set standard_conforming_strings = off",
        b"select 'a\\' from t",
    ];
    for _ in 0..300 {
        let mut p = pipeline(&sh);
        for _ in 0..40 {
            let mut up = BytesMut::new();
            let text = texts[rng.gen_range(0..texts.len())];
            let msg = match rng.gen_range(0..8) {
                0 => Frame::new(b'Q', [text, b"\0"].concat()),
                1 => Parse {
                    name: b"",
                    sql: text,
                    param_types: vec![],
                }
                .to_frame(),
                2 => Bind {
                    portal: b"",
                    statement: b"",
                    param_formats: vec![],
                    params: vec![],
                    result_formats: vec![],
                }
                .to_frame(),
                3 => f(b'E', b"\0\0\0\0\0"),
                4 => sync_frame(),
                5 => flush_frame(),
                6 => f(b'd', b"x"),
                _ => describe::to_frame(b'S', ""),
            };
            let _ = p.client(&msg, &mut up);
            for fr in frames(up) {
                if fr.tag == b'Q' || fr.tag == b'P' {
                    let body = String::from_utf8_lossy(&fr.body).to_string();
                    assert!(
                        !body.contains("delete from t"),
                        "refused text went upstream"
                    );
                }
            }
            let reply = match rng.gen_range(0..9) {
                0 => f(b'1', b""),
                1 => f(b'2', b""),
                2 => f(b'C', b"SELECT 1\0"),
                3 => rfq(TxStatus::Idle),
                4 => rfq(TxStatus::InTransaction),
                5 => error("42601"),
                6 => f(b'G', b"\0\0\0"),
                7 => param_status::to_frame("standard_conforming_strings", "off"),
                _ => f(b'n', b""),
            };
            let _ = p.server(&reply.to_bytes());
        }
    }
}

/// A client that renames itself sees its own name; upstream gets the user
/// suffix back at the next idle point, and the answers to that are dropped.
#[test]
fn renamed_application_keeps_the_user_upstream() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let mut up = BytesMut::new();
    p.client(
        &query::to_frame("set application_name = 'renamed'"),
        &mut up,
    )
    .unwrap();
    let out = server(
        &mut p,
        &[
            f(b'C', b"SET\0"),
            param_status::to_frame("application_name", "renamed"),
            rfq(TxStatus::Idle),
        ],
    );
    assert_eq!(tags(&out), "CSZ");
    let own = frames(p.take_injected().expect("a SET upstream"));
    assert_eq!(
        query::decode(&own[0].body).unwrap(),
        b"SET application_name TO 'renamed (portcullis:alice)'"
    );
    let out = server(
        &mut p,
        &[
            f(b'C', b"SET\0"),
            param_status::to_frame("application_name", "renamed (portcullis:alice)"),
            rfq(TxStatus::Idle),
        ],
    );
    assert!(out.is_empty(), "the gateway's own answers are dropped");
    assert_eq!(p.in_flight(), 0);
    // Later reports of the upstream name read as the client's.
    let out = server(
        &mut p,
        &[param_status::to_frame(
            "application_name",
            "renamed (portcullis:alice)",
        )],
    );
    let f0 = frames(out).remove(0);
    assert_eq!(param_status::decode(&f0.body).unwrap().1, "renamed");
}

/// A rename undone by ROLLBACK: the server reports the old name again, and
/// nothing is restored.
#[test]
fn rolled_back_rename_restores_nothing() {
    let sh = shared();
    let mut p = pipeline(&sh);
    let mut up = BytesMut::new();
    p.client(
        &query::to_frame("begin; set application_name = 'x'"),
        &mut up,
    )
    .unwrap();
    server(
        &mut p,
        &[
            f(b'C', b"BEGIN\0"),
            f(b'C', b"SET\0"),
            param_status::to_frame("application_name", "x"),
            rfq(TxStatus::InTransaction),
        ],
    );
    p.client(&query::to_frame("rollback"), &mut up).unwrap();
    let out = server(
        &mut p,
        &[
            f(b'C', b"ROLLBACK\0"),
            param_status::to_frame("application_name", "test (portcullis:alice)"),
            rfq(TxStatus::Idle),
        ],
    );
    let st = frames(out).into_iter().find(|f| f.tag == b'S').unwrap();
    assert_eq!(param_status::decode(&st.body).unwrap().1, "test");
    assert!(p.take_injected().is_none());
}
