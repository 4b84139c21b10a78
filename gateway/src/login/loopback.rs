//! The browser step of `portcullis login`: a one-shot HTTP listener on
//! 127.0.0.1 receives the provider's redirect (RFC 8252 loopback
//! redirect), and the flows that use it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::sync::oneshot;

use super::LoginError;
use crate::identity::rp::{Rp, Tokens};

/// How long a browser or device sign-in may take.
pub const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

type Slot = Arc<Mutex<Option<oneshot::Sender<Callback>>>>;

async fn callback(State(slot): State<Slot>, Query(cb): Query<Callback>) -> Html<&'static str> {
    let page = if cb.error.is_some() {
        "<!doctype html><title>Portcullis</title><p>Sign-in failed; see your terminal.</p>"
    } else {
        "<!doctype html><title>Portcullis</title><p>Signed in to Portcullis. You can close this tab and return to your terminal.</p>"
    };
    if let Some(tx) = slot.lock().ok().and_then(|mut s| s.take()) {
        let _ = tx.send(cb);
    }
    Html(page)
}

/// Signs in through the browser: prints the URL (and opens it unless
/// `open` is false), waits for the redirect on `127.0.0.1:port` (0: any
/// free port) and returns the verified tokens.
pub async fn browser(
    rp: &Rp,
    scopes: &[String],
    port: u16,
    open: bool,
) -> Result<Tokens, LoginError> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| {
            LoginError::Callback(format!(
                "cannot listen on 127.0.0.1:{port} for the sign-in redirect: {e}"
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| LoginError::Callback(e.to_string()))?;
    let redirect = format!("http://127.0.0.1:{}/callback", addr.port());
    let pending = rp.start(&redirect, scopes, true)?;
    let (tx, rx) = oneshot::channel();
    let slot: Slot = Arc::new(Mutex::new(Some(tx)));
    let app = Router::new()
        .route("/callback", get(callback))
        .with_state(slot);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    eprintln!(
        "Open this URL in your browser to sign in:\n\n  {}\n",
        pending.url
    );
    if open {
        open_browser(&pending.url);
    }
    eprintln!("Waiting for the sign-in to finish (Ctrl-C to give up)...");
    let cb = tokio::time::timeout(SIGN_IN_TIMEOUT, rx).await;
    server.abort();
    let cb = match cb {
        Ok(Ok(cb)) => cb,
        Ok(Err(_)) => return Err(LoginError::Callback("the sign-in listener stopped".into())),
        Err(_) => {
            return Err(LoginError::Callback(format!(
                "no sign-in within {} s",
                SIGN_IN_TIMEOUT.as_secs()
            )))
        }
    };
    if let Some(e) = cb.error {
        return Err(LoginError::Callback(format!(
            "the identity provider refused the sign-in: {e}{}",
            cb.error_description
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        )));
    }
    Ok(rp.finish(&pending, &cb.code, &cb.state).await?)
}

/// Signs in with the device flow: prints the code and where to enter it,
/// then waits for the person to do so.
pub async fn device(rp: &Rp, scopes: &[String]) -> Result<Tokens, LoginError> {
    let login = rp.device_start(scopes).await?;
    eprintln!(
        "To sign in, open {} and enter the code {}",
        login.verification_uri, login.user_code
    );
    if let Some(full) = &login.verification_uri_complete {
        eprintln!("(or open {full})");
    }
    eprintln!("Waiting for the sign-in to finish (Ctrl-C to give up)...");
    match tokio::time::timeout(SIGN_IN_TIMEOUT, rp.device_finish(&login)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(LoginError::Callback(format!(
            "no sign-in within {} s",
            SIGN_IN_TIMEOUT.as_secs()
        ))),
    }
}

/// Best effort: the desktop's URL opener. Failing is fine, the URL is
/// printed.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}
