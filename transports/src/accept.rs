//! A listener whose handshakes run in the background and whose `accept` only
//! takes finished connections from a channel: cancel safe, and one slow
//! client cannot hold up the others.

use std::net::SocketAddr;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Connection, Listener, TransportError};

/// How many finished handshakes may wait for `accept`.
const BACKLOG: usize = 128;

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
