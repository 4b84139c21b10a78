//! Who is connecting: OIDC token validation ([`oidc`]) and the built-in
//! development issuer ([`dev`]).

pub mod dev;
pub mod dev_oauth;
pub mod oidc;
pub mod rp;

use serde::Serialize;

pub use oidc::Verifier;

/// An authenticated person or agent, taken from a verified token.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Identity {
    /// `sub` claim.
    pub sub: String,
    /// `email` claim, or empty.
    pub email: String,
    /// `name` claim, or empty.
    pub name: String,
    /// `preferred_username` claim, or empty.
    #[serde(skip)]
    pub preferred_username: String,
    /// Groups from the configured claim.
    pub groups: Vec<String>,
    /// Issuer URL.
    pub issuer: String,
}

impl Identity {
    /// A short display name: email, else preferred_username, else sub.
    pub fn display(&self) -> &str {
        [&self.email, &self.preferred_username, &self.sub]
            .into_iter()
            .find(|s| !s.is_empty())
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Value of one of the identity claims used for `user` matching.
    pub fn claim(&self, name: &str) -> Option<&str> {
        let v = match name {
            "sub" => &self.sub,
            "email" => &self.email,
            "preferred_username" => &self.preferred_username,
            "name" => &self.name,
            _ => return None,
        };
        (!v.is_empty()).then_some(v.as_str())
    }
}

/// Why a token was refused. Messages are shown to the client: they never
/// contain the token itself.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Not three base64url parts with JSON header and payload.
    #[error("token is not a well-formed JWT: {0}")]
    Malformed(String),
    /// `alg` is none, symmetric or not in the issuer's list.
    #[error("token algorithm `{0}` is not accepted")]
    Algorithm(String),
    /// `iss` is not a configured issuer.
    #[error("token issuer `{0}` is not trusted")]
    UnknownIssuer(String),
    /// No JWKS key matches the token.
    #[error("token signing key `{0}` is not published by the issuer")]
    UnknownKey(String),
    /// Signature does not verify.
    #[error("token signature does not verify")]
    Signature,
    /// `exp` passed.
    #[error("token expired")]
    Expired,
    /// `nbf` in the future.
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    /// `aud` does not include the expected audience.
    #[error("token audience does not include `{0}`")]
    Audience(String),
    /// Other claim problem.
    #[error("token rejected: {0}")]
    Claims(String),
    /// Discovery or JWKS could not be fetched.
    #[error("cannot fetch keys of issuer {issuer}: {why}")]
    Fetch {
        /// Issuer URL.
        issuer: String,
        /// Reason.
        why: String,
    },
}

/// Maps a configured algorithm name to an asymmetric JWT algorithm; `None`
/// for `none`, HS* and unknown names.
pub fn parse_algorithm(name: &str) -> Option<jsonwebtoken::Algorithm> {
    use jsonwebtoken::Algorithm::*;
    Some(match name {
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EdDSA" => EdDSA,
        _ => return None,
    })
}
