//! Events of a tunnel: opened, offline, released, and its aggregated traffic.

use serde::{Deserialize, Serialize};

/// What a tunnel carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TunnelProtocol {
    /// Public HTTP routed by host name.
    Http,
    /// A public TCP port.
    Tcp,
}

/// The transport an agent connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransportKind {
    /// QUIC (quinn).
    Quic,
    /// WebSocket.
    Ws,
    /// Plain TCP (optionally TLS).
    Tcp,
}

/// A tunnel was opened by an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelOpened {
    /// The owning tenant's id.
    pub tenant: String,
    /// The key that opened it.
    pub key: String,
    /// HTTP or TCP.
    pub protocol: TunnelProtocol,
    /// The host name label (HTTP tunnels).
    pub name: Option<String>,
    /// The public port (TCP tunnels).
    pub port: Option<u16>,
    /// The agent's transport.
    pub transport: TransportKind,
    /// The edge node that serves it.
    pub node: String,
    /// The agent-side address it forwards to.
    pub local_addr: String,
}

/// The tunnel's agent went away; its name or port stays reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelWentOffline {
    /// Why (agent closed, timeout, node left).
    pub reason: String,
}

/// An agent reconnected to an offline tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelResumed {
    /// The edge node that now serves it.
    pub node: String,
    /// The agent's transport.
    pub transport: TransportKind,
}

/// The tunnel was released; its name or port is free again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TunnelReleased {}

/// Bytes and connections summed over one flush window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRecorded {
    /// Bytes from public clients into the tunnel.
    pub bytes_in: u64,
    /// Bytes from the tunnel out to public clients.
    pub bytes_out: u64,
    /// Public connections opened in the window.
    pub connections: u64,
    /// HTTP requests completed in the window.
    pub requests: u64,
    /// Length of the window in milliseconds.
    pub window_ms: u64,
}

/// How much of a tunnel's HTTP requests the inspector keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InspectMode {
    /// Nothing: no `RequestCaptured` (bytes and request counts still are).
    Off,
    /// Metadata: one `RequestCaptured` per request.
    #[default]
    Meta,
    /// Metadata, plus headers and body prefixes in the body store.
    Full,
}

impl InspectMode {
    /// `off`, `meta` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            InspectMode::Off => "off",
            InspectMode::Meta => "meta",
            InspectMode::Full => "full",
        }
    }

    /// Parses `off`, `meta` or `full`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(InspectMode::Off),
            "meta" => Some(InspectMode::Meta),
            "full" => Some(InspectMode::Full),
            _ => None,
        }
    }
}

/// The tunnel's capture mode was set (by its agent at (re)connect, or over the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelInspectSet {
    /// The new mode.
    pub mode: InspectMode,
}

/// Metadata of one proxied HTTP request (never its body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RequestCaptured {
    /// Request method.
    pub method: String,
    /// Request path and query.
    pub path: String,
    /// Response status code.
    pub status: u16,
    /// Time to the end of the response.
    pub duration_ms: u64,
    /// Request bytes.
    pub bytes_in: u64,
    /// Response bytes.
    pub bytes_out: u64,
    /// Client IP.
    pub ip: String,
    /// Client user agent.
    pub user_agent: String,
    /// HTTP version (`HTTP/1.1`, `h2`).
    pub proto: String,
    /// Host header.
    pub host: String,
    /// When the request arrived (ms since the epoch). Captures are recorded
    /// in batches, so this, not the envelope's time, dates the request; 0 in
    /// events written before the field existed.
    #[serde(default)]
    pub started_at: u64,
    /// The gateway route that took it, if any.
    #[serde(default)]
    pub route: Option<String>,
    /// The gateway consumer whose key it carried, if any.
    #[serde(default)]
    pub consumer: Option<String>,
    /// The request's id (`req_…`), made at capture: full capture's headers
    /// and bodies are kept under it. Empty without full capture.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The request body as it passed, with full capture (boxed: most
    /// requests have none, and events stay small in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<Box<BodySeen>>,
    /// The response body as it passed, with full capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<Box<BodySeen>>,
    /// When this request was a replay: the seq of the request it replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<u64>,
}

/// What the log records of a captured body: enough to prove what was seen,
/// while the bytes themselves live (and are pruned) in the body store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BodySeen {
    /// SHA-256 of the whole body, hex.
    pub sha256: String,
    /// Its length in bytes.
    pub len: u64,
    /// Whether the body store keeps only its first bytes.
    pub truncated: bool,
}
