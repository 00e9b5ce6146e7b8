//! Helpers for the tests that run several edges on one JetStream log:
//! starting them, asking any of them, waiting for what every node will see,
//! and auditing the shared log.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, ensure, Result};

use super::api::Api;
use super::http::{client, get, send};
use super::tunnel::{start_edge, Edge};
use super::{beamd, text};

/// Polls `check` every 100 ms for up to `within`.
pub async fn eventually_within<F, Fut>(what: &str, within: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what}: not within {within:?}")
}

/// Polls `check` for up to 15 s.
pub async fn eventually<F, Fut>(what: &str, check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    eventually_within(what, Duration::from_secs(15), check).await
}

/// `beamd audit --log URL` passes.
pub async fn audits_clean(url: String) -> Result<()> {
    let audit = tokio::task::spawn_blocking(move || beamd(&["audit", "--log", &url])).await?;
    ensure!(
        audit.status.success() && text(&audit.stdout).starts_with("audit ok"),
        "{} {}",
        text(&audit.stdout),
        text(&audit.stderr)
    );
    Ok(())
}

/// The events `beamd replay --log URL` prints, as JSON values.
pub async fn replayed(url: String) -> Result<Vec<serde_json::Value>> {
    let out = tokio::task::spawn_blocking(move || beamd(&["replay", "--log", &url])).await?;
    ensure!(out.status.success(), "replay: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// One edge per data dir, serving agents over TCP and public HTTP, on `url`.
pub fn edges_on(dirs: &[tempfile::TempDir], url: &str) -> Result<Vec<Edge>> {
    dirs.iter()
        .map(|d| {
            // Heartbeats every second: a node is taken for dead after 3 s,
            // and its tunnels are swept every 2 s.
            let extra = [
                "--log",
                url,
                "--http-listen",
                "127.0.0.1:0",
                "--heartbeat-secs",
                "1",
                "--grace-secs",
                "8",
            ];
            start_edge(d.path(), "tcp", "127.0.0.1:0", &extra)
        })
        .collect()
}

/// Total bytes in the usage answer of `api`.
pub async fn total_bytes(api: &Api) -> Result<u64> {
    let u = api.get("/api/v1/usage?days=1").await?;
    Ok(u.body["totalBytes"].as_u64().unwrap_or(0))
}

/// A GET through an edge's public HTTP port to the tunnel `host`: its status.
pub async fn through(edge_http: SocketAddr, host: &str) -> Result<u16> {
    let mut c = client(edge_http).await?;
    Ok(send(&mut c, get(host, "/hello")?).await?.0)
}

/// The tunnel named `name` as `api` lists it.
pub async fn tunnel_named(api: &Api, name: &str) -> Result<Option<serde_json::Value>> {
    let list = api.get("/api/v1/tunnels").await?;
    Ok(list.body["tunnels"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name).cloned()))
}
