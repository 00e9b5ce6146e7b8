//! Replaying a captured request through its tunnel: sent again, as captured
//! or edited, to the agent's service over a new stream of the same tunnel,
//! counted into its meter like public traffic, and captured (in full when
//! the edge keeps bodies) as a new request that points at its original:
//! the edge's side of `inspector::replay::Replayer`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use beamd_events::vocabulary::RequestCaptured;
use beamd_transports::ListenerKind;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST, USER_AGENT};
use hyper::{Method, Request};
use tokio::time::Instant;

use super::capture::{masked_headers, request_id, CountingBody, Pending};
use super::upstream_tunnel::{connect, Refused};
use crate::domain::TunnelCommand;
use crate::edge::context::{EdgeContext, Route};
use crate::inspector::replay::{ReplayError, Replayed, Replayer, Replaying, Resend};
use crate::inspector::{is_masked, DEFAULT_BODY_LIMIT};

/// Headers that belong to one connection, never resent.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Sends `resend` through `tunnel` and reads the answer (its first
/// `body limit` bytes kept); the replay is captured like public traffic.
async fn replay(ctx: &EdgeContext, tunnel: &str, resend: Resend) -> Result<Replayed, ReplayError> {
    let route = ctx.tunnel_route(tunnel).ok_or_else(|| {
        ReplayError::NotHere(format!(
            "no agent serves {tunnel} on this edge ({}): it is offline or served by another node",
            ctx.node
        ))
    })?;
    let request = build(&resend)?;
    let peer = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut sender = connect::<CountingBody<Full<Bytes>>>(ctx, &route, peer, ListenerKind::Api)
        .await
        .map_err(|e| match e {
            Refused::AtCap => ReplayError::Busy(format!(
                "the tunnel's tenant has {} connections open, its limit; try again shortly",
                ctx.settings.connections.max()
            )),
            Refused::Failed(e) => ReplayError::Failed(format!("the tunnel is unreachable: {e}")),
        })?;
    let capturing = ctx.settings.capture && ctx.settings.disk.short().is_none();
    let full = (ctx.settings.full_capture.as_ref())
        .filter(|_| capturing)
        .map(|f| f.start(request.headers()));
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut capture = RequestCaptured {
        method: resend.method.clone(),
        path: resend.path.clone(),
        ip: peer.ip().to_string(),
        user_agent: header(USER_AGENT),
        proto: "HTTP/1.1".into(),
        host: crate::domain::request_host(&header(HOST)),
        started_at: ctx.core.now_ms(),
        id: request_id(),
        replay_of_id: Some(resend.replay_of.clone()),
        ..RequestCaptured::default()
    };
    let id = capturing.then(|| capture.id.clone());
    route.meter.requests.fetch_add(1, Ordering::Relaxed);
    let (bytes_in, bytes_out) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let request = request.map(|b| {
        let counted = CountingBody::new(b, bytes_in.clone(), None);
        match &full {
            Some(f) => f.tee(counted),
            None => counted,
        }
    });
    let started = Instant::now();
    let timeout = ctx.settings.upstream_timeout.get();
    let response = match tokio::time::timeout(timeout, sender.send_request(request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(ReplayError::Failed(format!("the service failed: {e}"))),
        Err(_) => {
            return Err(ReplayError::Failed(format!(
                "the service did not answer within {timeout:?}"
            )))
        }
    };
    let status = response.status().as_u16();
    capture.status = status;
    let headers = masked_headers(response.headers(), &[]);
    let pending = Pending {
        capture,
        bytes_in,
        bytes_out,
        started,
        full,
    };
    let (parts, body) = response.into_parts();
    let mut body = pending.respond(body, &parts.headers, ctx, &route, capturing);
    let limit = (ctx.settings.full_capture.as_ref()).map_or(DEFAULT_BODY_LIMIT, |f| f.body_limit);
    let (kept, len) = tokio::time::timeout(timeout, read_prefix(&mut body, limit))
        .await
        .map_err(|_| {
            ReplayError::Failed(format!("the response body did not end within {timeout:?}"))
        })??;
    // The capture is handed to the meter when the body is dropped; record it now.
    drop(body);
    record_captures(ctx, &route).await;
    Ok(Replayed {
        status,
        headers,
        truncated: len > kept.len() as u64,
        body: kept,
        len,
        id,
    })
}

impl Replayer for EdgeContext {
    fn replay<'a>(&'a self, tunnel: &'a str, resend: Resend) -> Replaying<'a> {
        Box::pin(replay(self, tunnel, resend))
    }
}

/// Reads the whole body, keeping its first `limit` bytes.
async fn read_prefix<B>(body: &mut B, limit: usize) -> Result<(Vec<u8>, u64), ReplayError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let (mut kept, mut len) = (Vec::new(), 0u64);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReplayError::Failed(format!("the response broke: {e}")))?;
        if let Some(data) = frame.data_ref() {
            len += data.len() as u64;
            let room = limit.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..room.min(data.len())]);
        }
    }
    Ok((kept, len))
}

/// Records the tunnel's waiting captures now rather than at the window's end.
async fn record_captures(ctx: &EdgeContext, route: &Route) {
    let captured = route.meter.take_captured();
    if captured.is_empty() {
        return;
    }
    let cmd = TunnelCommand::CaptureRequests(captured.into());
    if let Err(e) = ctx.core.tunnel_command(&route.tunnel, cmd).await {
        tracing::warn!(tunnel = %route.tunnel, "captured requests not recorded: {e}");
    }
}

/// The HTTP request of `resend`: hop-by-hop and masked headers left out,
/// the body's length set.
fn build(resend: &Resend) -> Result<Request<Full<Bytes>>, ReplayError> {
    let invalid = |what: String| ReplayError::Invalid(what);
    let method = Method::from_bytes(resend.method.as_bytes())
        .map_err(|_| invalid(format!("{:?} is not an HTTP method", resend.method)))?;
    if !resend.path.starts_with('/') {
        return Err(invalid(format!(
            "the path {:?} must start with /",
            resend.path
        )));
    }
    let mut request = Request::builder()
        .method(method)
        .uri(resend.path.as_str())
        .body(Full::new(resend.body.clone()))
        .map_err(|e| invalid(format!("the path {:?}: {e}", resend.path)))?;
    let headers = request.headers_mut();
    for (name, value) in &resend.headers {
        let lower = name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str()) || is_masked(value) {
            continue;
        }
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("{name:?} is not a header name")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| invalid(format!("the value of {name} is not a header value")))?;
        headers.append(name, value);
    }
    if !resend.body.is_empty() || matches!(resend.method.as_str(), "POST" | "PUT" | "PATCH") {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(resend.body.len()));
    }
    Ok(request)
}
