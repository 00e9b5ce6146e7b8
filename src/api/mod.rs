//! The REST API v1 on warp: every read from projections or actor state,
//! every write a command to an actor that returns once its events are durable
//! and the projections show them. Errors are JSON (`error.rs`), CORS is open,
//! bodies are bounded, lists are paged by cursor, and `/api/v1/openapi.json`
//! is generated from the handlers themselves (`openapi.rs`).

pub mod accounts;
mod auth;
mod dashboard;
mod domains;
mod error;
mod feed;
mod gateway;
mod http;
mod metrics;
mod openapi;
mod replay;
mod request_detail;
mod routes;
pub(crate) mod schema;
mod server;
mod tenants;
mod tlog;
mod tokens;
mod tunnels;
mod usage;
mod workspace;

use std::sync::Arc;
use std::time::Instant;

use crate::actors::{Core, CoreError};
use crate::disk::DiskGuard;
use crate::dns::DnsVerifier;
use crate::domain::PublicAddresses;
use crate::egress::Egress;
use crate::inspector::replay::Replayer;

pub use auth::Scope;
pub use error::{ApiError, ErrorBody};
pub use http::Peer;
pub use metrics::install as install_metrics;
pub use openapi::document as openapi_document;
pub use server::serve;
pub use tokens::Endpoint;

/// What the handlers share.
pub struct ApiState {
    /// The control-plane core.
    pub core: Arc<Core>,
    /// Where the public reaches tunnels (their URLs and ports).
    pub public: PublicAddresses,
    /// How custom domains are verified.
    pub dns: DnsVerifier,
    /// Where the edge may connect on a tenant's behalf (services' upstream URLs).
    pub egress: Arc<Egress>,
    /// The data dir's free space: below its watermark, commands are refused.
    pub disk: Arc<DiskGuard>,
    /// When the server started.
    pub started: Instant,
    /// This node.
    pub node: String,
    /// Where agents connect, per transport.
    pub agents: Vec<Endpoint>,
    /// The edge certificate's fingerprint.
    pub fingerprint: String,
    /// Whether ws and tcp agents use TLS.
    pub agent_tls: bool,
    /// Where Prometheus text comes from.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Sign-up, sign-in and resets.
    pub accounts: accounts::AccountSettings,
    /// Full capture's headers and bodies (none in API-only benchmarks).
    pub bodies: Option<crate::inspector::BodySink>,
    /// Sends captured requests again through this node's tunnels (none in API-only benchmarks).
    pub replayer: Option<Arc<dyn Replayer>>,
    /// The ACME client of the public HTTPS port (`--acme-directory`).
    pub acme: Option<Arc<crate::acme::Acme>>,
    /// The witnesses checkpoints are submitted to (`--witness`).
    pub witnesses: Option<Arc<crate::tlog::Witnessing>>,
    /// The transparency log: checkpoints, proofs and tiles (none in API-only benchmarks).
    pub tlog: Option<Arc<crate::tlog::Transparency>>,
}

impl ApiState {
    /// Waits until the projections show every event committed so far, so a
    /// write is visible to the next read.
    pub async fn settle(&self) -> Result<(), CoreError> {
        let head = self.core.log().head().seq;
        self.core.projections().wait_for(head).await
    }
}
