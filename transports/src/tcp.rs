//! Plain TCP, multiplexed with yamux.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::{ChannelListener, MuxConnection, Transport, TransportError};

/// The TCP transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpTransport;

impl Transport for TcpTransport {
    type Connection = MuxConnection;
    type Listener = ChannelListener<MuxConnection>;

    fn name(&self) -> &'static str {
        "tcp"
    }

    async fn listen(&self, addr: SocketAddr) -> Result<Self::Listener, TransportError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| TransportError::io("binding the TCP listener", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| TransportError::io("reading the bound address", e))?;
        Ok(ChannelListener::spawn(local, move |ready| async move {
            while let Ok((socket, peer)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                let conn = MuxConnection::start(socket.compat(), false, peer);
                if ready.send(conn).await.is_err() {
                    break;
                }
            }
        }))
    }

    async fn connect(&self, addr: SocketAddr) -> Result<MuxConnection, TransportError> {
        let socket = TcpStream::connect(addr)
            .await
            .map_err(|e| TransportError::io("connecting over TCP", e))?;
        let _ = socket.set_nodelay(true);
        Ok(MuxConnection::start(socket.compat(), true, addr))
    }
}
