//! The approvals service under test: the real `portcullis-approvals`
//! binary with a fresh signing key, gateway token and SQLite store in a
//! temp dir, trusting this binary's OIDC provider for approvers.

use std::path::PathBuf;
use std::process::Command;

use crate::idp::AUDIENCE;
use crate::{free_port, idp, portcullis_bin, temp_dir, wait_port, Guarded};

/// A running approvals service.
pub struct Approvals {
    /// Base URL.
    pub url: String,
    /// File with the gateways' bearer token.
    pub token_file: PathBuf,
    /// The token.
    pub token: String,
    /// Public key (base64) for the gateways' config.
    pub public_key: String,
    /// Working directory (config, store, log).
    pub dir: PathBuf,
    _guard: Guarded,
}

/// The `portcullis-approvals` binary next to `portcullis`.
pub fn approvals_bin() -> PathBuf {
    portcullis_bin().with_file_name("portcullis-approvals")
}

impl Approvals {
    /// Starts a service on a random port.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// Starts a service with extra TOML appended to its config (e.g.
    /// `[[webhooks]]`).
    pub fn start_with(extra: &str) -> Self {
        Self::start_with_store("sqlite://approvals.db", extra)
    }

    /// Starts a service on `store_url` with extra TOML.
    /// Keys of `extra` before its first table go to the top level.
    pub fn start_with_store(store_url: &str, extra: &str) -> Self {
        let split = if extra.starts_with('[') {
            0
        } else {
            extra.find("\n[").map_or(extra.len(), |i| i + 1)
        };
        let (top, extra) = extra.split_at(split);
        let dir = temp_dir("approvals");
        let port = free_port();
        let token = format!("gw{:032x}", rand::random::<u128>());
        let token_file = dir.join("gateway.token");
        std::fs::write(&token_file, &token).expect("token");
        let out = Command::new(approvals_bin())
            .args(["keygen", "--out"])
            .arg(dir.join("signing.key"))
            .output()
            .expect("keygen");
        assert!(
            out.status.success(),
            "keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public_key = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // The web UI's OIDC client, registered at the provider for this
        // service's callback (dynamic registration).
        let reg: serde_json::Value = reqwest::blocking::Client::new()
            .post(format!("{}/reg", idp().issuer))
            .json(&serde_json::json!({
                "redirect_uris": [format!("http://127.0.0.1:{port}/callback")],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }))
            .send()
            .and_then(|r| r.json())
            .expect("client registration");
        let client_id = reg["client_id"]
            .as_str()
            .unwrap_or_else(|| panic!("client registration: {reg}"))
            .to_string();
        let config = format!(
            r#"listen = "127.0.0.1:{port}"
store_url = "{store_url}"
{top}
gateway_token_file = "gateway.token"
signing_key_file = "signing.key"

[[identity.issuers]]
issuer = "{issuer}"
audience = "{AUDIENCE}"
groups_claim = "groups"
leeway = "0s"

[web]
issuer = "{issuer}"
client_id = "{client_id}"

{extra}
"#,
            issuer = idp().issuer
        );
        std::fs::write(dir.join("approvals.toml"), config).expect("config");
        let guard = Guarded::spawn(
            &approvals_bin().display().to_string(),
            &[
                "serve".into(),
                "--config".into(),
                dir.join("approvals.toml").display().to_string(),
            ],
            "",
            &dir.join("approvals.log"),
        );
        wait_port(port, "approvals service");
        Self {
            url: format!("http://127.0.0.1:{port}"),
            token_file,
            token,
            public_key,
            dir,
            _guard: guard,
        }
    }

    /// `[approvals]` for a gateway config, with this gateway id.
    pub fn gateway_section(&self, gateway_id: &str) -> String {
        format!(
            "[approvals]\nurl = \"{}\"\ntoken_file = \"{}\"\npublic_key = \"{}\"\ngateway_id = \"{gateway_id}\"\nhold_timeout = \"30s\"\n",
            self.url,
            self.token_file.display(),
            self.public_key
        )
    }

    /// An approver's vote: (HTTP status, body).
    pub fn decide(
        &self,
        user: &str,
        id: &str,
        outcome: &str,
        comment: &str,
    ) -> (u16, serde_json::Value) {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/requests/{id}/decision", self.url))
            .bearer_auth(idp().token(user))
            .json(&serde_json::json!({"outcome": outcome, "comment": comment}))
            .send()
            .expect("decision");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    /// Requests as an approver sees them (`state` filter).
    pub fn list(&self, user: &str, state: &str) -> Vec<serde_json::Value> {
        reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/requests?state={state}", self.url))
            .bearer_auth(idp().token(user))
            .send()
            .expect("list")
            .json()
            .unwrap_or_default()
    }

    /// An approver deciding in real Chromium: opens `link`, logs in as
    /// `user`, clicks approve or reject; what the page showed (JSON).
    pub fn decide_in_browser(
        &self,
        link: &str,
        user: &str,
        action: &str,
        comment: &str,
        screenshot: Option<&std::path::Path>,
    ) -> serde_json::Value {
        decide_in_browser(link, user, action, comment, screenshot, &[])
    }

    /// A second instance of this service: same config, key, token and
    /// store (a SQLite store is shared by path), on another port; `env`
    /// is put in front of the command (e.g. `PORTCULLIS_APPROVALS_LISTEN=`
    /// to pick the port from the environment instead of the config).
    pub fn another_instance(&self, env_listen: bool) -> Self {
        let dir = temp_dir("approvals-twin");
        let port = free_port();
        let abs = |f: &str| format!("\"{}\"", self.dir.join(f).display());
        let config = std::fs::read_to_string(self.dir.join("approvals.toml"))
            .expect("config")
            .replace("\"gateway.token\"", &abs("gateway.token"))
            .replace("\"signing.key\"", &abs("signing.key"))
            .replace(
                "sqlite://approvals.db",
                &format!("sqlite://{}", self.dir.join("approvals.db").display()),
            );
        let config = if env_listen {
            config
        } else {
            let start = config.find("listen = ").expect("listen");
            let end = start + config[start..].find('\n').expect("eol");
            format!(
                "{}listen = \"127.0.0.1:{port}\"{}",
                &config[..start],
                &config[end..]
            )
        };
        std::fs::write(dir.join("approvals.toml"), config).expect("config");
        let guard = Guarded::spawn(
            "sh",
            &[
                "-c".into(),
                format!(
                    "{} exec '{}' serve --config '{}'",
                    if env_listen {
                        format!("PORTCULLIS_APPROVALS_LISTEN=127.0.0.1:{port}")
                    } else {
                        String::new()
                    },
                    approvals_bin().display(),
                    dir.join("approvals.toml").display()
                ),
            ],
            "",
            &dir.join("approvals.log"),
        );
        wait_port(port, "the second approvals instance");
        Self {
            url: format!("http://127.0.0.1:{port}"),
            token_file: self.token_file.clone(),
            token: self.token.clone(),
            public_key: self.public_key.clone(),
            dir,
            _guard: guard,
        }
    }

    /// The service's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("approvals.log")).unwrap_or_default()
    }
}

/// An approver in real Chromium (tests/node/approve_ui.mjs): opens `link`,
/// signs in as `user` (e2e provider form or dev issuer page), decides, and
/// returns what the page showed. `env` sets REQUESTER / CONNECTION for the
/// history view.
pub fn decide_in_browser(
    link: &str,
    user: &str,
    action: &str,
    comment: &str,
    screenshot: Option<&std::path::Path>,
    env: &[(&str, &str)],
) -> serde_json::Value {
    let mut args = vec![link, user, action, comment];
    let shot = screenshot.map(|s| s.display().to_string());
    if let Some(s) = &shot {
        args.push(s);
    }
    crate::node_json("approve_ui.mjs", &args, env)
}
