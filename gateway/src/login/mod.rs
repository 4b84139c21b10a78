//! `portcullis login`, `portcullis token` and `portcullis psql`: sign in
//! at the identity provider ([`crate::identity::rp`]), keep the tokens per
//! issuer in a file only the user can read, refresh them when they run
//! out, and hand them to psql.
//!
//! Files live in `$PORTCULLIS_HOME` (default `~/.portcullis`):
//! `tokens/<issuer hash>.json` (mode 0600) and `current` (the issuer of
//! the last login, used when `--issuer` is not given).

pub mod cli;
pub mod loopback;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::identity::rp::{RpError, Tokens};

/// Errors of the login commands.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Sign-in or refresh failed.
    #[error(transparent)]
    Rp(#[from] RpError),
    /// No cached login for the issuer.
    #[error("not logged in{0}: run `portcullis login --issuer URL` first")]
    NotLoggedIn(String),
    /// The token ran out and cannot be refreshed.
    #[error("the login for {0} has expired and cannot be refreshed: run `portcullis login` again")]
    Expired(String),
    /// Token cache problem.
    #[error("token cache {path}: {why}")]
    Cache {
        /// File.
        path: String,
        /// Reason.
        why: String,
    },
    /// The browser sign-in did not come back.
    #[error("{0}")]
    Callback(String),
    /// `portcullis psql` without a gateway address.
    #[error("this login has no gateway address: run `portcullis login --gateway HOST:PORT` (or pass --host/--port)")]
    NoGateway,
}

/// One cached login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// Issuer URL.
    pub issuer: String,
    /// OIDC client id used to sign in (and to refresh).
    pub client_id: String,
    /// Client secret for confidential clients (rare for a CLI).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Gateway `host:port` for `portcullis psql`.
    #[serde(default)]
    pub gateway: Option<String>,
    /// The tokens.
    pub tokens: Tokens,
}

impl Profile {
    /// The Postgres user name to connect as: the ID token's email, else
    /// its subject.
    pub fn user(&self) -> Option<&str> {
        self.tokens
            .email
            .as_deref()
            .or(self.tokens.subject.as_deref())
    }

    /// Seconds the access token has left (None: the provider did not say).
    pub fn remaining(&self) -> Option<i64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.tokens.expires_at.map(|e| e as i64 - now)
    }
}

/// Where logins are kept.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("PORTCULLIS_HOME") {
        return PathBuf::from(h);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".portcullis")
}

/// The cache file of `issuer` under `home`.
pub fn profile_path(home: &Path, issuer: &str) -> PathBuf {
    let h = sha2::Sha256::digest(issuer.trim_end_matches('/').as_bytes());
    home.join("tokens")
        .join(format!("{}.json", hex::encode(&h[..12])))
}

fn cache_err(path: &Path, why: impl std::fmt::Display) -> LoginError {
    LoginError::Cache {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// Writes `body` to `path` with mode 0600, atomically (temp file + rename).
fn write_private(path: &Path, body: &[u8]) -> Result<(), LoginError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| cache_err(dir, e))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(|e| cache_err(&tmp, e))?;
    f.write_all(body).map_err(|e| cache_err(&tmp, e))?;
    f.sync_all().map_err(|e| cache_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| cache_err(path, e))
}

/// Saves a login and makes it the current one.
pub fn save(home: &Path, p: &Profile) -> Result<PathBuf, LoginError> {
    let path = profile_path(home, &p.issuer);
    let body = serde_json::to_vec_pretty(p).map_err(|e| cache_err(&path, e))?;
    write_private(&path, &body)?;
    write_private(&home.join("current"), p.issuer.as_bytes())?;
    Ok(path)
}

/// Loads the login of `issuer`, or the current one.
pub fn load(home: &Path, issuer: Option<&str>) -> Result<Profile, LoginError> {
    let issuer = match issuer {
        Some(i) => i.to_string(),
        None => std::fs::read_to_string(home.join("current"))
            .map_err(|_| LoginError::NotLoggedIn(String::new()))?
            .trim()
            .to_string(),
    };
    let path = profile_path(home, &issuer);
    let text = std::fs::read_to_string(&path)
        .map_err(|_| LoginError::NotLoggedIn(format!(" to {issuer}")))?;
    serde_json::from_str(&text).map_err(|e| cache_err(&path, e))
}

/// A valid access token for the login of `issuer` (or the current one),
/// refreshed first when it has fewer than `min_valid` seconds left.
pub async fn token(
    home: &Path,
    issuer: Option<&str>,
    min_valid: i64,
) -> Result<String, LoginError> {
    let mut p = load(home, issuer)?;
    if p.remaining().is_none_or(|r| r >= min_valid) {
        return Ok(p.tokens.access_token);
    }
    let Some(rt) = p.tokens.refresh_token.clone() else {
        return Err(LoginError::Expired(p.issuer));
    };
    let rp = crate::identity::rp::Rp::discover(&p.issuer, &p.client_id, p.client_secret.as_deref())
        .await?;
    let fresh = match rp.refresh(&rt).await {
        Ok(t) => t,
        Err(RpError::Token(why)) => {
            tracing::debug!(why = %why, "refresh refused");
            return Err(LoginError::Expired(p.issuer));
        }
        Err(e) => return Err(e.into()),
    };
    // A refresh may omit the ID token: keep who we are.
    p.tokens = Tokens {
        subject: fresh.subject.clone().or(p.tokens.subject),
        email: fresh.email.clone().or(p.tokens.email),
        id_token: fresh.id_token.clone().or(p.tokens.id_token),
        ..fresh
    };
    save(home, &p)?;
    Ok(p.tokens.access_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(issuer: &str, expires_at: Option<u64>) -> Profile {
        Profile {
            issuer: issuer.into(),
            client_id: "cli".into(),
            client_secret: None,
            gateway: Some("127.0.0.1:6432".into()),
            tokens: Tokens {
                access_token: "tok".into(),
                id_token: None,
                refresh_token: None,
                expires_at,
                subject: Some("alice".into()),
                email: Some("alice@example.com".into()),
            },
        }
    }

    #[test]
    fn saved_logins_are_private_and_found_by_issuer_or_as_current() {
        let home = std::env::temp_dir().join(format!("pc-login-{}", uuid::Uuid::new_v4()));
        let path = save(&home, &profile("http://a.example", None)).unwrap();
        save(&home, &profile("http://b.example/", None)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(load(&home, None).unwrap().issuer, "http://b.example/");
        assert_eq!(
            load(&home, Some("http://a.example")).unwrap().issuer,
            "http://a.example"
        );
        assert!(matches!(
            load(&home, Some("http://c.example")),
            Err(LoginError::NotLoggedIn(_))
        ));
        std::fs::remove_dir_all(home).ok();
    }

    #[tokio::test]
    async fn an_expired_token_without_refresh_token_asks_for_a_new_login() {
        let home = std::env::temp_dir().join(format!("pc-login-{}", uuid::Uuid::new_v4()));
        save(&home, &profile("http://a.example", Some(1))).unwrap();
        let e = token(&home, None, 60).await.unwrap_err();
        assert!(matches!(e, LoginError::Expired(_)), "{e}");
        save(&home, &profile("http://a.example", None)).unwrap();
        assert_eq!(token(&home, None, 60).await.unwrap(), "tok");
        std::fs::remove_dir_all(home).ok();
    }
}
