//! Agents in the simulated world: real edge sessions over the in-memory
//! transport (yamux over a duplex pipe), with connects, hellos, drops and
//! reconnects that take a tunnel over.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beamd_events::vocabulary::{TransportKind, TunnelProtocol};
use beamd_simulations::Violation;
use beamd_transports::{
    Connection, Faulty, FaultyConnection, Listener, MemoryTransport, MuxConnection, Transport,
};

use super::public::{self, Carried};
use crate::edge::{run_session, EdgeContext};
use crate::protocol::{
    read_frame, write_frame, AgentFrame, EdgeFrame, Hello, Token, TunnelRequest, PROTOCOL_VERSION,
};

/// The node agents' sessions run on.
pub(super) const NODE: &str = "node_sim";

/// Where the simulated edge listens (an address of the in-memory transport only).
const EDGE: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    7000,
);

/// The agents' transport: in memory, with the link faults the seed asks for.
pub(super) type SimTransport = Faulty<MemoryTransport>;

/// A connected agent.
pub(super) struct SimAgent {
    /// Its connection (closing it ends the session).
    pub conn: Arc<FaultyConnection<MuxConnection>>,
    /// The tunnel the edge assigned.
    pub tunnel: String,
    /// The tunnel's public host.
    pub host: String,
}

/// Listens on the in-memory transport and runs one edge session per connection.
pub(super) async fn listen(
    transport: &SimTransport,
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
/// tunnel, or the edge's refusal as text (or how the connection was cut,
/// when the link `cuts`). The agent's service counts the bytes it carries
/// into `carried` (one counter per tunnel id).
pub(super) async fn connect(
    transport: &SimTransport,
    token: String,
    name: String,
    cuts: bool,
    carried: impl FnOnce(&str) -> Arc<Carried>,
) -> Result<Result<SimAgent, String>, Violation> {
    let harness = |e: &dyn std::fmt::Display| Violation::new("agent sessions work", e.to_string());
    let conn = Arc::new(transport.connect(EDGE).await.map_err(|e| harness(&e))?);
    let exchange = async {
        let mut control = conn.open_stream().await.map_err(|e| e.to_string())?;
        write_frame(&mut control, &hello(token, name))
            .await
            .map_err(|e| e.to_string())?;
        let answer = read_frame::<EdgeFrame>(&mut control)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((control, answer))
    };
    let (control, answer) = match tokio::time::timeout(Duration::from_secs(30), exchange).await {
        Err(_) => return Err(harness(&"no answer to the hello within 30 s")),
        Ok(Ok(done)) => done,
        // A link that cuts connections may cut this one during the hello.
        Ok(Err(e)) if cuts => return Ok(Err(format!("the connection was cut: {e}"))),
        Ok(Err(e)) => return Err(harness(&e)),
    };
    match answer {
        EdgeFrame::Welcome { tunnels, .. } => {
            let assigned = tunnels
                .first()
                .ok_or_else(|| harness(&"a welcome without tunnels"))?;
            let (tunnel, host) = (assigned.id.clone(), host_of(&assigned.public));
            tokio::spawn(public::serve(conn.clone(), carried(&tunnel)));
            // The control stream lives as long as the connection: heartbeats are
            // not sent, so a session left alone ends after the edge's silence timeout.
            tokio::spawn(async move {
                let mut control = control;
                while read_frame::<EdgeFrame>(&mut control).await.is_ok() {}
            });
            Ok(Ok(SimAgent { conn, tunnel, host }))
        }
        EdgeFrame::Error(e) => {
            conn.close();
            Ok(Err(format!("{}: {}", e.code, e.message)))
        }
        other => Err(harness(&format!("{other:?} before the welcome"))),
    }
}

fn hello(token: String, name: String) -> AgentFrame {
    AgentFrame::Hello(Hello {
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
            inspect: None,
            upstream: Default::default(),
            tag: None,
            proxy_protocol: None,
            pool: false,
            sign_in: None,
        }],
        udp_datagrams: true,
    })
}

/// The host of a public URL (`http://HOST[:PORT][/…]`).
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority)
        .to_string()
}
