//! The API's error format: `{"error": code, "message": …, "details": …}`
//! with the status that goes with the code.

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;

use crate::actors::CoreError;
use crate::domain::DomainError;

/// An error response body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `invalid_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `conflict`, `limit_exceeded`, `payload_too_large`,
    /// `insufficient_storage`, `unavailable` (503, the edge at its connection
    /// capacity), `bad_gateway` (502, a replay's tunnel or service failed) or `internal`.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
    /// Specifics (the field or parameter at fault), when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// An error the API answers with.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body (boxed: errors travel in every handler's `Result`).
    pub body: Box<ErrorBody>,
    /// Seconds to wait, sent as `Retry-After` (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody {
                error: code.into(),
                message: message.into(),
                details: None,
            }),
            retry_after: None,
        }
    }

    /// 429 `rate_limited`, with `Retry-After`.
    pub fn rate_limited(message: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.body.details = Some(serde_json::json!({ "retryAfter": retry_after }));
        e.retry_after = Some(retry_after);
        e
    }

    /// 400 `invalid_request`, naming what was wrong in `details`.
    pub fn invalid(message: impl Into<String>, details: serde_json::Value) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request", message);
        e.body.details = Some(details);
        e
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    }

    /// 507 `insufficient_storage`: the edge keeps its disk's last reserve for
    /// what it owes (traffic counts) and takes commands again once space is freed.
    pub fn insufficient_storage(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            message,
        )
    }

    /// 413 `payload_too_large`.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {limit} bytes"),
        )
    }

    /// 503 `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 502 `bad_gateway`: a tunnel or the service behind it failed.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "bad_gateway", message)
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let status = match &e {
            DomainError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            DomainError::NotFound(_) => StatusCode::NOT_FOUND,
            DomainError::Unauthorized(_) => StatusCode::FORBIDDEN,
            DomainError::Conflict(_) => StatusCode::CONFLICT,
            DomainError::LimitExceeded { .. } => StatusCode::FORBIDDEN,
        };
        let code = match &e {
            DomainError::Unauthorized(_) => "forbidden",
            other => other.code(),
        };
        let mut err = Self::new(status, code, e.to_string());
        err.body.details = match &e {
            DomainError::LimitExceeded { limit, max } => {
                Some(serde_json::json!({ "limit": limit, "max": max }))
            }
            DomainError::InvalidRequest(why) => Some(serde_json::json!({ "reason": why })),
            _ => None,
        };
        err
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Domain(d) => d.into(),
            other => {
                tracing::error!("API: {other}");
                Self::internal(other.to_string())
            }
        }
    }
}
