//! Test harness: real servers for the end-to-end tests.
//!
//! Each test binary gets its own PostgreSQL cluster (initdb with SCRAM,
//! random port, temp dir), its own OIDC provider process (npm
//! `oidc-provider`) and gateways started from the built `portcullis`
//! binary. Every process is started under a guard that stops it when the
//! test process exits (its standard input closes), so nothing outlives a
//! test run, even one that panics.
#![forbid(unsafe_code)]

pub mod approvals;
pub mod clients;
pub mod gateway;
pub mod idp;
pub mod oracle;
pub mod postgres;
pub mod raw;
pub mod receiver;
pub mod terminal;

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub use gateway::{gateway, Gateway, GatewayOptions};
pub use idp::{idp, Idp};
pub use postgres::{postgres, Postgres};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The built `portcullis` binary (next to the test executable's deps dir).
pub fn portcullis_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let bin = dir.join("portcullis");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bins` before the tests (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Runs the openssl command in `dir`, panicking with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate `NAME.crt` with key `NAME.key` in `dir`.
pub fn self_signed(dir: &Path, name: &str, subject: &str) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
            "-keyout", &key, "-out", &crt,
        ],
    );
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A fresh temp directory (removed by the owner's guard or at drop).
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "portcullis-e2e-{tag}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Waits until `cond` holds, polling, or panics with `what` at the deadline.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits until a TCP port accepts connections.
pub fn wait_port(port: u16, what: &str) {
    // A deadline, not a delay: it returns as soon as the port opens. Node
    // processes (the OIDC provider) have taken over 30 s to start while
    // the whole suite runs in parallel on 2 cores.
    wait_for(what, Duration::from_secs(90), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// A process that is stopped when this guard drops or the test process
/// exits: it runs under `sh`, which waits for its standard input to close
/// and then runs the stop command.
pub struct Guarded {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Guarded {
    /// Runs `program args` in the background; on stop, kills it and runs
    /// `cleanup` (a shell snippet, may be empty).
    pub fn spawn(program: &str, args: &[String], cleanup: &str, log: &Path) -> Self {
        let script = format!(
            "\"$@\" </dev/null >>'{log}' 2>&1 & pid=$!; cat >/dev/null; kill $pid 2>/dev/null; wait $pid 2>/dev/null; {cleanup}",
            log = log.display()
        );
        Self::sh(&script, program, args)
    }

    /// Runs nothing in the background; only runs `cleanup` at stop.
    pub fn cleanup_only(cleanup: &str) -> Self {
        Self::sh(&format!("cat >/dev/null; {cleanup}"), "true", &[])
    }

    fn sh(script: &str, program: &str, args: &[String]) -> Self {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let stdin = child.stdin.take();
        Self { child, stdin }
    }

    /// Stops the process and waits for cleanup.
    pub fn stop(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.flush();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `node tests/node/SCRIPT ARGS` (with `env`) and parses the JSON it
/// prints; panics with its output when it fails.
pub fn node_json(script: &str, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let out = Command::new("node")
        .current_dir(root().join("tests/node"))
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{script} failed ({e}): {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `portcullis audit ARGS export` as parsed JSON lines (ARGS name the
/// config or the store).
pub fn audit_export(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(portcullis_bin())
        .arg("audit")
        .args(args)
        .arg("export")
        .output()
        .expect("portcullis audit export");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
