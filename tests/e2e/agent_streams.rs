//! An agent reaches only what its tunnel exposes: after its control stream it
//! may open nothing. A raw agent that authenticates and then opens another
//! stream (with data on it) is told `unexpected_stream` on its control
//! stream and its connection is closed, over every transport, while a
//! well-behaved agent on the same edge carries traffic throughout.

use crate::common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use beamd::protocol::{
    read_frame, write_frame, AgentFrame, EdgeFrame, Hello, Token, TunnelRequest, PROTOCOL_VERSION,
};
use beamd_events::vocabulary::TunnelProtocol;
use beamd_transports::tls::Trust;
use beamd_transports::{Connection, QuicTransport, TcpTransport, Transport, WsTransport};
use common::tunnel::{echo_server, pattern, round_trip, start_agent, start_edge, ADMIN_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `make` builds the raw agent's transport, given the edge's fingerprint.
async fn misbehave<T: Transport>(kind: &str, make: impl FnOnce(&str) -> Result<T>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(dir.path(), kind, "127.0.0.1:0", &[])?;
    let transport = make(&edge.fingerprint)?;
    let local = echo_server().await?;
    let good = start_agent(&edge, kind, local, &[])?;

    let conn = transport.connect(edge.agent_addr).await?;
    let mut control = conn.open_stream().await?;
    let hello = AgentFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        token: Token(ADMIN_TOKEN.into()),
        tunnels: vec![TunnelRequest {
            protocol: TunnelProtocol::Tcp,
            local_addr: "127.0.0.1:9".into(),
            port: None,
            name: None,
            domain: None,
            basic_auth: None,
            allow: Vec::new(),
            inspect: None,
            upstream: Default::default(),
            tag: None,
            proxy_protocol: None,
            pool: false,
            sign_in: None,
        }],
        udp_datagrams: true,
    });
    write_frame(&mut control, &hello).await?;
    let welcome = read_frame::<EdgeFrame>(&mut control).await?;
    ensure!(matches!(welcome, EdgeFrame::Welcome { .. }), "{welcome:?}");

    let mut extra = conn.open_stream().await?;
    let _ = extra.write_all(&pattern(7, 64 * 1024)).await;
    let told = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match read_frame::<EdgeFrame>(&mut control).await {
                Ok(EdgeFrame::Heartbeat) => continue,
                other => return other,
            }
        }
    })
    .await
    .context("no answer to the extra stream within 10 s")?;
    match told {
        Ok(EdgeFrame::Error(e)) => ensure!(e.code == "unexpected_stream", "{e:?}"),
        other => anyhow::bail!("{kind}: expected an unexpected_stream error, got {other:?}"),
    }
    // And the connection goes: the extra stream ends too.
    let mut sink = vec![0u8; 4096];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(n) = extra.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    ensure!(ended.is_ok(), "{kind}: the extra stream stayed open");
    round_trip(good.public, pattern(8, 64 * 1024)).await?;
    let mut edge = edge;
    ensure!(edge.proc_alive() && !edge.proc.stderr_contains("panicked"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_opens_a_stream_is_cut_off_over_tcp_and_ws() -> Result<()> {
    misbehave("tcp", |_| Ok(TcpTransport::plain())).await?;
    misbehave("ws", |_| Ok(WsTransport::plain())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_opens_a_stream_is_cut_off_over_quic() -> Result<()> {
    misbehave("quic", |fp| {
        Ok(QuicTransport::new(
            None,
            Some(&Trust::Fingerprint(fp.to_string())),
        )?)
    })
    .await
}
