//! Gateways under test: the real `portcullis serve` binary with a config
//! pointing at this binary's cluster and OIDC provider.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::idp::AUDIENCE;
use crate::{free_port, idp, portcullis_bin, postgres, root, temp_dir, wait_port, Guarded};

/// Knobs for a gateway under test.
#[derive(Clone)]
pub struct GatewayOptions {
    /// Serve TLS with a fresh self-signed certificate.
    pub tls: bool,
    /// Accept the token without TLS on loopback.
    pub allow_plaintext_loopback: bool,
    /// `gateway.max_message_bytes`.
    pub max_message_bytes: usize,
    /// `gateway.startup_timeout`.
    pub startup_timeout: String,
    /// Policy directory (default: the shipped `policies/`).
    pub policy_dir: PathBuf,
    /// `policy.reload_interval`.
    pub reload_interval: String,
    /// `policy.engine`.
    pub policy_engine: String,
    /// `gateway.log_format`.
    pub log_format: String,
    /// `connections[].catalog_refresh` of the `app` connection.
    pub catalog_refresh: String,
    /// Extra TOML appended to the config (e.g. an `[approvals]` section).
    pub extra: String,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            tls: false,
            allow_plaintext_loopback: true,
            max_message_bytes: 1 << 30,
            startup_timeout: "15s".into(),
            policy_dir: root().join("policies"),
            reload_interval: "1s".into(),
            policy_engine: "vm".into(),
            log_format: "text".into(),
            catalog_refresh: "30s".into(),
            extra: String::new(),
        }
    }
}

/// A running gateway.
pub struct Gateway {
    /// Postgres-protocol port.
    pub port: u16,
    /// Admin HTTP port.
    pub admin_port: u16,
    /// Its working directory (config, log).
    pub dir: PathBuf,
    /// The process started by [`Gateway::restart`]; declared first, so it
    /// stops before `_guard` removes the directory.
    _restarted: Option<Guarded>,
    _guard: Guarded,
}

impl Gateway {
    /// Starts a gateway with `opts`.
    pub fn start(opts: GatewayOptions) -> Self {
        let pg = postgres();
        let idp = idp();
        let dir = temp_dir("gw");
        let port = free_port();
        let admin_port = free_port();
        let mut tls_lines = String::new();
        if opts.tls {
            crate::self_signed(&dir, "gw", "/CN=localhost");
            tls_lines = "tls_cert = \"gw.crt\"\ntls_key = \"gw.key\"\n".into();
        }
        let config = format!(
            r#"[gateway]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
allow_plaintext_loopback = {plain}
max_message_bytes = {max}
startup_timeout = "{startup}"
shutdown_grace = "5s"
log_format = "{log_format}"
{tls_lines}
[[identity.issuers]]
issuer = "{issuer}"
audience = "{AUDIENCE}"
groups_claim = "groups"
leeway = "0s"

[policy]
dir = "{policy}"
reload_interval = "{reload}"
engine = "{engine}"

[[connections]]
name = "app"
upstream = "127.0.0.1:{pgport}"
database = "app"
user = "svc"
password_file = "{pwfile}"
catalog_refresh = "{catalog_refresh}"

[[connections]]
name = "app_tls"
upstream = "127.0.0.1:{pgport}"
database = "app"
user = "svc"
password_file = "{pwfile}"
tls = "require"

[[connections]]
name = "app_verified"
upstream = "127.0.0.1:{pgport}"
database = "app"
user = "svc"
password_file = "{pwfile}"
tls = "verify-full"
ca_file = "{ca}"

[[connections]]
name = "app_wrong_ca"
upstream = "127.0.0.1:{pgport}"
database = "app"
user = "svc"
password_file = "{pwfile}"
tls = "verify-full"
ca_file = "{other_ca}"

[[connections]]
name = "restricted"
upstream = "127.0.0.1:{pgport}"
database = "app"
user = "svc"
password_file = "{pwfile}"
groups = ["dba"]

{extra}
"#,
            plain = opts.allow_plaintext_loopback,
            max = opts.max_message_bytes,
            startup = opts.startup_timeout,
            issuer = idp.issuer,
            policy = opts.policy_dir.display(),
            reload = opts.reload_interval,
            engine = opts.policy_engine,
            log_format = opts.log_format,
            catalog_refresh = opts.catalog_refresh,
            extra = opts.extra,
            pgport = pg.port,
            pwfile = pg.svc_password_file.display(),
            ca = pg.ca_file.display(),
            other_ca = pg.other_ca_file.display(),
        );
        let cfg_path = dir.join("portcullis.toml");
        std::fs::write(&cfg_path, config).expect("write config");
        let log = dir.join("gateway.log");
        let guard = Guarded::spawn(
            &portcullis_bin().display().to_string(),
            &[
                "serve".into(),
                "--config".into(),
                cfg_path.display().to_string(),
            ],
            &format!("rm -rf '{}'", dir.display()),
            &log,
        );
        wait_port(port, "the gateway");
        Self {
            port,
            admin_port,
            dir,
            _restarted: None,
            _guard: guard,
        }
    }

    /// Stops the gateway (SIGTERM; waits until it has exited) and starts
    /// it again with the same configuration, ports and directory.
    pub fn restart(&mut self) {
        let pid = self.pid().expect("gateway pid");
        let _ = Command::new("kill").arg(pid.to_string()).status();
        crate::wait_for("the gateway to exit", Duration::from_secs(30), || {
            self.pid().is_none()
        });
        self._restarted = None;
        let cfg_path = self.dir.join("portcullis.toml");
        self._restarted = Some(Guarded::spawn(
            &portcullis_bin().display().to_string(),
            &[
                "serve".into(),
                "--config".into(),
                cfg_path.display().to_string(),
            ],
            "",
            &self.dir.join("gateway.log"),
        ));
        wait_port(self.port, "the restarted gateway");
    }

    /// Process id of the gateway (not of its guard).
    pub fn pid(&self) -> Option<u32> {
        let pattern = format!(
            "^{} serve --config {}",
            portcullis_bin().display(),
            self.dir.join("portcullis.toml").display()
        );
        let out = Command::new("pgrep").args(["-f", &pattern]).output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// The gateway's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }

    /// GET on the admin listener.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let r = reqwest::blocking::get(format!("http://127.0.0.1:{}{path}", self.admin_port))
            .expect("admin GET");
        (r.status().as_u16(), r.text().unwrap_or_default())
    }
}

static GW: OnceLock<Gateway> = OnceLock::new();

/// The default gateway of this test binary.
pub fn gateway() -> &'static Gateway {
    GW.get_or_init(|| Gateway::start(GatewayOptions::default()))
}
