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

/// An HTTP connection through the tunnel to the service: HTTP/1.1 (one
/// request at a time) or h2c (many at once, per the tunnel's `--upstream`).
pub(super) enum Sender<B> {
    /// HTTP/1.1.
    H1(SendRequest<B>),
    /// HTTP/2 with prior knowledge.
    H2(hyper::client::conn::http2::SendRequest<B>),
}

impl<B> Sender<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Sends one request (HTTP/2 when the service speaks h2c).
    pub(super) async fn send_request(
        &mut self,
        mut req: hyper::Request<B>,
    ) -> hyper::Result<hyper::Response<Incoming>> {
        match self {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => {
                super::h2::to_h2c(&mut req);
                s.send_request(req).await
            }
        }
    }

    async fn ready(&mut self) -> bool {
        match self {
            Sender::H1(s) => s.ready().await.is_ok(),
            Sender::H2(s) => s.ready().await.is_ok(),
        }
    }
}

/// A kept-alive HTTP connection through the tunnel, for one public connection.
pub(super) struct Upstream {
    pub opener: Arc<dyn StreamOpener>,
    pub sender: Sender<UpBody>,
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
) -> Result<Sender<UpBody>, Refused> {
    let kept = lock(slot).take();
    if let Some(Upstream { opener, mut sender }) = kept {
        let same = std::ptr::addr_eq(Arc::as_ptr(&opener), Arc::as_ptr(&route.opener));
        if same && sender.ready().await {
            if let Sender::H2(h2) = &sender {
                // HTTP/2 multiplexes: the connection stays for the next requests too.
                let shared = Sender::H2(h2.clone());
                *lock(slot) = Some(Upstream { opener, sender });
                return Ok(shared);
            }
            return Ok(sender);
        }
    }
    let sender = connect(ctx, route, peer).await?;
    if let Sender::H2(h2) = &sender {
        *lock(slot) = Some(Upstream {
            opener: route.opener.clone(),
            sender: Sender::H2(h2.clone()),
        });
    }
    Ok(sender)
}

/// A new connection through the tunnel to the agent's service, in the
/// protocol it speaks, holding one of the tenant's connection slots while
/// it lasts.
pub(super) async fn connect<B>(
    ctx: &EdgeContext,
    route: &Route,
    peer: SocketAddr,
) -> Result<Sender<B>, Refused>
where
    B: hyper::body::Body + Unpin + Send + 'static,
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
    let failed = |e: hyper::Error| Refused::Failed(e.to_string());
    if route.h2c {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .map_err(failed)?;
        tokio::spawn(conn);
        return Ok(Sender::H2(sender));
    }
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(failed)?;
    tokio::spawn(conn.with_upgrades());
    Ok(Sender::H1(sender))
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
