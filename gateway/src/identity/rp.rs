//! The OpenID Connect relying party shared by `portcullis login` and the
//! approvals web UI (crate `openidconnect`): discovery, the authorization
//! code flow with PKCE, state and nonce, ID token verification against the
//! provider's keys, refresh tokens, and the device flow where the provider
//! offers it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreDeviceAuthorizationResponse, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType, CoreTokenResponse,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret,
    CsrfToken, DeviceAuthorizationUrl, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, ProviderMetadata, RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};

/// Errors of a sign-in.
#[derive(Debug, thiserror::Error)]
pub enum RpError {
    /// The provider's discovery document could not be read or is invalid.
    #[error("cannot read the identity provider's configuration at {issuer}: {why}")]
    Discovery {
        /// Issuer URL.
        issuer: String,
        /// Reason.
        why: String,
    },
    /// A URL or setting is unusable.
    #[error("{0}")]
    Config(String),
    /// The callback does not belong to this sign-in.
    #[error("the sign-in answer does not match this login (state differs); start again")]
    State,
    /// The provider refused or failed a token request.
    #[error("the identity provider refused the token request: {0}")]
    Token(String),
    /// The ID token did not verify.
    #[error("the ID token does not verify: {0}")]
    IdToken(String),
    /// The provider offers no device flow.
    #[error("the identity provider does not offer the device flow (no device_authorization_endpoint); use the browser sign-in")]
    NoDeviceFlow,
}

/// Discovery metadata plus the optional device endpoint (RFC 8628).
#[derive(Clone, Debug, Deserialize, Serialize)]
struct DeviceEndpoint {
    #[serde(default)]
    device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
}
impl AdditionalProviderMetadata for DeviceEndpoint {}

type Metadata = ProviderMetadata<
    DeviceEndpoint,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A provider discovered for one client.
#[derive(Clone)]
pub struct Rp {
    meta: Metadata,
    client_id: String,
    client_secret: Option<String>,
    http: reqwest::Client,
}

/// A sign-in started in the browser, kept until its callback.
pub struct Pending {
    /// Where to send the person.
    pub url: String,
    /// The state value the callback must carry.
    pub state: String,
    nonce: String,
    verifier: String,
    redirect_uri: String,
}

/// Tokens from a sign-in or a refresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tokens {
    /// Access token (what the gateway takes as the password).
    pub access_token: String,
    /// The verified ID token, when the provider returned one.
    pub id_token: Option<String>,
    /// Refresh token, when the provider returned one.
    pub refresh_token: Option<String>,
    /// When the access token expires (Unix seconds), if the provider said.
    pub expires_at: Option<u64>,
    /// Subject of the ID token.
    pub subject: Option<String>,
    /// Email of the ID token.
    pub email: Option<String>,
}

/// A device sign-in waiting for the person to enter the code.
pub struct DeviceLogin {
    details: CoreDeviceAuthorizationResponse,
    /// The code to enter.
    pub user_code: String,
    /// Where to enter it.
    pub verification_uri: String,
    /// The same with the code filled in, when the provider offers it.
    pub verification_uri_complete: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Rp {
    /// Reads the provider's discovery document and keys.
    pub async fn discover(
        issuer: &str,
        client_id: &str,
        client_secret: Option<&str>,
    ) -> Result<Self, RpError> {
        let err = |why: String| RpError::Discovery {
            issuer: issuer.to_string(),
            why,
        };
        // No redirects: a token endpoint must not bounce requests elsewhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| err(e.to_string()))?;
        let url = IssuerUrl::new(issuer.trim_end_matches('/').to_string())
            .map_err(|e| err(e.to_string()))?;
        let meta = Metadata::discover_async(url, &http)
            .await
            .map_err(|e| err(error_chain(&e)))?;
        Ok(Self {
            meta,
            client_id: client_id.to_string(),
            client_secret: client_secret.map(str::to_string),
            http,
        })
    }

    fn client(
        &self,
    ) -> CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            self.meta.clone(),
            ClientId::new(self.client_id.clone()),
            self.client_secret.clone().map(ClientSecret::new),
        )
    }

    /// Whether the provider offers the device flow.
    pub fn has_device_flow(&self) -> bool {
        self.meta
            .additional_metadata()
            .device_authorization_endpoint
            .is_some()
    }

    /// Starts a browser sign-in returning to `redirect_uri`.
    pub fn start(
        &self,
        redirect_uri: &str,
        scopes: &[String],
        consent: bool,
    ) -> Result<Pending, RpError> {
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| RpError::Config(format!("redirect URL {redirect_uri}: {e}")))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.client().set_redirect_uri(redirect);
        let mut req = client.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in scopes.iter().filter(|s| s.as_str() != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        if consent {
            req = req.add_prompt(CoreAuthPrompt::Consent);
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        Ok(Pending {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            redirect_uri: redirect_uri.to_string(),
        })
    }

    /// Finishes a browser sign-in: checks the state, exchanges the code
    /// (with the PKCE verifier) and verifies the ID token and its nonce.
    pub async fn finish(
        &self,
        pending: &Pending,
        code: &str,
        state: &str,
    ) -> Result<Tokens, RpError> {
        if state != pending.state {
            return Err(RpError::State);
        }
        let redirect = RedirectUrl::new(pending.redirect_uri.clone())
            .map_err(|e| RpError::Config(e.to_string()))?;
        let client = self.client().set_redirect_uri(redirect);
        let resp = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| RpError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| RpError::Token(error_chain(&e)))?;
        let nonce = Nonce::new(pending.nonce.clone());
        self.tokens(resp, Some(&nonce), None)
    }

    /// Trades a refresh token for fresh tokens. The provider may rotate
    /// the refresh token; the old one is kept when it does not.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, RpError> {
        let rt = RefreshToken::new(refresh_token.to_string());
        let resp = self
            .client()
            .exchange_refresh_token(&rt)
            .map_err(|e| RpError::Config(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(|e| RpError::Token(error_chain(&e)))?;
        self.tokens(resp, None, Some(refresh_token))
    }

    /// Starts a device sign-in.
    pub async fn device_start(&self, scopes: &[String]) -> Result<DeviceLogin, RpError> {
        let Some(url) = self
            .meta
            .additional_metadata()
            .device_authorization_endpoint
            .clone()
        else {
            return Err(RpError::NoDeviceFlow);
        };
        let client = self.client().set_device_authorization_url(url);
        let mut req = client.exchange_device_code();
        for s in scopes.iter().filter(|s| s.as_str() != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let details: CoreDeviceAuthorizationResponse = req
            .request_async(&self.http)
            .await
            .map_err(|e| RpError::Token(error_chain(&e)))?;
        Ok(DeviceLogin {
            user_code: details.user_code().secret().clone(),
            verification_uri: details.verification_uri().to_string(),
            verification_uri_complete: details
                .verification_uri_complete()
                .map(|u| u.secret().clone()),
            details,
        })
    }

    /// Polls until the person has entered the code (or it expires).
    pub async fn device_finish(&self, login: &DeviceLogin) -> Result<Tokens, RpError> {
        let client = self.client();
        let resp = client
            .exchange_device_access_token(&login.details)
            .map_err(|e| RpError::Config(e.to_string()))?
            .request_async(&self.http, tokio::time::sleep, None)
            .await
            .map_err(|e| RpError::Token(error_chain(&e)))?;
        self.tokens(resp, None, None)
    }

    fn tokens(
        &self,
        resp: CoreTokenResponse,
        nonce: Option<&Nonce>,
        old_refresh: Option<&str>,
    ) -> Result<Tokens, RpError> {
        let client = self.client();
        let verifier = client.id_token_verifier();
        let (mut subject, mut email, mut id_token) = (None, None, None);
        if let Some(id) = resp.id_token() {
            let claims = match nonce {
                Some(n) => id.claims(&verifier, n),
                // Refresh and device responses carry no nonce of ours.
                None => id.claims(&verifier, |_: Option<&Nonce>| Ok(())),
            }
            .map_err(|e| RpError::IdToken(error_chain(&e)))?;
            subject = Some(claims.subject().to_string());
            email = claims.email().map(|e| e.to_string());
            id_token = Some(id.to_string());
        } else if nonce.is_some() {
            return Err(RpError::IdToken(
                "the provider returned no ID token (is `openid` among the client's scopes?)".into(),
            ));
        }
        Ok(Tokens {
            access_token: resp.access_token().secret().clone(),
            id_token,
            refresh_token: resp
                .refresh_token()
                .map(|r| r.secret().clone())
                .or_else(|| old_refresh.map(str::to_string)),
            expires_at: resp.expires_in().map(|d| now() + d.as_secs()),
            subject,
            email,
        })
    }
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}
