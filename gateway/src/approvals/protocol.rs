//! The approvals API as both sides see it: the request a gateway posts,
//! the request's state the service returns, and the decision the service
//! signs (Ed25519) so a gateway can check that an approval came from the
//! service and belongs to exactly this request, statement and gateway.

use base64::Engine;
use ring::signature::{Ed25519KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    /// `sub` claim.
    pub sub: String,
    /// `email` claim, or empty.
    pub email: String,
    /// `name` claim, or empty.
    #[serde(default)]
    pub name: String,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `POST /api/v1/requests`: a statement that needs approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// Request id chosen by the gateway (uuid v7), so the approval link
    /// can be shown before the service answers.
    pub id: String,
    /// The gateway instance that holds the statement.
    pub gateway: String,
    /// Who ran it.
    pub requester: Requester,
    /// Client address.
    #[serde(default)]
    pub client_addr: String,
    /// Connection name.
    pub connection: String,
    /// Database upstream.
    #[serde(default)]
    pub database: String,
    /// The exact statement text.
    pub statement: String,
    /// Bound parameters (text form; `None` for NULL).
    #[serde(default)]
    pub params: Vec<Option<String>>,
    /// The statement's facts (as the policy saw them).
    #[serde(default)]
    pub facts: serde_json::Value,
    /// The policy's reasons.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Groups whose members may approve.
    pub groups: Vec<String>,
    /// Distinct approvers needed.
    pub quorum: u32,
    /// Seconds until the request expires.
    pub expires_in: u64,
    /// `hold` (the client waits) or `retry` (the client re-runs later).
    pub mode: String,
}

/// State of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for approvers.
    Pending,
    /// Approved by the quorum.
    Approved,
    /// Rejected by an approver.
    Rejected,
    /// Nobody decided in time.
    Expired,
    /// The client cancelled or went away.
    Withdrawn,
}

impl State {
    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Withdrawn => "withdrawn",
        }
    }

    /// Parses a stored state.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "rejected" => Self::Rejected,
            "expired" => Self::Expired,
            "withdrawn" => Self::Withdrawn,
            _ => return None,
        })
    }
}

/// What the service signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionPayload {
    /// Request id.
    pub request_id: String,
    /// [`statement_hash`] of the statement and parameters.
    pub statement_sha256: String,
    /// Final state (`approved`, `rejected`, `expired`).
    pub outcome: State,
    /// Who approved (or rejected).
    pub approvers: Vec<String>,
    /// The deciding approver's comment.
    pub comment: String,
    /// Until when an approval may be used (unix ms).
    pub valid_until: i64,
    /// The gateway the request came from.
    pub gateway: String,
}

/// A decision and its signature (base64 Ed25519 over the payload's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDecision {
    /// The signed fields.
    pub payload: DecisionPayload,
    /// Signature.
    pub signature: String,
}

/// `GET /api/v1/requests/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestView {
    /// Request id.
    pub id: String,
    /// State.
    pub state: State,
    /// The signed decision once the request is decided.
    #[serde(default)]
    pub decision: Option<SignedDecision>,
}

/// Hash binding a decision to one statement text and its parameters.
pub fn statement_hash(statement: &str, params: &[Option<String>]) -> String {
    let mut h = Sha256::new();
    h.update((statement.len() as u64).to_be_bytes());
    h.update(statement.as_bytes());
    for p in params {
        match p {
            Some(v) => {
                h.update([1]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
            None => h.update([0]),
        }
    }
    hex::encode(h.finalize())
}

/// Why a decision is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature does not verify with the configured key.
    #[error("the decision's signature does not verify")]
    BadSignature,
    /// It belongs to another request, statement or gateway.
    #[error("the decision belongs to another {0}")]
    Mismatch(&'static str),
    /// The key is not a valid Ed25519 public key.
    #[error("the approvals public key is not a base64 Ed25519 key")]
    BadKey,
}

/// Signs a payload.
pub fn sign(key: &Ed25519KeyPair, payload: DecisionPayload) -> SignedDecision {
    let bytes = serde_json::to_vec(&payload).unwrap_or_default();
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&bytes));
    SignedDecision { payload, signature }
}

/// Checks a decision against the public key and what the gateway holds.
pub fn verify(
    public_key_b64: &str,
    decision: &SignedDecision,
    request_id: &str,
    statement_sha256: &str,
    gateway: &str,
) -> Result<State, VerifyError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(public_key_b64.trim())
        .map_err(|_| VerifyError::BadKey)?;
    if key.len() != 32 {
        return Err(VerifyError::BadKey);
    }
    let sig = b64
        .decode(&decision.signature)
        .map_err(|_| VerifyError::BadSignature)?;
    let bytes = serde_json::to_vec(&decision.payload).map_err(|_| VerifyError::BadSignature)?;
    UnparsedPublicKey::new(&ED25519, &key)
        .verify(&bytes, &sig)
        .map_err(|_| VerifyError::BadSignature)?;
    let p = &decision.payload;
    if p.request_id != request_id {
        return Err(VerifyError::Mismatch("request"));
    }
    if p.statement_sha256 != statement_sha256 {
        return Err(VerifyError::Mismatch("statement"));
    }
    if p.gateway != gateway {
        return Err(VerifyError::Mismatch("gateway"));
    }
    Ok(p.outcome)
}

/// The public key (base64) of a key pair.
pub fn public_key_b64(key: &Ed25519KeyPair) -> String {
    use ring::signature::KeyPair;
    base64::engine::general_purpose::STANDARD.encode(key.public_key().as_ref())
}

/// A key pair from a base64 32-byte seed (the key file's content).
pub fn key_from_seed(seed_b64: &str) -> Option<Ed25519KeyPair> {
    let seed = base64::engine::general_purpose::STANDARD
        .decode(seed_b64.trim())
        .ok()?;
    Ed25519KeyPair::from_seed_unchecked(&seed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Ed25519KeyPair {
        key_from_seed(&base64::engine::general_purpose::STANDARD.encode([7u8; 32])).unwrap()
    }

    fn payload() -> DecisionPayload {
        DecisionPayload {
            request_id: "r1".into(),
            statement_sha256: statement_hash("DROP TABLE t", &[]),
            outcome: State::Approved,
            approvers: vec!["bob@example.com".into()],
            comment: "ok".into(),
            valid_until: 1,
            gateway: "gw1".into(),
        }
    }

    #[test]
    fn signed_decisions_verify_only_for_their_request_statement_and_gateway() {
        let k = key();
        let pk = public_key_b64(&k);
        let d = sign(&k, payload());
        let h = statement_hash("DROP TABLE t", &[]);
        assert_eq!(verify(&pk, &d, "r1", &h, "gw1"), Ok(State::Approved));
        assert_eq!(
            verify(&pk, &d, "r2", &h, "gw1"),
            Err(VerifyError::Mismatch("request"))
        );
        let other = statement_hash("DROP TABLE u", &[]);
        assert_eq!(
            verify(&pk, &d, "r1", &other, "gw1"),
            Err(VerifyError::Mismatch("statement"))
        );
        assert_eq!(
            verify(&pk, &d, "r1", &h, "gw2"),
            Err(VerifyError::Mismatch("gateway"))
        );
        let mut forged = d.clone();
        forged.payload.outcome = State::Approved;
        forged.payload.approvers.push("mallory".into());
        assert_eq!(
            verify(&pk, &forged, "r1", &h, "gw1"),
            Err(VerifyError::BadSignature)
        );
        let other_key =
            key_from_seed(&base64::engine::general_purpose::STANDARD.encode([8u8; 32])).unwrap();
        assert_eq!(
            verify(&public_key_b64(&other_key), &d, "r1", &h, "gw1"),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn parameters_change_the_hash() {
        let a = statement_hash("SELECT $1", &[Some("1".into())]);
        assert_ne!(a, statement_hash("SELECT $1", &[Some("2".into())]));
        assert_ne!(a, statement_hash("SELECT $1", &[None]));
        assert_ne!(
            statement_hash("ab", &[Some("c".into())]),
            statement_hash("a", &[Some("bc".into())])
        );
    }
}
