//! beamd's transport abstraction: how an agent's connection to the edge is
//! carried (QUIC, WebSocket or TCP) without the edge or agent knowing which.
//!
//! The backends arrive with the transports work; this crate fixes the shape
//! they implement so that the code above is generic over `T: Transport`.
#![forbid(unsafe_code)]

use std::future::Future;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

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
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
}

/// A way to carry multiplexed byte streams between agent and edge.
pub trait Transport: Send + Sync + 'static {
    /// One agent connection carrying many streams.
    type Connection: Connection;
    /// A bound listener.
    type Listener: Listener<Connection = Self::Connection>;

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

    /// The next connection. Must be cancel safe: it is raced against shutdown.
    fn accept(&mut self) -> impl Future<Output = Result<Self::Connection, TransportError>> + Send;

    /// The bound address.
    fn local_addr(&self) -> Result<SocketAddr, TransportError>;
}

/// One connection between an agent and the edge, carrying independent streams
/// with their own flow control.
pub trait Connection: Send + Sync + 'static {
    /// A bidirectional byte stream.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Opens a new stream to the peer.
    fn open_stream(&self) -> impl Future<Output = Result<Self::Stream, TransportError>> + Send;

    /// The next stream the peer opened.
    fn accept_stream(&self) -> impl Future<Output = Result<Self::Stream, TransportError>> + Send;

    /// The peer's address.
    fn peer_addr(&self) -> SocketAddr;
}
