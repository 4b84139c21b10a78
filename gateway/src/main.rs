//! The `portcullis` command: serve, dev, login, token, psql, policy
//! test/eval, config check.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use portcullis::config::Config;
use portcullis::identity::dev::DevIssuer;
use portcullis::{dev, policy, server};

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Identity-aware database gateway"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway from a config file.
    Serve {
        /// Config file.
        #[arg(
            long,
            short,
            default_value = "portcullis.toml",
            env = "PORTCULLIS_CONFIG"
        )]
        config: PathBuf,
    },
    /// Validate a config file and exit.
    Check {
        /// Config file.
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
    },
    /// Local development: built-in OIDC issuer, shipped policy, a throwaway
    /// Postgres (or --upstream) and the gateway; prints a psql command.
    Dev {
        /// Use this database instead of creating one
        /// (postgres://user:password@host:port/db).
        #[arg(long)]
        upstream: Option<String>,
        /// Gateway listen address.
        #[arg(long, default_value = "127.0.0.1:6432")]
        listen: String,
        /// Admin listen address.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: String,
        /// Dev issuer listen address.
        #[arg(long, default_value = "127.0.0.1:0")]
        issuer_listen: String,
        /// Where the dev issuer keeps its key.
        #[arg(long, env = "PORTCULLIS_DEV_DIR")]
        state_dir: Option<PathBuf>,
        /// Demo user for the printed command.
        #[arg(long, default_value = "alice")]
        user: String,
        /// Demo user's groups (comma-separated).
        #[arg(long, default_value = "dev", value_delimiter = ',')]
        groups: Vec<String>,
        /// Approvals service listen address (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        approvals_listen: String,
        /// Run without the approvals service (statements that need
        /// approval are then refused).
        #[arg(long)]
        no_approvals: bool,
        /// The audit record: `batched`, `strict` or `off` (store:
        /// audit.db in the state directory).
        #[arg(long, default_value = "batched", value_parser = ["batched", "strict", "off"])]
        audit: String,
        /// `audit.sync`: `full` (each audit commit is fsynced) or `normal`
        /// (survives a crash of the gateway, not of the machine).
        #[arg(long, default_value = "full", value_parser = ["full", "normal"])]
        audit_sync: String,
    },
    /// Sign in at your identity provider (browser with PKCE, or --device)
    /// and keep the tokens for `portcullis token` and `portcullis psql`.
    Login(portcullis::login::cli::LoginArgs),
    /// Print a valid access token of your login (refreshed when it is
    /// about to expire), for `PGPASSWORD=$(portcullis token) psql ...`.
    /// With --dev, mint one from the `portcullis dev` issuer instead.
    Token {
        /// Mint from the local development issuer.
        #[arg(long)]
        dev: bool,
        /// Issuer of the login to use (default: the last login).
        #[arg(long)]
        issuer: Option<String>,
        /// Refresh when fewer than this many seconds are left.
        #[arg(long, default_value_t = 60)]
        min_valid: i64,
        /// User name (email is derived as user@example.com unless it has @).
        #[arg(long, default_value = "alice")]
        user: String,
        /// Groups (comma-separated).
        #[arg(long, default_value = "dev", value_delimiter = ',')]
        groups: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 43_200)]
        ttl: u64,
        /// Dev issuer state directory.
        #[arg(long, env = "PORTCULLIS_DEV_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Run psql through the gateway of your login, with host, port, user,
    /// connection and token filled in: `portcullis psql CONNECTION [-- ARGS]`.
    Psql(portcullis::login::cli::PsqlArgs),
    /// The audit record: verify, export, sessions, replay.
    Audit {
        /// Gateway config (names the store and keys).
        #[arg(
            long,
            short,
            default_value = "portcullis.toml",
            env = "PORTCULLIS_CONFIG"
        )]
        config: PathBuf,
        /// Read this store instead of the config's `store.url` (the config
        /// file may then be absent, e.g. for `portcullis dev`'s store).
        #[arg(long)]
        store: Option<String>,
        #[command(subcommand)]
        cmd: portcullis::audit::cli::AuditCmd,
    },
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Run every test_* rule (including *_test.rego files).
    Test {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Show which input fields a policy reads and the decision-cache mode
    /// that follows (read from the policy's syntax tree).
    Inspect {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Rule to evaluate.
        #[arg(long, default_value = "data.portcullis.decision")]
        query: String,
    },
    /// Evaluate the decision for an input document.
    Eval {
        /// JSON input file (`-` for stdin).
        #[arg(long)]
        input: PathBuf,
        /// Policy directory.
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
        /// Rule to evaluate.
        #[arg(long, default_value = "data.portcullis.decision")]
        query: String,
    },
}

fn default_state_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".portcullis")
        .join("dev")
}

/// Logs go to stderr through a batching writer so the hot path never
/// blocks on log I/O (it waits only if the buffer is full: no decision line
/// is dropped); the guard flushes on exit.
fn init_tracing(json: bool) -> portcullis::logwriter::FlushGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = portcullis::logwriter::BatchWriter::new(std::io::stderr());
    let b = tracing_subscriber::fmt()
        .with_ansi(ansi)
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        b.json().init();
    } else {
        b.init();
    }
    guard
}

/// mimalloc: the session and audit paths allocate many small, short-lived
/// buffers, often freed on another thread than the one that allocated
/// them; glibc's allocator spent ~14 % of the gateway's CPU on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("portcullis: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose
/// text the message already holds (errors that embed their source).
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Serve { config } => {
            let cfg = Config::load(&config)?;
            let _log = init_tracing(cfg.gateway.log_format == portcullis::config::LogFormat::Json);
            runtime_with(cfg.gateway.worker_threads)?.block_on(async {
                let gw = server::Gateway::start(cfg).await?;
                gw.run(server::shutdown_signal()).await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check { config } => {
            Config::load(&config)?;
            println!("{}: ok", config.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Dev {
            upstream,
            listen,
            admin_listen,
            issuer_listen,
            state_dir,
            user,
            groups,
            approvals_listen,
            no_approvals,
            audit,
            audit_sync,
        } => {
            let _log = init_tracing(false);
            let opts = dev::DevOptions {
                upstream,
                listen,
                admin_listen,
                state_dir: state_dir.unwrap_or_else(default_state_dir),
                user,
                groups,
                approvals_listen: (!no_approvals).then_some(approvals_listen),
                audit,
                audit_sync: match audit_sync.as_str() {
                    "normal" => portcullis::audit::config::SyncMode::Normal,
                    _ => portcullis::audit::config::SyncMode::Full,
                },
            };
            runtime_with(env_workers())?.block_on(run_dev(opts, issuer_listen))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Audit { config, store, cmd } => {
            let mut cfg = match (&store, config.exists()) {
                (Some(_), false) => Config::parse("", &config.display().to_string())?,
                _ => Config::load(&config)?,
            };
            if let Some(url) = store {
                cfg.store.url = url;
            }
            let code = runtime_with(1)?.block_on(portcullis::audit::cli::run(&cfg, cmd))?;
            Ok(ExitCode::from(code))
        }
        Cmd::Login(args) => {
            runtime_with(1)?.block_on(portcullis::login::cli::login(args, default_state_dir()))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Psql(args) => {
            let mut cmd = runtime_with(1)?.block_on(portcullis::login::cli::psql_command(args))?;
            let status = cmd
                .status()
                .context("cannot run psql (is it installed and on PATH?)")?;
            Ok(ExitCode::from(
                status.code().unwrap_or(1).clamp(0, 255) as u8
            ))
        }
        Cmd::Token {
            dev,
            issuer,
            min_valid,
            user,
            groups,
            ttl,
            state_dir,
        } => {
            if !dev {
                let home = portcullis::login::home();
                let tok = runtime_with(1)?.block_on(portcullis::login::token(
                    &home,
                    issuer.as_deref(),
                    min_valid,
                ))?;
                println!("{tok}");
                return Ok(ExitCode::SUCCESS);
            }
            let dir = state_dir.unwrap_or_else(default_state_dir);
            let issuer = DevIssuer::load_or_create(&dir, None)?;
            println!("{}", issuer.mint(&user, &groups, ttl)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Policy {
            cmd: PolicyCmd::Test { dir },
        } => {
            let results = policy::testing::run(&dir)?;
            let failed = results.iter().filter(|r| !r.passed).count();
            for r in &results {
                if r.passed {
                    println!("PASS {}", r.name);
                } else {
                    println!("FAIL {} ({}): {}", r.name, r.file, r.detail);
                }
            }
            println!("{} passed, {} failed", results.len() - failed, failed);
            if results.is_empty() {
                eprintln!("no test_* rules found in {}", dir.display());
                return Ok(ExitCode::from(1));
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Policy {
            cmd: PolicyCmd::Inspect { dir, query },
        } => {
            let bundle = policy::Bundle::load(&dir, &query)?;
            let u = &bundle.input_use;
            println!("policy {} (hash {})", dir.display(), bundle.hash);
            println!("input paths read:");
            for p in &u.paths {
                println!("  {}", if p.is_empty() { "(all of input)" } else { p });
            }
            let nd: Vec<&str> = u.nondeterministic.iter().map(String::as_str).collect();
            println!(
                "non-deterministic builtins: {}",
                if nd.is_empty() {
                    "none".to_string()
                } else {
                    nd.join(", ")
                }
            );
            println!("with input: {}", if u.with_input { "yes" } else { "no" });
            let (mode, why) = &bundle.cache_mode;
            println!("decision cache: {} ({why})", mode.as_str());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Policy {
            cmd: PolicyCmd::Eval { input, dir, query },
        } => {
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&input)
                    .with_context(|| format!("reading {}", input.display()))?
            };
            let input: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", input.display()))?;
            let bundle = policy::Bundle::load(&dir, &query)?;
            let d = bundle.decide_json(input);
            println!("{}", serde_json::to_string_pretty(&d)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `PORTCULLIS_WORKER_THREADS` (for `portcullis dev`; `serve` reads it
/// through the config's environment overrides).
fn env_workers() -> usize {
    std::env::var("PORTCULLIS_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A runtime with `workers` threads (0: one per core; 1: current-thread).
fn runtime_with(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if workers > 1 {
        b.worker_threads(workers);
    }
    Ok(b.enable_all().build()?)
}

async fn run_dev(opts: dev::DevOptions, issuer_listen: String) -> anyhow::Result<()> {
    let issuer_l = tokio::net::TcpListener::bind(&issuer_listen)
        .await
        .with_context(|| format!("dev issuer: cannot listen on {issuer_listen}"))?;
    let issuer_url = format!("http://{}", issuer_l.local_addr()?);
    let (mut cfg, issuer, cluster) = dev::prepare(&opts, &issuer_url)?;
    let router = issuer.router();
    tokio::spawn(async move {
        let _ = axum::serve(issuer_l, router).await;
    });
    if let Err(e) = dev::seed(&cfg.connections[0]).await {
        eprintln!("portcullis dev: could not create the demo table: {e}");
    }
    let approvals = match (&opts.approvals_listen, dev::approvals::find_binary()) {
        (None, _) => None,
        (Some(_), None) => {
            eprintln!("portcullis dev: portcullis-approvals was not found next to this binary or on PATH; running without approvals (statements that need one are refused)");
            None
        }
        (Some(listen), Some(bin)) => {
            let (child, section) =
                dev::approvals::start(&bin, &opts.state_dir, listen, &issuer.issuer).await?;
            cfg.approvals = section;
            Some(child)
        }
    };
    let policy_dir = cfg.policy.dir.display().to_string();
    let gw = server::Gateway::start(cfg).await?;
    let endpoints = portcullis::login::cli::DevEndpoints {
        issuer: issuer.issuer.clone(),
        gateway: gw.pg_addr.to_string(),
    };
    std::fs::write(
        opts.state_dir.join(portcullis::login::cli::DEV_ENDPOINTS),
        serde_json::to_string(&endpoints)?,
    )?;
    let token = issuer.mint(&opts.user, &opts.groups, 43_200)?;
    let email = if opts.user.contains('@') {
        opts.user.clone()
    } else {
        format!("{}@example.com", opts.user)
    };
    let port = gw.pg_addr.port();
    let host = gw.pg_addr.ip();
    println!();
    println!(
        "Portcullis dev gateway is ready on {} (admin: {}).",
        gw.pg_addr,
        gw.admin_addr
            .map(|a| format!("http://{a}/metrics"))
            .unwrap_or_else(|| "off".into())
    );
    let upstream = if cluster.is_some() {
        "throwaway local PostgreSQL"
    } else {
        "--upstream"
    };
    println!(
        "Upstream: {upstream}  Issuer: {}  Policy: {policy_dir} (hot reloaded)",
        issuer.issuer
    );
    if opts.audit != "off" {
        println!(
            "Audit: {}, in {} (portcullis audit --store sqlite://{} sessions)",
            opts.audit,
            opts.state_dir.join("audit.db").display(),
            opts.state_dir.join("audit.db").display()
        );
    }
    match &approvals {
        Some(a) => println!(
            "Approvals: {}/requests (sign in as dana or erin, group dba; log {})",
            a.url,
            a.log.display()
        ),
        None => println!("Approvals: off"),
    }
    println!();
    println!("Connect as {email} (groups: {}):", opts.groups.join(","));
    println!();
    println!("  PGPASSWORD='{token}' psql \"host={host} port={port} dbname=dev user={email} sslmode=disable\"");
    println!();
    println!("Try:  select * from demo_users;   delete from demo_users;   (refused: DELETE without WHERE)");
    if approvals.is_some() {
        println!("      drop table demo_users;   (waits for a DBA: open the link psql prints and approve)");
    }
    println!("Sign in as someone else: portcullis login --dev && portcullis psql dev");
    println!("More tokens: portcullis token --dev --user bob --groups analyst");
    println!(
        "Ctrl-C stops the gateway{}.",
        if cluster.is_some() {
            " and removes the throwaway database"
        } else {
            ""
        }
    );
    gw.run(server::shutdown_signal()).await;
    drop(approvals);
    drop(cluster);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("inner failed")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[from] Inner);

    #[test]
    fn an_error_that_embeds_its_source_is_printed_once() {
        let e = anyhow::Error::from(Outer(Inner)).context("starting");
        assert_eq!(super::error_chain(&e), "starting: outer: inner failed");
        let plain = anyhow::anyhow!("no source");
        assert_eq!(super::error_chain(&plain), "no source");
    }
}
