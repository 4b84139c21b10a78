//! Running real clients (psql, python, node, java) against a gateway.

use std::process::{Command, Output};

use crate::{root, Gateway};

/// Output of a client run, as text.
pub struct Run {
    /// Exit status success.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).to_string(),
            stderr: String::from_utf8_lossy(&o.stderr).to_string(),
        }
    }
}

impl Run {
    /// stdout + stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A psql command connected to `gw` as `user` with `token` as password.
pub fn psql_cmd(gw: &Gateway, user: &str, token: &str, dbname: &str) -> Command {
    let mut c = Command::new("psql");
    c.env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "10")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &gw.port.to_string(),
            "-U",
            user,
            "-d",
            dbname,
        ]);
    c
}

/// Runs psql with extra arguments.
pub fn psql(gw: &Gateway, user: &str, token: &str, args: &[&str]) -> Run {
    psql_cmd(gw, user, token, "app")
        .args(args)
        .output()
        .expect("psql")
        .into()
}

/// Runs a client script from tests/clients with the connection in the
/// environment: PCG_HOST, PCG_PORT, PCG_USER, PCG_PASSWORD, PCG_DB.
pub fn client(program: &str, script_args: &[&str], gw: &Gateway, user: &str, token: &str) -> Run {
    run_client(program, script_args, gw.port, user, token)
}

/// Runs a client script against this test binary's PostgreSQL directly
/// (as the gateway's upstream role), to compare with the gateway.
pub fn client_direct(program: &str, script_args: &[&str]) -> Run {
    let pg = crate::postgres();
    run_client(program, script_args, pg.port, "svc", &pg.svc_password)
}

fn run_client(program: &str, script_args: &[&str], port: u16, user: &str, password: &str) -> Run {
    Command::new(program)
        .args(script_args)
        .current_dir(root().join("tests"))
        .env("PCG_HOST", "127.0.0.1")
        .env("PCG_PORT", port.to_string())
        .env("PCG_USER", user)
        .env("PCG_PASSWORD", password)
        .env("PCG_DB", "app")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
        .into()
}
