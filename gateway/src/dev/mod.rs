//! `portcullis dev`: a one-command local setup — the built-in development
//! issuer, the shipped policy, an upstream (given, or a throwaway local
//! cluster created with initdb) and the gateway, plus a psql command to
//! paste.

pub mod approvals;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::config::{Config, ConnectionConfig, IssuerConfig};
use crate::identity::dev::{DevIssuer, DEV_AUDIENCE};

/// The shipped default policy, written out when no `policies/` is present.
pub const DEFAULT_POLICY: &str = include_str!("../../../policies/portcullis.rego");
/// The shipped policy data.
pub const DEFAULT_POLICY_DATA: &str = include_str!("../../../policies/data.json");

/// Errors of the dev setup.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// Postgres server binaries are missing.
    #[error("PostgreSQL server binaries (initdb, pg_ctl) were not found in /usr/lib/postgresql/*/bin or on PATH.\n  Install them (Debian/Ubuntu: `apt-get install postgresql`), or pass --upstream postgres://user:password@host:port/db")]
    NoPostgres,
    /// A setup command failed.
    #[error("{what} failed: {why}")]
    Command {
        /// What was run.
        what: String,
        /// Its output.
        why: String,
    },
    /// The upstream URL is not usable.
    #[error("--upstream: {0}")]
    Url(String),
    /// File system problem.
    #[error("{0}")]
    Io(String),
}

/// Finds the directory holding initdb/pg_ctl.
pub fn find_pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(d) = dirs.into_iter().rev().find(|d| d.join("initdb").exists()) {
        return Some(d);
    }
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.join("initdb").exists()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Runs a Postgres server binary, as the `postgres` user when we are root
/// (initdb and postgres refuse to run as root).
fn pg_command(bin: &Path, tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn run(mut cmd: Command, what: &str) -> Result<(), DevError> {
    let out = cmd.output().map_err(|e| DevError::Command {
        what: what.into(),
        why: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DevError::Command {
            what: what.into(),
            why: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// A throwaway cluster started for `portcullis dev`; stopped on drop.
pub struct LocalCluster {
    bin: PathBuf,
    /// Data directory.
    pub dir: PathBuf,
    /// Port.
    pub port: u16,
    /// Superuser password.
    pub password: String,
}

impl LocalCluster {
    /// initdb (SCRAM) + pg_ctl start on a free loopback port.
    pub fn create() -> Result<Self, DevError> {
        let bin = find_pg_bin().ok_or(DevError::NoPostgres)?;
        let port = free_port().map_err(DevError::Io)?;
        let dir =
            std::env::temp_dir().join(format!("portcullis-dev-pg-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| DevError::Io(format!("{}: {e}", dir.display())))?;
        let password = format!("{:032x}", rand::random::<u128>());
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, &password).map_err(|e| DevError::Io(e.to_string()))?;
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(&dir);
                    c
                },
                "chown",
            )?;
        }
        let data = dir.join("data");
        let mut c = pg_command(&bin, "initdb");
        c.arg("-D")
            .arg(&data)
            .args(["--auth=scram-sha-256", "-U", "postgres", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()));
        run(c, "initdb")?;
        let mut c = pg_command(&bin, "pg_ctl");
        c.arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                dir.display()
            ))
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "start"]);
        run(c, "pg_ctl start")?;
        Ok(Self {
            bin,
            dir,
            port,
            password,
        })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "stop"]);
        let _ = c.output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Picks a free loopback port.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Parts of a `postgres://user:password@host:port/db` URL.
pub struct UpstreamUrl {
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// host:port.
    pub addr: String,
    /// Database.
    pub database: String,
}

/// Parses a postgres URL (no query parameters).
pub fn parse_url(url: &str) -> Result<UpstreamUrl, DevError> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| DevError::Url("must start with postgres://".into()))?;
    let (auth, hostpart) = rest
        .rsplit_once('@')
        .ok_or_else(|| DevError::Url("missing user@".into()))?;
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (hostport, db) = hostpart.split_once('/').unwrap_or((hostpart, "postgres"));
    let db = db.split('?').next().unwrap_or("postgres");
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    };
    Ok(UpstreamUrl {
        user: user.into(),
        password: password.into(),
        addr,
        database: if db.is_empty() {
            "postgres".into()
        } else {
            db.into()
        },
    })
}

/// Options of `portcullis dev`.
pub struct DevOptions {
    /// Existing upstream, or None for a throwaway cluster.
    pub upstream: Option<String>,
    /// Gateway listen address.
    pub listen: String,
    /// Admin listen address.
    pub admin_listen: String,
    /// State directory (dev issuer key).
    pub state_dir: PathBuf,
    /// Demo user for the printed command.
    pub user: String,
    /// Demo user's groups.
    pub groups: Vec<String>,
    /// Approvals service listen address (port 0: a free port), or None to
    /// run without one.
    pub approvals_listen: Option<String>,
    /// Audit record: `batched`, `strict` or `off`.
    pub audit: String,
    /// `audit.sync`: `full` or `normal`.
    pub audit_sync: crate::audit::config::SyncMode,
}

/// Environment variable the dev config reads the upstream password from.
pub const DEV_PASSWORD_ENV: &str = "PORTCULLIS_DEV_UPSTREAM_PASSWORD";

/// Prepares the dev environment: issuer, upstream, policy dir and config.
/// Returns the config, the issuer, the cluster guard and the policy dir.
pub fn prepare(
    opts: &DevOptions,
    issuer_url: &str,
) -> Result<(Config, DevIssuer, Option<LocalCluster>), DevError> {
    let issuer = DevIssuer::load_or_create(&opts.state_dir, Some(issuer_url))
        .map_err(|e| DevError::Io(e.to_string()))?;
    let (cluster, url) = match &opts.upstream {
        Some(u) => (None, parse_url(u)?),
        None => {
            eprintln!("portcullis dev: creating a throwaway PostgreSQL cluster (initdb, SCRAM)...");
            let c = LocalCluster::create()?;
            let url = UpstreamUrl {
                user: "postgres".into(),
                password: c.password.clone(),
                addr: format!("127.0.0.1:{}", c.port),
                database: "postgres".into(),
            };
            (Some(c), url)
        }
    };
    // The password travels to the connection config through the
    // environment of this process only.
    std::env::set_var(DEV_PASSWORD_ENV, &url.password);
    let policy_dir = if Path::new("policies/portcullis.rego").exists() {
        PathBuf::from("policies")
    } else {
        let dir = opts.state_dir.join("policies");
        std::fs::create_dir_all(&dir).map_err(|e| DevError::Io(e.to_string()))?;
        std::fs::write(dir.join("portcullis.rego"), DEFAULT_POLICY)
            .map_err(|e| DevError::Io(e.to_string()))?;
        std::fs::write(dir.join("data.json"), DEFAULT_POLICY_DATA)
            .map_err(|e| DevError::Io(e.to_string()))?;
        dir
    };
    let mut cfg: Config = toml::from_str("").map_err(|e| DevError::Io(e.to_string()))?;
    cfg.gateway.listen = opts.listen.clone();
    cfg.gateway.admin_listen = opts.admin_listen.clone();
    cfg.gateway.allow_plaintext_loopback = true;
    cfg.policy.dir = policy_dir;
    // The audit record lives in the state directory.
    cfg.store.url = format!("sqlite://{}", opts.state_dir.join("audit.db").display());
    cfg.audit.signing_key_file = opts.state_dir.join("audit-signing.key");
    cfg.audit.instance = "dev".into();
    cfg.audit.enabled = opts.audit != "off";
    if opts.audit == "strict" {
        cfg.audit.durability = crate::audit::config::Durability::Strict;
    }
    cfg.audit.sync = opts.audit_sync;
    cfg.policy.reload_interval = std::time::Duration::from_secs(1);
    cfg.identity.issuers.push(IssuerConfig {
        issuer: issuer.issuer.clone(),
        audience: DEV_AUDIENCE.into(),
        groups_claim: "groups".into(),
        algorithms: vec!["ES256".into()],
        leeway: std::time::Duration::from_secs(30),
        jwks_uri: None,
    });
    cfg.connections.push(ConnectionConfig {
        name: "dev".into(),
        kind: crate::config::ConnectionKind::Postgres,
        upstream: url.addr.clone(),
        database: Some(url.database.clone()),
        user: url.user.clone(),
        password_env: Some(DEV_PASSWORD_ENV.into()),
        password_file: None,
        tls: crate::config::TlsMode::Disable,
        ca_file: None,
        groups: Vec::new(),
        catalog_refresh: crate::config::dur(crate::config::DEFAULT_CATALOG_REFRESH),
    });
    Ok((cfg, issuer, cluster))
}

/// Seeds a demo table so the printed walkthrough has something to read.
pub async fn seed(conn: &ConnectionConfig) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut up = crate::session::upstream::connect(conn, "portcullis-dev-seed", &[])
        .await
        .map_err(|e| e.to_string())?;
    let sql = "CREATE TABLE IF NOT EXISTS demo_users (id serial PRIMARY KEY, email text NOT NULL, name text);\
               INSERT INTO demo_users (email, name) SELECT 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, 5) g WHERE NOT EXISTS (SELECT 1 FROM demo_users);";
    up.stream
        .write_all(&crate::pg::query::to_frame(sql).to_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = up.leftover;
    loop {
        let f = tokio::time::timeout(
            Duration::from_secs(10),
            crate::pg::read_frame(&mut up.stream, &mut buf, 1 << 20),
        )
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?
        .ok_or("closed")?;
        match f.tag {
            b'E' => {
                return Err(crate::pg::ErrorFields::decode(&f.body)
                    .map(|e| e.message)
                    .unwrap_or_default())
            }
            b'Z' => return Ok(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::config::{Durability, SyncMode};

    #[test]
    fn the_audit_flags_set_the_dev_gateways_audit_config() {
        let dir = std::env::temp_dir().join(format!("pc-dev-audit-{}", uuid::Uuid::new_v4()));
        let cases = [
            ("batched", SyncMode::Full, true, Durability::Batched),
            ("strict", SyncMode::Normal, true, Durability::Strict),
            ("off", SyncMode::Full, false, Durability::Batched),
        ];
        for (audit, sync, enabled, durability) in cases {
            let opts = DevOptions {
                upstream: Some("postgres://u:pw@127.0.0.1:1/db".into()),
                listen: "127.0.0.1:0".into(),
                admin_listen: "127.0.0.1:0".into(),
                state_dir: dir.clone(),
                user: "alice".into(),
                groups: vec!["dev".into()],
                approvals_listen: None,
                audit: audit.into(),
                audit_sync: sync,
            };
            let (cfg, _, _) = prepare(&opts, "http://127.0.0.1:1").unwrap();
            assert_eq!(cfg.audit.enabled, enabled, "--audit {audit}");
            assert_eq!(cfg.audit.durability, durability, "--audit {audit}");
            assert_eq!(cfg.audit.sync, sync, "--audit {audit}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
