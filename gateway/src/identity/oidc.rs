//! OIDC token validation: discovery, cached JWKS (refetched on an unknown
//! `kid`), signature, `iss`, `aud`, `exp`/`nbf` and groups.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{parse_algorithm, Identity, IdentityError};
use crate::config::IssuerConfig;

/// Default minimum time between two JWKS refetches of one issuer (a flood of
/// tokens with made-up `kid`s must not become a flood of requests to the
/// IdP).
pub const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(5);

struct IssuerState {
    cfg: IssuerConfig,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    keys: Mutex<KeyCache>,
}

#[derive(Default)]
struct KeyCache {
    jwks: Option<JwkSet>,
    fetched_at: Option<Instant>,
}

/// Validates tokens from the configured issuers. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    issuers: Arc<Vec<IssuerState>>,
    http: reqwest::Client,
    refetch_interval: Duration,
}

impl Verifier {
    /// A verifier of the ID tokens `issuer` issues to `client_id` (web
    /// sign-ins), reading groups from `groups_claim`.
    pub fn for_id_tokens(issuer: &str, client_id: &str, groups_claim: &str) -> Self {
        Self::new(&[IssuerConfig {
            issuer: issuer.to_string(),
            audience: client_id.to_string(),
            groups_claim: groups_claim.to_string(),
            algorithms: crate::config::DEFAULT_ALGORITHMS
                .iter()
                .map(|a| a.to_string())
                .collect(),
            leeway: std::time::Duration::from_secs(30),
            jwks_uri: None,
        }])
    }

    /// Builds a verifier; keys are fetched lazily on first use.
    pub fn new(issuers: &[IssuerConfig]) -> Self {
        let issuers = issuers
            .iter()
            .map(|cfg| IssuerState {
                algorithms: cfg
                    .algorithms
                    .iter()
                    .filter_map(|a| parse_algorithm(a))
                    .collect(),
                leeway: cfg.leeway.as_secs(),
                cfg: cfg.clone(),
                keys: Mutex::new(KeyCache::default()),
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            issuers: Arc::new(issuers),
            http,
            refetch_interval: REFETCH_MIN_INTERVAL,
        }
    }

    /// Changes the minimum interval between JWKS refetches.
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// Verifies `token` and returns who it names.
    pub async fn verify(&self, token: &str) -> Result<Identity, IdentityError> {
        let token = token.trim();
        let (header, payload) = peek(token)?;
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_string();
        let iss = payload
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| IdentityError::Claims("no `iss` claim".into()))?;
        let state = self
            .issuers
            .iter()
            .find(|s| s.cfg.issuer.trim_end_matches('/') == iss.trim_end_matches('/'))
            .ok_or_else(|| IdentityError::UnknownIssuer(iss.to_string()))?;
        let alg = parse_algorithm(&alg_name)
            .filter(|a| state.algorithms.contains(a))
            .ok_or(IdentityError::Algorithm(alg_name))?;
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let key = self.key_for(state, kid.as_deref(), alg).await?;

        let mut v = Validation::new(alg);
        v.set_audience(&[&state.cfg.audience]);
        v.set_issuer(&[iss]);
        v.leeway = state.leeway;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => IdentityError::Expired,
                K::ImmatureSignature => IdentityError::NotYetValid,
                K::InvalidAudience => IdentityError::Audience(state.cfg.audience.clone()),
                K::InvalidSignature => IdentityError::Signature,
                K::InvalidIssuer => IdentityError::UnknownIssuer(iss.to_string()),
                K::MissingRequiredClaim(c) => IdentityError::Claims(format!("missing `{c}`")),
                other => IdentityError::Claims(format!("{other:?}")),
            }
        })?;
        Ok(identity_from_claims(&data.claims, &state.cfg))
    }

    async fn key_for(
        &self,
        state: &IssuerState,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, IdentityError> {
        let mut cache = state.keys.lock().await;
        for attempt in 0..2 {
            let stale = cache.jwks.is_none()
                || (attempt == 1
                    && cache
                        .fetched_at
                        .is_none_or(|t| t.elapsed() >= self.refetch_interval));
            if stale {
                cache.jwks = Some(self.fetch_jwks(&state.cfg).await?);
                cache.fetched_at = Some(Instant::now());
            }
            if let Some(jwks) = &cache.jwks {
                let found = match kid {
                    Some(k) => jwks.find(k),
                    None if jwks.keys.len() == 1 => jwks.keys.first(),
                    None => None,
                };
                if let Some(jwk) = found {
                    if jwk
                        .common
                        .key_algorithm
                        .is_some_and(|ka| format!("{ka:?}") != format!("{alg:?}"))
                    {
                        return Err(IdentityError::Algorithm(format!("{alg:?}")));
                    }
                    return DecodingKey::from_jwk(jwk)
                        .map_err(|e| IdentityError::Malformed(format!("issuer key: {e}")));
                }
            }
        }
        Err(IdentityError::UnknownKey(
            kid.unwrap_or("(none)").to_string(),
        ))
    }

    async fn fetch_jwks(&self, cfg: &IssuerConfig) -> Result<JwkSet, IdentityError> {
        let fail = |why: String| IdentityError::Fetch {
            issuer: cfg.issuer.clone(),
            why,
        };
        let jwks_uri = match &cfg.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    cfg.issuer.trim_end_matches('/')
                );
                let doc: Value = self.get_json(&url).await.map_err(fail)?;
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| fail("discovery document has no jwks_uri".into()))?
                    .to_string()
            }
        };
        let set: Value = self.get_json(&jwks_uri).await.map_err(fail)?;
        // Skip keys this library cannot read instead of failing the set.
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| serde_json::from_value(k).ok())
            .collect();
        tracing::info!(issuer = %cfg.issuer, "fetched JWKS");
        Ok(JwkSet { keys })
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", resp.status()));
        }
        resp.json().await.map_err(|e| format!("GET {url}: {e}"))
    }
}

/// Decodes header and payload without verifying, to pick the issuer and key
/// (public for the fuzz target; never trust its output).
pub fn peek(token: &str) -> Result<(Value, Value), IdentityError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdentityError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let dec = |s: &str, what: &str| -> Result<Value, IdentityError> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| IdentityError::Malformed(format!("{what} is not base64url")))?;
        serde_json::from_slice(&raw)
            .map_err(|_| IdentityError::Malformed(format!("{what} is not JSON")))
    };
    Ok((dec(h, "header")?, dec(p, "payload")?))
}

fn claim_str(claims: &Value, name: &str) -> String {
    claims
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Reads groups from a claim path like `groups` or `realm_access.roles`.
fn groups(claims: &Value, path: &str) -> Vec<String> {
    let mut v = claims;
    for seg in path.split('.') {
        match v.get(seg) {
            Some(next) => v = next,
            None => return Vec::new(),
        }
    }
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Value::String(s) => s
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn identity_from_claims(claims: &Value, cfg: &IssuerConfig) -> Identity {
    Identity {
        sub: claim_str(claims, "sub"),
        email: claim_str(claims, "email"),
        name: claim_str(claims, "name"),
        preferred_username: claim_str(claims, "preferred_username"),
        groups: groups(claims, &cfg.groups_claim),
        issuer: cfg.issuer.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_rejects_garbage() {
        assert!(peek("abc").is_err());
        assert!(peek("a.b.c.d").is_err());
        assert!(peek("!!.e30.x").is_err());
    }

    /// A key rotation at the issuer: a token with a new `kid` makes the
    /// verifier refetch the JWKS. The issuer is the dev issuer's real JWKS
    /// served over HTTP on loopback, switched from one key to another.
    #[tokio::test]
    async fn unknown_kid_refetches_jwks() {
        use crate::identity::dev::DevIssuer;
        use axum::routing::get;
        use std::sync::Mutex as StdMutex;

        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", l.local_addr().unwrap());
        let tmp = std::env::temp_dir().join(format!("pc-rot-{}", uuid::Uuid::new_v4()));
        let k1 = DevIssuer::load_or_create(&tmp.join("1"), Some(&issuer)).unwrap();
        let k2 = DevIssuer::load_or_create(&tmp.join("2"), Some(&issuer)).unwrap();
        let served = Arc::new(StdMutex::new(k1.jwks()));
        let s2 = served.clone();
        let iss2 = issuer.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let iss = iss2.clone();
                    async move {
                        axum::Json(
                            serde_json::json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks")}),
                        )
                    }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    let v = s2.lock().unwrap().clone();
                    async move { axum::Json(v) }
                }),
            );
        tokio::spawn(async move { axum::serve(l, app).await });

        let cfg: IssuerConfig =
            toml::from_str(&format!("issuer = \"{issuer}\"\naudience = \"portcullis\"")).unwrap();
        let v = Verifier::new(&[cfg]).with_refetch_interval(Duration::ZERO);
        let t1 = k1.mint("alice", &["dev".into()], 60).unwrap();
        assert_eq!(v.verify(&t1).await.unwrap().email, "alice@example.com");
        *served.lock().unwrap() = k2.jwks();
        let t2 = k2.mint("bob", &[], 60).unwrap();
        assert_eq!(v.verify(&t2).await.unwrap().sub, "bob");
        // The old key is gone from the JWKS: its tokens are refused now.
        let err = v.verify(&t1).await.unwrap_err().to_string();
        assert!(err.contains("signing key"), "{err}");
        std::fs::remove_dir_all(tmp).ok();
    }

    #[test]
    fn group_paths() {
        let c = serde_json::json!({"groups": ["a", "b"], "ra": {"roles": "x y"}});
        assert_eq!(groups(&c, "groups"), vec!["a", "b"]);
        assert_eq!(groups(&c, "ra.roles"), vec!["x", "y"]);
        assert!(groups(&c, "nope").is_empty());
    }
}
