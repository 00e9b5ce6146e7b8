//! Health checks: every interval the edge probes each live service's
//! `healthCheckPath` — through its tunnel, or at its upstream URL — and
//! records a `ServiceHealthChanged` when a service's health flips. A 2xx or
//! 3xx answer within the service's timeout is healthy; anything else is not.
//! What is recorded is the answer's status, or only that none came: how a
//! connection failed (refused, reset, timed out, not allowed) would turn the
//! probe into a port scanner for tenants.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::HOST;
use hyper::Request;
use hyper_util::rt::TokioIo;

use super::upstream_url::{forward, Failed};
use crate::domain::gateway::{Service, ServiceCommand};
use crate::edge::context::{EdgeContext, Route};
use crate::protocol::{write_frame, StreamHeader};

/// What a probe found.
struct Found {
    healthy: bool,
    status: Option<u16>,
    detail: String,
}

fn down(detail: String) -> Found {
    Found {
        healthy: false,
        status: None,
        detail,
    }
}

/// No answer came, for whatever reason.
fn no_answer(timeout: Duration) -> Found {
    down(format!("no answer within {timeout:?}"))
}

fn answered(status: u16) -> Found {
    Found {
        healthy: (200..400).contains(&status),
        status: Some(status),
        detail: format!("answered {status}"),
    }
}

/// Probes every service with a health-check path, every `interval`, until the edge stops.
pub async fn probe_services(ctx: Arc<EdgeContext>, interval: Duration) {
    let shutdown = ctx.shutdown.clone();
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let services: Vec<Service> = (ctx.core.queries().live_services())
            .into_iter()
            .filter(|s| {
                s.config
                    .as_ref()
                    .is_some_and(|c| c.health_check_path.is_some())
            })
            .collect();
        for service in services {
            let found = probe(&ctx, &service).await;
            if service
                .health
                .as_ref()
                .is_some_and(|h| h.healthy == found.healthy)
            {
                continue;
            }
            let cmd = ServiceCommand::RecordHealth {
                healthy: found.healthy,
                status: found.status,
                detail: found.detail,
            };
            if let Err(e) = ctx.core.service_command(&service.id, cmd).await {
                tracing::warn!(service = %service.id, "health not recorded: {e}");
            }
        }
    }
}

async fn probe(ctx: &EdgeContext, service: &Service) -> Found {
    let Some(c) = service.config.as_ref() else {
        return down("the service has no configuration".into());
    };
    let path = c.health_check_path.clone().unwrap_or_else(|| "/".into());
    let timeout = Duration::from_millis(c.timeout_ms);
    if let Some(url) = &c.target_url {
        let req = match Request::get(path.as_str()).body(Empty::<Bytes>::new()) {
            Ok(r) => r,
            Err(e) => return down(e.to_string()),
        };
        return match forward(req, url, timeout, &ctx.settings.egress).await {
            Ok(resp) => answered(resp.status().as_u16()),
            Err(Failed::Timeout | Failed::Refused(_) | Failed::Other(_)) => no_answer(timeout),
        };
    }
    let Some(name) = &c.tunnel else {
        return down("the service has no target".into());
    };
    let base = ctx
        .core
        .queries()
        .tenant(&service.tenant)
        .map(|t| t.tunnel_base.clone())
        .unwrap_or_default();
    let host = format!("{name}.{base}");
    let Some(route) = ctx.route(&host).filter(|r| r.tenant == service.tenant) else {
        return down(format!("the tunnel {host} is offline"));
    };
    match tokio::time::timeout(timeout, through(&route, &host, &path)).await {
        Err(_) | Ok(Err(_)) => no_answer(timeout),
        Ok(Ok(status)) => answered(status),
    }
}

/// One GET through the tunnel; the answer's status.
async fn through(route: &Route, host: &str, path: &str) -> Result<u16, String> {
    let mut stream = route.opener.open().await.map_err(|e| e.to_string())?;
    let header = StreamHeader {
        tunnel: route.tunnel.clone(),
        peer: "0.0.0.0:0".into(),
        public: None,
        flow: None,
    };
    write_frame(&mut stream, &header)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header(HOST, host)
        .header("user-agent", "beamd-health-check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(status)
}
