//! A throwaway PostgreSQL cluster per test binary: initdb with SCRAM, a
//! random port, a temp dir; an `app` database owned by the `svc` role whose
//! password only the gateway knows.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::{free_port, temp_dir, wait_for, Guarded};

/// A running cluster.
pub struct Postgres {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Superuser (`postgres`) password.
    pub super_password: String,
    /// Password of `svc`, the gateway's upstream role.
    pub svc_password: String,
    /// File holding `svc_password` (for the gateway config).
    pub svc_password_file: PathBuf,
    /// Server binaries.
    pub bin: PathBuf,
    /// CA certificate that signed the server's TLS certificate (for
    /// `tls = "verify-full"`).
    pub ca_file: PathBuf,
    /// A CA that did not sign it (must be refused by verify-full).
    pub other_ca_file: PathBuf,
    _guard: Guarded,
}

fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL server packages are not installed (scripts/install-deps.sh installs them)",
        )
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("no initdb under /usr/lib/postgresql")
}

fn as_postgres(bin: &std::path::Path, tool: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
    c
}

fn check(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    fn start() -> Self {
        let bin = pg_bin();
        let dir = temp_dir("pg");
        let super_password = format!("su{:024x}", rand::random::<u128>());
        let svc_password = format!("svc{:024x}", rand::random::<u128>());
        std::fs::write(dir.join("pwfile"), &super_password).expect("pwfile");
        let svc_password_file = dir.join("svc.password");
        std::fs::write(&svc_password_file, &svc_password).expect("svc pw");
        make_certs(&dir);
        check(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres:postgres"]).arg(&dir);
                c
            },
            "chown",
        );
        let data = dir.join("data");
        let mut c = as_postgres(&bin, "initdb");
        c.arg("-D")
            .arg(&data)
            .args([
                "--auth=scram-sha-256",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", dir.join("pwfile").display()));
        check(c, "initdb");
        let port = free_port();
        let mut c = as_postgres(&bin, "pg_ctl");
        c.arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 \
                 -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key",
                d = dir.display()
            ))
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "start"]);
        check(c, "pg_ctl start");
        let guard = Guarded::cleanup_only(&format!(
            "runuser -u postgres -- {} -D '{}' -m immediate stop >/dev/null 2>&1; rm -rf '{}'",
            bin.join("pg_ctl").display(),
            data.display(),
            dir.display()
        ));
        let pg = Self {
            port,
            super_password,
            svc_password,
            svc_password_file,
            bin,
            ca_file: dir.join("ca.crt"),
            other_ca_file: dir.join("other-ca.crt"),
            _guard: guard,
        };
        pg.psql_super(
            "postgres",
            &format!("CREATE ROLE svc LOGIN PASSWORD '{}'", pg.svc_password),
        );
        pg.psql_super("postgres", "CREATE DATABASE app OWNER svc");
        pg.psql_super("app", "SET ROLE svc; \
            CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, secret text); \
            INSERT INTO items SELECT g, 'item ' || g, 'secret ' || g FROM generate_series(1, 10) g; \
            CREATE TABLE notes (id serial PRIMARY KEY, body text);");
        pg
    }

    /// Runs SQL as the superuser directly (not through the gateway).
    pub fn psql_super(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .env("PGPASSWORD", &self.super_password)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql as superuser failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until a query run directly as superuser returns `expected`.
    pub fn wait_value(&self, db: &str, sql: &str, expected: &str) {
        wait_for(
            &format!("`{sql}` = {expected}"),
            Duration::from_secs(20),
            || self.psql_super(db, sql) == expected,
        );
    }
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated
/// CA, made with the openssl command.
fn make_certs(dir: &std::path::Path) {
    use crate::{openssl, self_signed};
    self_signed(dir, "ca", "/CN=portcullis test ca");
    self_signed(dir, "other-ca", "/CN=portcullis test other ca");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
}

static PG: OnceLock<Postgres> = OnceLock::new();

/// The cluster of this test binary (started on first use).
pub fn postgres() -> &'static Postgres {
    PG.get_or_init(Postgres::start)
}
