//! TCP (optionally TLS): the agent's connection is multiplexed with yamux,
//! and the public connections the edge opens ride data channels of their
//! own beside it (see `data_channel`).

use std::net::SocketAddr;
use std::sync::Weak;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::coalesce::Coalesce;
use crate::data_channel::{
    descriptors_plentiful, first_bytes, Dialer, Io, Prefixed, Shared, TcpConnection, Tickets,
    FIRST_BYTES_TIMEOUT,
};
use crate::stream_tls::StreamTls;
use crate::{ChannelListener, MuxConnection, Transport, TransportError};

/// The TCP transport: plain by default, TLS with `with_tls`.
#[derive(Clone, Default)]
pub struct TcpTransport {
    tls: Option<StreamTls>,
}

impl TcpTransport {
    /// Plain TCP.
    pub fn plain() -> Self {
        Self::default()
    }

    /// TCP with TLS 1.3.
    pub fn with_tls(tls: StreamTls) -> Self {
        Self { tls: Some(tls) }
    }
}

impl Transport for TcpTransport {
    type Connection = TcpConnection;
    type Listener = ChannelListener<TcpConnection>;

    fn name(&self) -> &'static str {
        "tcp"
    }

    async fn listen(&self, addr: SocketAddr) -> Result<Self::Listener, TransportError> {
        let listener =
            crate::bind_tcp(addr).map_err(|e| TransportError::io("binding the TCP listener", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| TransportError::io("reading the bound address", e))?;
        let tls = self.tls.clone();
        let tickets = Tickets::default();
        Ok(ChannelListener::spawn(local, move |ready| async move {
            loop {
                let (socket, peer) = crate::accept_tcp(&listener).await;
                if crate::over_fd_watermark(&socket, crate::ListenerKind::AgentTcp) {
                    continue;
                }
                let _ = socket.set_nodelay(true);
                let (tls, ready, tickets) = (tls.clone(), ready.clone(), tickets.clone());
                // What the socket is (an agent's connection or a data
                // channel) is read off the accept loop: one slow client
                // cannot hold up the others.
                tokio::spawn(async move {
                    let Ok(accepted) =
                        tokio::time::timeout(FIRST_BYTES_TIMEOUT, accepted(socket, tls.as_ref()))
                            .await
                    else {
                        return;
                    };
                    match accepted {
                        Some(Accepted::Data(ticket, io, socket, plentiful)) => {
                            tickets.offer(&ticket, io, socket, plentiful)
                        }
                        Some(Accepted::Control(io)) => {
                            let mux = MuxConnection::start(coalesced(io), false, peer);
                            let _ = ready.send(TcpConnection::edge(mux, &tickets)).await;
                        }
                        None => {}
                    }
                });
            }
        }))
    }

    async fn connect(&self, addr: SocketAddr) -> Result<TcpConnection, TransportError> {
        let socket = TcpStream::connect(addr)
            .await
            .map_err(|e| TransportError::io("connecting over TCP", e))?;
        let _ = socket.set_nodelay(true);
        let mux = match &self.tls {
            None => MuxConnection::start(coalesced(socket), true, addr),
            Some(tls) => MuxConnection::start(coalesced(tls.connect(socket).await?), true, addr),
        };
        let dialer = Dialer {
            addr,
            tls: self.tls.clone(),
        };
        Ok(TcpConnection::agent(mux, dialer))
    }
}

/// An accepted socket, once it said what it is.
enum Accepted {
    /// A data channel: its ticket, the stream, its socket (to shut it
    /// down), and whether descriptors are plentiful.
    Data([u8; 32], Box<dyn Io>, Weak<TcpStream>, bool),
    /// An agent's connection, its first byte put back.
    Control(Prefixed<Box<dyn Io>>),
}

async fn accepted(socket: TcpStream, tls: Option<&StreamTls>) -> Option<Accepted> {
    let plentiful = descriptors_plentiful(&socket);
    let socket = Shared::new(socket);
    let weak = socket.weak();
    let io: Box<dyn Io> = match tls {
        None => Box::new(socket),
        Some(tls) => Box::new(tls.accept(socket).await.ok()?),
    };
    match first_bytes(io).await.ok()? {
        Ok((ticket, io)) => Some(Accepted::Data(ticket, io, weak, plentiful)),
        Err(control) => Some(Accepted::Control(control)),
    }
}

/// The socket yamux writes to, with its writes gathered per frame.
fn coalesced<S: AsyncRead + AsyncWrite + Unpin>(socket: S) -> Compat<Coalesce<S>> {
    Coalesce::new(socket).compat()
}
