//! Every transport carries many concurrent, independent byte streams in both
//! directions, byte for byte, on real loopback sockets (and in memory).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Result};
use beamd_transports::tls::{EdgeIdentity, Trust};
use beamd_transports::StreamTls;
use beamd_transports::{
    Connection, Faulty, LinkFaults, Listener, MemoryTransport, QuicTransport, TcpTransport,
    Transport, TransportError, WsTransport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STREAMS: usize = 32;
const BYTES: usize = 256 * 1024;

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed as u64);
    (0..len).map(|_| rng.u8(..)).collect()
}

async fn conformance<T: Transport>(server: T, client: T, addr: SocketAddr) -> Result<()> {
    let mut listener = server.listen(addr).await?;
    let target = listener.local_addr();
    let accepted = tokio::spawn(async move { listener.accept().await.map(|c| (c, listener)) });
    let conn = std::sync::Arc::new(client.connect(target).await?);
    let (server_conn, _listener) = accepted.await??;
    let server_conn = std::sync::Arc::new(server_conn);

    // Server-opened stream: the edge forwarding a public connection to the agent.
    let s = server_conn.clone();
    let pushed = tokio::spawn(async move {
        let mut stream = s.open_stream().await?;
        stream.write_all(b"from the edge").await?;
        stream.shutdown().await?;
        anyhow::Ok(())
    });
    let mut inbound = conn.accept_stream().await?;
    let mut got = Vec::new();
    inbound.read_to_end(&mut got).await?;
    ensure!(
        got == b"from the edge",
        "server-opened stream carried {got:?}"
    );
    pushed.await??;

    // Many concurrent client-opened streams, echoed back byte for byte.
    let echo = tokio::spawn({
        let s = server_conn.clone();
        async move {
            while let Ok(stream) = s.accept_stream().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = tokio::io::split(stream);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        }
    });
    let mut tasks = Vec::new();
    for i in 0..STREAMS {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let data = pattern(i, BYTES);
            let stream = conn.open_stream().await?;
            let (mut r, mut w) = tokio::io::split(stream);
            let writer = {
                let data = data.clone();
                tokio::spawn(async move {
                    w.write_all(&data).await?;
                    w.shutdown().await?;
                    anyhow::Ok(())
                })
            };
            let mut back = Vec::with_capacity(BYTES);
            r.read_to_end(&mut back).await?;
            writer.await??;
            ensure!(
                back == data,
                "stream {i}: {} bytes came back, differing",
                back.len()
            );
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t).await???;
    }

    // Closing ends the connection for both sides.
    conn.close();
    let closed = tokio::time::timeout(Duration::from_secs(10), server_conn.accept_stream()).await?;
    ensure!(
        matches!(closed, Err(TransportError::Closed)),
        "accept after close: {:?}",
        closed.err()
    );
    echo.abort();
    Ok(())
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_conforms() -> Result<()> {
    conformance(TcpTransport::plain(), TcpTransport::plain(), loopback()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_conforms() -> Result<()> {
    conformance(WsTransport::plain(), WsTransport::plain(), loopback()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_conforms() -> Result<()> {
    let identity = EdgeIdentity::generate(&[])?;
    let server = QuicTransport::new(Some(&identity), None)?;
    let client = QuicTransport::new(None, Some(&Trust::Fingerprint(identity.fingerprint())))?;
    conformance(server, client, loopback()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_with_tls_conforms() -> Result<()> {
    let identity = EdgeIdentity::generate(&[])?;
    let server = TcpTransport::with_tls(StreamTls::new(Some(&identity), None)?);
    let client = TcpTransport::with_tls(StreamTls::new(
        None,
        Some(&Trust::Fingerprint(identity.fingerprint())),
    )?);
    conformance(server, client, loopback()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_with_tls_conforms() -> Result<()> {
    let identity = EdgeIdentity::generate(&[])?;
    let server = WsTransport::with_tls(StreamTls::new(Some(&identity), None)?);
    let client = WsTransport::with_tls(StreamTls::new(
        None,
        Some(&Trust::Fingerprint(identity.fingerprint())),
    )?);
    conformance(server, client, loopback()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_over_tcp_refuses_a_self_signed_edge_by_system_roots() -> Result<()> {
    let identity = EdgeIdentity::generate(&[])?;
    let server = TcpTransport::with_tls(StreamTls::new(Some(&identity), None)?);
    let mut listener = server.listen(loopback()).await?;
    let target = listener.local_addr();
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    let client = TcpTransport::with_tls(StreamTls::new(None, Some(&Trust::System))?);
    let err = client
        .connect(target)
        .await
        .err()
        .expect("a self-signed edge is not trusted by the system roots");
    ensure!(
        err.to_string().contains("certificate") || err.to_string().contains("issuer"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_conforms() -> Result<()> {
    let t = MemoryTransport::new();
    conformance(t.clone(), t, "10.255.255.1:7000".parse()?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_with_read_delays_and_overtaking_streams_conforms() -> Result<()> {
    let faults = LinkFaults {
        delay_per_mille: 300,
        max_delay: Duration::from_millis(3),
        ..LinkFaults::default()
    };
    let t = Faulty::new(MemoryTransport::new(), faults, 7);
    conformance(t.clone(), t, "10.255.255.2:7000".parse()?).await
}

#[tokio::test(start_paused = true)]
async fn a_faulty_link_cuts_a_connection_within_its_bound() -> Result<()> {
    let faults = LinkFaults {
        drop_per_mille: 1000,
        drop_within: Duration::from_secs(5),
        ..LinkFaults::default()
    };
    let t = Faulty::new(MemoryTransport::new(), faults, 3);
    let addr = "10.255.255.3:7000".parse()?;
    let mut listener = t.listen(addr).await?;
    let client = t.connect(addr).await?;
    let server = listener.accept().await?;
    let started = tokio::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(60), server.accept_stream()).await?;
    ensure!(
        matches!(closed, Err(TransportError::Closed)),
        "{:?}",
        closed.err()
    );
    ensure!(
        started.elapsed() <= Duration::from_secs(6),
        "cut after {:?}",
        started.elapsed()
    );
    drop(client);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_refuses_an_edge_with_another_fingerprint() -> Result<()> {
    let identity = EdgeIdentity::generate(&[])?;
    let other = EdgeIdentity::generate(&[])?;
    let server = QuicTransport::new(Some(&identity), None)?;
    let mut listener = server.listen(loopback()).await?;
    let target = listener.local_addr();
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    let client = QuicTransport::new(None, Some(&Trust::Fingerprint(other.fingerprint())))?;
    let err = client
        .connect(target)
        .await
        .err()
        .expect("a wrong fingerprint is refused");
    ensure!(err.to_string().contains("fingerprint"), "{err}");
    // A pin with colons and capitals is the same pin.
    let colons: String = identity
        .fingerprint()
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let client = QuicTransport::new(None, Some(&Trust::Fingerprint(colons)))?;
    client.connect(target).await?;
    Ok(())
}

/// quinn hands the kernel many datagrams per send and takes many per
/// receive where the kernel offers it (Linux: UDP_SEGMENT since 4.18,
/// UDP_GRO since 5.0); a QUIC edge that sent one datagram per system call
/// would cap its throughput far below TCP's.
#[cfg(target_os = "linux")]
#[test]
fn quic_sockets_use_segmentation_and_receive_offload() -> Result<()> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let (gso, gro) = beamd_transports::quic_offload(&socket)?;
    eprintln!("GSO {gso} datagrams per send, GRO {gro} per receive");
    ensure!(gso > 1, "GSO off: {gso} datagram per send");
    ensure!(gro > 1, "GRO off: {gro} datagram per receive");
    Ok(())
}
