//! A UDP tunnel's flow at the agent: the datagrams of one public client,
//! each behind its 2-byte length on the stream, to and from the local
//! service through a socket of the flow's own (so the service's answers
//! find their way back to that client).

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;

/// Relays one flow until the edge ends it (idle) or the stream fails.
pub(super) async fn relay<S>(stream: S, local: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Ok(Some(service)) = tokio::net::lookup_host(local).await.map(|mut a| a.next()) else {
        return;
    };
    let any: SocketAddr = match service {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let Ok(socket) = UdpSocket::bind(any).await else {
        return;
    };
    if socket.connect(service).await.is_err() {
        return;
    }
    let (mut from_edge, mut to_edge) = tokio::io::split(stream);
    let outbound = async {
        let mut d = vec![0u8; 65_535];
        loop {
            let Ok(len) = from_edge.read_u16().await else {
                return;
            };
            let d = &mut d[..len as usize];
            if from_edge.read_exact(d).await.is_err() {
                return;
            }
            // A refused send (nothing listening yet) loses the datagram, as UDP does.
            let _ = socket.send(d).await;
        }
    };
    let inbound = async {
        let mut d = vec![0u8; 65_535];
        loop {
            let n = match socket.recv(&mut d).await {
                Ok(n) => n,
                Err(_) => continue, // an ICMP error from an earlier send
            };
            let framed = [&(n as u16).to_be_bytes()[..], &d[..n]].concat();
            if to_edge.write_all(&framed).await.is_err() || to_edge.flush().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = outbound => {}
        _ = inbound => {}
    }
}
