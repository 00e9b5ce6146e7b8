//! TCP (optionally TLS), multiplexed with yamux.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::coalesce::Coalesce;
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
    type Connection = MuxConnection;
    type Listener = ChannelListener<MuxConnection>;

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
        Ok(ChannelListener::spawn(local, move |ready| async move {
            loop {
                let (socket, peer) = crate::accept_tcp(&listener).await;
                if crate::over_fd_watermark(&socket, crate::ListenerKind::AgentTcp) {
                    continue;
                }
                let _ = socket.set_nodelay(true);
                match &tls {
                    None => {
                        if ready
                            .send(MuxConnection::start(coalesced(socket), false, peer))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Some(tls) => {
                        let (tls, ready) = (tls.clone(), ready.clone());
                        tokio::spawn(async move {
                            if let Ok(stream) = tls.accept(socket).await {
                                let _ = ready
                                    .send(MuxConnection::start(coalesced(stream), false, peer))
                                    .await;
                            }
                        });
                    }
                }
            }
        }))
    }

    async fn connect(&self, addr: SocketAddr) -> Result<MuxConnection, TransportError> {
        let socket = TcpStream::connect(addr)
            .await
            .map_err(|e| TransportError::io("connecting over TCP", e))?;
        let _ = socket.set_nodelay(true);
        Ok(match &self.tls {
            None => MuxConnection::start(coalesced(socket), true, addr),
            Some(tls) => MuxConnection::start(coalesced(tls.connect(socket).await?), true, addr),
        })
    }
}

/// The socket yamux writes to, with its writes gathered per frame.
fn coalesced<S: AsyncRead + AsyncWrite + Unpin>(socket: S) -> Compat<Coalesce<S>> {
    Coalesce::new(socket).compat()
}
