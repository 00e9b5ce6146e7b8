//! WebSocket (for networks that pass only HTTP), optionally over TLS (wss):
//! the agent's connection is multiplexed with yamux over binary messages,
//! and the public connections the edge opens ride data channels of their
//! own beside it, each a WebSocket too (see `data_channel`).

use std::net::SocketAddr;

use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::data_channel::{self, ChannelConnection, Framing, Io};
use crate::stream_tls::StreamTls;
use crate::ws_bytes::WsBytes;
use crate::{ChannelListener, ListenerKind, Transport, TransportError};

/// The path agents connect to.
pub const WS_PATH: &str = "/beamd/v1/agent";

/// tungstenite's buffers, far smaller than its 128 KiB defaults: the read
/// buffer is allocated whole for every connection (and grows to hold a
/// larger frame when one comes), and every data channel is a WebSocket of
/// its own, so what an idle one holds is what an open public connection
/// costs the edge.
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(32 * 1024)
}

/// The server side of a WebSocket handshake over `io`: then its bytes.
pub(crate) async fn server(io: Box<dyn Io>) -> Result<Box<dyn Io>, TransportError> {
    let ws = tokio_tungstenite::accept_async_with_config(io, Some(ws_config()))
        .await
        .map_err(|e| TransportError::Handshake(e.to_string()))?;
    Ok(Box::new(WsBytes::new(ws).compat()))
}

/// The client side of a WebSocket handshake over `io`, dialled to `addr`.
pub(crate) async fn client(
    io: Box<dyn Io>,
    addr: SocketAddr,
    tls: bool,
) -> Result<Box<dyn Io>, TransportError> {
    let scheme = if tls { "wss" } else { "ws" };
    let url = format!("{scheme}://{addr}{WS_PATH}");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, io, Some(ws_config()))
        .await
        .map_err(|e| TransportError::Handshake(e.to_string()))?;
    Ok(Box::new(WsBytes::new(ws).compat()))
}

/// The WebSocket transport: plain (ws) by default, TLS (wss) with `with_tls`.
#[derive(Clone, Default)]
pub struct WsTransport {
    tls: Option<StreamTls>,
}

impl WsTransport {
    /// Plain WebSocket.
    pub fn plain() -> Self {
        Self::default()
    }

    /// WebSocket over TLS 1.3.
    pub fn with_tls(tls: StreamTls) -> Self {
        Self { tls: Some(tls) }
    }

    fn framing(&self) -> Framing {
        Framing {
            tls: self.tls.clone(),
            websocket: true,
        }
    }
}

impl Transport for WsTransport {
    type Connection = ChannelConnection;
    type Listener = ChannelListener<ChannelConnection>;

    fn name(&self) -> &'static str {
        "ws"
    }

    async fn listen(&self, addr: SocketAddr) -> Result<Self::Listener, TransportError> {
        data_channel::listen(addr, self.framing(), ListenerKind::AgentWs).await
    }

    async fn connect(&self, addr: SocketAddr) -> Result<ChannelConnection, TransportError> {
        data_channel::connect(addr, self.framing()).await
    }
}
