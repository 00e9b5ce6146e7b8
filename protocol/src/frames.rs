//! The frames: what agent and edge say to each other, versioned in the hello.

use std::fmt;

use beamd_events::vocabulary::{InspectMode, TunnelProtocol};
use serde::{Deserialize, Serialize};

/// The protocol version an agent announces in its hello.
pub const PROTOCOL_VERSION: u16 = 1;

/// An agent token, `tok_<id>.<secret>`. Its `Debug` is masked.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(pub String);

impl Token {
    /// The key id and the secret, if the token has the `tok_<id>.<secret>` shape.
    pub fn parts(&self) -> Option<(&str, &str)> {
        let (id, secret) = self.0.split_once('.')?;
        (id.starts_with("tok_") && !secret.is_empty()).then_some((id, secret))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(MASKED)")
    }
}

/// A tunnel the agent asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelRequest {
    /// TCP or HTTP.
    pub protocol: TunnelProtocol,
    /// The agent-side address it forwards to.
    pub local_addr: String,
    /// A wanted public port (TCP); `None` takes any free one.
    pub port: Option<u16>,
    /// A wanted name (HTTP).
    pub name: Option<String>,
    /// A custom domain to serve too (HTTP), added to the tenant if new.
    #[serde(default)]
    pub domain: Option<String>,
    /// HTTP basic auth `user:password` the edge demands of the public (HTTP).
    #[serde(default)]
    pub basic_auth: Option<String>,
    /// Client networks (CIDR) the edge lets in; empty lets everyone in (HTTP).
    #[serde(default)]
    pub allow: Vec<String>,
    /// How much of its requests the inspector keeps (HTTP); `None` keeps the
    /// tunnel's current mode (`meta` for a new one).
    #[serde(default)]
    pub inspect: Option<InspectMode>,
    /// What the service behind the tunnel speaks (HTTP).
    #[serde(default)]
    pub upstream: UpstreamProtocol,
    /// The agent's own name for this tunnel (a config file's table name),
    /// echoed in what the edge answers about it.
    #[serde(default)]
    pub tag: Option<String>,
    /// The PROXY protocol header the agent sends its local service before a
    /// public connection's first byte (TCP).
    #[serde(default)]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Join the pool of this name or port (HTTP, TCP) instead of taking
    /// the tunnel over: every member serves a share of it.
    #[serde(default)]
    pub pool: bool,
    /// Sign-in the edge demands with OpenID Connect before any request
    /// reaches the service (HTTP).
    #[serde(default)]
    pub sign_in: Option<Box<SignInRequest>>,
}

/// OpenID Connect in front of an HTTP tunnel: the provider, the client the
/// edge signs people in as, and who is let in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInRequest {
    /// The provider's issuer URL (its discovery document is under it).
    pub issuer: String,
    /// The client id registered with the provider.
    pub client_id: String,
    /// The client's secret (kept in the edge's memory, never in its log).
    pub client_secret: String,
    /// Email addresses let in; with `allow_domains` empty too, everyone
    /// the provider signs in is.
    #[serde(default)]
    pub allow_emails: Vec<String>,
    /// Email domains let in.
    #[serde(default)]
    pub allow_domains: Vec<String>,
}

impl fmt::Debug for SignInRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignInRequest")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"MASKED")
            .field("allow_emails", &self.allow_emails)
            .field("allow_domains", &self.allow_domains)
            .finish()
    }
}

/// A version of HAProxy's PROXY protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProxyProtocol {
    /// The text header, `PROXY TCP4 …`.
    V1,
    /// The binary header.
    V2,
}

impl ProxyProtocol {
    /// `v1` or `v2`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "v1" => Some(Self::V1),
            "v2" => Some(Self::V2),
            _ => None,
        }
    }
}

/// What the service behind an HTTP tunnel speaks; the edge speaks it
/// through the tunnel (the agent relays bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1, whatever the public client spoke.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (gRPC needs it end to end).
    H2c,
}

/// The agent's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// `PROTOCOL_VERSION` of the agent.
    pub version: u16,
    /// The agent's token.
    pub token: Token,
    /// The tunnels it wants.
    pub tunnels: Vec<TunnelRequest>,
    /// Whether it takes a UDP flow's datagrams as QUIC datagrams (when its
    /// connection is QUIC) instead of framed on the flow's stream.
    #[serde(default)]
    pub udp_datagrams: bool,
}

/// What an agent sends on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentFrame {
    /// Authenticate and ask for tunnels (first frame only).
    Hello(Hello),
    /// I am alive.
    Heartbeat,
    /// Open one more tunnel on this connection (after the welcome). The edge
    /// answers `Opened` or `TunnelRefused`, with the request's tag.
    Open(TunnelRequest),
    /// Take this tunnel (by id) offline; the others keep serving. The edge
    /// answers `Closed`.
    Close {
        /// The tunnel id.
        tunnel: String,
    },
}

/// A tunnel the edge assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedTunnel {
    /// The tunnel id.
    pub id: String,
    /// TCP or HTTP.
    pub protocol: TunnelProtocol,
    /// Where the public reaches it (`tcp://host:port` or a URL).
    pub public: String,
    /// The public port (TCP).
    pub port: Option<u16>,
    /// The agent-side address.
    pub local_addr: String,
    /// More public URLs (verified custom domains).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Something the agent's user should know (a domain waiting for its TXT record).
    #[serde(default)]
    pub notice: Option<String>,
    /// The request's tag.
    #[serde(default)]
    pub tag: Option<String>,
}

/// A tunnel the edge did not open while the connection goes on (its other
/// tunnels serve).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedTunnel {
    /// The request's tag.
    pub tag: Option<String>,
    /// What the request asked for, for people (`http NAME`, `tcp :PORT`).
    pub asked: String,
    /// Why.
    pub error: ErrorFrame,
}

/// An error the edge reports before it closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorFrame {
    /// A machine-readable code (`unauthorized`, `limit_exceeded`, `conflict`, `malformed_frame`, …).
    pub code: String,
    /// What happened, for people.
    pub message: String,
}

/// What the edge sends on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EdgeFrame {
    /// The agent is in; its tunnels are assigned.
    Welcome {
        /// The session id.
        session: String,
        /// The edge node serving it.
        node: String,
        /// The tunnels.
        tunnels: Vec<AssignedTunnel>,
        /// The tunnels of the hello it refused (a hello of several tunnels is
        /// refused as a whole only when none opens).
        #[serde(default)]
        refused: Vec<RefusedTunnel>,
    },
    /// Something is wrong; the edge closes the connection after this.
    Error(ErrorFrame),
    /// I am alive.
    Heartbeat,
    /// A tunnel asked for with `Open` serves.
    Opened(AssignedTunnel),
    /// A tunnel asked for with `Open` was refused; the connection goes on.
    TunnelRefused(RefusedTunnel),
    /// A tunnel named by `Close` is offline.
    Closed {
        /// The tunnel id.
        tunnel: String,
    },
}

impl TunnelRequest {
    /// What it asks for, for people: `http NAME`, `tcp :PORT` or `tcp (any port)`.
    pub fn asked(&self) -> String {
        match (self.protocol, &self.name, self.port) {
            (TunnelProtocol::Http, Some(name), _) => format!("http {name}"),
            (TunnelProtocol::Http, None, _) => "http (any name)".into(),
            (TunnelProtocol::Tcp, _, Some(port)) => format!("tcp :{port}"),
            (TunnelProtocol::Tcp, _, None) => "tcp (any port)".into(),
            (TunnelProtocol::Udp, _, Some(port)) => format!("udp :{port}"),
            (TunnelProtocol::Udp, _, None) => "udp (any port)".into(),
        }
    }
}

/// The first frame of every stream the edge opens: which tunnel, and who the public peer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamHeader {
    /// The tunnel the public connection came in on.
    pub tunnel: String,
    /// The public client's address.
    pub peer: String,
    /// The edge's address the client reached (TCP).
    #[serde(default)]
    pub public: Option<String>,
    /// A UDP flow whose datagrams travel as QUIC datagrams: its id, the
    /// first 4 bytes (big-endian) of each of them. The stream then carries
    /// only the flow's first datagram from the edge (framed, so that it
    /// never arrives before the flow is known) and the flow's end. `None`:
    /// every datagram is framed on the stream, behind its 2-byte length.
    #[serde(default)]
    pub flow: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_and_hide() {
        let t = Token("tok_abc.s3cret".into());
        assert_eq!(t.parts(), Some(("tok_abc", "s3cret")));
        assert_eq!(format!("{t:?}"), "Token(MASKED)");
        assert_eq!(Token("nodot".into()).parts(), None);
        assert_eq!(Token("key_x.y".into()).parts(), None);
    }
}
