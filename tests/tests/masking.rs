//! Masking end to end: a policy masks columns of a table; psql (simple
//! protocol) and psycopg (extended protocol, text and binary results,
//! prepared statements) get the masked values, a partition is masked
//! through its parent, the audit record holds only masked values, and
//! statements whose masking cannot be proven are refused with the session
//! left usable.

use std::sync::OnceLock;

use portcullis_e2e::clients::{client, psql, Run};
use portcullis_e2e::{idp, postgres, temp_dir, Gateway, GatewayOptions};

const ALICE: &str = "alice@example.com";
const EMAIL: &str = "carol.white@corp.test";
const CARD: &str = "4111111111111111";

const POLICY: &str = r#"package portcullis
import rego.v1

masked := {"mask_people", "mask_people_1", "mask_people_v", "mask_later"}

default decision := {"action": "allow"}

decision := {"action": "allow", "mask": [
	{"table": "public.mask_people", "column": "email", "method": "partial"},
	{"table": "public.mask_people", "column": "card", "method": "hash"},
	{"table": "public.mask_people", "column": "age", "method": "redact"},
	{"table": "public.mask_later", "column": "email", "method": "null"},
]} if {
	some t in input.statement.tables
	t.name in masked
}
"#;

fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(|| {
        // Made before the gateway starts, so its catalog knows them.
        postgres().psql_super(
            "app",
            &format!(
                "create table mask_people (id int, email text, card varchar(20), age int, name text) \
                 partition by range (id); \
                 create table mask_people_1 partition of mask_people for values from (1) to (100); \
                 insert into mask_people values (1, '{EMAIL}', '{CARD}', 41, 'Carol'), \
                 (2, 'dan@corp.test', '{CARD}', 35, 'Dan'); \
                 create view mask_people_v as select id, email from mask_people; \
                 create table mask_later (email text); \
                 grant select on mask_people, mask_people_1, mask_people_v, mask_later to svc"
            ),
        );
        let dir = temp_dir("maskpol");
        std::fs::write(dir.join("portcullis.rego"), POLICY).unwrap();
        let key = dir.join("mask.key");
        Gateway::start(GatewayOptions {
            policy_dir: dir,
            extra: format!("[masking]\nhash_key_file = \"{}\"\n", key.display()),
            ..Default::default()
        })
    })
}

fn run(sql: &[&str]) -> Run {
    let mut args = vec!["-At"];
    for s in sql {
        args.extend(["-c", s]);
    }
    psql(gateway(), ALICE, &idp().token("alice"), &args)
}

fn export(gw: &Gateway) -> Vec<serde_json::Value> {
    let config = gw.dir.join("portcullis.toml").display().to_string();
    portcullis_e2e::audit_export(&["--config", &config])
}

/// The hex hash psql shows for the card.
fn hash_of_card(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with("1|"))
        .and_then(|l| l.split('|').nth(2))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn psql_gets_masked_columns() {
    let r = run(&["select id, email, card, age, name from mask_people order by id"]);
    assert!(r.ok, "{}", r.all());
    assert!(r.stdout.contains("1|c**********@corp.test|"), "{}", r.all());
    assert!(r.stdout.contains("2|d**@corp.test|"), "{}", r.all());
    assert!(
        !r.stdout.contains(EMAIL) && !r.stdout.contains(CARD),
        "{}",
        r.all()
    );
    // age is an integer: redacted to NULL; name is not masked.
    assert!(r.stdout.contains("||Carol"), "{}", r.all());
    let h = hash_of_card(&r.stdout);
    assert_eq!(h.len(), 32, "{}", r.all());
    assert!(h.chars().all(|c| c.is_ascii_hexdigit()), "{h}");
    // Equal values hash alike; the partition is masked through its parent.
    assert!(
        r.stdout.contains(&format!("2|d**@corp.test|{h}|")),
        "{}",
        r.all()
    );
    let p = run(&[
        "select id, email, card from mask_people_1 where id = 1",
        "select * from mask_people where id = 1",
    ]);
    assert!(p.ok, "{}", p.all());
    assert!(
        p.stdout.contains(&format!("1|c**********@corp.test|{h}")),
        "{}",
        p.all()
    );
    assert!(!p.stdout.contains(EMAIL), "{}", p.all());
}

#[test]
fn unprovable_masking_is_refused_and_the_session_goes_on() {
    let r = run(&[
        "select lower(email) from mask_people",
        "select name from mask_people union all select email from mask_people",
        "select * from mask_people_v",
        "select x from (select email as x from mask_people) s",
        "select count(*) from mask_people where email like 'c%'",
        "select lower(e) from mask_people p(i, e)",
        "select p.to_json from mask_people p",
        "select 'still here'",
    ]);
    let refusals = r
        .stderr
        .matches("ERROR:  portcullis: statement refused: masking cannot be proven")
        .count();
    assert_eq!(refusals, 7, "{}", r.all());
    assert!(r.stderr.contains("attribute notation"), "{}", r.all());
    assert!(
        r.stderr.contains("masked column email is used"),
        "{}",
        r.all()
    );
    assert!(r.stderr.contains("UNION"), "{}", r.all());
    assert!(r.stderr.contains("mask_people_v is a view"), "{}", r.all());
    assert!(r.stdout.contains("still here"), "{}", r.all());
    assert!(!r.all().contains(EMAIL), "{}", r.all());
}

#[test]
fn psycopg_extended_protocol_text_and_binary_are_masked() {
    let r = client(
        "python3",
        &["clients/masking.py"],
        gateway(),
        ALICE,
        &idp().token("alice"),
    );
    assert!(r.ok, "{}", r.all());
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("JSON");
    assert_eq!(v["text"][1], "c**********@corp.test", "{v}");
    assert_eq!(v["text"][3], serde_json::Value::Null, "{v}");
    assert_eq!(v["text"][4], "Carol", "{v}");
    assert_eq!(v["binary"][0][0], 1, "{v}");
    assert_eq!(v["binary"][0][1], "c**********@corp.test", "{v}");
    assert_eq!(v["binary"][1][1], "d**@corp.test", "{v}");
    assert_eq!(v["binary"][0][3], serde_json::Value::Null, "{v}");
    // The hash is the same in text and binary form, and as psql sees it.
    assert_eq!(v["binary"][0][2], v["text"][2], "{v}");
    let psql_hash =
        hash_of_card(&run(&["select id, email, card from mask_people where id = 1"]).stdout);
    assert_eq!(v["text"][2], psql_hash.as_str(), "{v}");
    assert_eq!(
        v["prepared"],
        serde_json::json!([
            "c**********@corp.test",
            "d**@corp.test",
            "c**********@corp.test",
            "d**@corp.test",
            "c**********@corp.test",
            "d**@corp.test"
        ]),
        "{v}"
    );
    assert_eq!(v["refused"], "42501", "{v}");
    assert_eq!(v["sql_execute"], "42501", "{v}");
    assert_eq!(v["code"], "42501", "{v}");
    assert_eq!(v["after"], 2, "{v}");
    assert!(!r.stdout.contains(EMAIL) && !r.stdout.contains(CARD), "{v}");
}

#[test]
fn the_audit_record_holds_masked_rows_only() {
    let gw = gateway();
    let r = run(&["select id, email, name from mask_people where id = 1 /* audit-mask */"]);
    assert!(r.ok, "{}", r.all());
    let mut all = Vec::new();
    portcullis_e2e::wait_for(
        "the masked select's record",
        std::time::Duration::from_secs(20),
        || {
            all = export(gw);
            all.iter().any(|r| {
                r["statement"]
                    .as_str()
                    .is_some_and(|s| s.contains("audit-mask"))
            })
        },
    );
    let rec = all
        .iter()
        .find(|r| {
            r["statement"]
                .as_str()
                .is_some_and(|s| s.contains("audit-mask"))
        })
        .unwrap();
    assert_eq!(
        rec["rows"],
        serde_json::json!([["1", "c**********@corp.test", "Carol"]]),
        "{rec}"
    );
    let text = serde_json::to_string(&all).unwrap();
    assert!(
        !text.contains(EMAIL) && !text.contains(CARD),
        "an unmasked value was recorded"
    );
}

#[test]
fn a_result_from_a_table_the_catalog_does_not_place_is_stopped() {
    let gw = gateway();
    // The gateway's catalog is loaded (with the table as it was made).
    portcullis_e2e::wait_for("the catalog", std::time::Duration::from_secs(20), || {
        psql(
            gw,
            ALICE,
            &idp().token("alice"),
            &["-c", "select email from mask_later"],
        )
        .ok
    });
    // Made again behind the gateway's back: same name (the statement is
    // proven against it), a new OID the catalog has not read.
    postgres().psql_super(
        "app",
        &format!(
            "drop table mask_later; create table mask_later (email text); \
             insert into mask_later values ('{EMAIL}'); grant select on mask_later to svc"
        ),
    );
    let r = psql(
        gw,
        ALICE,
        &idp().token("alice"),
        &[
            "-At",
            "-c",
            "select email from mask_later",
            "-c",
            "select 'after'",
        ],
    );
    assert!(
        r.stderr
            .contains("masking cannot be proven: result column email comes from a relation (OID"),
        "{}",
        r.all()
    );
    assert!(!r.stdout.contains(EMAIL), "a row leaked: {}", r.all());
    assert!(r.stdout.contains("after"), "{}", r.all());
}

#[test]
fn a_statement_prepared_before_mask_rules_were_added_is_refused_at_bind() {
    use portcullis_e2e::raw::{frame, logged_in, read_all_until_ready};
    use std::io::Write;
    gateway(); // the tables
    let dir = temp_dir("maskreload");
    let unmasked =
        "package portcullis\nimport rego.v1\ndefault decision := {\"action\": \"allow\"}\n";
    std::fs::write(dir.join("portcullis.rego"), unmasked).unwrap();
    let gw = Gateway::start(GatewayOptions {
        policy_dir: dir.clone(),
        reload_interval: "200ms".into(),
        extra: format!(
            "[masking]\nhash_key_file = \"{}\"\n",
            dir.join("k").display()
        ),
        ..Default::default()
    });
    let mut s = logged_in(&gw, ALICE, &idp().token("alice"));
    let bind_execute = [
        frame(b'B', b"\0s1\0\0\0\0\0\0\0"),
        frame(b'E', b"\0\0\0\0\0"),
        frame(b'S', b""),
    ]
    .concat();
    s.write_all(
        &[
            frame(
                b'P',
                b"s1\0select email from mask_people where id = 1\0\0\0",
            ),
            frame(b'S', b""),
        ]
        .concat(),
    )
    .unwrap();
    read_all_until_ready(&mut s);
    s.write_all(&bind_execute).unwrap();
    let before = read_all_until_ready(&mut s);
    assert!(
        before
            .iter()
            .any(|(t, b)| *t == b'D' && b.ends_with(EMAIL.as_bytes())),
        "{before:?}"
    );

    std::fs::write(dir.join("portcullis.rego"), POLICY).unwrap();
    portcullis_e2e::wait_for(
        "the masking policy",
        std::time::Duration::from_secs(20),
        || {
            psql(
                &gw,
                ALICE,
                &idp().token("alice"),
                &["-At", "-c", "select email from mask_people where id = 1"],
            )
            .stdout
            .contains("c**********@corp.test")
        },
    );
    s.write_all(&bind_execute).unwrap();
    let after = read_all_until_ready(&mut s);
    let text = String::from_utf8_lossy(
        &after
            .iter()
            .flat_map(|(_, b)| b.clone())
            .collect::<Vec<u8>>(),
    )
    .into_owned();
    assert!(
        text.contains("mask rules for this prepared statement changed"),
        "{text}"
    );
    assert!(!text.contains(EMAIL), "{text}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_portal_bound_after_a_sync_is_still_masked() {
    use portcullis_e2e::raw::{frame, logged_in, read_all_until_ready, read_frame};
    use std::io::Write;
    let gw = gateway();
    let mut s = logged_in(gw, ALICE, &idp().token("alice"));
    // Parse, Sync, then a Bind of the unnamed portal that the server runs
    // after the ReadyForQuery that ends the first transaction.
    s.write_all(
        &[
            frame(
                b'P',
                b"s1\0select id, email from mask_people where id = 1\0\0\0",
            ),
            frame(b'S', b""),
            frame(b'B', b"\0s1\0\0\0\0\0\0\0"),
            frame(b'H', b""),
        ]
        .concat(),
    )
    .unwrap();
    read_all_until_ready(&mut s);
    assert_eq!(read_frame(&mut s).0, b'2', "BindComplete");
    s.write_all(&[frame(b'E', b"\0\0\0\0\0"), frame(b'S', b"")].concat())
        .unwrap();
    let rows = read_all_until_ready(&mut s);
    let all: Vec<u8> = rows.iter().flat_map(|(_, b)| b.clone()).collect();
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("c**********@corp.test"), "{text}");
    assert!(!text.contains(EMAIL), "{text}");
}

#[test]
fn rows_of_a_portal_the_gateway_cannot_attribute_are_stopped() {
    use portcullis_e2e::raw::{frame, logged_in, read_all_until_ready};
    use std::io::Write;
    let gw = gateway();
    let mut s = logged_in(gw, ALICE, &idp().token("alice"));
    // A masked prepared statement is held; a SQL cursor is a portal the
    // gateway never saw bound.
    s.write_all(
        &[
            frame(b'P', b"s1\0select email from mask_people\0\0\0"),
            frame(b'S', b""),
            frame(b'Q', b"begin\0"),
            frame(b'Q', b"declare c cursor for select 'unattributed'\0"),
        ]
        .concat(),
    )
    .unwrap();
    for _ in 0..3 {
        read_all_until_ready(&mut s);
    }
    s.write_all(&[frame(b'E', b"c\0\0\0\0\0"), frame(b'S', b"")].concat())
        .unwrap();
    let got = read_all_until_ready(&mut s);
    assert!(
        !got.iter().any(|(t, _)| *t == b'D'),
        "a row was relayed: {got:?}"
    );
    let text: String = got
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(text.contains("cannot attribute to a statement"), "{text}");
}
