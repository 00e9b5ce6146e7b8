//! An in-memory transport (a duplex pipe per connection, multiplexed with
//! yamux): the reference the conformance suite also runs against.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::{ChannelListener, MuxConnection, Transport, TransportError};

const PIPE_BYTES: usize = 256 * 1024;

/// In-memory listeners, addressed by made-up socket addresses.
#[derive(Clone, Default)]
pub struct MemoryTransport {
    listeners: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<tokio::io::DuplexStream>>>>,
}

impl MemoryTransport {
    /// A transport with no listeners.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Transport for MemoryTransport {
    type Connection = MuxConnection;
    type Listener = ChannelListener<MuxConnection>;

    fn name(&self) -> &'static str {
        "memory"
    }

    async fn listen(&self, addr: SocketAddr) -> Result<Self::Listener, TransportError> {
        let (tx, mut rx) = mpsc::channel::<tokio::io::DuplexStream>(64);
        self.listeners
            .lock()
            .map_err(|_| TransportError::Closed)?
            .insert(addr, tx);
        Ok(ChannelListener::spawn(addr, move |ready| async move {
            while let Some(pipe) = rx.recv().await {
                if ready
                    .send(MuxConnection::start(pipe.compat(), false, addr))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }))
    }

    async fn connect(&self, addr: SocketAddr) -> Result<MuxConnection, TransportError> {
        let listener = self
            .listeners
            .lock()
            .map_err(|_| TransportError::Closed)?
            .get(&addr)
            .cloned()
            .ok_or_else(|| {
                TransportError::io(
                    "connecting in memory",
                    std::io::ErrorKind::ConnectionRefused.into(),
                )
            })?;
        let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
        listener
            .send(theirs)
            .await
            .map_err(|_| TransportError::Closed)?;
        Ok(MuxConnection::start(ours.compat(), true, addr))
    }
}
