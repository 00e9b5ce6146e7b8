//! The edge's connection limits, on real sockets:
//! - a tenant holds at most `--max-tenant-connections` public connections
//!   across all its tunnels (TCP: the next is closed; HTTP: 503), and a
//!   freed slot is taken again;
//! - past the file-descriptor watermark (`--fd-reserve`, with the edge's
//!   open-file limit lowered by `prlimit --pid`), new connections are turned
//!   away (TCP closed, HTTP and the API 503) while the connections already
//!   open keep working, and everything is served again once descriptors free.

use crate::common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::api::{error_of, Api};
use common::http::{client, get, http_server, send, start_http_agent};
use common::tunnel::{echo_server, start_agent, start_edge, ADMIN_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A public connection that echoed a first message, kept open.
async fn held(addr: SocketAddr) -> Result<Option<TcpStream>> {
    let mut s = TcpStream::connect(addr).await?;
    if echoes(&mut s).await {
        Ok(Some(s))
    } else {
        Ok(None)
    }
}

/// Whether `s` echoes a message (false: the edge closed it).
async fn echoes(s: &mut TcpStream) -> bool {
    let msg = b"ping";
    if s.write_all(msg).await.is_err() {
        return false;
    }
    let mut back = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back)).await,
        Ok(Ok(_)) if &back == msg
    )
}

/// Retries `held` for a while: a freed slot comes back once the edge has
/// seen the old connection end.
async fn held_soon(addr: SocketAddr) -> Result<TcpStream> {
    for _ in 0..50 {
        if let Some(s) = held(addr).await? {
            return Ok(s);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{addr} kept turning connections away")
}

/// One request on a new connection: status and body.
async fn http_get(public: SocketAddr, host: &str) -> Result<(u16, String)> {
    let mut c = client(public).await?;
    send(&mut c, get(host, "/hello")?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_holds_at_most_its_cap_of_connections() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &[
            "--http-listen",
            "127.0.0.1:0",
            "--max-tenant-connections",
            "3",
        ],
    )?;
    let echo = echo_server().await?;
    let agent = start_agent(&edge, "tcp", echo, &[])?;
    let web = http_server().await?;
    let (_web_agent, host, http_public) = start_http_agent(&edge, "tcp", web, "capped", &[])?;

    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            held(agent.public)
                .await?
                .context("a connection under the cap")?,
        );
    }
    ensure!(
        held(agent.public).await?.is_none(),
        "a fourth TCP connection was let through"
    );
    // The cap is the tenant's, across its tunnels: HTTP is refused too.
    let (status, body) = http_get(http_public, &host).await?;
    ensure!(
        status == 503 && body.contains("limit"),
        "HTTP at the cap: {status} {body}"
    );
    // The connections already open keep working.
    for s in &mut open {
        ensure!(echoes(s).await, "an open connection stopped echoing");
    }
    // A freed slot is taken again, by either kind.
    open.pop();
    open.push(held_soon(agent.public).await?);
    open.clear();
    let mut served = None;
    for _ in 0..50 {
        let (status, body) = http_get(http_public, &host).await?;
        if status == 200 {
            served = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        served.as_deref() == Some("hello through the tunnel"),
        "HTTP after the slots freed: {served:?}"
    );
    Ok(())
}

/// Sets the edge's open-file limit (soft and hard) with util-linux's prlimit.
fn limit_fds(pid: u32, n: u64) -> Result<()> {
    let out = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={n}:{n}")])
        .output()
        .context("prlimit (util-linux) sets the edge's open-file limit")?;
    ensure!(
        out.status.success(),
        "prlimit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_fd_watermark_new_connections_are_turned_away() -> Result<()> {
    const LIMIT: u64 = 300;
    const RESERVE: u64 = 100;
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0", "--fd-reserve", "100"],
    )?;
    let echo = echo_server().await?;
    let agent = start_agent(&edge, "tcp", echo, &[])?;
    let web = http_server().await?;
    let (_web_agent, host, http_public) = start_http_agent(&edge, "tcp", web, "fds", &[])?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    limit_fds(edge.proc.child.id(), LIMIT)?;

    // Fill the edge's descriptors with public connections until it refuses one.
    let mut open = Vec::new();
    loop {
        match held(agent.public).await? {
            Some(s) => open.push(s),
            None => break,
        }
        ensure!(
            (open.len() as u64) < LIMIT,
            "{} connections held and none refused",
            open.len()
        );
    }
    let held_at_watermark = open.len();
    // Data channels cost a descriptor per connection, so past half the
    // limit the edge takes none and connections ride the agent's yamux
    // session: data channels must not halve what an edge can hold.
    ensure!(
        held_at_watermark as u64 >= LIMIT - RESERVE - 100,
        "refused after only {held_at_watermark} connections"
    );
    // HTTP and the API answer 503 rather than hang or reset.
    let (status, body) = http_get(http_public, &host).await?;
    ensure!(
        status == 503 && body.contains("connection capacity"),
        "public HTTP past the watermark: {status} {body}"
    );
    let busy = admin.get("/api/v1/workspace").await?;
    ensure!(
        busy.status == 503 && error_of(&busy) == "unavailable",
        "API past the watermark: {} {}",
        busy.status,
        busy.text
    );
    // What was open keeps working.
    for s in open.iter_mut().step_by(25) {
        ensure!(echoes(s).await, "an open connection stopped echoing");
    }
    // Freed descriptors bring everything back.
    open.truncate(held_at_watermark / 2);
    let mut again = held_soon(agent.public).await?;
    ensure!(echoes(&mut again).await, "a new connection does not echo");
    let mut status = 0;
    for _ in 0..50 {
        status = http_get(http_public, &host).await?.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(status == 200, "public HTTP after freeing: {status}");
    let metrics = admin.get("/metrics").await?;
    ensure!(metrics.status == 200, "API after freeing: {}", metrics.text);
    ensure!(
        metrics
            .text
            .lines()
            .any(|l| l.starts_with("beamd_connections_refused_total")
                && l.contains("fd_watermark")),
        "the refusals are counted: {}",
        metrics.text
    );
    println!(
        "held {held_at_watermark} connections under a limit of {LIMIT} with {RESERVE} reserved"
    );
    Ok(())
}
