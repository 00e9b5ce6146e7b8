//! Why a command was refused.

/// A refusal by an aggregate. Each maps to one error code of the REST API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The command is malformed (bad name, label too long, …).
    #[error("{0}")]
    InvalidRequest(String),
    /// The entity does not exist (or no longer does, e.g. a revoked key).
    #[error("{0} not found")]
    NotFound(String),
    /// The key may not do this (revoked, wrong tenant, wrong kind).
    #[error("{0}")]
    Unauthorized(String),
    /// Something unique is already taken.
    #[error("{0}")]
    Conflict(String),
    /// A plan or key limit would be exceeded.
    #[error("limit exceeded: {limit} (max {max})")]
    LimitExceeded {
        /// The limit's name as the API shows it (`tunnels`, `domains`, `bandwidthBytes`, `limitBytes`).
        limit: &'static str,
        /// Its value.
        max: u64,
    },
}

impl DomainError {
    /// The REST API error code.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::InvalidRequest(_) => "invalid_request",
            DomainError::NotFound(_) => "not_found",
            DomainError::Unauthorized(_) => "unauthorized",
            DomainError::Conflict(_) => "conflict",
            DomainError::LimitExceeded { .. } => "limit_exceeded",
        }
    }
}
