//! What a public client can make the edge tell the service behind a tunnel,
//! against a real edge and agent: forged forwarding headers, an h2c upgrade
//! smuggled past the edge, and a consumer key kept in full capture.

use crate::common;

use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context, Result};
use common::api::Api;
use common::http::{full, start_http_agent};
use common::inspect::newest;
use common::tunnel::{start_edge, ADMIN_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A service that records each request's head; it agrees to any
/// `Upgrade: h2c` (101, then writes `SMUGGLED`), and answers anything else
/// with 200 and the head it saw.
async fn recording_service() -> Result<(u16, Arc<Mutex<Vec<String>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if let Ok(mut s) = seen.lock() {
                    s.push(head.clone());
                }
                let answer = if head.contains("upgrade: h2c") {
                    "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\nSMUGGLED"
                        .to_string()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{head}",
                        head.len()
                    )
                };
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok((port, heads))
}

/// Sends a raw HTTP/1.1 request and reads until the edge closes or 2 s pass.
async fn raw(public: std::net::SocketAddr, request: &str) -> Result<String> {
    let mut s = TcpStream::connect(public).await?;
    s.write_all(request.as_bytes()).await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_forwarding_headers_and_upgrades_do_not_reach_the_service() -> Result<()> {
    let (port, heads) = recording_service().await?;
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let (_agent, url, public) = start_http_agent(&edge, "tcp", port, "app", &[])?;
    let host = url.split(':').next().context("host")?;

    let answer = raw(
        public,
        &format!(
            "GET /who HTTP/1.1\r\nhost: {host}\r\nx-forwarded-for: 10.6.6.6\r\nx-real-ip: 10.6.6.6\r\n\
             forwarded: for=10.6.6.6\r\nx-forwarded-host: admin.internal\r\nconnection: close\r\n\r\n"
        ),
    )
    .await?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let head = heads
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .last()
        .cloned()
        .context("a request")?;
    ensure!(
        !head.contains("10.6.6.6"),
        "a forged address reached the service: {head}"
    );
    ensure!(
        !head.contains("admin.internal"),
        "a forged host reached the service: {head}"
    );
    for want in [
        "x-forwarded-for: 127.0.0.1\r\n",
        "x-real-ip: 127.0.0.1\r\n",
        "forwarded: for=127.0.0.1;",
    ] {
        ensure!(head.contains(want), "{want:?} missing: {head}");
    }

    let answer = raw(
        public,
        &format!(
            "GET /h2 HTTP/1.1\r\nhost: {host}\r\nconnection: Upgrade, HTTP2-Settings\r\n\
             upgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
        ),
    )
    .await?;
    ensure!(
        !answer.starts_with("HTTP/1.1 101") && !answer.contains("SMUGGLED"),
        "an h2c upgrade went through: {answer}"
    );
    let head = heads
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .last()
        .cloned()
        .context("a request")?;
    ensure!(
        head.contains("get /h2") && !head.contains("upgrade") && !head.contains("http2-settings"),
        "the service saw the upgrade: {head}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_forwarding_headers_are_kept() -> Result<()> {
    let (port, heads) = recording_service().await?;
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &[
            "--http-listen",
            "127.0.0.1:0",
            "--trusted-proxy",
            "127.0.0.1/32",
        ],
    )?;
    let (_agent, url, public) = start_http_agent(&edge, "tcp", port, "lb", &[])?;
    let host = url.split(':').next().context("host")?;
    raw(
        public,
        &format!(
            "GET / HTTP/1.1\r\nhost: {host}\r\nx-forwarded-for: 198.51.100.9\r\nconnection: close\r\n\r\n"
        ),
    )
    .await?;
    let head = heads
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .last()
        .cloned()
        .context("a request")?;
    ensure!(
        head.contains("x-forwarded-for: 198.51.100.9, 127.0.0.1\r\n")
            && head.contains("x-real-ip: 198.51.100.9\r\n"),
        "{head}"
    );
    // The inspector records the client the proxy names.
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    for _ in 0..100 {
        let listed = admin.get("/api/v1/requests").await?;
        if let Some(r) = listed.body["requests"].as_array().and_then(|r| r.first()) {
            ensure!(r["ip"] == "198.51.100.9", "{r}");
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("no request was listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_keys_are_masked_in_full_capture_by_default() -> Result<()> {
    const CONSUMER_KEY: &str = "con_0123456789abcdef0123456789abcdef";
    let (port, _) = recording_service().await?;
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let (_agent, url, public) =
        start_http_agent(&edge, "tcp", port, "keys", &["--inspect", "full"])?;
    let host = url.split(':').next().context("host")?;
    let mut c = common::http::client(public).await?;
    let req = hyper::Request::get("/orders")
        .header("host", host)
        .header("x-api-key", CONSUMER_KEY)
        .header("proxy-authorization", format!("Basic {CONSUMER_KEY}"))
        .body(full(""))?;
    common::http::send(&mut c, req).await?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let (_, detail) = newest(&admin, 1, "stored").await?;
    // (The service echoes the request in its answer; the headers are what is masked.)
    let headers = detail.body["requestHeaders"].to_string();
    ensure!(
        !headers.contains(CONSUMER_KEY),
        "the consumer key was stored: {headers}"
    );
    ensure!(headers.contains("[masked]"), "{headers}");
    Ok(())
}
