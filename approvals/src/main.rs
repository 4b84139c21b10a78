//! `portcullis-approvals`: the approvals service. This first version
//! answers health checks only; the approval API, web UI and notifiers
//! build on it.
#![forbid(unsafe_code)]

use clap::Parser;

/// Command line.
#[derive(Parser)]
#[command(
    name = "portcullis-approvals",
    version,
    about = "Portcullis approvals service"
)]
struct Cli {
    /// Listen address.
    #[arg(
        long,
        default_value = "127.0.0.1:8081",
        env = "PORTCULLIS_APPROVALS_LISTEN"
    )]
    listen: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cli.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "approvals service listening");
    axum::serve(listener, portcullis_approvals::app())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
