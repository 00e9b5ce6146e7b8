//! Events of the API gateway: services (where requests go), routes (which
//! requests go where) and consumers (who may call routes that need a key).

use serde::{Deserialize, Serialize};

/// Where a service's requests are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConfig {
    /// A name for people.
    pub name: String,
    /// The tenant's HTTP tunnel (by name) that serves it, if it is behind a tunnel.
    pub tunnel: Option<String>,
    /// An `http://` URL the edge reaches directly, if it is not behind a tunnel.
    pub target_url: Option<String>,
    /// The path the edge probes for health (none: not probed).
    pub health_check_path: Option<String>,
    /// How long the service has to start answering, in ms.
    pub timeout_ms: u64,
}

/// A service was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCreated {
    /// The owning tenant's id.
    pub tenant: String,
    /// Its configuration.
    pub config: ServiceConfig,
}

/// A service's configuration changed (the whole new configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceUpdated {
    /// The configuration now.
    pub config: ServiceConfig,
}

/// A service was deleted (kept, marked deleted: routes to it answer 502).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDeleted {}

/// Which requests a route takes, and where it sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfig {
    /// The public host it is bound to (a tunnel's host or a verified domain).
    pub host: String,
    /// An HTTP method, or `*` for any.
    pub method: String,
    /// `/literal/:param/*`: literal segments, named parameters, a trailing wildcard.
    pub path_pattern: String,
    /// The service that answers.
    pub service_id: String,
    /// Whether callers must present a consumer's API key.
    pub auth_required: bool,
    /// Requests per minute per caller on this route, instead of the caller's tier.
    pub rate_limit_override: Option<u32>,
    /// Whether the route takes requests.
    pub enabled: bool,
}

/// A route was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteCreated {
    /// The owning tenant's id.
    pub tenant: String,
    /// Its configuration.
    pub config: RouteConfig,
}

/// A route's configuration changed (the whole new configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteUpdated {
    /// The configuration now.
    pub config: RouteConfig,
}

/// A route was deleted (kept, marked deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteDeleted {}

/// A route was retired because its host stopped being a verified domain of
/// its tenant (the domain was removed or its claim lapsed); it is kept,
/// marked deleted, and never answers again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRetired {
    /// The domain (`dom_…`) whose removal retired it.
    pub domain: String,
}

/// A consumer was created with an API key (only its hash is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerCreated {
    /// The owning tenant's id.
    pub tenant: String,
    /// A name for people.
    pub name: String,
    /// `free`, `standard` or `premium`.
    pub rate_limit_tier: String,
    /// blake3 of the key's secret, hex.
    pub key_hash: String,
}

/// A consumer was revoked: its key stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerRevoked {}

/// A service's health, as the edge's probe found it, changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceHealthChanged {
    /// Whether the probe got a 2xx or 3xx answer in time.
    pub healthy: bool,
    /// The answer's status, if there was one.
    pub status: Option<u16>,
    /// What happened, for people.
    pub detail: String,
}

/// Requests through a gateway route failed upstream, counted over a window:
/// one event per (route, kind) and window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayErrorsRecorded {
    /// The owning tenant's id.
    pub tenant: String,
    /// The route.
    pub route: String,
    /// `unreachable` (the service could not be reached), `timeout`, or
    /// `server_error` (it answered 5xx).
    pub kind: String,
    /// How many requests failed so in the window.
    pub count: u64,
    /// The last failure's status.
    pub status: u16,
    /// The last failure, for people.
    pub message: String,
}

/// An error group was marked resolved (a new failure opens it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayErrorResolved {}
