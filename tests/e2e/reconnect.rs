//! The edge is killed (SIGKILL) while an agent is connected and restarted on
//! the same data dir: the agent reconnects, gets its port back, and the
//! tunnel's usage in the log matches the bytes that went through.

use crate::common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::tunnel::{echo_server, parse_public, pattern, round_trip, start_agent, start_edge};

const BATCH: usize = 1024 * 1024;

fn tunnel_bytes(dir: &std::path::Path) -> Result<(u64, u64)> {
    let out = common::beamd(&["replay", "--data-dir", dir.to_str().context("dir")?]);
    let mut totals = (0, 0);
    for line in common::text(&out.stdout).lines() {
        let e: serde_json::Value = serde_json::from_str(line)?;
        if e["type"] == "TrafficRecorded" {
            totals.0 += e["event"]["bytesIn"].as_u64().unwrap_or(0);
            totals.1 += e["event"]["bytesOut"].as_u64().unwrap_or(0);
        }
    }
    Ok(totals)
}

async fn killed_edge_comes_back(transport: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let echo = echo_server().await?;
    let edge = start_edge(dir.path(), transport, "127.0.0.1:0", &[])?;
    let agent = start_agent(&edge, transport, echo, &[])?;
    round_trip(agent.public, pattern(1, BATCH)).await?;
    // Let the 200 ms traffic window be recorded, then kill without warning.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    edge.proc.signal(rustix::process::Signal::KILL)?;
    let listen = edge.agent_addr.to_string();
    drop(edge);

    let edge = start_edge(dir.path(), transport, &listen, &[])?;
    let line = agent
        .proc
        .expect("beamd tcp: tunnel tcp://", Duration::from_secs(90))?;
    let again = parse_public(&line)?;
    ensure!(
        again == agent.public,
        "the agent got {again}, not its port {} back",
        agent.public
    );
    round_trip(again, pattern(2, BATCH)).await?;
    edge.proc.signal(rustix::process::Signal::TERM)?;
    edge.proc.expect("stopped", Duration::from_secs(30))?;
    drop(agent);
    drop(edge);
    let (bytes_in, bytes_out) = tunnel_bytes(dir.path())?;
    ensure!(
        bytes_in == 2 * BATCH as u64,
        "{bytes_in} bytes in recorded, {} sent",
        2 * BATCH
    );
    ensure!(
        bytes_out == 2 * BATCH as u64,
        "{bytes_out} bytes out recorded, {} echoed",
        2 * BATCH
    );
    let audit = common::beamd(&["audit", "--data-dir", dir.path().to_str().context("dir")?]);
    ensure!(audit.status.success(), "{}", common::text(&audit.stderr));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_agent_reconnects_to_a_killed_edge_and_keeps_its_port() -> Result<()> {
    killed_edge_comes_back("quic").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_agent_reconnects_to_a_killed_edge_and_keeps_its_port() -> Result<()> {
    killed_edge_comes_back("tcp").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_is_released_when_its_agent_stays_away_past_the_grace() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let echo = echo_server().await?;
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &["--grace-secs", "1"])?;
    let agent = start_agent(&edge, "tcp", echo, &[])?;
    drop(agent);
    let mut released = false;
    // Offline at once (the agent is gone), released one grace period later.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    edge.proc.signal(rustix::process::Signal::TERM)?;
    edge.proc.expect("stopped", Duration::from_secs(30))?;
    drop(edge);
    let out = common::beamd(&["replay", "--data-dir", dir.path().to_str().context("dir")?]);
    for line in common::text(&out.stdout).lines() {
        let e: serde_json::Value = serde_json::from_str(line)?;
        released |= e["type"] == "TunnelReleased";
    }
    ensure!(
        released,
        "the tunnel was not released after its grace period"
    );
    Ok(())
}
