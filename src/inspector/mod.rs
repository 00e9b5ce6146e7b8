//! The inspector's detail: request and response headers and the first bytes
//! of each body, kept in a bounded store beside the log (never in it), with
//! credentials masked before anything is stored.

pub mod body_store;
pub mod mask;
pub mod tee;

pub use body_store::{BodyLimits, BodyStore, Detail, BODIES_TREE};
pub use mask::{mask_headers, DEFAULT_MASKED};
pub use tee::{BodyDigest, BodyTee, DEFAULT_BODY_LIMIT};
