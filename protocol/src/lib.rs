//! The agent ↔ edge protocol: the one thing edge and agent share. A control
//! stream carries length-prefixed rmp-serde frames; every other stream is one
//! public connection, opened by the edge with a `StreamHeader`.

mod codec;
mod frames;
mod ports;
mod share_link;

pub use codec::{read_frame, write_frame, ProtocolError, MAX_FRAME};
pub use frames::{
    AgentFrame, AssignedTunnel, EdgeFrame, ErrorFrame, Hello, ProxyProtocol, RefusedTunnel,
    SignInRequest, StreamHeader, Token, TunnelRequest, UpstreamProtocol, PROTOCOL_VERSION,
};
pub use ports::{default_agent_listen, AGENT_PORT, AGENT_WS_PORT};
pub use share_link::ShareLink;
