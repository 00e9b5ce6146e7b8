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

/// `beamd edge` flags of full capture.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// Body bytes kept per request and per response with full capture.
    #[arg(long, default_value_t = DEFAULT_BODY_LIMIT, value_name = "BYTES")]
    pub body_limit: usize,
    /// The body store's size cap, in MiB; the oldest details go first.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub body_store_mib: u64,
    /// How long captured details are kept (e.g. 24h, 30m).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub body_ttl: std::time::Duration,
    /// A header whose value is masked before it is stored, besides
    /// Authorization, Proxy-Authorization, Cookie, Set-Cookie and X-Api-Key
    /// (repeatable).
    #[arg(long = "mask-header", value_name = "NAME")]
    pub mask_headers: Vec<String>,
}

impl InspectArgs {
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
