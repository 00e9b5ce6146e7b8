//! TCP (optionally TLS): the agent's connection is multiplexed with yamux,
//! and the public connections the edge opens ride data channels of their
//! own beside it (see `data_channel`).

use std::net::SocketAddr;

use crate::data_channel::{self, ChannelConnection, Framing};
use crate::stream_tls::StreamTls;
use crate::{ChannelListener, ListenerKind, Transport, TransportError};

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

    fn framing(&self) -> Framing {
        Framing {
            tls: self.tls.clone(),
            websocket: false,
        }
    }
}

impl Transport for TcpTransport {
    type Connection = ChannelConnection;
    type Listener = ChannelListener<ChannelConnection>;

    fn name(&self) -> &'static str {
        "tcp"
    }

    async fn listen(&self, addr: SocketAddr) -> Result<Self::Listener, TransportError> {
        data_channel::listen(addr, self.framing(), ListenerKind::AgentTcp).await
    }

    async fn connect(&self, addr: SocketAddr) -> Result<ChannelConnection, TransportError> {
        data_channel::connect(addr, self.framing()).await
    }
}
