//! Gateway health checks end to end: the edge probes a service through its
//! tunnel; health flips when the local service stops and again when it
//! comes back, each flip one event; and the gateway status.

use crate::common;

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::api::Api;
use common::http::{service, start_http_agent};
use common::tunnel::start_edge;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The test service on `port`, until the handle is aborted.
async fn serve_on(port: u16) -> Result<JoinHandle<()>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    Ok(tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), hyper::service::service_fn(service))
                    .await;
            });
        }
    }))
}

async fn wait_for_health(api: &Api, healthy: bool) -> Result<serde_json::Value> {
    for _ in 0..100 {
        let a = api.get("/api/v1/health").await?;
        ensure!(a.status == 200, "{}", a.text);
        if let Some(h) = a.body.as_array().and_then(|v| v.first()) {
            if h["healthy"] == healthy {
                return Ok(h.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("health never became {healthy}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_flips_when_the_local_service_stops_and_recovers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    let web = serve_on(port).await?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &[
            "--http-listen",
            "127.0.0.1:0",
            "--health-interval-secs",
            "1",
        ],
    )?;
    let (_agent, _, _) = start_http_agent(&edge, "tcp", port, "hc", &[])?;
    let api = Api::new(edge.api, edge.token.as_deref().context("token")?);
    let made = api
        .send(
            "POST",
            "/api/v1/services",
            Some(r#"{"name":"hc","tunnel":"hc","healthCheckPath":"/hello","timeoutMs":2000}"#),
        )
        .await?;
    ensure!(made.status == 201, "{}", made.text);

    let up = wait_for_health(&api, true).await?;
    ensure!(up["statusCode"] == 200, "{up}");
    web.abort();
    let _ = web.await;
    let down = wait_for_health(&api, false).await?;
    ensure!(down["statusCode"] != 200, "{down}");
    let _web = serve_on(port).await?;
    wait_for_health(&api, true).await?;

    let status = api.get("/api/v1/gateway-status").await?;
    ensure!(
        status.status == 200 && status.body["online"] == true,
        "{}",
        status.text
    );
    edge.proc.signal(rustix::process::Signal::TERM)?;
    edge.proc.expect("stopped", Duration::from_secs(30))?;
    drop(edge);
    // Three flips, three events: up, down, up.
    let out = common::beamd(&["replay", "--data-dir", dir.path().to_str().context("dir")?]);
    let flips = common::text(&out.stdout)
        .lines()
        .filter(|l| l.contains("ServiceHealthChanged"))
        .count();
    ensure!(flips == 3, "{flips} health events");
    Ok(())
}
