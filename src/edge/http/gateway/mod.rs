//! The API gateway on the data path. When a live route is bound to a
//! request's host, the gateway decides: the most specific enabled route for
//! the method and path (404 when none), the consumer key when the route needs
//! one (401), the caller's rate limit (429 with `Retry-After`), and where the
//! service is (its tunnel, 502 when that is offline or the service was
//! deleted, or its upstream URL). Hosts without routes stay plain tunnels.
//! Only routes of a tenant the host reaches now count: a custom host must
//! be verified for the route's tenant at the time of the request. Each
//! refusal says why, and which tunnel the request was meant for (the
//! route's service's), so that it is captured there.
//!
//! Here: the gateway's decision for a request; forwarding to a service's
//! upstream URL (`upstream_url.rs`); the health probes of services
//! (`health.rs`); gateway failures, tallied and recorded once per window
//! (`error_tally.rs`).

mod health;
mod upstream_url;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};

use crate::domain::gateway::{tier_rate, Route as GatewayRoute};
use crate::edge::context::{EdgeContext, Route};
use crate::edge::error_tally::Failure;
use crate::projections::Hot;
use upstream_url::{forward, Failed};

pub use health::probe_services;

/// Where a gateway request goes.
pub(super) enum Target {
    /// Through this tunnel.
    Tunnel(Route),
    /// To this `http://` upstream.
    Url(String),
}

/// Where a gateway request goes, within what time, for which route.
pub(super) struct Decision {
    pub target: Target,
    pub timeout: Duration,
    /// The route's id.
    pub route: String,
    /// The route's tenant.
    pub tenant: String,
    /// The consumer whose key the request carried.
    pub consumer: Option<String>,
}

impl Decision {
    /// Counts a failure of this request's service.
    pub fn failed(&self, ctx: &EdgeContext, kind: &'static str, status: u16, message: String) {
        ctx.errors.note(Failure {
            tenant: &self.tenant,
            route: &self.route,
            kind,
            status,
            message,
        });
    }
}

/// A gateway's own answer, and what the request's capture records of it.
pub(super) struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds to wait (429).
    pub retry_after: Option<u64>,
    /// Why, as captured (`RequestCaptured::refused`).
    pub reason: String,
    /// The route that took the request, if one did.
    pub route: Option<String>,
    /// The consumer whose key the request carried.
    pub consumer: Option<String>,
    /// The tunnel the route's service is behind, when this edge serves it.
    pub tunnel: Option<Route>,
}

type Body = BoxBody<Bytes, hyper::Error>;

impl Refusal {
    /// The answer, in the API's JSON error format.
    pub fn response(self) -> Response<Body> {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut resp = Response::new(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        );
        *resp.status_mut() = self.status;
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Forwards to a service's upstream URL; 502 or 504 when that fails.
/// Failures and 5xx answers are counted for the route.
pub(super) async fn to_url(
    ctx: &EdgeContext,
    d: &Decision,
    req: Request<Incoming>,
    url: &str,
) -> Response<Body> {
    let refusal = match forward(req, url, d.timeout, &ctx.settings.egress).await {
        Ok(resp) => {
            let status = resp.status();
            if status.is_server_error() {
                d.failed(
                    ctx,
                    "server_error",
                    status.as_u16(),
                    format!("{url} answered {status}"),
                );
            }
            return resp;
        }
        Err(Failed::Timeout) => refuse(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("the service at {url} did not answer within {:?}", d.timeout),
        ),
        Err(Failed::Refused(e)) => refuse(
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            format!("the edge does not connect to the service at {url}: {e}"),
        ),
        Err(Failed::Other(e)) => refuse(
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            format!("the service at {url} failed: {e}"),
        ),
    };
    let kind = match refusal.status {
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        _ => "unreachable",
    };
    d.failed(ctx, kind, refusal.status.as_u16(), refusal.message.clone());
    refusal.response()
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> Refusal {
    Refusal {
        status,
        code,
        message,
        retry_after: None,
        reason: code.to_string(),
        route: None,
        consumer: None,
        tunnel: None,
    }
}

impl Refusal {
    /// The same answer, captured as refused for `reason`.
    fn because(self, reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            ..self
        }
    }
}

/// The public host of the tenant's tunnel `name`.
fn tunnel_host(p: &Hot, tenant: &str, name: &str) -> String {
    let base = p.tunnel_base.get(tenant).map_or("", String::as_str);
    format!("{name}.{base}")
}

/// The tunnel `route`'s service is behind, when this edge serves it.
fn service_tunnel(ctx: &EdgeContext, p: &Hot, route: &GatewayRoute) -> Option<Route> {
    let service = p
        .gateway
        .service(&route.config.as_ref()?.service_id)
        .filter(|s| s.live() && s.tenant == route.tenant)?;
    let name = service.config.as_ref()?.tunnel.as_ref()?;
    ctx.route(&tunnel_host(p, &route.tenant, name))
        .filter(|r| r.tenant == route.tenant)
}

/// The consumer key a request carries: `x-api-key`, or a bearer token that looks like one.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim());
    }
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| k.starts_with("con_"))
}

/// The gateway's decision for a request to `host`: `None` when no route is
/// bound to the host, else where it goes, or the gateway's own answer.
pub(super) fn decide(
    ctx: &EdgeContext,
    host: &str,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Option<Result<Decision, Box<Refusal>>> {
    let p = ctx.core.projections().hot();
    // Routes of a tenant the host no longer reaches (its domain removed, or
    // verified since by another tenant) are passed over, request by request.
    let reaches = |tenant: &str| p.reaches(host, tenant);
    if !p.gateway.serves_host_for(host, &reaches) {
        return None;
    }
    Some((|| -> Result<Decision, Box<Refusal>> {
        let no_route = |message: String| {
            refuse(StatusCode::NOT_FOUND, "not_found", message).because("no_route")
        };
        let route = p
            .gateway
            .route_for(host, method, path, &reaches)
            .ok_or_else(|| no_route(format!("no route of {host} matches {method} {path}")))?;
        let config = route
            .config
            .as_ref()
            .ok_or_else(|| no_route("the route is gone".into()))?;
        let presented = presented_key(headers);
        let consumer = presented.and_then(|k| p.gateway.consumer_by_key(&route.tenant, k));
        // From here on a refusal is the route's, captured for its service's tunnel.
        let refused = |r: Refusal| {
            Box::new(Refusal {
                route: Some(route.id.clone()),
                consumer: consumer.map(|c| c.id.clone()),
                tunnel: service_tunnel(ctx, &p, route),
                ..r
            })
        };
        if config.auth_required && consumer.is_none() {
            let reason = match presented {
                Some(_) => "invalid_key",
                None => "missing_key",
            };
            return Err(refused(
                refuse(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this route needs a valid consumer API key (x-api-key: con_…)".into(),
                )
                .because(reason),
            ));
        }
        let tier = consumer
            .map(|c| c.rate_limit_tier.as_str())
            .filter(|t| tier_rate(t).is_some())
            .unwrap_or("free");
        let (per_minute, limit) = match config.rate_limit_override {
            Some(n) => (n, "route"),
            None => (tier_rate(tier).unwrap_or(60), tier),
        };
        let scope = match config.rate_limit_override {
            Some(_) => route.id.as_str(),
            None => "tier",
        };
        let caller = match consumer {
            Some(c) => c.id.clone(),
            None => peer.ip().to_string(),
        };
        if let Err(wait) = ctx.limiter.take(scope, &caller, per_minute) {
            return Err(refused(Refusal {
                retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                ..refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("more than {per_minute} requests a minute"),
                )
                .because(format!("rate_limited:{limit}:{per_minute}/min"))
            }));
        }
        let gone = || {
            refused(
                refuse(
                    StatusCode::BAD_GATEWAY,
                    "bad_gateway",
                    format!("the service of route {} was deleted", route.id),
                )
                .because("service_gone"),
            )
        };
        let service = p
            .gateway
            .service(&config.service_id)
            .filter(|s| s.live() && s.tenant == route.tenant)
            .ok_or_else(gone)?;
        let sc = service.config.as_ref().ok_or_else(gone)?;
        let timeout = Duration::from_millis(sc.timeout_ms);
        let target = match (&sc.tunnel, &sc.target_url) {
            (Some(name), _) => Target::Tunnel(service_tunnel(ctx, &p, route).ok_or_else(|| {
                let message = format!(
                    "the tunnel {} of service {} is offline",
                    tunnel_host(&p, &route.tenant, name),
                    service.id
                );
                ctx.errors.note(Failure {
                    tenant: &route.tenant,
                    route: &route.id,
                    kind: "unreachable",
                    status: 502,
                    message: message.clone(),
                });
                refused(
                    refuse(StatusCode::BAD_GATEWAY, "bad_gateway", message)
                        .because("service_offline"),
                )
            })?),
            (None, Some(url)) => Target::Url(url.clone()),
            (None, None) => return Err(gone()),
        };
        Ok(Decision {
            target,
            timeout,
            route: route.id.clone(),
            tenant: route.tenant.clone(),
            consumer: consumer.map(|c| c.id.clone()),
        })
    })())
}

/// Records the tally of gateway failures every window until the edge stops, then once more.
pub async fn record_errors(ctx: Arc<EdgeContext>) {
    let shutdown = ctx.shutdown.clone();
    let mut tick = tokio::time::interval(ctx.settings.window);
    loop {
        let stopping = tokio::select! {
            biased;
            _ = shutdown.cancelled() => true,
            _ = tick.tick() => false,
        };
        for e in ctx.errors.take() {
            if let Err(err) = ctx.core.record_gateway_errors(e).await {
                tracing::warn!("gateway errors not recorded: {err}");
            }
        }
        if stopping {
            return;
        }
    }
}
