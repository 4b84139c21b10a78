//! One error type for every handler, turned into an HTTP status in one
//! place; internal errors are logged, not shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::rules::VoteError;
use crate::store::StoreError;

/// A handler's error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or wrong credential.
    #[error("authentication required")]
    Unauthorized,
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// No such request.
    #[error("no such request")]
    NotFound,
    /// The request is closed or the vote conflicts.
    #[error("{0}")]
    Conflict(String),
    /// Anything else (logged).
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Duplicate => Self::Conflict("a request with this id exists".into()),
            StoreError::Vote(v) => match v {
                VoteError::SelfApproval | VoteError::NotInGroup(_) => {
                    Self::Forbidden(v.to_string())
                }
                VoteError::Closed(_) | VoteError::Changed => Self::Conflict(v.to_string()),
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(why) => {
                tracing::error!(error = %why, "internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(serde_json::json!({"error": self.to_string()}))).into_response()
    }
}
