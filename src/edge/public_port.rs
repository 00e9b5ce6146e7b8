//! Public TCP ingress: choosing and binding a tunnel's public port, and
//! forwarding each public connection to the agent as one stream, counted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beamd_events::vocabulary::TunnelProtocol;
use beamd_transports::ListenerKind;
use tokio::net::TcpListener;

use super::conn_cap::TenantConnections;
use super::context::{EdgeContext, SessionInfo};
use super::error_frame::{error, from_core};
use super::meter::Meter;
use crate::actors::{Core, CoreError};
use crate::domain::{Access, DomainError, Key, OpenTunnel, PortRequest, Tunnel};
use crate::protocol::{ErrorFrame, StreamHeader, TunnelRequest};

fn open_request(
    ctx: &EdgeContext,
    request: &TunnelRequest,
    session: &SessionInfo,
    port: u16,
) -> OpenTunnel {
    OpenTunnel {
        protocol: TunnelProtocol::Tcp,
        name: None,
        port: PortRequest::Exact {
            port,
            from: ctx.settings.tcp_ports.0,
            to: ctx.settings.tcp_ports.1,
        },
        transport: session.transport,
        node: ctx.node.clone(),
        local_addr: request.local_addr.clone(),
        pool: session.joining(request, &Access::default()),
    }
}

/// Opens (or takes back, or joins the pool of) the tunnel on a port the
/// agent asked for, and binds it; a pool member whose port another member
/// of this edge serves already binds nothing.
pub(super) async fn open_exact(
    ctx: &EdgeContext,
    key: &Key,
    request: &TunnelRequest,
    session: &SessionInfo,
    port: u16,
) -> Result<(Tunnel, Option<TcpListener>), ErrorFrame> {
    let tunnel = ctx
        .core
        .open_tunnel(&key.id, open_request(ctx, request, session, port))
        .await
        .map_err(from_core)?;
    if tunnel.pool && ctx.port_served(&tunnel.id) {
        return Ok((tunnel, None));
    }
    // A reconnect takes the port over from the session that held it.
    ctx.release_port(&tunnel.id);
    match bind(ctx, port).await {
        Ok(listener) => Ok((tunnel, Some(listener))),
        // Another member of the pool bound it meanwhile.
        Err(_) if tunnel.pool && ctx.port_served(&tunnel.id) => Ok((tunnel, None)),
        Err(e) => {
            ctx.abandon(&tunnel, &session.id, "port unavailable").await;
            Err(error(
                "port_unavailable",
                format!("cannot listen on port {port}: {e}"),
            ))
        }
    }
}

/// Finds a port that is free both in the directory and on this host, binds it,
/// then records the tunnel on it; a port taken meanwhile is skipped.
pub(super) async fn open_any(
    ctx: &EdgeContext,
    key: &Key,
    request: &TunnelRequest,
    session: &SessionInfo,
) -> Result<(Tunnel, Option<TcpListener>), ErrorFrame> {
    let (from, to) = ctx.settings.tcp_ports;
    let held = ctx.core.directory().await.map_err(from_core)?.ports;
    for port in (from..=to).filter(|p| !held.contains_key(p)) {
        let Ok(listener) =
            beamd_transports::bind_tcp(SocketAddr::new(ctx.settings.public_host, port))
        else {
            continue;
        };
        match ctx
            .core
            .open_tunnel(&key.id, open_request(ctx, request, session, port))
            .await
        {
            Ok(tunnel) => return Ok((tunnel, Some(listener))),
            Err(CoreError::Domain(DomainError::Conflict(_))) => continue,
            Err(e) => return Err(from_core(e)),
        }
    }
    Err(error(
        "conflict",
        format!("no free public port in {from}-{to}"),
    ))
}

/// Binds a public port, retrying briefly while a previous session lets go of it.
async fn bind(ctx: &EdgeContext, port: u16) -> std::io::Result<TcpListener> {
    let addr = SocketAddr::new(ctx.settings.public_host, port);
    let mut last = None;
    for _ in 0..20 {
        match beamd_transports::bind_tcp(addr) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()))
}

/// What a tunnel's public port serves, and counts into.
pub(super) struct Public {
    pub tunnel: String,
    pub tenant: String,
    pub meter: Arc<Meter>,
    pub core: Arc<Core>,
    pub connections: Arc<TenantConnections>,
}

/// Accepts public connections on a tunnel's port and forwards each as one
/// stream to the session serving it (for a pool: the member with the fewest
/// open connections; when a member's stream cannot be opened, the next). A
/// connection past the file-descriptor watermark, or past the tenant's cap
/// on open connections, is closed at once.
pub(super) async fn accept_public(
    listener: TcpListener,
    ctx: Arc<EdgeContext>,
    tunnel: String,
    tenant: String,
) {
    let tunnel: Arc<str> = tunnel.into();
    loop {
        let (socket, peer) = beamd_transports::accept_tcp(&listener).await;
        if beamd_transports::over_fd_watermark(&socket, ListenerKind::PublicTcp) {
            continue;
        }
        let connections = &ctx.settings.connections;
        let Some(slot) = connections.enter(&tenant, ListenerKind::PublicTcp) else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let (ctx, tunnel) = (ctx.clone(), tunnel.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let header = StreamHeader {
                tunnel: tunnel.to_string(),
                peer: peer.to_string(),
                public: socket.local_addr().ok().map(|a| a.to_string()),
                flow: None,
            };
            let (mut socket, mut failed) = (socket, Vec::new());
            while let Some(route) = ctx.pick(&tunnel, &failed) {
                let _load = route.load.enter();
                match route
                    .opener
                    .join_socket(socket, &header, &route.meter)
                    .await
                {
                    Ok(()) => {
                        route.meter.record_late(&ctx.core, &tunnel);
                        return;
                    }
                    Err(back) => {
                        socket = back;
                        failed.push(route.load.clone());
                    }
                }
            }
        });
    }
}
