//! A UDP tunnel's flow at the agent: the datagrams of one public client,
//! to and from the local service through a socket of the flow's own (so the
//! service's answers find their way back to that client). They travel as
//! QUIC datagrams tagged with the flow's id when the edge says so (the
//! stream then only marks the flow's life), else each behind its 2-byte
//! length on the stream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use beamd_transports::Connection;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;

/// Sends datagrams on the agent's connection, whatever its transport.
pub(super) trait DatagramLink: Send + Sync {
    /// The largest datagram it carries now (`None`: none at all).
    fn max(&self) -> Option<usize>;
    /// Sends one; `false` when the connection is gone.
    fn send(&self, datagram: Vec<u8>) -> bool;
}

impl<C: Connection> DatagramLink for C {
    fn max(&self) -> Option<usize> {
        self.max_datagram_size()
    }

    fn send(&self, datagram: Vec<u8>) -> bool {
        self.send_datagram(datagram.into()).is_ok()
    }
}

/// The agent connection's flows carried as QUIC datagrams: id → the flow's
/// socket to the service.
#[derive(Default)]
pub(super) struct Flows(Mutex<HashMap<u32, Arc<UdpSocket>>>);

impl Flows {
    fn set(&self, id: u32, socket: Option<Arc<UdpSocket>>) {
        let mut flows = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match socket {
            Some(s) => flows.insert(id, s),
            None => flows.remove(&id),
        };
    }

    /// Hands each datagram the edge sends to its flow's service, until the
    /// connection ends.
    pub(super) async fn dispatch<C: Connection>(self: Arc<Self>, conn: Arc<C>) {
        while let Ok(datagram) = conn.read_datagram().await {
            let Some((id, payload)) = datagram.split_first_chunk::<4>() else {
                continue;
            };
            let socket = {
                let flows = self.0.lock().unwrap_or_else(|p| p.into_inner());
                flows.get(&u32::from_be_bytes(*id)).cloned()
            };
            if let Some(socket) = socket {
                // A refused send (nothing listening yet) loses it, as UDP does.
                let _ = socket.send(payload).await;
            }
        }
    }
}

/// A socket of the flow's own, connected to the service at `local`.
async fn service_socket(local: &str) -> Option<UdpSocket> {
    let service = tokio::net::lookup_host(local).await.ok()?.next()?;
    let any: SocketAddr = match service {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let socket = UdpSocket::bind(any).await.ok()?;
    socket.connect(service).await.ok()?;
    Some(socket)
}

/// Relays a flow carried as QUIC datagrams with id `id` until the edge ends
/// its stream; a datagram from the service larger than the path carries is
/// dropped, never split.
pub(super) async fn relay_datagrams<S>(
    stream: S,
    local: &str,
    id: u32,
    link: &dyn DatagramLink,
    flows: &Flows,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(socket) = service_socket(local).await.map(Arc::new) else {
        return;
    };
    flows.set(id, Some(socket.clone()));
    let inbound = async {
        let mut d = vec![0u8; 65_535];
        loop {
            let n = match socket.recv(&mut d).await {
                Ok(n) => n,
                Err(_) => continue, // an ICMP error from an earlier send
            };
            if link.max().is_none_or(|max| n + 4 > max) {
                continue;
            }
            let mut tagged = Vec::with_capacity(n + 4);
            tagged.extend_from_slice(&id.to_be_bytes());
            tagged.extend_from_slice(&d[..n]);
            if !link.send(tagged) {
                return;
            }
        }
    };
    // The stream carries the flow's first datagram (so that it never
    // arrives before the flow is known here), framed, then its end.
    let (mut from_edge, mut to_edge) = tokio::io::split(stream);
    let ended = async {
        let mut d = vec![0u8; 65_535];
        while let Ok(len) = from_edge.read_u16().await {
            let d = &mut d[..len as usize];
            if from_edge.read_exact(d).await.is_err() {
                return;
            }
            let _ = socket.send(d).await;
        }
    };
    tokio::select! {
        _ = inbound => {}
        _ = ended => {}
    }
    flows.set(id, None);
    let _ = to_edge.shutdown().await;
}

/// Relays one flow until the edge ends it (idle) or the stream fails.
pub(super) async fn relay<S>(stream: S, local: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(socket) = service_socket(local).await else {
        return;
    };
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
