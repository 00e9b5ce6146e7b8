//! A WebSocket as a byte stream: binary messages carry the bytes, so the
//! multiplexer above never depends on message boundaries.
//!
//! A WebSocket has no half-close: once one side sends a Close frame, the
//! other must answer with its own and send nothing more. A byte stream
//! needs one (a client that sends its request and shuts down its writing
//! side still waits for the answer), so shutting the writing side down
//! sends an empty binary message, which no write otherwise produces, and
//! the reader takes it for the end of the bytes; the other direction goes
//! on until it ends the same way, and the socket is closed when both sides
//! drop it. A Close frame still ends the stream too.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// Bytes over any WebSocket message sink/stream.
pub struct WsBytes<S> {
    inner: S,
    read_buf: Bytes,
    /// The peer sent its end of the bytes.
    read_ended: bool,
    /// This side sent its end of the bytes.
    write_ended: bool,
}

impl<S> WsBytes<S> {
    /// Wraps a WebSocket.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            read_buf: Bytes::new(),
            read_ended: false,
            write_ended: false,
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
            if self.read_ended {
                return Poll::Ready(Ok(0));
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(Message::Binary(data)))) if data.is_empty() => {
                    self.read_ended = true;
                    return Poll::Ready(Ok(0));
                }
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
        if buf.is_empty() {
            // An empty message would end the bytes.
            return Poll::Ready(Ok(0));
        }
        if self.write_ended {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
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
        if !self.write_ended {
            match Pin::new(&mut self.inner).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(to_io(e))),
                Poll::Pending => return Poll::Pending,
            }
            Pin::new(&mut self.inner)
                .start_send(Message::Binary(Bytes::new()))
                .map_err(to_io)?;
            self.write_ended = true;
        }
        Pin::new(&mut self.inner).poll_flush(cx).map_err(to_io)
    }
}
