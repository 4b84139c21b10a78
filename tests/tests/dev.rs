//! `portcullis dev`: the one-command start prints a psql command that works
//! as pasted — `select 1` returns, a DELETE without WHERE is refused with
//! 42501 and the next statement still works — and `portcullis token --dev`
//! mints more tokens.

use std::process::Command;
use std::time::Duration;

use portcullis_e2e::{free_port, portcullis_bin, temp_dir, wait_for, Guarded};

#[test]
fn dev_prints_a_psql_command_that_works_as_pasted() {
    let dir = temp_dir("dev");
    let log = dir.join("dev.log");
    let port = free_port();
    let _dev = Guarded::spawn(
        &portcullis_bin().display().to_string(),
        &[
            "dev".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--admin-listen".into(),
            "127.0.0.1:0".into(),
            "--state-dir".into(),
            dir.join("state").display().to_string(),
        ],
        &format!("rm -rf '{}'", dir.display()),
        &log,
    );
    let mut line = String::new();
    wait_for("the psql command", Duration::from_secs(60), || {
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
    assert!(line.contains(&format!("port={port}")), "{line}");
    let pasted = format!("{line} -X -c 'select 1 as one' -c 'delete from demo_users' -c 'select count(*) from demo_users'");
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
