//! `portcullis dev`: the one-command start prints a psql command that works
//! as pasted — `select 1` returns, a DELETE without WHERE is refused with
//! 42501 and the next statement still works — and `portcullis token --dev`
//! mints more tokens.

use std::process::Command;
use std::time::Duration;

use portcullis_e2e::approvals::decide_in_browser;
use portcullis_e2e::terminal::Terminal;
use portcullis_e2e::{free_port, portcullis_bin, temp_dir, wait_for, Guarded};

/// Starts `portcullis dev` on a free port with its state in `dir`; returns
/// the printed psql line, the guard and the port.
fn start_dev(dir: &std::path::Path, extra: &[&str]) -> (String, Guarded, u16) {
    let log = dir.join("dev.log");
    let port = free_port();
    let dev = Guarded::spawn(
        &portcullis_bin().display().to_string(),
        &[
            "dev".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--admin-listen".into(),
            "127.0.0.1:0".into(),
            "--state-dir".into(),
            dir.join("state").display().to_string(),
        ]
        .into_iter()
        .chain(extra.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>(),
        &format!("rm -rf '{}'", dir.display()),
        &log,
    );
    let mut line = String::new();
    wait_for("the psql command", Duration::from_secs(90), || {
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        match out
            .lines()
            .find(|l| l.trim_start().starts_with("PGPASSWORD="))
        {
            Some(l) => {
                line = l.trim().to_string();
                true
            }
            None => false,
        }
    });
    (line, dev, port)
}

#[test]
fn dev_prints_a_psql_command_that_works_as_pasted() {
    let dir = temp_dir("dev");
    let (line, _dev, port) = start_dev(&dir, &["--no-approvals"]);
    assert!(line.contains(&format!("port={port}")), "{line}");
    let log = std::fs::read_to_string(dir.join("dev.log")).unwrap_or_default();
    assert!(log.contains("Approvals: off"), "{log}");
    let pasted = format!("{line} -X -c 'select 1 as one' -c 'delete from demo_users' -c 'drop table demo_users' -c 'select count(*) from demo_users'");
    let out = Command::new("sh").arg("-c").arg(&pasted).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("one") && stdout.contains(" 1"),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains(
            "ERROR:  portcullis: statement denied: DELETE without WHERE on public.demo_users"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("approval required: approvals service not configured"),
        "--no-approvals: statements that need approval are refused: {stderr}"
    );
    assert!(
        stdout.contains(" 5"),
        "the next statement must still work: {stdout}{stderr}"
    );

    // More tokens from the same dev issuer.
    let tok = Command::new(portcullis_bin())
        .args([
            "token",
            "--dev",
            "--user",
            "bob",
            "--groups",
            "analyst",
            "--state-dir",
        ])
        .arg(dir.join("state"))
        .output()
        .unwrap();
    assert!(tok.status.success());
    let tok = String::from_utf8_lossy(&tok.stdout).trim().to_string();
    let out = Command::new("psql")
        .env("PGPASSWORD", &tok)
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "bob@example.com",
            "-d",
            "dev",
            "-c",
            "insert into demo_users (email) values ('x')",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read-only access"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first URL on `screen` that contains `part`.
fn url_on(screen: &str, part: &str) -> Option<String> {
    screen
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .find(|w| w.starts_with("http://") && w.contains(part))
        .map(|w| w.trim_end_matches(['.', ',', ')']).to_string())
}

/// The README's flow, as a person does it: paste the printed psql command
/// into a terminal, type `drop table demo_users;`, see the approval link;
/// a DBA opens it in Chromium, signs in at the dev issuer's page and
/// approves; psql prints DROP TABLE and the session goes on.
#[test]
fn dev_drop_table_waits_for_a_dba_who_approves_in_the_browser() {
    let dir = temp_dir("dev-approve");
    let approvals_listen = format!("127.0.0.1:{}", free_port());
    let (line, _dev, _) = start_dev(&dir, &["--approvals-listen", &approvals_listen]);
    let log = std::fs::read_to_string(dir.join("dev.log")).unwrap_or_default();
    assert!(
        log.contains(&format!("Approvals: http://{approvals_listen}/requests")),
        "portcullis dev starts the approvals service: {log}"
    );
    let term = Terminal::start(&format!("{line} -X"));
    term.wait_until("the psql prompt", Duration::from_secs(30), |s| {
        s.contains("dev=>") || s.contains("dev=#")
    });
    term.type_line("drop table demo_users;");
    let screen = term.wait_until("the approval link", Duration::from_secs(30), |s| {
        url_on(s, "/requests/").is_some()
    });
    assert!(screen.contains("NOTICE:"), "{screen}");
    let link = url_on(&screen, "/requests/").unwrap_or_default();
    let shot = std::env::var_os("PORTCULLIS_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.join("approval.png"));
    let page = decide_in_browser(
        &link,
        "dana",
        "approve",
        "fine on a dev database",
        Some(&shot),
        &[("REQUESTER", "alice"), ("CONNECTION", "dev")],
    );
    assert!(
        page["statement"]
            .as_str()
            .unwrap_or("")
            .contains("drop table demo_users"),
        "{page}"
    );
    assert_eq!(page["before"], "pending", "{page}");
    assert_eq!(page["after"], "approved", "{page}");
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000));
    term.wait_until("DROP TABLE in psql", Duration::from_secs(30), |s| {
        s.contains("DROP TABLE")
    });
    term.type_line("select to_regclass('demo_users') is null as gone;");
    let screen = term.wait_until("the next result", Duration::from_secs(30), |s| {
        s.contains("(1 row)")
    });
    assert!(screen.contains("gone"), "{screen}");
    assert!(
        screen.lines().any(|l| l.trim() == "t"),
        "the table is gone and the session goes on: {screen}"
    );

    // The audit record of the approved DROP TABLE, read from the dev
    // store without a config file.
    let store = format!("sqlite://{}", dir.join("state").join("audit.db").display());
    let mut record = serde_json::Value::Null;
    wait_for(
        "the audit record of the drop",
        Duration::from_secs(20),
        || {
            record =
                portcullis_e2e::audit_export(&["--config", "/nonexistent.toml", "--store", &store])
                    .into_iter()
                    .find(|r| r["command_tag"] == "DROP TABLE")
                    .unwrap_or_default();
            !record.is_null()
        },
    );
    assert_eq!(
        record["approvers"],
        serde_json::json!(["dana@example.com"]),
        "{record}"
    );
    assert_eq!(record["user"], "alice@example.com");

    // The dev issuer hands codes only to loopback redirects, with PKCE.
    let issuer = log
        .split_whitespace()
        .skip_while(|w| *w != "Issuer:")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let authorize = |redirect: &str, pkce: bool| {
        let mut url = format!(
            "{issuer}/authorize?response_type=code&client_id=x&state=s&redirect_uri={redirect}"
        );
        if pkce {
            url.push_str("&code_challenge=abc&code_challenge_method=S256");
        }
        let r = reqwest::blocking::get(url).expect("authorize");
        (r.status().as_u16(), r.text().unwrap_or_default())
    };
    let (status, body) = authorize("http%3A%2F%2F127.0.0.1%3A9%2Fcb", true);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("value=\"dana\""), "{body}");
    let (status, body) = authorize("http%3A%2F%2Fevil.example%2Fcb", true);
    assert_eq!(status, 400);
    assert!(body.contains("redirect_uri must be"), "{body}");
    let (status, body) = authorize("http%3A%2F%2F127.0.0.1%3A9%2Fcb", false);
    assert_eq!(status, 400);
    assert!(body.contains("PKCE is required"), "{body}");

    // `portcullis login --dev` (bob, in Chromium) then `portcullis psql dev`.
    let home = dir.join("home");
    let mut login = Command::new(portcullis_bin())
        .env("PORTCULLIS_HOME", &home)
        .args(["login", "--dev", "--no-browser", "--state-dir"])
        .arg(dir.join("state"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("login");
    let stderr = login.stderr.take().expect("stderr");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let url = loop {
        match lines.next() {
            Some(Ok(l)) if l.trim().starts_with("http") => break l.trim().to_string(),
            Some(Ok(_)) => {}
            _ => {
                let _ = login.kill();
                let _ = login.wait();
                panic!("portcullis login --dev printed no URL");
            }
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let page = portcullis_e2e::node_json("login_ui.mjs", &[&url, "bob"], &[]);
    assert_eq!(page["done"], true, "{page}");
    assert!(login.wait().expect("login").success());
    let out = Command::new(portcullis_bin())
        .env("PORTCULLIS_HOME", &home)
        .args([
            "psql",
            "dev",
            "--",
            "-X",
            "-At",
            "-c",
            "select count(*) from pg_class where relname = 'demo_users'",
        ])
        .output()
        .expect("portcullis psql");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(portcullis_bin())
        .env("PORTCULLIS_HOME", &home)
        .args([
            "psql",
            "dev",
            "--",
            "-X",
            "-At",
            "-c",
            "show application_name",
        ])
        .output()
        .expect("portcullis psql");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("portcullis:bob@example.com"),
        "signed in as bob: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
