//! HTTP tunnels end to end over each transport: a real HTTP server behind the
//! tunnel, a real HTTP client in front, every request captured in the log.

use crate::common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::http::{client, full, get, http_server, send, start_http_agent};
use common::tunnel::{pattern, start_edge};
use hyper::Request;
use tokio::net::TcpStream;

async fn http_through(transport: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    let edge = start_edge(
        dir.path(),
        transport,
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let (agent, host, public) = start_http_agent(&edge, transport, web, "app", &[])?;
    ensure!(host.starts_with("app.localhost:"), "{host}");

    // GET, then more requests on the same (kept-alive) connection.
    let mut c = client(public).await?;
    ensure!(send(&mut c, get(&host, "/hello")?).await? == (200, "hello through the tunnel".into()));
    let (status, body) = send(&mut c, get(&host, "/chunked")?).await?;
    ensure!(
        status == 200 && body == (0..20).map(|i| format!("chunk {i};")).collect::<String>(),
        "{body}"
    );
    let (_, seen) = send(&mut c, get(&host, "/headers")?).await?;
    ensure!(
        seen == "127.0.0.1 app.localhost http",
        "forwarded headers: {seen}"
    );
    // A 32 MiB POST, streamed and checksummed on the far side.
    let data = pattern(3, 32 * 1024 * 1024);
    let expected = format!("{} {}", data.len(), blake3::hash(&data).to_hex());
    let post = Request::post("/sum")
        .header("host", &host)
        .body(full(data))?;
    ensure!(send(&mut c, post).await? == (200, expected));
    // A WebSocket echo through the HTTP tunnel.
    let socket = TcpStream::connect(public).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{host}/ws"), socket).await?;
    for i in 0..5 {
        let text = format!("echo {i}");
        futures::SinkExt::send(
            &mut ws,
            tokio_tungstenite::tungstenite::Message::text(text.clone()),
        )
        .await?;
        let back = futures::StreamExt::next(&mut ws)
            .await
            .context("closed")??;
        ensure!(back.to_text()? == text, "websocket echo: {back:?}");
    }
    // An unknown host is a 404; a tunnel whose agent left is a 502.
    let (status, _) = send(&mut c, get("nobody.localhost", "/hello")?).await?;
    ensure!(status == 404, "unknown host: {status}");
    drop(agent);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut c = client(public).await?;
    let (status, body) = send(&mut c, get(&host, "/hello")?).await?;
    ensure!(status == 502, "offline tunnel: {status} {body}");

    edge.proc.signal(rustix::process::Signal::TERM)?;
    edge.proc.expect("stopped", Duration::from_secs(30))?;
    drop(edge);
    let out = common::beamd(&["replay", "--data-dir", dir.path().to_str().context("dir")?]);
    let captured: Vec<serde_json::Value> = common::captured_requests(
        common::text(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()),
    );
    // Four requests were answered; over QUIC the edge may not yet know the
    // killed agent is gone, so the last one can be a captured 502.
    let answered = captured
        .iter()
        .filter(|e| e["event"]["status"] == 200)
        .count();
    ensure!(
        answered == 4,
        "{answered} answered requests captured, 4 went through"
    );
    let upgraded = captured
        .iter()
        .filter(|e| e["event"]["status"] == 101)
        .count();
    ensure!(
        upgraded == 1,
        "{upgraded} WebSocket upgrades captured, 1 went through"
    );
    let allowed = |e: &serde_json::Value| {
        [200, 101, 502].contains(&e["event"]["status"].as_u64().unwrap_or(0))
    };
    ensure!(captured.iter().all(allowed), "unexpected statuses captured");
    let chunked = captured
        .iter()
        .find(|e| e["event"]["path"] == "/chunked")
        .context("the chunked GET")?;
    let chunked_len = (0..20).map(|i| format!("chunk {i};").len()).sum::<usize>();
    ensure!(
        chunked["event"]["bytesOut"] == chunked_len,
        "bytes of a chunked body are counted: {chunked}"
    );
    let post = captured
        .iter()
        .find(|e| e["event"]["method"] == "POST")
        .context("the POST")?;
    ensure!(
        post["event"]["bytesIn"] == 32 * 1024 * 1024 && post["event"]["status"] == 200,
        "{post}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_quic() -> Result<()> {
    http_through("quic").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_websocket() -> Result<()> {
    http_through("ws").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_tcp() -> Result<()> {
    http_through("tcp").await
}
