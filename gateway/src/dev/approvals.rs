//! The approvals service of `portcullis dev`: `portcullis-approvals` run as
//! a child process (found next to this binary or on PATH) with a signing
//! key, gateway token, SQLite store and config written to the state
//! directory, its web UI signing approvers in at the dev issuer.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::{free_port, DevError};
use crate::approvals::protocol::{key_from_seed, public_key_b64};
use crate::config::ApprovalsConfig;
use crate::identity::dev::DEV_AUDIENCE;

/// Client id of the approvals web UI at the dev issuer.
pub const DEV_APPROVALS_CLIENT_ID: &str = "portcullis-approvals";

/// The running service; killed when dropped.
pub struct ApprovalsChild {
    _child: tokio::process::Child,
    /// Its base URL.
    pub url: String,
    /// Its log file.
    pub log: PathBuf,
}

/// Where the `portcullis-approvals` binary is.
pub fn find_binary() -> Option<PathBuf> {
    let name = "portcullis-approvals";
    if let Some(p) = std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name(name))
        .filter(|p| p.exists())
    {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.exists())
    })
}

fn io(path: &Path, e: std::io::Error) -> DevError {
    DevError::Io(format!("{}: {e}", path.display()))
}

/// Reads or creates a secret file of the dev state (mode 0600).
fn secret_file(path: &Path, make: impl FnOnce() -> String) -> Result<String, DevError> {
    crate::secrets::read_or_create(path, make).map_err(|e| io(path, e))
}

fn random_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// Starts the service on `listen` (port 0: a free port) and returns it with
/// the gateway's `[approvals]` section.
pub async fn start(
    binary: &Path,
    state_dir: &Path,
    listen: &str,
    issuer: &str,
) -> Result<(ApprovalsChild, ApprovalsConfig), DevError> {
    let dir = state_dir.join("approvals");
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let seed = secret_file(&dir.join("signing.key"), random_b64)?;
    let key = key_from_seed(&seed).ok_or_else(|| {
        DevError::Io(format!(
            "{}: not a signing key; delete it to make a new one",
            dir.join("signing.key").display()
        ))
    })?;
    secret_file(&dir.join("gateway.token"), || {
        hex::encode(rand::random::<[u8; 32]>())
    })?;
    let listen = match listen.strip_suffix(":0") {
        Some(host) => format!("{host}:{}", free_port().map_err(DevError::Io)?),
        None => listen.to_string(),
    };
    let url = format!("http://{listen}");
    let config = format!(
        r#"# Written by `portcullis dev`; rewritten at every start.
listen = "{listen}"
public_url = "{url}"
store_url = "sqlite://approvals.db"
gateway_token_file = "gateway.token"
signing_key_file = "signing.key"

[[identity.issuers]]
issuer = "{issuer}"
audience = "{DEV_AUDIENCE}"
groups_claim = "groups"

[web]
issuer = "{issuer}"
client_id = "{DEV_APPROVALS_CLIENT_ID}"
"#
    );
    let cfg_path = dir.join("approvals.toml");
    std::fs::write(&cfg_path, config).map_err(|e| io(&cfg_path, e))?;
    let log = dir.join("approvals.log");
    let out = std::fs::File::create(&log).map_err(|e| io(&log, e))?;
    let err = out.try_clone().map_err(|e| io(&log, e))?;
    let mut child = tokio::process::Command::new(binary)
        .arg("serve")
        .arg("--config")
        .arg(&cfg_path)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| DevError::Command {
            what: binary.display().to_string(),
            why: e.to_string(),
        })?;
    let health = format!("{url}/healthz");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if http
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            return Err(DevError::Command {
                what: "the approvals service".into(),
                why: format!(
                    "{} (log {}):\n{}",
                    if exited.is_some() {
                        "exited at start"
                    } else {
                        "did not answer /healthz within 20 s"
                    },
                    log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gateway = ApprovalsConfig {
        url: Some(url.clone()),
        token_file: Some(dir.join("gateway.token")),
        public_key: Some(public_key_b64(&key)),
        gateway_id: "dev".into(),
        ..ApprovalsConfig::default()
    };
    Ok((
        ApprovalsChild {
            _child: child,
            url,
            log,
        },
        gateway,
    ))
}
