//! QUIC (quinn): native, independently flow-controlled streams; always TLS 1.3.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::tls::{EdgeIdentity, Trust, SERVER_NAME};
use crate::{ChannelListener, Connection, Transport, TransportError};

/// The QUIC transport: a server identity to listen, a trust to connect.
#[derive(Clone)]
pub struct QuicTransport {
    server: Option<Arc<rustls::ServerConfig>>,
    client: Option<Arc<rustls::ClientConfig>>,
    server_name: String,
}

/// Streams the edge lets an agent open: the agent opens only its control
/// stream. quinn sets aside state for every stream a peer may open, so this
/// is memory per connection (1,024 slots cost ~90 KiB; 64 against 4 measured
/// 75.4 against 73.7 KiB per idle tunnel, within a run's noise).
const AGENT_OPENED_STREAMS: u32 = 4;
/// Streams an agent lets the edge open: one per public connection.
const EDGE_OPENED_STREAMS: u32 = 1_024;

/// The connection settings; `peer_streams` is how many streams the peer may open.
fn transport_config(peer_streams: u32) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(peer_streams.into());
    // Nothing uses unidirectional streams.
    t.max_concurrent_uni_streams(0u32.into());
    // A peer that vanished (a killed edge) is noticed within the idle timeout;
    // keep-alives stop a quiet but healthy connection from reaching it.
    t.keep_alive_interval(Some(Duration::from_secs(3)));
    if let Ok(idle) = quinn::IdleTimeout::try_from(Duration::from_secs(10)) {
        t.max_idle_timeout(Some(idle));
    }
    t.stream_receive_window((4u32 * 1024 * 1024).into());
    t.receive_window((32u32 * 1024 * 1024).into());
    t.send_window(32 * 1024 * 1024);
    Arc::new(t)
}

/// How many datagrams one send may hand the kernel (generic segmentation
/// offload) and one receive may bring back (generic receive offload) on
/// `socket`, as quinn will use them: 1 where the kernel offers neither.
pub fn offload(socket: &std::net::UdpSocket) -> std::io::Result<(usize, usize)> {
    let state = quinn::udp::UdpSocketState::new(socket.into())?;
    Ok((state.max_gso_segments(), state.gro_segments()))
}

fn handshake(e: impl std::fmt::Display) -> TransportError {
    TransportError::Handshake(e.to_string())
}

impl QuicTransport {
    /// A transport that listens with `identity` and connects trusting `trust`.
    pub fn new(
        identity: Option<&EdgeIdentity>,
        trust: Option<&Trust>,
    ) -> Result<Self, TransportError> {
        Ok(Self {
            server: identity
                .map(|i| i.server_config().map(Arc::new))
                .transpose()?,
            client: trust.map(|t| t.client_config().map(Arc::new)).transpose()?,
            server_name: SERVER_NAME.to_string(),
        })
    }

    /// Uses `name` for SNI and certificate-name checks (with `Trust::Roots`).
    pub fn with_server_name(mut self, name: &str) -> Self {
        self.server_name = name.to_string();
        self
    }
}

/// A QUIC connection.
pub struct QuicConnection {
    conn: quinn::Connection,
    // Kept so the client endpoint (and its socket) lives as long as the connection.
    _endpoint: Option<quinn::Endpoint>,
}

/// A QUIC bidirectional stream.
pub struct QuicStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl AsyncRead for QuicStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuicStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.send), cx)
    }
}

impl crate::PlainSocket for QuicStream {}

impl Connection for QuicConnection {
    type Stream = QuicStream;

    async fn open_stream(&self) -> Result<QuicStream, TransportError> {
        let (send, recv) = self
            .conn
            .open_bi()
            .await
            .map_err(|_| TransportError::Closed)?;
        Ok(QuicStream { send, recv })
    }

    async fn accept_stream(&self) -> Result<QuicStream, TransportError> {
        let (send, recv) = self
            .conn
            .accept_bi()
            .await
            .map_err(|_| TransportError::Closed)?;
        Ok(QuicStream { send, recv })
    }

    fn peer_addr(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    fn close(&self) {
        self.conn.close(0u32.into(), b"closed");
    }

    fn max_datagram_size(&self) -> Option<usize> {
        self.conn.max_datagram_size()
    }

    fn send_datagram(&self, datagram: bytes::Bytes) -> Result<(), TransportError> {
        self.conn
            .send_datagram(datagram)
            .map_err(|e| TransportError::Mux(e.to_string()))
    }

    async fn read_datagram(&self) -> Result<bytes::Bytes, TransportError> {
        self.conn
            .read_datagram()
            .await
            .map_err(|_| TransportError::Closed)
    }
}

impl Transport for QuicTransport {
    type Connection = QuicConnection;
    type Listener = ChannelListener<QuicConnection>;

    fn name(&self) -> &'static str {
        "quic"
    }

    async fn listen(&self, addr: SocketAddr) -> Result<Self::Listener, TransportError> {
        let tls = self
            .server
            .clone()
            .ok_or_else(|| TransportError::Tls("listening needs the edge's identity".into()))?;
        let crypto = QuicServerConfig::try_from(tls).map_err(handshake)?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport_config(AGENT_OPENED_STREAMS));
        let socket = std::net::UdpSocket::bind(addr)
            .map_err(|e| TransportError::io("binding the QUIC endpoint", e))?;
        let (gso, gro) = offload(&socket)
            .map_err(|e| TransportError::io("reading the QUIC socket's offloads", e))?;
        tracing::info!(
            %addr,
            gso,
            gro,
            "QUIC: up to {gso} datagrams per send (GSO), {gro} per receive (GRO)"
        );
        let runtime = quinn::default_runtime().ok_or(TransportError::Closed)?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(config),
            socket,
            runtime,
        )
        .map_err(|e| TransportError::io("binding the QUIC endpoint", e))?;
        let local = endpoint
            .local_addr()
            .map_err(|e| TransportError::io("reading the bound address", e))?;
        Ok(ChannelListener::spawn(local, move |ready| async move {
            while let Some(incoming) = endpoint.accept().await {
                let ready = ready.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = incoming.await {
                        let _ = ready
                            .send(QuicConnection {
                                conn,
                                _endpoint: None,
                            })
                            .await;
                    }
                });
            }
        }))
    }

    async fn connect(&self, addr: SocketAddr) -> Result<QuicConnection, TransportError> {
        let tls = self.client.clone().ok_or_else(|| {
            TransportError::Tls("connecting needs a way to trust the edge".into())
        })?;
        let crypto = QuicClientConfig::try_from(tls).map_err(handshake)?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport_config(EDGE_OPENED_STREAMS));
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .map_err(|_| TransportError::Closed)?;
        let mut endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| TransportError::io("binding the QUIC client", e))?;
        endpoint.set_default_client_config(config);
        let conn = endpoint
            .connect(addr, &self.server_name)
            .map_err(handshake)?
            .await
            .map_err(handshake)?;
        Ok(QuicConnection {
            conn,
            _endpoint: Some(endpoint),
        })
    }
}
