//! The error frames a session sends its agent: a code and a message, or the
//! core's refusal turned into one (a domain rule's code, else `internal`).

use crate::actors::CoreError;
use crate::protocol::ErrorFrame;

/// An error frame with `code` and `message`.
pub fn error(code: &str, message: impl Into<String>) -> ErrorFrame {
    ErrorFrame {
        code: code.into(),
        message: message.into(),
    }
}

/// The core's error as the agent is told it.
pub fn from_core(e: CoreError) -> ErrorFrame {
    match e {
        CoreError::Domain(d) => error(d.code(), d.to_string()),
        other => error("internal", other.to_string()),
    }
}
