//! Agents in the simulated world: real edge sessions over the in-memory
//! transport (yamux over a duplex pipe), with connects, hellos, drops and
//! reconnects that take a tunnel over.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beamd_events::vocabulary::{TransportKind, TunnelProtocol};
use beamd_simulations::Violation;
use beamd_transports::{Connection, Listener, MemoryTransport, MuxConnection, Transport};

use crate::edge::{run_session, EdgeContext};
use crate::protocol::{
    read_frame, write_frame, AgentFrame, EdgeFrame, Hello, Token, TunnelRequest, PROTOCOL_VERSION,
};

/// Where the simulated edge listens (an address of the in-memory transport only).
const EDGE: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    7000,
);

/// A connected agent.
pub(super) struct SimAgent {
    /// Its connection (dropping or closing it ends the session).
    pub conn: MuxConnection,
    /// The tunnel the edge assigned.
    pub tunnel: String,
}

/// Listens on the in-memory transport and runs one edge session per connection.
pub(super) async fn listen(
    transport: &MemoryTransport,
    ctx: Arc<EdgeContext>,
) -> Result<(), Violation> {
    let mut listener = transport
        .listen(EDGE)
        .await
        .map_err(|e| Violation::new("harness", e.to_string()))?;
    tokio::spawn(async move {
        while let Ok(conn) = listener.accept().await {
            tokio::spawn(run_session(conn, TransportKind::Tcp, ctx.clone()));
        }
    });
    Ok(())
}

/// Connects an agent with `token` asking for the HTTP tunnel `name`; its
/// tunnel, or the edge's refusal as text.
pub(super) async fn connect(
    transport: &MemoryTransport,
    token: String,
    name: String,
) -> Result<Result<SimAgent, String>, Violation> {
    let harness = |e: &dyn std::fmt::Display| Violation::new("agent sessions work", e.to_string());
    let conn = transport.connect(EDGE).await.map_err(|e| harness(&e))?;
    let mut control = conn.open_stream().await.map_err(|e| harness(&e))?;
    let hello = AgentFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        token: Token(token),
        tunnels: vec![TunnelRequest {
            protocol: TunnelProtocol::Http,
            local_addr: "127.0.0.1:1".into(),
            port: None,
            name: Some(name),
            domain: None,
            basic_auth: None,
            allow: Vec::new(),
        }],
    });
    write_frame(&mut control, &hello)
        .await
        .map_err(|e| harness(&e))?;
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        read_frame::<EdgeFrame>(&mut control),
    )
    .await
    .map_err(|_| harness(&"no answer to the hello within 30 s"))?
    .map_err(|e| harness(&e))?;
    match answer {
        EdgeFrame::Welcome { tunnels, .. } => {
            let tunnel = tunnels
                .first()
                .map(|t| t.id.clone())
                .ok_or_else(|| harness(&"a welcome without tunnels"))?;
            // The control stream lives as long as the connection: heartbeats are
            // not sent, so a session left alone ends after the edge's silence timeout.
            tokio::spawn(async move {
                let mut control = control;
                while read_frame::<EdgeFrame>(&mut control).await.is_ok() {}
            });
            Ok(Ok(SimAgent { conn, tunnel }))
        }
        EdgeFrame::Error(e) => {
            conn.close();
            Ok(Err(format!("{}: {}", e.code, e.message)))
        }
        EdgeFrame::Heartbeat => Err(harness(&"a heartbeat before the welcome")),
    }
}
