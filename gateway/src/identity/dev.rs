//! The built-in development OIDC issuer used by `portcullis dev`: an ES256
//! key kept in a state directory, discovery + JWKS on loopback, and token
//! minting for demo users (`portcullis token --dev`), and a sign-in page
//! with demo users for the authorization code flow (`dev_oauth`).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::Digest;

use super::dev_oauth;

/// Audience of dev tokens.
pub const DEV_AUDIENCE: &str = "portcullis";

/// Errors of the development issuer.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    /// State directory problem.
    #[error("dev issuer state in {path}: {why}")]
    State {
        /// Directory.
        path: String,
        /// Reason.
        why: String,
    },
    /// Key generation or signing failed.
    #[error("dev issuer key: {0}")]
    Key(String),
}

/// A development issuer: signing key plus the URL it is served on.
#[derive(Clone)]
pub struct DevIssuer {
    pkcs8: Vec<u8>,
    public: Vec<u8>,
    kid: String,
    /// Issuer URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

impl DevIssuer {
    /// Loads the key from `dir/dev-issuer.json`, or creates a new one for
    /// `issuer` and saves it (mode 0600).
    pub fn load_or_create(dir: &Path, issuer: Option<&str>) -> Result<Self, DevIssuerError> {
        let file = Self::state_file(dir);
        let state_err = |why: String| DevIssuerError::State {
            path: dir.display().to_string(),
            why,
        };
        if let Ok(text) = std::fs::read_to_string(&file) {
            let v: Value = serde_json::from_str(&text).map_err(|e| state_err(e.to_string()))?;
            let pkcs8 = base64::engine::general_purpose::STANDARD
                .decode(v["pkcs8"].as_str().unwrap_or_default())
                .map_err(|e| state_err(e.to_string()))?;
            let stored_issuer = v["issuer"].as_str().unwrap_or_default().to_string();
            let issuer = issuer.map(str::to_string).unwrap_or(stored_issuer);
            let me = Self::from_pkcs8(pkcs8, issuer)?;
            me.save(dir)?;
            return Ok(me);
        }
        let issuer = issuer
            .ok_or_else(|| state_err("no dev issuer yet: start `portcullis dev` first".into()))?;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| DevIssuerError::Key(e.to_string()))?;
        let me = Self::from_pkcs8(pkcs8.as_ref().to_vec(), issuer.to_string())?;
        me.save(dir)?;
        Ok(me)
    }

    fn state_file(dir: &Path) -> PathBuf {
        dir.join("dev-issuer.json")
    }

    fn from_pkcs8(pkcs8: Vec<u8>, issuer: String) -> Result<Self, DevIssuerError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|e| DevIssuerError::Key(e.to_string()))?;
        let public = pair.public_key().as_ref().to_vec();
        let kid = hex::encode(&sha2::Sha256::digest(&public)[..8]);
        Ok(Self {
            pkcs8,
            public,
            kid,
            issuer,
        })
    }

    fn save(&self, dir: &Path) -> Result<(), DevIssuerError> {
        let err = |e: std::io::Error| DevIssuerError::State {
            path: dir.display().to_string(),
            why: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let body = json!({
            "issuer": self.issuer,
            "pkcs8": base64::engine::general_purpose::STANDARD.encode(&self.pkcs8),
        });
        let file = Self::state_file(dir);
        std::fs::write(&file, body.to_string()).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
        Ok(())
    }

    /// The public JWKS document.
    pub fn jwks(&self) -> Value {
        let (x, y) = self.public[1..].split_at(32);
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
            "kid": self.kid, "x": b64(x), "y": b64(y),
        }]})
    }

    /// Mints a signed ES256 access token (audience [`DEV_AUDIENCE`]) for a
    /// demo user.
    pub fn mint(
        &self,
        user: &str,
        groups: &[String],
        ttl_secs: u64,
    ) -> Result<String, DevIssuerError> {
        self.sign(self.user_claims(user, groups, DEV_AUDIENCE, ttl_secs))
    }

    /// An ID token for `client_id` (with the login's nonce).
    pub fn id_token(
        &self,
        user: &str,
        groups: &[String],
        client_id: &str,
        nonce: Option<&str>,
        ttl_secs: u64,
    ) -> Result<String, DevIssuerError> {
        let mut claims = self.user_claims(user, groups, client_id, ttl_secs);
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        claims["auth_time"] = claims["iat"].clone();
        self.sign(claims)
    }

    fn user_claims(&self, user: &str, groups: &[String], aud: &str, ttl_secs: u64) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let email = if user.contains('@') {
            user.to_string()
        } else {
            format!("{user}@example.com")
        };
        json!({
            "iss": self.issuer, "aud": aud, "sub": user,
            "email": email, "preferred_username": user, "name": user,
            "groups": groups, "iat": now, "nbf": now, "exp": now + ttl_secs,
        })
    }

    fn sign(&self, claims: Value) -> Result<String, DevIssuerError> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let key = jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8);
        jsonwebtoken::encode(&header, &claims, &key).map_err(|e| DevIssuerError::Key(e.to_string()))
    }

    /// Discovery, JWKS and sign-in routes (authorization code with PKCE
    /// and refresh tokens; see [`super::dev_oauth`]).
    pub fn router(&self) -> Router {
        let i = &self.issuer;
        let discovery = json!({
            "issuer": i,
            "jwks_uri": format!("{i}/jwks"),
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "id_token_signing_alg_values_supported": ["ES256"],
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
            "scopes_supported": ["openid", "email", "profile", "groups", "offline_access"],
            "claims_supported": ["sub", "email", "name", "preferred_username", "groups"],
            "subject_types_supported": ["public"],
        });
        let jwks = self.jwks();
        Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { Json(discovery) }),
            )
            .route("/jwks", get(move || async move { Json(jwks) }))
            .route(
                "/authorize",
                get(dev_oauth::authorize_page).post(dev_oauth::authorize_pick),
            )
            .route("/token", post(dev_oauth::token))
            .with_state(dev_oauth::SignIn::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mints_tokens_its_jwks_verifies() {
        let dir = std::env::temp_dir().join(format!("pc-dev-{}", uuid::Uuid::new_v4()));
        let dev = DevIssuer::load_or_create(&dir, Some("http://127.0.0.1:1")).unwrap();
        let tok = dev.mint("alice", &["dev".into()], 60).unwrap();
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(dev.jwks()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&[DEV_AUDIENCE]);
        let data = jsonwebtoken::decode::<Value>(&tok, &key, &v).unwrap();
        assert_eq!(data.claims["email"], "alice@example.com");
        let again = DevIssuer::load_or_create(&dir, None).unwrap();
        assert_eq!(again.kid, dev.kid);
        std::fs::remove_dir_all(dir).ok();
    }
}
