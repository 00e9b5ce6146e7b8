//! Many streams over one byte stream, with yamux: a driver task owns the
//! yamux connection and serves open requests and inbound streams over channels.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::task::Poll;

use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex, Notify};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

use crate::frame_gate::{FrameGate, MAX_DATA_FRAME};
use crate::{Connection, TransportError};

/// A yamux stream with tokio's I/O traits.
pub type MuxStream = Compat<yamux::Stream>;

type OpenReply = oneshot::Sender<Result<yamux::Stream, TransportError>>;

/// A multiplexed connection over any reliable byte stream.
pub struct MuxConnection {
    opens: mpsc::UnboundedSender<OpenReply>,
    inbound: Mutex<mpsc::UnboundedReceiver<yamux::Stream>>,
    closing: Arc<Notify>,
    peer: SocketAddr,
}

fn config() -> yamux::Config {
    let mut cfg = yamux::Config::default();
    // Up to 1,024 concurrent public connections per agent, each with yamux's
    // default 256 KiB window growing with use.
    cfg.set_max_num_streams(1_024);
    // What the peer's frame gate accepts (yamux's default, said explicitly).
    cfg.set_split_send_size(MAX_DATA_FRAME);
    cfg
}

impl MuxConnection {
    /// Starts yamux over `socket`; `client` picks the side (odd or even stream ids).
    pub fn start<T>(socket: T, client: bool, peer: SocketAddr) -> Self
    where
        T: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
    {
        let mode = if client {
            yamux::Mode::Client
        } else {
            yamux::Mode::Server
        };
        let mut conn = yamux::Connection::new(FrameGate::new(socket), config(), mode);
        let (opens, mut open_rx) = mpsc::unbounded_channel::<OpenReply>();
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        let closing = Arc::new(Notify::new());
        let close_signal = closing.clone();
        tokio::spawn(async move {
            let mut waiting: VecDeque<OpenReply> = VecDeque::new();
            let mut close_requested = false;
            let notified = close_signal.notified();
            tokio::pin!(notified);
            let outcome: Result<(), TransportError> = poll_fn(|cx| {
                if !close_requested && notified.as_mut().poll(cx).is_ready() {
                    close_requested = true;
                }
                if close_requested {
                    return conn
                        .poll_close(cx)
                        .map_err(|e| TransportError::Mux(e.to_string()));
                }
                while let Poll::Ready(Some(reply)) = open_rx.poll_recv(cx) {
                    waiting.push_back(reply);
                }
                while !waiting.is_empty() {
                    match conn.poll_new_outbound(cx) {
                        Poll::Ready(Ok(stream)) => {
                            if let Some(reply) = waiting.pop_front() {
                                let _ = reply.send(Ok(stream));
                            }
                        }
                        Poll::Ready(Err(e)) => {
                            return Poll::Ready(Err(TransportError::Mux(e.to_string())))
                        }
                        Poll::Pending => break,
                    }
                }
                // Polling inbound drives the whole connection's I/O.
                loop {
                    match conn.poll_next_inbound(cx) {
                        Poll::Ready(Some(Ok(stream))) => {
                            let _ = inbound_tx.send(stream);
                        }
                        Poll::Ready(Some(Err(e))) => {
                            return Poll::Ready(Err(TransportError::Mux(e.to_string())))
                        }
                        Poll::Ready(None) => return Poll::Ready(Ok(())),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            })
            .await;
            for reply in waiting {
                let _ = reply.send(Err(TransportError::Closed));
            }
            // A failed connection ends here; its users see `Closed` on their next call.
            drop(outcome);
        });
        Self {
            opens,
            inbound: Mutex::new(inbound),
            closing,
            peer,
        }
    }
}

impl Drop for MuxConnection {
    fn drop(&mut self) {
        self.closing.notify_one();
    }
}

impl crate::PlainSocket for MuxStream {}

impl Connection for MuxConnection {
    type Stream = MuxStream;

    async fn open_stream(&self) -> Result<MuxStream, TransportError> {
        let (reply, answer) = oneshot::channel();
        self.opens.send(reply).map_err(|_| TransportError::Closed)?;
        let stream = answer.await.map_err(|_| TransportError::Closed)??;
        Ok(stream.compat())
    }

    async fn accept_stream(&self) -> Result<MuxStream, TransportError> {
        let mut inbound = self.inbound.lock().await;
        inbound
            .recv()
            .await
            .map(|s| s.compat())
            .ok_or(TransportError::Closed)
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn close(&self) {
        self.closing.notify_one();
    }
}
