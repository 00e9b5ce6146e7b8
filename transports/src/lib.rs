//! beamd's transports: how an agent's connection to the edge is carried —
//! QUIC, WebSocket, TCP, or in memory for tests — without the edge or the
//! agent knowing which. Every backend offers many independent, flow-controlled
//! byte streams over one connection.
#![forbid(unsafe_code)]

mod accept;
mod coalesce;
mod data_channel;
mod faulty;
mod fd_watermark;
mod frame_gate;
mod memory;
mod mux;
mod quic;
mod refusals;
mod splice;
mod stream_tls;
mod tcp;
pub mod tls;
mod websocket;
mod ws_bytes;

use std::future::Future;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

pub use accept::{accept_tcp, bind_tcp, ChannelListener};
pub use data_channel::{
    ChannelConnection, ChannelStream, DataStream, STREAMS_OPENED, STREAMS_OPENED_HELP,
};
pub use faulty::{Faulty, FaultyConnection, FaultyListener, FaultyStream, LinkFaults};
pub use fd_watermark::{
    fd_limit, over_fd_watermark, raise_fd_limit, set_fd_reserve, DEFAULT_FD_RESERVE,
};
pub use memory::MemoryTransport;
pub use mux::{MuxConnection, MuxStream};
pub use quic::{offload as quic_offload, QuicConnection, QuicStream, QuicTransport};
pub use refusals::{
    count_refusal, ListenerKind, RefusalReason, CONNECTIONS_REFUSED, CONNECTIONS_REFUSED_HELP,
    CONNECTIONS_REFUSED_SERIES,
};
pub use splice::{splice_pair, PlainSocket, CONNECTIONS_COPIED, CONNECTIONS_COPIED_HELP};
pub use stream_tls::StreamTls;
pub use tcp::TcpTransport;
pub use websocket::WsTransport;

/// What can go wrong in a transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the transport was doing.
        context: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The connection is closed (by either side).
    #[error("connection closed")]
    Closed,
    /// The handshake (TLS, WebSocket, QUIC) failed.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The multiplexer failed.
    #[error("multiplexer error: {0}")]
    Mux(String),
    /// A TLS configuration or certificate problem.
    #[error("TLS: {0}")]
    Tls(String),
}

impl TransportError {
    /// Wraps an I/O error with what the transport was doing.
    pub fn io(context: &'static str, source: std::io::Error) -> Self {
        TransportError::Io { context, source }
    }
}

/// A way to carry multiplexed byte streams between agent and edge.
pub trait Transport: Send + Sync + 'static {
    /// One agent connection carrying many streams.
    type Connection: Connection;
    /// A bound listener.
    type Listener: Listener<Connection = Self::Connection>;

    /// The transport's name (`quic`, `ws`, `tcp`, `memory`).
    fn name(&self) -> &'static str;

    /// Binds a listener on `addr`.
    fn listen(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<Self::Listener, TransportError>> + Send;

    /// Connects to an edge at `addr`.
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<Self::Connection, TransportError>> + Send;
}

/// Accepts agent connections.
pub trait Listener: Send + 'static {
    /// The accepted connection type.
    type Connection: Connection;

    /// The next connection whose handshake completed. Cancel safe: it is
    /// raced against shutdown, and handshakes run in the background.
    fn accept(&mut self) -> impl Future<Output = Result<Self::Connection, TransportError>> + Send;

    /// The bound address.
    fn local_addr(&self) -> SocketAddr;
}

/// One connection between an agent and the edge, carrying independent streams
/// with their own flow control. A stream becomes visible to the peer when its
/// opener first writes to it.
pub trait Connection: Send + Sync + 'static {
    /// A bidirectional byte stream.
    type Stream: AsyncRead + AsyncWrite + PlainSocket + Send + Unpin + 'static;

    /// Opens a new stream to the peer.
    fn open_stream(&self) -> impl Future<Output = Result<Self::Stream, TransportError>> + Send;

    /// The next stream the peer opened.
    fn accept_stream(&self) -> impl Future<Output = Result<Self::Stream, TransportError>> + Send;

    /// The peer's address.
    fn peer_addr(&self) -> SocketAddr;

    /// Closes the connection and every stream on it.
    fn close(&self);

    /// The largest unreliable datagram the connection can send now, when it
    /// carries datagrams at all (QUIC; the path's limit less QUIC's own
    /// framing). `None`: no datagrams (WebSocket, TCP).
    fn max_datagram_size(&self) -> Option<usize> {
        None
    }

    /// Sends an unreliable datagram of at most `max_datagram_size` bytes:
    /// never split, perhaps lost.
    fn send_datagram(&self, _datagram: bytes::Bytes) -> Result<(), TransportError> {
        Err(TransportError::Closed)
    }

    /// The next datagram the peer sent; never, without datagrams.
    fn read_datagram(&self) -> impl Future<Output = Result<bytes::Bytes, TransportError>> + Send {
        std::future::pending()
    }
}
