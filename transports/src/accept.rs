//! A listener whose handshakes run in the background and whose `accept` only
//! takes finished connections from a channel: cancel safe, and one slow
//! client cannot hold up the others.

use std::net::SocketAddr;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Connection, Listener, TransportError};

/// How many finished handshakes may wait for `accept`.
const BACKLOG: usize = 128;
/// How long to back off when accepting fails for want of a resource (file
/// descriptors, buffers): the pending connection stays queued, so retrying at
/// once would spin.
const RESOURCE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// The listen backlog asked for (the kernel caps it at `net.core.somaxconn`).
/// std and tokio ask for 128 and 1,024: too few when a thousand agents
/// reconnect at once after an edge restart, and the overflow costs each
/// dropped handshake a retransmission or a reset.
const LISTEN_BACKLOG: u32 = 4_096;

/// A TCP listener on `addr` with a deep accept queue (and `SO_REUSEADDR`, as
/// std sets it, so a restart can bind while old connections linger).
pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The next connection on `listener`. An error never ends accepting: a
/// connection that died in the queue is skipped, and a shortage of file
/// descriptors or memory is waited out, so one bad moment cannot leave a
/// listener that no longer accepts anything.
pub async fn accept_tcp(listener: &tokio::net::TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    use std::io::ErrorKind;
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionRefused
                        | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                tracing::warn!("accepting a connection failed, retrying: {e}");
                tokio::time::sleep(RESOURCE_BACKOFF).await;
            }
        }
    }
}

/// A listener fed by a background accept loop.
pub struct ChannelListener<C> {
    local: SocketAddr,
    ready: mpsc::Receiver<C>,
    task: JoinHandle<()>,
}

impl<C: Connection> ChannelListener<C> {
    /// Starts `accept_loop`, which sends each finished connection on the given sender.
    pub fn spawn<F, Fut>(local: SocketAddr, accept_loop: F) -> Self
    where
        F: FnOnce(mpsc::Sender<C>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, ready) = mpsc::channel(BACKLOG);
        let task = tokio::spawn(accept_loop(tx));
        Self { local, ready, task }
    }
}

impl<C> Drop for ChannelListener<C> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<C: Connection> Listener for ChannelListener<C> {
    type Connection = C;

    async fn accept(&mut self) -> Result<C, TransportError> {
        self.ready.recv().await.ok_or(TransportError::Closed)
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }
}
