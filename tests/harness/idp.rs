//! The real OIDC provider (npm `oidc-provider`, tests/node/idp.mjs) and
//! token helpers: client-credentials grants for the test users.

use std::sync::OnceLock;

use base64::Engine as _;

use crate::{free_port, root, temp_dir, wait_port, Guarded};

/// The audience the gateway expects in tests.
pub const AUDIENCE: &str = "urn:portcullis:db";

/// A running provider.
pub struct Idp {
    /// Issuer URL.
    pub issuer: String,
    _guard: Guarded,
}

impl Idp {
    fn start() -> Self {
        let node_dir = root().join("tests/node");
        assert!(
            node_dir.join("node_modules/oidc-provider").exists(),
            "tests/node/node_modules is missing: run scripts/install-deps.sh"
        );
        let port = free_port();
        let dir = temp_dir("idp");
        let log = dir.join("idp.log");
        let cleanup = format!("rm -rf '{}'", dir.display());
        let guard = Guarded::spawn(
            "node",
            &[
                node_dir.join("idp.mjs").display().to_string(),
                port.to_string(),
            ],
            &cleanup,
            &log,
        );
        wait_port(port, "the OIDC provider");
        Self {
            issuer: format!("http://127.0.0.1:{port}"),
            _guard: guard,
        }
    }

    /// An access token for a test user (alice, bob, mallory, shortlived).
    pub fn token(&self, user: &str) -> String {
        self.token_for(user, AUDIENCE)
    }

    /// An access token for `user` with audience `resource`.
    pub fn token_for(&self, user: &str, resource: &str) -> String {
        let resp: serde_json::Value = reqwest::blocking::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(user, Some(format!("{user}-secret")))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "db"),
                ("resource", resource),
            ])
            .send()
            .and_then(|r| r.json())
            .expect("token request");
        resp["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {resp}"))
            .to_string()
    }
}

static IDP: OnceLock<Idp> = OnceLock::new();

/// The provider of this test binary.
pub fn idp() -> &'static Idp {
    IDP.get_or_init(Idp::start)
}

/// Replaces a token's header with `alg: none` and drops the signature.
pub fn alg_none(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap_or_default();
    let header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{payload}.")
}

/// Re-signs a token's claims with a fresh RSA key under the provider's kid
/// (a forgery: right claims, wrong key). Uses node's crypto.
pub fn forged(token: &str) -> String {
    let script = r#"
const crypto = require('node:crypto');
const [h, p] = process.argv[1].split('.');
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const sig = crypto.sign('RSA-SHA256', Buffer.from(h + '.' + p), privateKey).toString('base64url');
process.stdout.write(h + '.' + p + '.' + sig);
"#;
    let out = std::process::Command::new("node")
        .args(["-e", script, token])
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}
