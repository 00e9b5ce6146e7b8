//! The inspector's detail: request and response headers and the first bytes
//! of each body, kept in a bounded store beside the log (never in it), with
//! credentials masked before anything is stored.

pub mod body_store;
pub mod full_capture;
pub mod mask;
pub mod replay;
pub mod sink;
pub mod tee;

pub use body_store::{BodyLimits, BodyStore, Detail, BODIES_DIR, BODIES_TREE};
pub use full_capture::FullCaptureSettings;
pub use mask::{is_masked, mask_headers, DEFAULT_MASKED};
pub use sink::BodySink;
pub use tee::{BodyDigest, BodyTee, DEFAULT_BODY_LIMIT};

/// How the edge keeps full captures (headers and body prefixes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectSettings {
    /// Body bytes kept per request and per response.
    pub body_limit: usize,
    /// The body store's size cap, in MiB; the oldest details go first.
    pub body_store_mib: u64,
    /// How long captured details are kept.
    pub body_ttl: std::time::Duration,
    /// Headers masked before they are stored, besides `DEFAULT_MASKED`.
    pub mask_headers: Vec<String>,
}

impl Default for InspectSettings {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            body_store_mib: 256,
            body_ttl: std::time::Duration::from_secs(24 * 3600),
            mask_headers: Vec::new(),
        }
    }
}

impl InspectSettings {
    /// The header names masked (lower case).
    pub fn masked(&self) -> Vec<String> {
        DEFAULT_MASKED
            .iter()
            .map(|s| s.to_string())
            .chain(self.mask_headers.iter().map(|h| h.to_ascii_lowercase()))
            .collect()
    }

    /// The store's limits.
    pub fn limits(&self) -> BodyLimits {
        BodyLimits {
            cap_bytes: self.body_store_mib << 20,
            ttl: self.body_ttl,
        }
    }
}
