//! The upstream side of a proxied HTTP request: an HTTP/1 connection
//! through the tunnel to the agent's service, kept alive per public
//! connection, over a stream that counts the bytes crossing it into the
//! tunnel's meter.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use beamd_transports::ListenerKind;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::capture::CountingBody;
use crate::actors::Core;
use crate::edge::conn_cap::TenantSlot;
use crate::edge::context::{AgentStream, EdgeContext, LoadGuard, Route};
use crate::edge::meter::Meter;
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

    fn is_ready(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(s) => s.is_ready(),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }
}

/// A kept-alive HTTP connection through the tunnel, for one public
/// connection: to the member of the tunnel it was opened to.
pub(super) struct Upstream {
    pub route: Route,
    pub sender: Sender<UpBody>,
}

/// Where a public connection keeps its upstreams between requests: its
/// HTTP/1.1 connections to the service (several when the public client
/// multiplexes requests over HTTP/2), or the one h2c connection they share.
pub(super) type Slot = Arc<Mutex<Vec<Upstream>>>;

/// HTTP/1.1 upstreams one public connection keeps, at most (the oldest go).
const KEPT: usize = 16;

fn lock(slot: &Slot) -> MutexGuard<'_, Vec<Upstream>> {
    // Only whole values are stored; a poisoned slot is still consistent.
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps `sender` on the public connection for its next requests.
pub(super) fn keep(slot: &Slot, route: &Route, sender: Sender<UpBody>) {
    let mut kept = lock(slot);
    if kept.len() >= KEPT {
        kept.remove(0);
    }
    kept.push(Upstream {
        route: route.clone(),
        sender,
    });
}

/// A kept upstream to try for a request, with the route it goes to: the
/// shared h2c connection; else, for an HTTP/2 client (`multiplexed`), an
/// idle HTTP/1.1 connection (one still answering another stream is no use);
/// for an HTTP/1.1 client, its connection, whose last answer may still be
/// finishing. Only upstreams to a member that still serves `route`'s
/// tunnel are kept: a public connection stays with its pool member.
fn kept(slot: &Slot, route: &Route, multiplexed: bool) -> Option<(Sender<UpBody>, Route)> {
    let mut kept = lock(slot);
    kept.retain(|u| {
        u.route.tunnel == route.tunnel && u.route.load.serving() && !u.sender.is_closed()
    });
    if let Some(h2) = kept.iter().find_map(|u| match &u.sender {
        Sender::H2(s) => Some((s.clone(), u.route.clone())),
        Sender::H1(_) => None,
    }) {
        return Some((Sender::H2(h2.0), h2.1));
    }
    let at = match multiplexed {
        true => kept.iter().rposition(|u| u.sender.is_ready())?,
        false => kept.len().checked_sub(1)?,
    };
    let u = kept.swap_remove(at);
    Some((u.sender, u.route))
}

/// Why no upstream was had.
pub(super) enum Refused {
    /// The tunnel's tenant holds its cap of open connections.
    AtCap,
    /// The stream or the HTTP handshake over it failed.
    Failed(String),
}

/// A kept-alive upstream of the public connection if one still goes to a
/// member serving this route's tunnel and is usable, else a new stream to
/// the agent, which takes one of the tenant's connection slots while it
/// lasts; with the route it goes to. When a pool member's stream cannot be
/// opened (nothing of the request was sent yet), the next member is tried.
pub(super) async fn upstream(
    ctx: &EdgeContext,
    route: &Route,
    peer: SocketAddr,
    slot: &Slot,
    multiplexed: bool,
) -> Result<(Sender<UpBody>, Route), Refused> {
    if let Some((mut sender, to)) = kept(slot, route, multiplexed) {
        if sender.ready().await {
            return Ok((sender, to));
        }
    }
    let (mut route, mut failed) = (route.clone(), Vec::new());
    loop {
        match connect(ctx, &route, peer, ListenerKind::PublicHttp).await {
            Ok(sender) => {
                if let Sender::H2(h2) = &sender {
                    // HTTP/2 multiplexes: the connection stays for the next requests too.
                    keep(slot, &route, Sender::H2(h2.clone()));
                }
                return Ok((sender, route));
            }
            Err(Refused::Failed(e)) if route.member.is_some() => {
                failed.push(route.load.clone());
                let Some(next) = ctx.pick(&route.tunnel, &failed) else {
                    return Err(Refused::Failed(e));
                };
                route = Route {
                    custom: route.custom,
                    ..next
                };
            }
            Err(e) => return Err(e),
        }
    }
}

/// A new connection through the tunnel to the agent's service, in the
/// protocol it speaks, holding one of the tenant's connection slots while
/// it lasts; a refusal at the cap is counted on `on`, where the request
/// came in.
pub(super) async fn connect<B>(
    ctx: &EdgeContext,
    route: &Route,
    peer: SocketAddr,
    on: ListenerKind,
) -> Result<Sender<B>, Refused>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tenant_slot = ctx
        .settings
        .connections
        .enter(&route.tenant, on)
        .ok_or(Refused::AtCap)?;
    let load = route.load.enter();
    let stream = open(route, peer).await.map_err(Refused::Failed)?;
    let io = TokioIo::new(Counted {
        inner: stream,
        meter: route.meter.clone(),
        core: ctx.core.clone(),
        tunnel: route.tunnel.clone(),
        _slot: tenant_slot,
        _load: load,
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
        public: None,
        flow: None,
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
    /// Counts the stream in its member's load while it is open.
    _load: LoadGuard,
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
