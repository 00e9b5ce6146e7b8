//! One listener per transport: accepts agent connections and runs a session for each.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use beamd_events::vocabulary::TransportKind;
use beamd_transports::tls::EdgeIdentity;
use beamd_transports::{Listener, QuicTransport, StreamTls, TcpTransport, Transport, WsTransport};
use tokio::task::JoinHandle;

use super::session;
use crate::edge::context::EdgeContext;

/// Binds `kind` on `addr` (TCP and WebSocket with TLS when `tls`) and serves agents until the edge stops.
pub async fn listen(
    kind: TransportKind,
    addr: SocketAddr,
    identity: &EdgeIdentity,
    tls: bool,
    ctx: Arc<EdgeContext>,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let stream_tls = || StreamTls::new(Some(identity), None);
    match (kind, tls) {
        (TransportKind::Quic, _) => {
            serve(QuicTransport::new(Some(identity), None)?, kind, addr, ctx).await
        }
        (TransportKind::Ws, false) => serve(WsTransport::plain(), kind, addr, ctx).await,
        (TransportKind::Ws, true) => {
            serve(WsTransport::with_tls(stream_tls()?), kind, addr, ctx).await
        }
        (TransportKind::Tcp, false) => serve(TcpTransport::plain(), kind, addr, ctx).await,
        (TransportKind::Tcp, true) => {
            serve(TcpTransport::with_tls(stream_tls()?), kind, addr, ctx).await
        }
    }
}

async fn serve<T: Transport>(
    transport: T,
    kind: TransportKind,
    addr: SocketAddr,
    ctx: Arc<EdgeContext>,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let mut listener = transport.listen(addr).await?;
    let local = listener.local_addr();
    let handle = tokio::spawn(async move {
        let shutdown = ctx.shutdown.clone();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => { tokio::spawn(session::run(conn, kind, ctx.clone())); }
                    Err(_) => break,
                },
                _ = shutdown.cancelled() => break,
            }
        }
    });
    Ok((local, handle))
}
