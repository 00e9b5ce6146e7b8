//! 10,000 unauthenticated connections to the agent port, half sending junk,
//! a quarter sending nothing (a handshake that never comes) and a quarter a
//! multiplexer frame header that announces a 1 MiB body and never sends it
//! (yamux sets the body's buffer aside on the header alone): the edge closes
//! every one within its 10 s hello timeout (plus a margin), its resident
//! memory grows by under 100 MB, it never panics, and a tunnel opened
//! before the flood carries traffic all through it.

use crate::common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use common::tunnel::{echo_server, pattern, round_trip, start_agent, start_edge};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 10_000;
/// The edge's hello timeout, and how much later a close may come.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const MARGIN: Duration = Duration::from_secs(8);

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}

/// Opens one connection, sends junk (or nothing), and waits for the edge to
/// close it; returns how long that took, or None if it never did.
async fn one(addr: std::net::SocketAddr, i: usize) -> Result<Option<Duration>> {
    let mut s = TcpStream::connect(addr).await?;
    let opened = Instant::now();
    match i % 4 {
        0 | 2 => {
            let junk = pattern(i, 64 + i % 512);
            let _ = s.write_all(&junk).await;
        }
        // A well-formed yamux frame header (data, SYN, stream 1) announcing
        // the largest body yamux accepts, 1 MiB, and none of it.
        3 => {
            let _ = s.write_all(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0x10, 0, 0]).await;
        }
        _ => {}
    }
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(HELLO_TIMEOUT + MARGIN, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    Ok(closed.ok().map(|()| opened.elapsed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_junk_connections_are_closed_and_cost_little() -> Result<()> {
    let _turn = common::turns::heavy().await;
    let dir = tempfile::tempdir()?;
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &[])?;
    let local = echo_server().await?;
    let agent = start_agent(&edge, "tcp", local, &[])?;
    let pid = edge.proc.child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid)?;

    let addr = edge.agent_addr;
    let mut tasks = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        tasks.push(tokio::spawn(one(addr, i)));
        if i % 500 == 499 {
            // In waves, so the listen queue is not what is being tested.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Traffic through the tunnel goes on meanwhile.
    let mut peak = before;
    let mut trips = 0;
    let started = Instant::now();
    while started.elapsed() < HELLO_TIMEOUT + Duration::from_secs(2) {
        round_trip(agent.public, pattern(trips, 8 * 1024))
            .await
            .with_context(|| format!("round trip {trips} during the flood"))?;
        trips += 1;
        peak = peak.max(rss_kib(pid)?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut open = 0;
    let mut slowest = Duration::ZERO;
    for t in tasks {
        match t.await?? {
            Some(took) => slowest = slowest.max(took),
            None => open += 1,
        }
    }
    let grew_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "junk_flood: {CONNECTIONS} connections, {open} left open, slowest close {slowest:?}, \
         edge RSS {} -> peak {} MiB (+{grew_mib}), {trips} round trips meanwhile",
        before / 1024,
        peak / 1024
    );
    ensure!(open == 0, "{open} junk connections were never closed");
    ensure!(grew_mib < 100, "the edge grew by {grew_mib} MiB");
    let mut edge = edge;
    ensure!(edge.proc_alive(), "the edge died");
    ensure!(!edge.proc.stderr_contains("panicked"), "a panic");
    round_trip(agent.public, pattern(1, 64 * 1024)).await?;
    Ok(())
}
