//! How an agent finds its way, on one edge (the embedded sled log):
//! - `--transport auto` where QUIC cannot connect: it falls back to
//!   WebSocket, says so, and the tunnel records `ws`;
//! - a second agent with the same token and port takes the tunnel over at
//!   once, while the first is still connected: public connections reach the
//!   second, and the first stops with `taken_over`;
//! - `--edge` lists several edges: a dead first one is skipped.

use crate::common;

use std::time::Duration;

use anyhow::{ensure, Result};
use common::api::Api;
use common::tunnel::{
    echo_server, parse_public, pattern, round_trip, start_edge, Proc, ADMIN_TOKEN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A local service that greets every connection with `word` and closes.
async fn greeter(word: &'static str) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(word.as_bytes()).await;
        }
    });
    Ok(port)
}

/// What a public connection to `addr` reads before it closes.
async fn greeting(addr: std::net::SocketAddr) -> Result<String> {
    let mut c = TcpStream::connect(addr).await?;
    let mut got = String::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_string(&mut got)).await??;
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_websocket_where_quic_cannot_connect() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Only WebSocket is served: QUIC's datagrams to that port go nowhere.
    let edge = start_edge(dir.path(), "ws", "127.0.0.1:0", &[])?;
    let echo = echo_server().await?.to_string();
    let addr = edge.agent_addr.to_string();
    let agent = Proc::spawn(
        &[
            "tcp",
            &echo,
            "--edge",
            &addr,
            "--transport",
            "auto",
            "--fingerprint",
            &edge.fingerprint,
        ],
        &[("BEAMD_TOKEN", ADMIN_TOKEN)],
    )?;
    let line = agent.expect("beamd tcp: tunnel tcp://", Duration::from_secs(30))?;
    ensure!(line.contains("over ws to"), "{line}");
    ensure!(
        agent.stderr_contains("quic to") && agent.stderr_contains("trying ws"),
        "the fallback is said on stderr"
    );
    round_trip(parse_public(&line)?, pattern(3, 32 * 1024)).await?;
    let api = Api::new(edge.api, ADMIN_TOKEN);
    let tunnels = api.get("/api/v1/tunnels").await?;
    ensure!(
        tunnels.body["tunnels"][0]["transport"] == "ws",
        "the chosen transport is recorded: {}",
        tunnels.text
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_takes_the_tunnel_over_at_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &[])?;
    let addr = edge.agent_addr.to_string();
    let agent = |service: u16, port: Option<&str>| {
        let service = service.to_string();
        let mut args = vec!["tcp", &service, "--edge", &addr, "--transport", "tcp"];
        args.extend(port.iter().flat_map(|p| ["--remote-port", *p]));
        Proc::spawn(&args, &[("BEAMD_TOKEN", ADMIN_TOKEN)])
    };
    let mut first = agent(greeter("first").await?, None)?;
    let public = parse_public(&first.expect("beamd tcp: tunnel tcp://", Duration::from_secs(30))?)?;
    ensure!(greeting(public).await? == "first");

    let port = public.port().to_string();
    let second = agent(greeter("second").await?, Some(&port))?;
    let line = second.expect("beamd tcp: tunnel tcp://", Duration::from_secs(30))?;
    ensure!(parse_public(&line)? == public, "the same port: {line}");
    ensure!(greeting(public).await? == "second");
    first.exited_within(Duration::from_secs(15)).await?;
    ensure!(
        first.stderr_contains("taken_over"),
        "the first agent is told why it lost the tunnel"
    );
    let status = first.child.wait()?;
    ensure!(!status.success(), "a taken-over agent exits non-zero");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_edge_in_the_list_is_skipped() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &[])?;
    // A port nothing listens on, first in the list.
    let closed = common::ClosedPort::bind()?;
    let dead = closed.addr;
    let edges = format!("{dead},{}", edge.agent_addr);
    let echo = echo_server().await?.to_string();
    let agent = Proc::spawn(
        &["tcp", &echo, "--edge", &edges, "--transport", "tcp"],
        &[("BEAMD_TOKEN", ADMIN_TOKEN)],
    )?;
    let line = agent.expect("beamd tcp: tunnel tcp://", Duration::from_secs(30))?;
    ensure!(line.contains(&edge.agent_addr.to_string()), "{line}");
    ensure!(
        agent.stderr_contains(&format!("reconnecting to {}", edge.agent_addr)),
        "the move to the next edge is said"
    );
    round_trip(parse_public(&line)?, pattern(4, 8 * 1024)).await?;
    let bad = common::beamd(&["tcp", "1", "--edge", "a:1,,b:2", "--token", ADMIN_TOKEN]);
    let err = common::text(&bad.stderr);
    ensure!(
        !bad.status.success() && err.contains("empty entry") && err.lines().count() == 1,
        "{err}"
    );
    Ok(())
}
