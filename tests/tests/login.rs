//! `portcullis login`, `portcullis token` and `portcullis psql` against the
//! real OIDC provider of the e2e harness, the browser step driven in real
//! Chromium (tests/node/login_ui.mjs): authorization code with PKCE on a
//! loopback redirect, the device flow, tokens cached with mode 0600,
//! refreshed with the refresh token, and psql run with everything filled
//! in.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use portcullis_e2e::{gateway, idp, portcullis_bin, temp_dir};

fn cli(home: &Path) -> Command {
    let mut c = Command::new(portcullis_bin());
    c.env("PORTCULLIS_HOME", home);
    c
}

/// Starts `portcullis login ARGS` and returns it with the stderr lines up
/// to the one `pick` chooses (its value).
fn start_login(
    home: &Path,
    args: &[&str],
    pick: impl Fn(&str) -> Option<String>,
) -> (Child, String, Vec<String>) {
    start_login_with(home, args, &[], pick)
}

/// [`start_login`] with extra environment variables.
fn start_login_with(
    home: &Path,
    args: &[&str],
    env: &[(&str, String)],
    pick: impl Fn(&str) -> Option<String>,
) -> (Child, String, Vec<String>) {
    let mut child = cli(home)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("login")
        // Issuer and client id from the environment, as a team would set them.
        .env("PORTCULLIS_ISSUER", &idp().issuer)
        .env("PORTCULLIS_CLIENT_ID", "portcullis-cli")
        .args(["--scope", "openid email offline_access db"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portcullis login");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("portcullis login ended before printing what to open: {seen:?}");
        };
        seen.push(line.clone());
        if let Some(v) = pick(&line) {
            // Keep draining stderr so the child never blocks on it.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, v, seen);
        }
    }
}

fn browser(args: &[&str]) -> serde_json::Value {
    portcullis_e2e::node_json("login_ui.mjs", args, &[])
}

fn token(home: &Path, args: &[&str]) -> String {
    let out = cli(home).arg("token").args(args).output().expect("token");
    assert!(
        out.status.success(),
        "portcullis token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn cached(home: &Path) -> serde_json::Value {
    let dir = home.join("tokens");
    let file = std::fs::read_dir(&dir)
        .expect("tokens dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a cached login");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("json")
}

/// A stand-in for the desktop's URL opener (`xdg-open` first on PATH):
/// it writes the URL it was asked to open to `opened`. Returns the PATH
/// to run with.
fn fake_opener(dir: &Path, opened: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let script = bin.join("xdg-open");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display()),
    )
    .expect("write xdg-open");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn login_opens_the_browser_at_the_printed_url_unless_told_not_to() {
    let home = temp_dir("login-opener");
    let opened = home.join("opened-url");
    let path = fake_opener(&home, &opened);
    let redirect_port = portcullis_e2e::free_port().to_string();
    let (child, url, _) = start_login_with(
        &home,
        &["--redirect-port", &redirect_port],
        &[("PATH", path.clone())],
        |l| {
            let t = l.trim();
            t.starts_with("http").then(|| t.to_string())
        },
    );
    portcullis_e2e::wait_for(
        "the URL opener to run",
        std::time::Duration::from_secs(30),
        || std::fs::read_to_string(&opened).is_ok_and(|u| !u.is_empty()),
    );
    let asked = std::fs::read_to_string(&opened).expect("opened");
    assert_eq!(asked, url, "the opener gets the printed sign-in URL");
    // Signing in at that URL completes the login.
    let page = browser(&[&asked, "alice"]);
    assert_eq!(page["done"], true, "{page}");
    let out = child.wait_with_output().expect("login");
    assert!(out.status.success(), "login failed");
    assert_eq!(cached(&home)["tokens"]["email"], "alice@example.com");

    // --no-browser only prints it.
    std::fs::remove_file(&opened).expect("rm");
    let redirect_port = portcullis_e2e::free_port().to_string();
    let (mut child, url, _) = start_login_with(
        &home,
        &["--no-browser", "--redirect-port", &redirect_port],
        &[("PATH", path)],
        |l| {
            let t = l.trim();
            t.starts_with("http").then(|| t.to_string())
        },
    );
    assert!(url.contains("code_challenge"), "{url}");
    let page = browser(&[&url, "alice"]);
    assert_eq!(page["done"], true, "{page}");
    assert!(child.wait().expect("login").success());
    assert!(!opened.exists(), "--no-browser opened a browser");
}

#[test]
fn browser_login_then_token_refreshes_and_psql_connects() {
    let gw = gateway();
    let home = temp_dir("login-home");
    let gateway_addr = format!("127.0.0.1:{}", gw.port);
    let redirect_port = portcullis_e2e::free_port().to_string();
    let args = [
        "--no-browser",
        "--gateway",
        &gateway_addr,
        "--redirect-port",
        &redirect_port,
    ];
    let (child, url, _) = start_login(&home, &args, |l| {
        let t = l.trim();
        t.starts_with("http").then(|| t.to_string())
    });
    assert!(url.contains("code_challenge_method=S256"), "PKCE: {url}");
    assert!(
        url.contains(&format!(
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A{redirect_port}%2Fcallback"
        )),
        "loopback on --redirect-port: {url}"
    );
    let page = browser(&[&url, "alice"]);
    assert_eq!(page["done"], true, "{page}");
    let out = child.wait_with_output().expect("login");
    assert!(out.status.success(), "login failed");

    let c = cached(&home);
    assert_eq!(c["tokens"]["email"], "alice@example.com", "{c}");
    assert!(
        c["tokens"]["refresh_token"].is_string(),
        "offline_access gives a refresh token: {c}"
    );
    let first = c["tokens"]["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // A token with time left is printed as cached; one that is about to
    // run out is refreshed (the provider's access tokens live 120 s).
    assert_eq!(token(&home, &["--min-valid", "0"]), first);
    let refreshed = token(&home, &["--min-valid", "100000"]);
    assert_ne!(refreshed, first, "refreshed");
    assert_eq!(cached(&home)["tokens"]["access_token"], refreshed.as_str());

    // PGPASSWORD=$(portcullis token) psql ...
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "PGPASSWORD=$('{}' token) psql -X -h 127.0.0.1 -p {} -U alice@example.com -d app -At -c 'select 40 + 2'",
            portcullis_bin().display(),
            gw.port
        ))
        .env("PORTCULLIS_HOME", &home)
        .output()
        .expect("sh");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "42",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // portcullis psql CONNECTION -- ARGS fills in host, port, user, db, token.
    let out = cli(&home)
        .args([
            "psql",
            "app",
            "--",
            "-X",
            "-At",
            "-c",
            "select current_database() = 'app'",
        ])
        .output()
        .expect("portcullis psql");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "t",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A refresh token the provider no longer knows: a clear message, not
    // a stale token.
    let mut c = cached(&home);
    c["tokens"]["refresh_token"] = "revoked".into();
    c["tokens"]["expires_at"] = 1.into();
    let file = std::fs::read_dir(home.join("tokens"))
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("file");
    std::fs::write(&file, c.to_string()).expect("write");
    let out = cli(&home).arg("token").output().expect("token");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run `portcullis login` again"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn device_login_and_clear_errors() {
    let home = temp_dir("login-device");
    // Not logged in yet: say what to do.
    let out = cli(&home).arg("token").output().expect("token");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not logged in"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (child, line, _) = start_login(&home, &["--device"], |l| {
        l.starts_with("To sign in, open ").then(|| l.to_string())
    });
    // "To sign in, open URI and enter the code CODE"
    let words: Vec<&str> = line.split_whitespace().collect();
    let uri = words.get(4).copied().unwrap_or_default();
    let code = words.last().copied().unwrap_or_default();
    let page = browser(&[uri, "bob", code]);
    assert_eq!(page["done"], true, "{page}");
    let out = child.wait_with_output().expect("login");
    assert!(out.status.success(), "device login failed");
    let c = cached(&home);
    assert_eq!(c["tokens"]["email"], "bob@example.com", "{c}");
    // The cached access token is the provider's JWT for the gateway.
    let t = token(&home, &[]);
    assert_eq!(t.split('.').count(), 3, "{t}");

    // An issuer that is not there: a clear error naming it.
    let out = cli(&home)
        .args(["login", "--issuer", "http://127.0.0.1:9", "--no-browser"])
        .output()
        .expect("login");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the identity provider's configuration at http://127.0.0.1:9"),
        "{err}"
    );
}
