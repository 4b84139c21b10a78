//! `portcullis-approvals`: the approvals service.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use clap::{Parser, Subcommand};

/// Command line.
#[derive(Parser)]
#[command(
    name = "portcullis-approvals",
    version,
    about = "Portcullis approvals service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Config file.
        #[arg(
            long,
            env = "PORTCULLIS_APPROVALS_CONFIG",
            default_value = "approvals.toml"
        )]
        config: PathBuf,
    },
    /// Write a new Ed25519 signing key (base64 seed) to FILE and print its
    /// public key for the gateways' `approvals.public_key`.
    Keygen {
        /// Where to write the key (refuses to overwrite).
        #[arg(long)]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Keygen { out } => keygen(&out),
        Command::Serve { config } => serve(&config).await,
    }
}

fn keygen(out: &std::path::Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!(
            "{} exists; refusing to overwrite a signing key",
            out.display()
        );
    }
    let seed: [u8; 32] = rand_seed()?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(seed);
    std::fs::write(out, format!("{b64}\n"))
        .with_context(|| format!("writing {}", out.display()))?;
    let key = portcullis::approvals::protocol::key_from_seed(&b64).context("key")?;
    println!("{}", portcullis::approvals::protocol::public_key_b64(&key));
    Ok(())
}

fn rand_seed() -> anyhow::Result<[u8; 32]> {
    use ring::rand::SecureRandom;
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    Ok(seed)
}

async fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let config = portcullis_approvals::config::Config::load(path)?;
    let listen = config.listen.clone();
    let config_tls = config.tls.clone();
    let state = portcullis_approvals::AppState::new(config).await?;
    let tls = match &config_tls {
        Some(t) => Some(
            portcullis::session::stream::acceptor_with_clients(
                &t.cert_file,
                &t.key_file,
                t.client_ca_file.as_deref(),
            )
            .context("tls")?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(listen = %listener.local_addr()?, tls = tls.is_some(), "approvals service listening");
    tokio::spawn(state.clone().expire_loop());
    let app = portcullis_approvals::app(state)
        .into_make_service_with_connect_info::<portcullis_approvals::tls::Peer>();
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match tls {
        Some(acceptor) => {
            let listener = portcullis_approvals::tls::TlsListener::new(listener, acceptor)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await?
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await?
        }
    }
    Ok(())
}
