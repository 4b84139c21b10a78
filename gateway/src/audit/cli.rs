//! `portcullis audit verify | export | sessions | replay`, reading the
//! store and keys named by the gateway's config file.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use super::store::{Filter, Store};
use super::{export, read_keys, verify, AuditError};
use crate::config::Config;

/// The audit subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum AuditCmd {
    /// Check every instance's hash chain and signed checkpoints; name the
    /// first record that was edited, deleted, reordered or inserted.
    Verify {
        /// Trust this public key for an instance (INSTANCE=BASE64; the
        /// gateway logs it at start) instead of the one stored with the
        /// records. Repeatable.
        #[arg(long = "public-key")]
        public_keys: Vec<String>,
    },
    /// Export records as JSON lines or CSV (streamed).
    Export {
        /// `jsonl` or `csv`.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// List sessions, newest first.
    Sessions {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Print a session as a psql-like transcript.
    Replay {
        /// Session id (from `audit sessions`).
        session: String,
    },
}

/// Record filters.
#[derive(clap::Args, Debug, Default)]
pub struct FilterArgs {
    /// From this time (RFC 3339, e.g. 2026-11-26T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Only this connection.
    #[arg(long)]
    pub connection: Option<String>,
    /// Only this session.
    #[arg(long)]
    pub session: Option<String>,
}

/// Errors of the audit commands.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The audit layer.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A bad argument.
    #[error("{0}")]
    Arg(String),
}

fn time(flag: &str, v: &Option<String>) -> Result<Option<i64>, CliError> {
    v.as_deref()
        .map(|t| {
            humantime::parse_rfc3339_weak(t)
                .map_err(|e| {
                    CliError::Arg(format!(
                        "--{flag} {t}: {e} (use RFC 3339, e.g. 2026-11-26T00:00:00Z)"
                    ))
                })
                .and_then(|st| {
                    st.duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_micros() as i64)
                        .map_err(|_| CliError::Arg(format!("--{flag} {t}: before 1970")))
                })
        })
        .transpose()
}

impl FilterArgs {
    fn filter(&self) -> Result<Filter, CliError> {
        Ok(Filter {
            since_us: time("since", &self.since)?,
            until_us: time("until", &self.until)?,
            user: self.user.clone(),
            connection: self.connection.clone(),
            session: self.session.clone(),
            instance: None,
        })
    }
}

/// Runs an audit command; the process exit code.
pub async fn run(cfg: &Config, cmd: AuditCmd) -> Result<u8, CliError> {
    let store = Store::open(&cfg.store.url)
        .await
        .map_err(AuditError::from)?;
    // Records a crashed strict gateway left in its journal go into the
    // store first (a running gateway keeps its journal locked and does
    // this itself).
    match super::journal::recover_idle(&store, &cfg.store.url).await {
        Ok(Some(n)) if n > 0 => eprintln!("audit: {n} records recovered from the journal of a gateway that stopped without committing them"),
        Ok(_) => {}
        // A journal this user cannot open: read the store as it is.
        Err(e @ super::journal::JournalError::Io { .. }) => eprintln!(
            "audit: warning: {e}; records only the journal holds are not in what follows (run this as the gateway's user, or start the gateway, to move them into the store)"
        ),
        Err(e) => return Err(AuditError::from(e).into()),
    }
    match cmd {
        AuditCmd::Verify { public_keys } => {
            let mut trusted = HashMap::new();
            for pk in &public_keys {
                let (i, k) = pk.split_once('=').ok_or_else(|| {
                    CliError::Arg(format!("--public-key {pk}: use INSTANCE=BASE64"))
                })?;
                trusted.insert(i.to_string(), k.to_string());
            }
            let reports = verify::verify(&store, &trusted, cfg.audit.retention)
                .await
                .map_err(AuditError::from)?;
            let mut ok = true;
            for r in &reports {
                let key = if trusted.contains_key(&r.instance) {
                    "the given public key"
                } else {
                    "the public key stored with the records (pass --public-key for an independent check)"
                };
                match &r.broken {
                    None => println!(
                        "{}: ok — {} records, {} signed checkpoints verified with {key}; {} records after the last checkpoint are covered by the chain only",
                        r.instance, r.records, r.checkpoints, r.unsigned_tail
                    ),
                    Some(b) => {
                        ok = false;
                        println!("{}: BROKEN {b}", r.instance);
                    }
                }
            }
            if reports.is_empty() {
                println!("no records");
            }
            Ok(if ok { 0 } else { 1 })
        }
        AuditCmd::Export {
            format,
            output,
            filter,
        } => {
            let csv = match format.as_str() {
                "csv" => true,
                "jsonl" | "json" => false,
                other => return Err(CliError::Arg(format!("--format {other}: use jsonl or csv"))),
            };
            let keys = read_keys(&cfg.audit)?;
            let f = filter.filter()?;
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .map_err(|e| CliError::Arg(format!("--output {}: {e}", p.display())))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let n = export::export(&store, &f, &keys, csv, &mut out)
                .await
                .map_err(AuditError::from)?;
            eprintln!("{n} records exported");
            Ok(0)
        }
        AuditCmd::Sessions { filter, limit } => {
            let list = store
                .sessions(&filter.filter()?, limit)
                .await
                .map_err(AuditError::from)?;
            println!(
                "{:<38} {:<26} {:<24} {:<12} {:>10} {:>6}",
                "SESSION", "STARTED", "USER", "CONNECTION", "STATEMENTS", "DENIED"
            );
            for s in list {
                println!(
                    "{:<38} {:<26} {:<24} {:<12} {:>10} {:>6}",
                    s.session_id,
                    export::rfc3339(s.first_us),
                    s.user,
                    s.connection,
                    s.statements,
                    s.denied
                );
            }
            Ok(0)
        }
        AuditCmd::Replay { session } => {
            let keys = read_keys(&cfg.audit)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let n = export::replay(&store, &session, &keys, &mut out)
                .await
                .map_err(AuditError::from)?;
            if n == 0 {
                return Err(CliError::Arg(format!("no records of session {session}")));
            }
            Ok(0)
        }
    }
}
