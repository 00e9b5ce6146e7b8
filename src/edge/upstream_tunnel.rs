//! The upstream side of a proxied HTTP request: an HTTP/1 connection
//! through the tunnel to the agent's service, kept alive per public
//! connection, over a stream that counts the bytes crossing it into the
//! tunnel's meter.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::capture::CountingBody;
use super::conn_cap::TenantSlot;
use super::context::{AgentStream, EdgeContext, Route, StreamOpener};
use super::meter::Meter;
use crate::actors::Core;
use crate::protocol::{write_frame, StreamHeader};

/// The request body sent through the tunnel.
pub(super) type UpBody = CountingBody<Incoming>;

/// A kept-alive HTTP connection through the tunnel, for one public connection.
pub(super) struct Upstream {
    pub opener: Arc<dyn StreamOpener>,
    pub sender: SendRequest<UpBody>,
}

/// Where a public connection keeps its upstream between requests.
pub(super) type Slot = Arc<Mutex<Option<Upstream>>>;

pub(super) fn lock(slot: &Slot) -> MutexGuard<'_, Option<Upstream>> {
    // Only whole values are stored; a poisoned slot is still consistent.
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why no upstream was had.
pub(super) enum Refused {
    /// The tunnel's tenant holds its cap of open connections.
    AtCap,
    /// The stream or the HTTP handshake over it failed.
    Failed(String),
}

/// The public connection's kept-alive upstream if it still goes to this
/// route's agent and is usable, else a new stream to the agent, which
/// takes one of the tenant's connection slots while it lasts.
pub(super) async fn upstream(
    ctx: &EdgeContext,
    route: &Route,
    peer: SocketAddr,
    slot: &Slot,
) -> Result<SendRequest<UpBody>, Refused> {
    let kept = lock(slot).take();
    if let Some(Upstream { opener, mut sender }) = kept {
        let same = std::ptr::addr_eq(Arc::as_ptr(&opener), Arc::as_ptr(&route.opener));
        if same && sender.ready().await.is_ok() {
            return Ok(sender);
        }
    }
    connect(ctx, route, peer).await
}

/// A new HTTP/1 connection through the tunnel to the agent's service,
/// holding one of the tenant's connection slots while it lasts.
pub(super) async fn connect<B>(
    ctx: &EdgeContext,
    route: &Route,
    peer: SocketAddr,
) -> Result<SendRequest<B>, Refused>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tenant_slot = ctx
        .settings
        .connections
        .enter(&route.tenant)
        .ok_or(Refused::AtCap)?;
    let stream = open(route, peer).await.map_err(Refused::Failed)?;
    let io = TokioIo::new(Counted {
        inner: stream,
        meter: route.meter.clone(),
        core: ctx.core.clone(),
        tunnel: route.tunnel.clone(),
        _slot: tenant_slot,
    });
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| Refused::Failed(e.to_string()))?;
    tokio::spawn(conn.with_upgrades());
    Ok(sender)
}

async fn open(route: &Route, peer: SocketAddr) -> Result<Box<dyn AgentStream>, String> {
    let mut stream = route.opener.open().await.map_err(|e| e.to_string())?;
    let header = StreamHeader {
        tunnel: route.tunnel.clone(),
        peer: peer.to_string(),
    };
    write_frame(&mut stream, &header)
        .await
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// A stream to the agent that counts the bytes crossing it.
struct Counted {
    inner: Box<dyn AgentStream>,
    meter: Arc<Meter>,
    core: Arc<Core>,
    tunnel: String,
    _slot: TenantSlot,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.meter.record_late(&self.core, &self.tunnel);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.meter.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &polled {
            self.meter.bytes_in.fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
