//! Public TCP ingress: choosing and binding a tunnel's public port, and
//! forwarding each public connection to the agent as one stream, counted.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use beamd_events::vocabulary::{TransportKind, TunnelProtocol};
use beamd_transports::{Connection, ListenerKind};
use tokio::net::TcpListener;

use super::conn_cap::TenantConnections;
use super::context::EdgeContext;
use super::error_frame::{error, from_core};
use super::meter::Meter;
use crate::actors::{Core, CoreError};
use crate::domain::{DomainError, Key, OpenTunnel, PortRequest, Tunnel, TunnelCommand};
use crate::protocol::{write_frame, ErrorFrame, StreamHeader, TunnelRequest};
use crate::pump;

fn open_request(
    ctx: &EdgeContext,
    request: &TunnelRequest,
    transport: TransportKind,
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
        transport,
        node: ctx.node.clone(),
        local_addr: request.local_addr.clone(),
        pool: None,
    }
}

/// Opens (or takes back) the tunnel on a port the agent asked for, and binds it.
pub(super) async fn open_exact(
    ctx: &EdgeContext,
    key: &Key,
    request: &TunnelRequest,
    transport: TransportKind,
    port: u16,
) -> Result<(Tunnel, TcpListener), ErrorFrame> {
    let tunnel = ctx
        .core
        .open_tunnel(&key.id, open_request(ctx, request, transport, port))
        .await
        .map_err(from_core)?;
    // A reconnect takes the port over from the session that held it.
    ctx.release_port(&tunnel.id);
    match bind(ctx, port).await {
        Ok(listener) => Ok((tunnel, listener)),
        Err(e) => {
            let offline = TunnelCommand::GoOffline {
                reason: "port unavailable".into(),
                node: Some(ctx.node.clone()),
            };
            let _ = ctx.core.tunnel_command(&tunnel.id, offline).await;
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
    transport: TransportKind,
) -> Result<(Tunnel, TcpListener), ErrorFrame> {
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
            .open_tunnel(&key.id, open_request(ctx, request, transport, port))
            .await
        {
            Ok(tunnel) => return Ok((tunnel, listener)),
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
/// stream. A connection past the file-descriptor watermark, or past the
/// tenant's cap on open connections, is closed at once.
pub(super) async fn accept_public<C: Connection>(
    listener: TcpListener,
    conn: Arc<C>,
    public: Public,
) {
    let public = Arc::new(public);
    loop {
        let (socket, peer) = beamd_transports::accept_tcp(&listener).await;
        if beamd_transports::over_fd_watermark(&socket, ListenerKind::PublicTcp) {
            continue;
        }
        let Some(slot) = public
            .connections
            .enter(&public.tenant, ListenerKind::PublicTcp)
        else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let (conn, public) = (conn.clone(), public.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(mut stream) = conn.open_stream().await else {
                return;
            };
            let header = StreamHeader {
                tunnel: public.tunnel.clone(),
                peer: peer.to_string(),
                public: socket.local_addr().ok().map(|a| a.to_string()),
            };
            if write_frame(&mut stream, &header).await.is_err() {
                return;
            }
            let meter = &public.meter;
            meter.connections.fetch_add(1, Ordering::Relaxed);
            meter.active.fetch_add(1, Ordering::Relaxed);
            pump::join_socket(
                socket,
                stream,
                Some(&meter.bytes_in),
                Some(&meter.bytes_out),
            )
            .await;
            meter.active.fetch_sub(1, Ordering::Relaxed);
            meter.record_late(&public.core, &public.tunnel);
        });
    }
}
