//! End to end over each transport: a real edge, a real agent and a real echo
//! server; 64 MiB through the tunnel on 32 concurrent connections, every byte
//! compared, and the bytes metered into the log.

use crate::common;

use std::time::Duration;

use anyhow::{ensure, Result};
use common::api::metric;
use common::tunnel::{echo_server, pattern, round_trip, start_agent, start_edge};

const CONNECTIONS: usize = 32;
const TOTAL: usize = 64 * 1024 * 1024;
/// Bytes of the first connection, alone before the others.
const WARM_UP: usize = 1000;

async fn sixty_four_mib_through(transport: &str) -> Result<()> {
    let _turn = common::turns::heavy().await;
    let dir = tempfile::tempdir()?;
    let echo = echo_server().await?;
    let edge = start_edge(dir.path(), transport, "127.0.0.1:0", &[])?;
    let agent = start_agent(&edge, transport, echo, &[])?;
    // One connection first, and a pause: the TCP transport's pool of data
    // channels fills, so that later connections ride (and are spliced on)
    // data channels of their own rather than all on the yamux session.
    round_trip(agent.public, pattern(CONNECTIONS, WARM_UP)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tasks = Vec::new();
    for i in 0..CONNECTIONS {
        let public = agent.public;
        tasks.push(tokio::spawn(async move {
            round_trip(public, pattern(i, TOTAL / CONNECTIONS)).await
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(300), t).await???;
    }
    const COPIED: &str = "beamd_tcp_connections_copied_total";
    let spliced = metric(edge.api, &format!("{COPIED}{{copy=\"splice\"}}")).await?;
    let user = metric(edge.api, &format!("{COPIED}{{copy=\"user\"}}")).await?;
    eprintln!("{transport}: {spliced} connections spliced, {user} copied in user space");
    ensure!(
        spliced + user == CONNECTIONS as u64 + 1,
        "{transport}: {spliced} spliced and {user} copied of {} connections",
        CONNECTIONS + 1
    );
    ensure!(
        transport != "tcp" || spliced > 0,
        "tcp: no connection rode a plain data channel through splice"
    );
    // Stop the edge cleanly and read the metered bytes back from its log.
    edge.proc.signal(rustix::process::Signal::TERM)?;
    edge.proc.expect("stopped", Duration::from_secs(30))?;
    drop(agent);
    drop(edge);
    let out = common::beamd(&["replay", "--data-dir", dir.path().to_str().unwrap()]);
    let (mut bytes_in, mut bytes_out, mut connections) = (0u64, 0u64, 0u64);
    for line in common::text(&out.stdout).lines() {
        let e: serde_json::Value = serde_json::from_str(line)?;
        if e["type"] == "TrafficRecorded" {
            bytes_in += e["event"]["bytesIn"].as_u64().unwrap_or(0);
            bytes_out += e["event"]["bytesOut"].as_u64().unwrap_or(0);
            connections += e["event"]["connections"].as_u64().unwrap_or(0);
        }
    }
    let total = (TOTAL + WARM_UP) as u64;
    ensure!(
        bytes_in == total,
        "{transport}: {bytes_in} bytes in recorded, {total} sent"
    );
    ensure!(
        bytes_out == total,
        "{transport}: {bytes_out} bytes out recorded, {total} echoed"
    );
    ensure!(
        connections == CONNECTIONS as u64 + 1,
        "{transport}: {connections} connections recorded"
    );
    let audit = common::beamd(&["audit", "--data-dir", dir.path().to_str().unwrap()]);
    ensure!(audit.status.success(), "{}", common::text(&audit.stderr));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_carries_64_mib_exactly() -> Result<()> {
    sixty_four_mib_through("quic").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_carries_64_mib_exactly() -> Result<()> {
    sixty_four_mib_through("ws").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_carries_64_mib_exactly() -> Result<()> {
    sixty_four_mib_through("tcp").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_over_tcp_with_a_share_link_and_an_imported_token() -> Result<()> {
    use common::tunnel::{parse_public, Proc};
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens.json");
    let token = "tok_ci.abcdefabcdefabcdef12";
    std::fs::write(
        &tokens,
        format!(r#"{{"tokens": [{{"token": "{token}", "label": "ci"}}]}}"#),
    )?;
    let echo = echo_server().await?;
    let data = dir.path().join("data");
    let edge = start_edge(
        &data,
        "tcp",
        "127.0.0.1:0",
        &["--tls", "--tokens", tokens.to_str().unwrap()],
    )?;
    let link = format!(
        "beamd://{token}@{}?transport=tcp&tls=1&fingerprint={}",
        edge.agent_addr, edge.fingerprint
    );
    let agent = Proc::spawn(&["tcp", &echo.to_string(), "--edge", &link], &[])?;
    let public = parse_public(&agent.expect("beamd tcp: tunnel tcp://", Duration::from_secs(30))?)?;
    round_trip(public, pattern(7, 1024 * 1024)).await?;
    // Without a pin, a self-signed edge is not trusted (the system roots do not know it).
    let mut unpinned = Proc::spawn(
        &[
            "tcp",
            &echo.to_string(),
            "--edge",
            &edge.agent_addr.to_string(),
            "--transport",
            "tcp",
            "--tls",
            "--token",
            token,
            "--max-retries",
            "1",
        ],
        &[],
    )?;
    let status = tokio::task::spawn_blocking(move || unpinned.child.wait()).await??;
    ensure!(
        !status.success(),
        "an unpinned agent must not trust a self-signed edge"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_edge_lets_open_connections_finish() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir()?;
    let echo = echo_server().await?;
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &[])?;
    let agent = start_agent(&edge, "tcp", echo, &[])?;
    let mut socket = tokio::net::TcpStream::connect(agent.public).await?;
    let first = pattern(1, 100_000);
    socket.write_all(&first).await?;
    let mut back = vec![0u8; first.len()];
    socket.read_exact(&mut back).await?;
    ensure!(back == first);
    edge.proc.signal(rustix::process::Signal::TERM)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = pattern(2, 100_000);
    socket.write_all(&second).await?;
    socket.shutdown().await?;
    let mut rest = Vec::new();
    socket.read_to_end(&mut rest).await?;
    ensure!(
        rest == second,
        "the open connection was cut: {} of {} bytes",
        rest.len(),
        second.len()
    );
    edge.proc.expect("stopped", Duration::from_secs(30))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_port_outside_the_edges_range_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--tcp-ports", "23000-23050"],
    )?;
    let echo = echo_server().await?.to_string();
    let addr = edge.agent_addr.to_string();
    let token = edge.token.clone().unwrap_or_default();
    let mut agent = common::tunnel::Proc::spawn(
        &[
            "tcp",
            &echo,
            "--edge",
            &addr,
            "--transport",
            "tcp",
            "--fingerprint",
            &edge.fingerprint,
            "--remote-port",
            "24999",
        ],
        &[("BEAMD_TOKEN", &token)],
    )?;
    ensure!(
        agent.exited_within(Duration::from_secs(30)).await?,
        "the agent got a port outside 23000-23050"
    );
    ensure!(
        agent.stderr_contains("invalid_request") && agent.stderr_contains("23000-23050"),
        "no clear refusal on the agent's stderr"
    );
    ensure!(
        std::net::TcpStream::connect("127.0.0.1:24999").is_err(),
        "port 24999 is served"
    );
    Ok(())
}
