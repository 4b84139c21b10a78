//! Arguments and runners of `portcullis login`, `portcullis token` (the
//! cached-login part) and `portcullis psql`.

use std::path::PathBuf;

use super::{home, load, loopback, save, LoginError, Profile};
use crate::identity::rp::Rp;

/// Client id `portcullis login --dev` uses at the dev issuer.
pub const DEV_CLIENT_ID: &str = "portcullis-cli";

/// `portcullis login`.
#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Issuer URL of your identity provider.
    #[arg(long, env = "PORTCULLIS_ISSUER", required_unless_present = "dev")]
    pub issuer: Option<String>,
    /// OIDC client id registered for the CLI (a public client with a
    /// loopback redirect URI `http://127.0.0.1/callback`).
    #[arg(long, env = "PORTCULLIS_CLIENT_ID", default_value = "portcullis")]
    pub client_id: String,
    /// Client secret, for providers that only have confidential clients.
    #[arg(long, env = "PORTCULLIS_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Scopes to ask for (space-separated). `offline_access` asks for a
    /// refresh token.
    #[arg(long, default_value = "openid email profile offline_access")]
    pub scope: String,
    /// Use the device flow (a code to enter on another device) instead of
    /// a browser on this machine.
    #[arg(long)]
    pub device: bool,
    /// Print the sign-in URL without trying to open a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Port of the loopback redirect (0: any free port). Set it when your
    /// provider needs the exact redirect URI registered.
    #[arg(long, default_value_t = 0)]
    pub redirect_port: u16,
    /// Gateway `host:port`, remembered for `portcullis psql`.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Sign in at the `portcullis dev` issuer (and remember its gateway).
    #[arg(long)]
    pub dev: bool,
    /// The `portcullis dev` state directory (with --dev).
    #[arg(long, env = "PORTCULLIS_DEV_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `portcullis psql`.
#[derive(clap::Args, Debug)]
pub struct PsqlArgs {
    /// The gateway connection to open (what goes in dbname).
    pub connection: String,
    /// Issuer of the login to use (default: the last login).
    #[arg(long)]
    pub issuer: Option<String>,
    /// Further psql arguments (after `--`).
    #[arg(last = true)]
    pub psql_args: Vec<String>,
}

/// What `portcullis dev` leaves in its state directory for `login --dev`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct DevEndpoints {
    /// Dev issuer URL.
    pub issuer: String,
    /// Gateway `host:port`.
    pub gateway: String,
}

/// File name of [`DevEndpoints`] in the dev state directory.
pub const DEV_ENDPOINTS: &str = "endpoints.json";

/// Runs `portcullis login`.
pub async fn login(args: LoginArgs, dev_dir: PathBuf) -> Result<Profile, LoginError> {
    let (issuer, client_id, gateway) = if args.dev {
        let file = args.state_dir.unwrap_or(dev_dir).join(DEV_ENDPOINTS);
        let text = std::fs::read_to_string(&file).map_err(|_| {
            LoginError::Callback(format!(
                "no running `portcullis dev` found ({} is missing): start it first",
                file.display()
            ))
        })?;
        let ep: DevEndpoints = serde_json::from_str(&text).map_err(|e| LoginError::Cache {
            path: file.display().to_string(),
            why: e.to_string(),
        })?;
        (ep.issuer, DEV_CLIENT_ID.to_string(), Some(ep.gateway))
    } else {
        (
            args.issuer.unwrap_or_default(),
            args.client_id,
            args.gateway,
        )
    };
    let rp = Rp::discover(&issuer, &client_id, args.client_secret.as_deref()).await?;
    let scopes: Vec<String> = args.scope.split_whitespace().map(str::to_string).collect();
    let tokens = if args.device {
        loopback::device(&rp, &scopes).await?
    } else {
        loopback::browser(&rp, &scopes, args.redirect_port, !args.no_browser).await?
    };
    let profile = Profile {
        issuer,
        client_id,
        client_secret: args.client_secret,
        gateway,
        tokens,
    };
    let path = save(&home(), &profile)?;
    eprintln!(
        "Logged in to {} as {}{}. Tokens kept in {} (refreshed by `portcullis token`).",
        profile.issuer,
        profile.user().unwrap_or("(unknown)"),
        if profile.tokens.refresh_token.is_some() {
            ""
        } else {
            " (no refresh token: log in again when it expires)"
        },
        path.display()
    );
    Ok(profile)
}

/// The psql command line for `args` (host, port, user, dbname and the
/// token in PGPASSWORD), after refreshing the token when needed.
pub async fn psql_command(args: PsqlArgs) -> Result<std::process::Command, LoginError> {
    let home = home();
    let token = super::token(&home, args.issuer.as_deref(), 60).await?;
    let p = load(&home, args.issuer.as_deref())?;
    let gateway = p.gateway.clone().ok_or(LoginError::NoGateway)?;
    let (host, port) = gateway
        .rsplit_once(':')
        .filter(|(_, port)| port.parse::<u16>().is_ok())
        .ok_or(LoginError::NoGateway)?;
    let mut cmd = std::process::Command::new("psql");
    cmd.env("PGPASSWORD", token)
        .env("PGHOST", host.trim_start_matches('[').trim_end_matches(']'))
        .env("PGPORT", port)
        .env("PGDATABASE", &args.connection);
    if let Some(user) = p.user() {
        cmd.env("PGUSER", user);
    }
    cmd.args(&args.psql_args);
    Ok(cmd)
}
