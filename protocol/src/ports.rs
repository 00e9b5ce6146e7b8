//! Where an edge serves agents unless told otherwise: one well-known port
//! per transport, so that an agent given only a host knows where to dial.

use std::net::SocketAddr;

use beamd_events::vocabulary::TransportKind;

/// The port QUIC and TCP agents connect to by default.
pub const AGENT_PORT: u16 = 7000;
/// The port WebSocket agents connect to by default.
pub const AGENT_WS_PORT: u16 = 7080;

/// Where an edge listens for agents over `kind` unless told otherwise.
pub fn default_agent_listen(kind: TransportKind) -> SocketAddr {
    let port = match kind {
        TransportKind::Quic | TransportKind::Tcp => AGENT_PORT,
        TransportKind::Ws => AGENT_WS_PORT,
    };
    SocketAddr::from(([0, 0, 0, 0], port))
}
