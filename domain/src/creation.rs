//! The commands the directory decides: creations, which must be checked
//! against everything else that exists.

use beamd_events::vocabulary::{Plan, TransportKind, TunnelProtocol};

/// Create a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTenant {
    /// Unique slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Plan.
    pub plan: Plan,
    /// Base host of its HTTP tunnels.
    pub tunnel_base: String,
}

/// Which public port a TCP tunnel wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRequest {
    /// No port (HTTP tunnels).
    None,
    /// Exactly this port, which must lie in `from..=to` (the edge's public
    /// port range).
    Exact {
        /// The port.
        port: u16,
        /// First port of the range.
        from: u16,
        /// Last port of the range.
        to: u16,
    },
    /// The lowest free port in `from..=to`.
    Any {
        /// First port of the range.
        from: u16,
        /// Last port of the range.
        to: u16,
    },
}

/// Open a tunnel for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTunnel {
    /// HTTP or TCP.
    pub protocol: TunnelProtocol,
    /// Name (HTTP).
    pub name: Option<String>,
    /// Port (TCP).
    pub port: PortRequest,
    /// Agent transport.
    pub transport: TransportKind,
    /// Serving node.
    pub node: String,
    /// Agent-side address.
    pub local_addr: String,
    /// Join (or open) a pool as this member instead of taking the tunnel
    /// over; `None`: not a pool.
    pub pool: Option<JoinAs>,
}

/// An agent connection joining a pool tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinAs {
    /// The member's id (the edge's id of the agent connection).
    pub member: String,
    /// The agent's address as the edge saw it.
    pub peer: String,
    /// The access rules it asked for (`Access::digest`).
    pub rules: String,
}

/// Usage figures a key's grant is checked against (`Key::may_carry`), read
/// from the usage projection: at an open, and in every window of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenUsage {
    /// Bytes the tenant used this calendar month.
    pub tenant_month_bytes: u64,
    /// Bytes through the key since its counters were reset.
    pub key_bytes: u64,
}

/// Add a custom domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddDomain {
    /// Host name.
    pub host: String,
    /// How long the claim may stay pending, ms (lapsed claims neither hold
    /// their host nor count against the plan's pending cap).
    pub claim_ttl_ms: u64,
}
