//! `beamd udp`: a DNS server behind a UDP tunnel answers queries from two
//! clients (two flows) over each transport, and the traffic is metered.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

use crate::common::api::metric;
use crate::common::cluster::eventually;
use crate::common::dns::address_server;
use crate::common::tunnel::{start_edge, Proc};

/// The public address a `beamd udp` agent says its tunnel got.
fn udp_public(agent: &Proc) -> Result<SocketAddr> {
    let line = agent.expect("beamd udp: tunnel udp://", Duration::from_secs(30))?;
    let address = line
        .split("udp://")
        .nth(1)
        .and_then(|r| r.split(' ').next());
    Ok(address.context("address")?.parse()?)
}

/// Asks `server` for the A record of `name` from `socket`; the address answered.
async fn resolve(socket: &UdpSocket, server: SocketAddr, name: &str, id: u16) -> Result<Ipv4Addr> {
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii(name)?, RecordType::A));
    let bytes = query.to_vec()?;
    let mut buf = vec![0u8; 1500];
    // UDP may lose a datagram: ask again, as a resolver does.
    for _ in 0..5 {
        socket.send_to(&bytes, server).await?;
        if let Ok(got) =
            tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await
        {
            let (n, from) = got?;
            ensure!(from == server, "an answer from {from}");
            let answer = Message::from_vec(&buf[..n])?;
            ensure!(answer.metadata.id == id, "the answer to another query");
            return match answer.answers.first().map(|r| r.data.clone()) {
                Some(RData::A(a)) => Ok(a.0),
                other => anyhow::bail!("answered {other:?}"),
            };
        }
    }
    anyhow::bail!("no answer from {server}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dns_server_answers_through_a_udp_tunnel_over_each_transport() -> Result<()> {
    let names = Arc::new(Mutex::new(HashMap::from([(
        "svc.test".to_string(),
        Ipv4Addr::new(10, 1, 2, 3),
    )])));
    let dns = address_server(names).await?;
    for transport in ["tcp", "ws", "quic"] {
        let dir = tempfile::tempdir()?;
        let edge = start_edge(dir.path(), transport, "127.0.0.1:0", &[])?;
        let token = edge.token.clone().context("token")?;
        let (port, addr) = (dns.to_string(), edge.agent_addr.to_string());
        let agent = Proc::spawn(
            &[
                "udp",
                &port,
                "--edge",
                &addr,
                "--transport",
                transport,
                "--fingerprint",
                &edge.fingerprint,
            ],
            &[("BEAMD_TOKEN", &token)],
        )?;
        let public = udp_public(&agent)?;
        // Two clients: two flows, each answered at its own address.
        let (a, b) = (
            UdpSocket::bind("127.0.0.1:0").await?,
            UdpSocket::bind("127.0.0.1:0").await?,
        );
        for (i, client) in [&a, &b].into_iter().enumerate() {
            let ip = resolve(client, public, "svc.test.", 100 + i as u16).await?;
            ensure!(
                ip == Ipv4Addr::new(10, 1, 2, 3),
                "{transport}: answered {ip}"
            );
        }
        // A second query on a flow that is already open.
        resolve(&a, public, "svc.test.", 7).await?;
        eventually("two flows and their bytes recorded", || async {
            let flows = metric(edge.api, "beamd_tunnel_connections_total").await?;
            let bytes = metric(edge.api, "beamd_tunnel_bytes_total{direction=\"out\"}").await?;
            Ok(flows >= 2 && bytes > 0)
        })
        .await
        .with_context(|| format!("over {transport}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_the_key_ends_its_udp_flows() -> Result<()> {
    let (_dir, edge) = crate::common::api::api_edge()?;
    let admin = crate::common::api::Api::new(edge.api, crate::common::tunnel::ADMIN_TOKEN);
    let made = crate::common::api::new_token(&admin, "udp").await?;
    let id = made.body["id"].as_str().context("id")?.to_string();
    let token = made.body["token"].as_str().context("token")?.to_string();
    let names = Arc::new(Mutex::new(HashMap::from([(
        "svc.test".to_string(),
        Ipv4Addr::new(10, 9, 9, 9),
    )])));
    let dns = address_server(names).await?.to_string();
    let addr = edge.agent_addr.to_string();
    let mut agent = Proc::spawn(
        &["udp", &dns, "--edge", &addr, "--transport", "tcp"],
        &[("BEAMD_TOKEN", &token)],
    )?;
    let public = udp_public(&agent)?;
    let held = UdpSocket::bind("127.0.0.1:0").await?;
    resolve(&held, public, "svc.test.", 1).await?;
    let revoked = admin
        .send("DELETE", &format!("/api/v1/tokens/{id}"), None)
        .await?;
    ensure!(revoked.status == 200, "{}", revoked.text);
    // The open flow stops answering, and so does a new one.
    eventually("the held flow cut off", || async {
        Ok(resolve(&held, public, "svc.test.", 2).await.is_err())
    })
    .await?;
    let fresh = UdpSocket::bind("127.0.0.1:0").await?;
    ensure!(
        resolve(&fresh, public, "svc.test.", 3).await.is_err(),
        "a new flow was served"
    );
    ensure!(
        agent.exited_within(Duration::from_secs(10)).await?,
        "the agent runs on"
    );
    ensure!(
        agent.stderr_contains("revoked"),
        "the agent was not told why"
    );
    Ok(())
}

/// A UDP echo server on 127.0.0.1.
async fn udp_echo() -> Result<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let port = socket.local_addr()?.port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    Ok(port)
}

/// Sends `size` bytes and waits up to `within` for them to come back whole.
async fn echoed(client: &UdpSocket, to: SocketAddr, size: usize, within: Duration) -> Result<bool> {
    let sent: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut buf = vec![0u8; 65_535];
    for _ in 0..3 {
        client.send_to(&sent, to).await?;
        if let Ok(got) = tokio::time::timeout(within, client.recv_from(&mut buf)).await {
            let (n, _) = got?;
            ensure!(
                buf[..n] == sent[..],
                "echoed {n} bytes of {size}, or other bytes"
            );
            return Ok(true);
        }
    }
    Ok(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn over_quic_flows_ride_datagrams_and_one_too_large_is_dropped_never_split() -> Result<()> {
    let echo = udp_echo().await?.to_string();
    for transport in ["quic", "tcp"] {
        let dir = tempfile::tempdir()?;
        let edge = start_edge(dir.path(), transport, "127.0.0.1:0", &[])?;
        let token = edge.token.clone().context("token")?;
        let addr = edge.agent_addr.to_string();
        let args = [
            "udp",
            &echo,
            "--edge",
            &addr,
            "--transport",
            transport,
            "--fingerprint",
            &edge.fingerprint,
        ];
        let agent = Proc::spawn(&args, &[("BEAMD_TOKEN", &token)])?;
        let public = udp_public(&agent)?;
        let client = UdpSocket::bind("127.0.0.1:0").await?;
        // The first datagram opens the flow, the next ones ride it (as QUIC
        // datagrams over QUIC).
        for size in [100, 1_000, 1_100] {
            ensure!(
                echoed(&client, public, size, Duration::from_secs(2)).await?,
                "{transport}: {size} bytes"
            );
        }
        // 3,000 bytes: more than a QUIC datagram carries on this path
        // (quinn starts at a 1,200-byte MTU); over TCP it passes whole.
        let big = echoed(&client, public, 3_000, Duration::from_millis(500)).await?;
        let dropped = metric(edge.api, "beamd_udp_datagrams_dropped_total").await?;
        match transport {
            "quic" => ensure!(
                !big && dropped == 3,
                "quic: echoed {big}, {dropped} dropped"
            ),
            _ => ensure!(big && dropped == 0, "tcp: echoed {big}, {dropped} dropped"),
        }
        // The datagrams are in the log, per tunnel.
        let api = crate::common::api::Api::new(edge.api, crate::common::tunnel::ADMIN_TOKEN);
        eventually("datagrams recorded", || async {
            let list = api.get("/api/v1/tunnels").await?;
            let n = list.body["tunnels"][0]["datagrams"].as_u64().unwrap_or(0);
            Ok(n >= 6)
        })
        .await
        .with_context(|| format!("over {transport}"))?;
    }
    Ok(())
}
