//! The TCP transport's data channels on real loopback sockets: the streams
//! the edge opens ride TCP connections of their own (plain and TLS), byte for
//! byte; closing the agent's connection cuts every data channel it owns; a
//! data channel with a ticket no connection holds is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use beamd_transports::tls::{EdgeIdentity, Trust};
use beamd_transports::{
    Connection, Listener, StreamTls, TcpConnection, TcpStreamOf, TcpTransport, Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BYTES: usize = 256 * 1024;

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed as u64);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// An edge-side and an agent-side connection, and the listener's address.
async fn pair(
    server: TcpTransport,
    client: TcpTransport,
) -> Result<(Arc<TcpConnection>, Arc<TcpConnection>, SocketAddr)> {
    let mut listener = server.listen(loopback()).await?;
    let addr = listener.local_addr();
    let accepted = tokio::spawn(async move {
        let conn = listener.accept().await;
        // The listener keeps accepting data channels while it lives.
        tokio::spawn(async move {
            let _keep = listener;
            std::future::pending::<()>().await
        });
        conn
    });
    let agent = Arc::new(client.connect(addr).await?);
    let edge = Arc::new(accepted.await??);
    Ok((edge, agent, addr))
}

/// The agent echoes every stream the edge opens, and reports each one's carrier.
fn echo(agent: Arc<TcpConnection>) -> tokio::sync::mpsc::UnboundedReceiver<bool> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(stream) = agent.accept_stream().await {
            let _ = tx.send(matches!(stream, TcpStreamOf::Data(_)));
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(stream);
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    rx
}

/// Opens `n` streams from the edge, `concurrent` at a time, each echoed
/// byte for byte; returns how many rode data channels.
async fn carry(edge: &Arc<TcpConnection>, n: usize, concurrent: usize) -> Result<usize> {
    let mut on_data = 0;
    for round in 0..n.div_ceil(concurrent) {
        let mut tasks = Vec::new();
        for i in 0..concurrent.min(n - round * concurrent) {
            let edge = edge.clone();
            let seed = round * concurrent + i;
            tasks.push(tokio::spawn(async move {
                let stream = edge.open_stream().await?;
                let data_channel = matches!(stream, TcpStreamOf::Data(_));
                let data = pattern(seed, BYTES);
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
                    "stream {seed}: {} bytes back, differing",
                    back.len()
                );
                anyhow::Ok(data_channel)
            }));
        }
        for t in tasks {
            on_data += usize::from(tokio::time::timeout(Duration::from_secs(60), t).await???);
        }
    }
    Ok(on_data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_opens_streams_on_data_channels_of_their_own() -> Result<()> {
    let (edge, agent, _) = pair(TcpTransport::plain(), TcpTransport::plain()).await?;
    let mut carriers = echo(agent);
    let on_data = carry(&edge, 64, 4).await?;
    let mut seen = 0;
    while let Ok(data) = carriers.try_recv() {
        seen += usize::from(data);
    }
    ensure!(
        seen == on_data,
        "the agent saw {seen} data channels, the edge opened {on_data}"
    );
    // How many ride data channels under a burst is the benchmark's figure;
    // here: some do, and a pool given a moment serves the next stream.
    ensure!(on_data > 0, "none of 64 streams rode a data channel");
    ensure!(
        after_a_pause(&edge).await?,
        "a stream opened after a pause rode the mux"
    );
    Ok(())
}

/// Whether a stream opened once the pool had time to fill rides a data channel.
async fn after_a_pause(edge: &Arc<TcpConnection>) -> Result<bool> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(carry(edge, 1, 1).await? == 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_channels_run_over_tls_too() -> Result<()> {
    let identity = EdgeIdentity::generate(&[])?;
    let server = TcpTransport::with_tls(StreamTls::new(Some(&identity), None)?);
    let client = TcpTransport::with_tls(StreamTls::new(
        None,
        Some(&Trust::Fingerprint(identity.fingerprint())),
    )?);
    let (edge, agent, _) = pair(server, client).await?;
    let _carriers = echo(agent);
    let on_data = carry(&edge, 32, 4).await?;
    ensure!(on_data > 0, "none of 32 streams rode a data channel");
    ensure!(
        after_a_pause(&edge).await?,
        "a stream opened after a pause rode the mux"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_connection_cuts_its_data_channels() -> Result<()> {
    let (edge, agent, _) = pair(TcpTransport::plain(), TcpTransport::plain()).await?;
    let agent_side = agent.clone();
    let (tx, mut held) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(stream) = agent_side.accept_stream().await {
            let _ = tx.send(stream);
        }
    });
    // Warm the pool, then hold a stream that rides a data channel open.
    let mut stream = None;
    for _ in 0..50 {
        let mut s = edge.open_stream().await?;
        s.write_all(b"hello").await?;
        let at_agent = held.recv().await.context("the agent's stream")?;
        if matches!(s, TcpStreamOf::Data(_)) {
            stream = Some((s, at_agent));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut at_edge, mut at_agent) = stream.context("no stream rode a data channel")?;
    let mut buf = [0u8; 5];
    at_agent.read_exact(&mut buf).await?;
    ensure!(&buf == b"hello");

    // The edge cuts the agent off (a revoked key): the open stream ends on
    // both sides at once, though nobody closed the stream itself.
    edge.close();
    let read = tokio::time::timeout(Duration::from_secs(2), at_agent.read(&mut buf))
        .await
        .context("the agent's end of the data channel still open 2 s after the close")?;
    ensure!(
        matches!(read, Ok(0) | Err(_)),
        "the agent read {read:?} after the close"
    );
    let mut wrote = Ok(());
    for _ in 0..100 {
        wrote = at_edge.write_all(&[0u8; 16 * 1024]).await;
        if wrote.is_err() {
            break;
        }
    }
    ensure!(wrote.is_err(), "the edge could still write after closing");
    drop(agent);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_channel_with_an_unknown_ticket_is_closed() -> Result<()> {
    let (edge, agent, addr) = pair(TcpTransport::plain(), TcpTransport::plain()).await?;
    let mut forged = tokio::net::TcpStream::connect(addr).await?;
    let mut hello = vec![0xbd];
    hello.extend_from_slice(&[7u8; 32]);
    forged.write_all(&hello).await?;
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), forged.read(&mut buf))
        .await
        .context("a forged data channel still open after 2 s")?;
    ensure!(
        matches!(read, Ok(0) | Err(_)),
        "read {read:?} from a forged data channel"
    );
    // The connection it tried to join works on.
    let _carriers = echo(agent);
    carry(&edge, 4, 2).await?;
    ensure!(
        after_a_pause(&edge).await?,
        "no data channel after the forgery"
    );
    Ok(())
}
