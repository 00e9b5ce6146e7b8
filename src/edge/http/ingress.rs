//! Public HTTP(S) ingress: a request for `NAME.<tunnel base>` or a verified
//! custom domain is checked against the tunnel's access rules, proxied
//! through its tunnel to the agent's local service, bodies streamed both
//! ways, and recorded as one `RequestCaptured`. A request the edge refuses
//! itself (the gateway, the access rules, no stream to the agent) is
//! recorded too, for the tunnel it was meant for. A tunnel behind sign-in
//! (OpenID Connect) passes only signed-in requests (see `sign_in`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beamd_events::vocabulary::{InspectMode, RequestCaptured};
use beamd_transports::ListenerKind;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::capture::{request_id, CountingBody, Pending};
use super::gateway::{self, Target};
use super::refusal::{drain, refuse};
use super::sign_in::{self, Gate};
use super::upstream_tunnel::{keep, upstream, Refused, Slot};
use crate::acme::Acme;
use crate::domain::Denied;
use crate::edge::context::{EdgeContext, Route};
use crate::metric_catalog;

/// The answer past the file-descriptor watermark.
const BUSY: &str = "the edge is at its connection capacity; try again shortly\n";

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Body = BoxBody<Bytes, hyper::Error>;

/// How the public HTTPS port gets its certificates.
#[derive(Clone)]
pub enum PublicTls {
    /// One certificate (`--tls-cert`).
    Fixed(TlsAcceptor),
    /// From an ACME CA for each host the edge routes; `fallback` for any
    /// other name (and while a host's certificate cannot be had).
    Acme {
        /// The client and its certificates.
        acme: Arc<Acme>,
        /// The configuration for every other name.
        fallback: Arc<rustls::ServerConfig>,
    },
}

/// How long a handshake waits for a routed host's first certificate.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(30);

/// Completes a public TLS handshake: with ACME, answers the CA's
/// TLS-ALPN-01 challenge for a name being ordered, and gives a host the
/// edge routes its own certificate (ordered now if it has none yet); any
/// other name gets the fallback, and never causes an order.
async fn handshake(
    socket: tokio::net::TcpStream,
    tls: &PublicTls,
    ctx: &EdgeContext,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let (acme, fallback) = match tls {
        PublicTls::Fixed(acceptor) => {
            return tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket))
                .await
                .ok()?
                .ok()
        }
        PublicTls::Acme { acme, fallback } => (acme, fallback),
    };
    let lazy = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), socket);
    let start = tokio::time::timeout(HANDSHAKE_TIMEOUT, lazy)
        .await
        .ok()?
        .ok()?;
    let hello = start.client_hello();
    let host = hello.server_name().map(str::to_ascii_lowercase);
    let for_ca = hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == crate::acme::ACME_TLS_ALPN));
    let config = match host {
        Some(host) if for_ca => {
            let key = acme.challenge(&host)?;
            crate::acme::config_for(key, &[crate::acme::ACME_TLS_ALPN]).ok()?
        }
        Some(host) => match ctx.host_tenant(&host) {
            Some(tenant) => {
                let issued =
                    tokio::time::timeout(ISSUE_TIMEOUT, acme.certificate(&host, &tenant)).await;
                match issued {
                    Ok(Ok(key)) => crate::acme::config_for(key, &[b"h2", b"http/1.1"]).ok()?,
                    _ => fallback.clone(),
                }
            }
            None => fallback.clone(),
        },
        None => fallback.clone(),
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, start.into_stream(config))
        .await
        .ok()?
        .ok()
}

/// Serves public HTTP (HTTPS with `tls`) on `listener` until the edge stops.
pub async fn serve(listener: TcpListener, tls: Option<PublicTls>, ctx: Arc<EdgeContext>) {
    let shutdown = ctx.shutdown.clone();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = beamd_transports::accept_tcp(&listener) => accepted,
            _ = shutdown.cancelled() => return,
        };
        if beamd_transports::over_fd_watermark(&socket, ListenerKind::PublicHttp) {
            match &tls {
                // A TLS client cannot read a plain answer; it is closed.
                Some(_) => drop(socket),
                None => {
                    tokio::spawn(crate::busy::refuse_busy(
                        socket,
                        "text/plain; charset=utf-8",
                        BUSY,
                    ));
                }
            }
            continue;
        }
        let _ = socket.set_nodelay(true);
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(socket, peer, ctx).await,
                Some(tls) => {
                    if let Some(stream) = handshake(socket, &tls, &ctx).await {
                        let sni = stream
                            .get_ref()
                            .1
                            .server_name()
                            .map(str::to_ascii_lowercase);
                        serve_named(stream, peer, sni, ctx).await;
                    }
                }
            }
        });
    }
}

/// Serves one public plain-HTTP connection (already accepted).
pub async fn serve_connection<S>(io: S, peer: SocketAddr, ctx: Arc<EdgeContext>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    serve_named(io, peer, None, ctx).await
}

/// Serves one public connection; `sni` is the name its TLS handshake asked
/// for, which every request on it must then name as its Host.
async fn serve_named<S>(io: S, peer: SocketAddr, sni: Option<String>, ctx: Arc<EdgeContext>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let slot: Slot = Arc::new(Mutex::new(Vec::new()));
    let sni: Option<Arc<str>> = sni.map(Into::into);
    let http = super::h2::builder(ctx.settings.header_timeout.get(), &ctx.settings.h2);
    let service = hyper::service::service_fn(move |req| {
        proxy(req, peer, sni.clone(), ctx.clone(), slot.clone())
    });
    let _ = http
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await;
}

/// The route for `host` if it may be used now: a custom domain must still be
/// verified for the tunnel's tenant (removing it stops routing at once).
fn live_route(ctx: &EdgeContext, host: &str) -> Option<Route> {
    let route = ctx.route(host)?;
    if route.custom && !ctx.core.projections().hot().reaches(host, &route.tenant) {
        ctx.unroute(host);
        return None;
    }
    Some(route)
}

fn denied(why: Denied) -> Response<Body> {
    match why {
        Denied::Network => page(
            StatusCode::FORBIDDEN,
            "your address may not use this tunnel".into(),
        ),
        Denied::Credentials => {
            let mut resp = page(
                StatusCode::UNAUTHORIZED,
                "this tunnel needs a user name and password".into(),
            );
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"beamd\", charset=\"UTF-8\""),
            );
            resp
        }
        Denied::SignIn => page(
            StatusCode::UNAUTHORIZED,
            "this tunnel needs you to sign in: open it in a browser".into(),
        ),
        Denied::NotAllowed => page(
            StatusCode::FORBIDDEN,
            "you are signed in, but not as someone this tunnel lets in".into(),
        ),
    }
}

fn page(status: StatusCode, text: String) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(text + "\n"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn host_of(req: &Request<Incoming>) -> String {
    let raw = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    crate::domain::request_host(raw)
}

/// What is known of a request as it arrives (spoken as `version`, from
/// `peer`, for `host`): all its capture records but its answer.
fn arrived(
    req: &Request<Incoming>,
    version: hyper::Version,
    peer: SocketAddr,
    host: &str,
    now_ms: u64,
) -> RequestCaptured {
    RequestCaptured {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "/".into()),
        ip: peer.ip().to_string(),
        user_agent: req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        proto: format!("{version:?}"),
        host: host.to_string(),
        started_at: now_ms,
        id: request_id(),
        ..RequestCaptured::default()
    }
}

async fn proxy(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    sni: Option<Arc<str>>,
    ctx: Arc<EdgeContext>,
    slot: Slot,
) -> Result<Response<Body>, Infallible> {
    let host = host_of(&req);
    sign_in::strip_identity(req.headers_mut());
    // Services hear HTTP/1.1 whatever the client spoke; the capture keeps what it spoke.
    let version = req.version();
    super::h2::to_http1(&mut req);
    if let Some(sni) = sni.filter(|sni| **sni != *host) {
        // Domain fronting: a connection made for one name carrying requests for another.
        return Ok(page(
            StatusCode::MISDIRECTED_REQUEST,
            format!("this connection was opened for {sni}; {host} needs a connection of its own"),
        ));
    }
    let websocket = super::forwarding::only_websocket_upgrades(req.headers_mut());
    // From here on, `peer` is the client: a trusted proxy's client, or the peer.
    let peer = super::forwarding::set_forwarding(
        req.headers_mut(),
        peer,
        &host,
        ctx.settings.https,
        &ctx.settings.trusted_proxies.get(),
    );
    let mut capture = arrived(&req, version, peer, &host, ctx.core.now_ms());
    let (method, path) = (req.method().as_str(), req.uri().path());
    let decision = match gateway::decide(&ctx, &host, method, path, req.headers(), peer) {
        Some(Err(refusal)) => {
            // Captured for the route's tunnel, else the tunnel the host itself is.
            let tunnel = (refusal.tunnel.clone()).or_else(|| live_route(&ctx, &host));
            capture.route = refusal.route.clone();
            capture.consumer = refusal.consumer.clone();
            let reason = refusal.reason.clone();
            drain(&mut req).await;
            return Ok(refuse(
                &ctx,
                tunnel.as_ref(),
                capture,
                reason,
                refusal.response(),
            ));
        }
        Some(Ok(d)) => Some(d),
        None => None,
    };
    capture.route = decision.as_ref().map(|d| d.route.clone());
    capture.consumer = decision.as_ref().and_then(|d| d.consumer.clone());
    let (route, timeout) = match &decision {
        Some(d) => match &d.target {
            Target::Url(url) => return Ok(gateway::to_url(&ctx, d, req, url).await),
            Target::Tunnel(route) => (route.clone(), d.timeout),
        },
        None => match live_route(&ctx, &host) {
            Some(route) => (route, ctx.settings.upstream_timeout.get()),
            None => {
                let known = ctx.core.host_held(&host).await.unwrap_or(false);
                return Ok(if known {
                    page(
                        StatusCode::BAD_GATEWAY,
                        format!("the tunnel for {host} is offline"),
                    )
                } else {
                    page(StatusCode::NOT_FOUND, format!("no tunnel serves {host}"))
                });
            }
        },
    };
    if !route.access.is_open() {
        let authorization = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
        if let Err(why) = route.access.check(peer.ip(), authorization) {
            drain(&mut req).await;
            return Ok(refuse(
                &ctx,
                Some(&route),
                capture,
                why.reason(),
                denied(why),
            ));
        }
    }
    if let Some(provider) = route.sign_in.clone() {
        match sign_in::gate(&ctx, &provider, &mut req, &host, websocket).await {
            Gate::Pass(user) => capture.user = Some(user),
            Gate::Answer {
                response,
                refused,
                user,
            } => {
                capture.user = user;
                drain(&mut req).await;
                return Ok(match refused {
                    Some(why) => refuse(&ctx, Some(&route), capture, why.reason(), response),
                    None => response,
                });
            }
        }
    }
    let started = Instant::now();
    let multiplexed = version >= hyper::Version::HTTP_2;
    let (mut sender, route) = match upstream(&ctx, &route, peer, &slot, multiplexed).await {
        Ok(chosen) => chosen,
        Err(Refused::AtCap) => {
            let message = format!(
                "the tunnel's tenant has {} connections open, its limit; try again shortly",
                ctx.settings.connections.max()
            );
            if let Some(d) = &decision {
                d.failed(&ctx, "unreachable", 503, message.clone());
            }
            let answer = page(StatusCode::SERVICE_UNAVAILABLE, message);
            return Ok(refuse(
                &ctx,
                Some(&route),
                capture,
                "tenant_connections",
                answer,
            ));
        }
        Err(Refused::Failed(e)) => {
            let message = format!("the tunnel for {host} is unreachable: {e}");
            if let Some(d) = &decision {
                d.failed(&ctx, "unreachable", 502, message.clone());
            }
            let answer = page(StatusCode::BAD_GATEWAY, message);
            return Ok(refuse(
                &ctx,
                Some(&route),
                capture,
                "tunnel_unreachable",
                answer,
            ));
        }
    };
    route.meter.requests.fetch_add(1, Ordering::Relaxed);
    capture.member = route.member.clone();
    // A WebSocket upgrade: once the service agrees (101), the public
    // connection and the tunnel stream are joined byte for byte.
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let (bytes_in, bytes_out) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Full capture: the request's headers now, its body teed as it is sent.
    let mode = ctx.inspect_mode(&route.tunnel);
    let full = (ctx.settings.full_capture.as_ref())
        .filter(|_| mode == InspectMode::Full)
        .map(|f| f.start(req.headers()));
    let req = req.map(|b| {
        let counted = CountingBody::new(b, bytes_in.clone(), None);
        match &full {
            Some(f) => f.tee(counted),
            None => counted,
        }
    });
    let mut upstream_answered = None;
    let response = match tokio::time::timeout(timeout, sender.send_request(req)).await {
        Ok(Ok(mut resp)) => {
            upstream_answered = Some(resp.status());
            if let (StatusCode::SWITCHING_PROTOCOLS, Some(client)) = (resp.status(), client_upgrade)
            {
                let upstream = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    if let (Ok(client), Ok(upstream)) = (client.await, upstream.await) {
                        let _ = tokio::io::copy_bidirectional(
                            &mut TokioIo::new(client),
                            &mut TokioIo::new(upstream),
                        )
                        .await;
                    }
                });
            } else {
                // Kept for the public connection's next requests (h2c's already is).
                if let super::upstream_tunnel::Sender::H1(_) = sender {
                    keep(&slot, &route, sender);
                }
            }
            resp.map(|b| b.boxed())
        }
        Ok(Err(e)) => page(
            StatusCode::BAD_GATEWAY,
            format!("the service behind {host} failed: {e}"),
        ),
        Err(_) => page(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the service behind {host} did not answer within {timeout:?}"),
        ),
    };
    if let Some(d) = &decision {
        let status = response.status();
        let kind = match status {
            StatusCode::GATEWAY_TIMEOUT if upstream_answered.is_none() => Some("timeout"),
            StatusCode::BAD_GATEWAY if upstream_answered.is_none() => Some("unreachable"),
            s if s.is_server_error() => Some("server_error"),
            _ => None,
        };
        if let Some(kind) = kind {
            d.failed(
                &ctx,
                kind,
                status.as_u16(),
                format!("{host}{}: {status}", capture.path),
            );
        }
    }
    capture.status = response.status().as_u16();
    metrics::counter!(metric_catalog::HTTP_REQUESTS.name).increment(1);
    metrics::histogram!(metric_catalog::HTTP_REQUEST_DURATION.name)
        .record(started.elapsed().as_secs_f64());
    let pending = Pending {
        capture,
        bytes_in,
        bytes_out,
        started,
        full,
    };
    let (parts, body) = response.into_parts();
    let record = mode != InspectMode::Off;
    let body = pending.respond(body, &parts.headers, &ctx, &route, record);
    let response = Response::from_parts(parts, body.boxed());
    Ok(response)
}
