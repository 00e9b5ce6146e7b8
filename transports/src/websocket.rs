//! WebSocket (for networks that pass only HTTP), optionally over TLS (wss),
//! multiplexed with yamux over binary messages.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::stream_tls::StreamTls;
use crate::ws_bytes::WsBytes;
use crate::{ChannelListener, MuxConnection, Transport, TransportError};

/// The path agents connect to.
pub const WS_PATH: &str = "/beamd/v1/agent";
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// tungstenite's buffers, smaller than its 128 KiB defaults: the read buffer
/// is allocated whole for every connection, and a yamux frame (the unit
/// written) is at most 16 KiB, so 32 KiB holds two.
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(32 * 1024)
        .write_buffer_size(32 * 1024)
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
}

async fn serve_ws<S>(socket: S, peer: SocketAddr) -> Option<MuxConnection>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = tokio_tungstenite::accept_async_with_config(socket, Some(ws_config()));
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(ws)) => Some(MuxConnection::start(WsBytes::new(ws), false, peer)),
        _ => None,
    }
}

async fn open_ws<S>(
    socket: S,
    url: String,
    addr: SocketAddr,
) -> Result<MuxConnection, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = tokio_tungstenite::client_async_with_config(url, socket, Some(ws_config()));
    let (ws, _) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| TransportError::Handshake("WebSocket handshake timed out".into()))?
        .map_err(|e| TransportError::Handshake(e.to_string()))?;
    Ok(MuxConnection::start(WsBytes::new(ws), true, addr))
}

impl Transport for WsTransport {
    type Connection = MuxConnection;
    type Listener = ChannelListener<MuxConnection>;

    fn name(&self) -> &'static str {
        "ws"
    }

    async fn listen(&self, addr: SocketAddr) -> Result<Self::Listener, TransportError> {
        let listener = crate::bind_tcp(addr)
            .map_err(|e| TransportError::io("binding the WebSocket listener", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| TransportError::io("reading the bound address", e))?;
        let tls = self.tls.clone();
        Ok(ChannelListener::spawn(local, move |ready| async move {
            loop {
                let (socket, peer) = crate::accept_tcp(&listener).await;
                if crate::over_fd_watermark(&socket, crate::ListenerKind::AgentWs) {
                    continue;
                }
                let _ = socket.set_nodelay(true);
                let (tls, ready) = (tls.clone(), ready.clone());
                tokio::spawn(async move {
                    let conn = match tls {
                        None => serve_ws(socket, peer).await,
                        Some(tls) => match tls.accept(socket).await {
                            Ok(stream) => serve_ws(stream, peer).await,
                            Err(_) => None,
                        },
                    };
                    if let Some(conn) = conn {
                        let _ = ready.send(conn).await;
                    }
                });
            }
        }))
    }

    async fn connect(&self, addr: SocketAddr) -> Result<MuxConnection, TransportError> {
        let socket = TcpStream::connect(addr)
            .await
            .map_err(|e| TransportError::io("connecting for WebSocket", e))?;
        let _ = socket.set_nodelay(true);
        match &self.tls {
            None => open_ws(socket, format!("ws://{addr}{WS_PATH}"), addr).await,
            Some(tls) => {
                open_ws(
                    tls.connect(socket).await?,
                    format!("wss://{addr}{WS_PATH}"),
                    addr,
                )
                .await
            }
        }
    }
}
