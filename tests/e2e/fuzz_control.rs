//! At least 10,000 random and mutated frames go to the control stream of each
//! transport, one connection each: the edge never panics, answers bad input
//! by closing, and keeps serving a healthy agent the whole time.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Result};
use beamd::protocol::{
    write_frame, AgentFrame, Hello, Token, TunnelRequest, MAX_FRAME, PROTOCOL_VERSION,
};
use beamd_events::vocabulary::TunnelProtocol;
use beamd_transports::tls::Trust;
use beamd_transports::{Connection, QuicTransport, TcpTransport, Transport, WsTransport};
use common::tunnel::{echo_server, pattern, round_trip, start_agent, start_edge, ADMIN_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FRAMES: usize = 10_000;
const PARALLEL: usize = 24;

async fn encode(frame: &AgentFrame) -> Vec<u8> {
    let mut buf = Vec::new();
    write_frame(&mut buf, frame).await.expect("encodes");
    buf
}

fn hello(token: &str, port: Option<u16>) -> AgentFrame {
    AgentFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        token: Token(token.into()),
        tunnels: vec![TunnelRequest {
            protocol: TunnelProtocol::Tcp,
            local_addr: "127.0.0.1:9".into(),
            port,
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
    })
}

/// The bytes of fuzz case `i`: random junk, a mutated hello, or a valid hello followed by junk.
async fn case(i: usize, good_hello: &[u8], bad_hello: &[u8]) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(0xbeed ^ i as u64);
    let junk = |rng: &mut fastrand::Rng| -> Vec<u8> {
        match rng.u8(0..5) {
            0 => (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect(),
            1 => {
                let len = rng.u32(0..400);
                let mut v = len.to_be_bytes().to_vec();
                v.extend((0..rng.u32(0..=len)).map(|_| rng.u8(..)));
                v
            }
            2 => (MAX_FRAME as u32 + 1 + rng.u32(0..1_000_000))
                .to_be_bytes()
                .to_vec(),
            3 => vec![0, 0, 0, 0],
            _ => {
                let mut v = 8u32.to_be_bytes().to_vec();
                v.extend_from_slice(&[0x81, 0xa9, b'H', b'e', b'a', b'r', b't', 0xc0]);
                v
            }
        }
    };
    match rng.u8(0..20) {
        0..=8 => junk(&mut rng),
        9..=17 => {
            let mut m = if rng.bool() {
                good_hello.to_vec()
            } else {
                bad_hello.to_vec()
            };
            for _ in 0..rng.usize(1..6) {
                let at = rng.usize(0..m.len());
                m[at] = rng.u8(..);
            }
            m
        }
        _ => {
            let mut v = good_hello.to_vec();
            v.extend(junk(&mut rng));
            v
        }
    }
}

async fn send_case<T: Transport>(
    transport: &T,
    edge: std::net::SocketAddr,
    bytes: Vec<u8>,
) -> Result<()> {
    let conn = transport.connect(edge).await?;
    let mut stream = conn.open_stream().await?;
    stream.write_all(&bytes).await?;
    // End the stream: a frame cut short must fail at once, not wait out the hello timeout.
    let _ = stream.shutdown().await;
    // The edge answers (welcome or error) and closes; read until it does.
    let mut sink = vec![0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    conn.close();
    Ok(())
}

async fn fuzz<T: Transport + Clone>(name: &str, make: impl Fn(&str) -> T) -> Result<()> {
    let _turn = common::turns::heavy().await;
    let dir = tempfile::tempdir()?;
    let echo = echo_server().await?;
    let mut edge = start_edge(
        dir.path(),
        name,
        "127.0.0.1:0",
        &["--tcp-ports", "41000-41999"],
    )?;
    let agent = start_agent(&edge, name, echo, &[])?;
    let transport = make(&edge.fingerprint);
    // Valid hellos ask for one fixed port, so the fuzz takes one tunnel over
    // and over instead of filling the range; the healthy agent's port is left alone.
    let good = encode(&hello(ADMIN_TOKEN, Some(41_999))).await;
    let bad = encode(&hello("tok_testadmin.wrongwrongwrongwrong", None)).await;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..FRAMES {
        let permit = semaphore.clone().acquire_owned().await?;
        let bytes = case(i, &good, &bad).await;
        let (t, addr) = (transport.clone(), edge.agent_addr);
        tasks.spawn(async move {
            let r = send_case(&t, addr, bytes).await;
            drop(permit);
            r
        });
        if i % 2_000 == 1_999 {
            round_trip(agent.public, pattern(i, 64 * 1024)).await?;
        }
    }
    let mut failed_connects = 0;
    while let Some(r) = tasks.join_next().await {
        if r?.is_err() {
            failed_connects += 1;
        }
    }
    ensure!(
        failed_connects == 0,
        "{failed_connects} fuzz connections could not even connect"
    );
    round_trip(agent.public, pattern(99, 1024 * 1024)).await?;
    ensure!(edge.proc_alive(), "the edge died under fuzzing");
    ensure!(
        !edge.proc.stderr_contains("panicked"),
        "the edge panicked under fuzzing"
    );
    edge.proc.signal(rustix::process::Signal::TERM)?;
    edge.proc.expect("stopped", Duration::from_secs(30))?;
    drop(agent);
    drop(edge);
    let audit = common::beamd(&["audit", "--data-dir", dir.path().to_str().unwrap()]);
    ensure!(audit.status.success(), "{}", common::text(&audit.stderr));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_control_stream_survives_fuzzing() -> Result<()> {
    fuzz("quic", |fp| {
        QuicTransport::new(None, Some(&Trust::Fingerprint(fp.to_string()))).expect("client config")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_control_stream_survives_fuzzing() -> Result<()> {
    fuzz("ws", |_| WsTransport::plain()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_control_stream_survives_fuzzing() -> Result<()> {
    fuzz("tcp", |_| TcpTransport::plain()).await
}
