//! Optional TLS for the stream transports (TCP and WebSocket), with the same
//! identity and trust as QUIC.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::tls::{EdgeIdentity, Trust, SERVER_NAME};
use crate::TransportError;

/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS settings: an identity to accept with, a trust to connect with.
#[derive(Clone)]
pub struct StreamTls {
    server: Option<tokio_rustls::TlsAcceptor>,
    client: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
}

impl StreamTls {
    /// Settings for listening with `identity` and/or connecting trusting `trust`.
    pub fn new(
        identity: Option<&EdgeIdentity>,
        trust: Option<&Trust>,
    ) -> Result<Self, TransportError> {
        let server = identity
            .map(|i| {
                i.server_config()
                    .map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)))
            })
            .transpose()?;
        let client = trust
            .map(|t| {
                let name = ServerName::try_from(SERVER_NAME)
                    .map_err(|e| TransportError::Tls(e.to_string()))?;
                Ok::<_, TransportError>((
                    tokio_rustls::TlsConnector::from(Arc::new(t.client_config()?)),
                    name,
                ))
            })
            .transpose()?;
        Ok(Self { server, client })
    }

    /// Uses `name` for SNI and the certificate-name check (with CA or system trust).
    pub fn with_server_name(mut self, name: &str) -> Result<Self, TransportError> {
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| TransportError::Tls(e.to_string()))?;
        if let Some((_, n)) = self.client.as_mut() {
            *n = name;
        }
        Ok(self)
    }

    /// The server side of a handshake on an accepted socket.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        &self,
        socket: S,
    ) -> Result<impl AsyncRead + AsyncWrite + Unpin + Send + 'static, TransportError> {
        let acceptor = self
            .server
            .clone()
            .ok_or_else(|| TransportError::Tls("listening needs the edge's identity".into()))?;
        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket))
            .await
            .map_err(|_| TransportError::Handshake("TLS handshake timed out".into()))?
            .map_err(|e| TransportError::Handshake(e.to_string()))
    }

    /// The client side of a handshake on a connected socket.
    pub async fn connect<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        &self,
        socket: S,
    ) -> Result<impl AsyncRead + AsyncWrite + Unpin + Send + 'static, TransportError> {
        let (connector, name) = self.client.clone().ok_or_else(|| {
            TransportError::Tls("connecting needs a way to trust the edge".into())
        })?;
        tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, socket))
            .await
            .map_err(|_| TransportError::Handshake("TLS handshake timed out".into()))?
            .map_err(|e| TransportError::Handshake(e.to_string()))
    }
}
