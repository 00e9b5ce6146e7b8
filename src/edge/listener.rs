//! One listener per transport: accepts agent connections and runs a session for each.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use beamd_events::vocabulary::TransportKind;
use beamd_transports::tls::EdgeIdentity;
use beamd_transports::{Listener, QuicTransport, TcpTransport, Transport, WsTransport};
use tokio::task::JoinHandle;

use super::context::EdgeContext;
use super::session;

/// Binds `kind` on `addr` and serves agents until the edge stops.
pub async fn listen(
    kind: TransportKind,
    addr: SocketAddr,
    identity: &EdgeIdentity,
    ctx: Arc<EdgeContext>,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    match kind {
        TransportKind::Quic => {
            serve(QuicTransport::new(Some(identity), None)?, kind, addr, ctx).await
        }
        TransportKind::Ws => serve(WsTransport, kind, addr, ctx).await,
        TransportKind::Tcp => serve(TcpTransport, kind, addr, ctx).await,
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
        let mut shutdown = ctx.shutdown.clone();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => { tokio::spawn(session::run(conn, kind, ctx.clone())); }
                    Err(_) => break,
                },
                _ = shutdown.changed() => break,
            }
        }
    });
    Ok((local, handle))
}
