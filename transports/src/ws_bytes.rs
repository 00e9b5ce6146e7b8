//! A WebSocket as a byte stream: binary messages carry the bytes, so the
//! multiplexer above never depends on message boundaries.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// Bytes over any WebSocket message sink/stream.
pub struct WsBytes<S> {
    inner: S,
    read_buf: Bytes,
}

impl<S> WsBytes<S> {
    /// Wraps a WebSocket.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            read_buf: Bytes::new(),
        }
    }
}

fn to_io(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e)
}

impl<S> futures::AsyncRead for WsBytes<S>
where
    S: Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if !self.read_buf.is_empty() {
                let n = buf.len().min(self.read_buf.len());
                let chunk = self.read_buf.split_to(n);
                buf[..n].copy_from_slice(&chunk);
                return Poll::Ready(Ok(n));
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(Message::Binary(data)))) => self.read_buf = data,
                Poll::Ready(Some(Ok(Message::Close(_)))) | Poll::Ready(None) => {
                    return Poll::Ready(Ok(0))
                }
                // Pings are answered by tungstenite; text and pongs carry no tunnel bytes.
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(to_io(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S> futures::AsyncWrite for WsBytes<S>
where
    S: Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(to_io(e))),
            Poll::Pending => return Poll::Pending,
        }
        let message = Message::Binary(Bytes::copy_from_slice(buf));
        Pin::new(&mut self.inner)
            .start_send(message)
            .map_err(to_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx).map_err(to_io)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx).map_err(to_io)
    }
}
