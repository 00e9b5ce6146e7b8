//! WebSocket (for networks that pass only HTTP), multiplexed with yamux over
//! binary messages.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::ws_bytes::WsBytes;
use crate::{ChannelListener, MuxConnection, Transport, TransportError};

/// The path agents connect to.
pub const WS_PATH: &str = "/beamd/v1/agent";
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The WebSocket transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct WsTransport;

impl Transport for WsTransport {
    type Connection = MuxConnection;
    type Listener = ChannelListener<MuxConnection>;

    fn name(&self) -> &'static str {
        "ws"
    }

    async fn listen(&self, addr: SocketAddr) -> Result<Self::Listener, TransportError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| TransportError::io("binding the WebSocket listener", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| TransportError::io("reading the bound address", e))?;
        Ok(ChannelListener::spawn(local, move |ready| async move {
            while let Ok((socket, peer)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                let ready = ready.clone();
                tokio::spawn(async move {
                    let handshake = tokio_tungstenite::accept_async(socket);
                    if let Ok(Ok(ws)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        let _ = ready
                            .send(MuxConnection::start(WsBytes::new(ws), false, peer))
                            .await;
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
        let url = format!("ws://{addr}{WS_PATH}");
        let handshake = tokio_tungstenite::client_async(url, socket);
        let (ws, _) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| TransportError::Handshake("WebSocket handshake timed out".into()))?
            .map_err(|e| TransportError::Handshake(e.to_string()))?;
        Ok(MuxConnection::start(WsBytes::new(ws), true, addr))
    }
}
