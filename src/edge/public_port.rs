//! Public TCP ingress: choosing and binding a tunnel's public port, and
//! forwarding each public connection to the agent as one stream, counted.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use beamd_events::vocabulary::{TransportKind, TunnelProtocol};
use beamd_transports::Connection;
use tokio::net::TcpListener;

use super::context::EdgeContext;
use super::meter::Meter;
use super::session::{error, from_core};
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
        port: PortRequest::Exact(port),
        transport,
        node: ctx.node.clone(),
        local_addr: request.local_addr.clone(),
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

/// Accepts public connections on a tunnel's port and forwards each as one stream.
pub(super) async fn accept_public<C: Connection>(
    listener: TcpListener,
    conn: Arc<C>,
    tunnel: String,
    meter: Arc<Meter>,
    core: Arc<Core>,
) {
    loop {
        let (public, peer) = beamd_transports::accept_tcp(&listener).await;
        let _ = public.set_nodelay(true);
        let (conn, tunnel, meter, core) =
            (conn.clone(), tunnel.clone(), meter.clone(), core.clone());
        tokio::spawn(async move {
            let Ok(mut stream) = conn.open_stream().await else {
                return;
            };
            let header = StreamHeader {
                tunnel: tunnel.clone(),
                peer: peer.to_string(),
            };
            if write_frame(&mut stream, &header).await.is_err() {
                return;
            }
            meter.connections.fetch_add(1, Ordering::Relaxed);
            meter.active.fetch_add(1, Ordering::Relaxed);
            pump::join(
                public,
                stream,
                Some(&meter.bytes_in),
                Some(&meter.bytes_out),
            )
            .await;
            meter.active.fetch_sub(1, Ordering::Relaxed);
            meter.record_late(&core, &tunnel);
        });
    }
}
