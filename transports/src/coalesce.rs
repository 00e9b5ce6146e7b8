//! A write buffer that costs nothing until the first write: yamux writes a
//! frame's 12-byte header and its body separately and flushes after every
//! frame, so gathering them turns two TCP segments (with `TCP_NODELAY`)
//! into one. tokio's `BufWriter` allocates its buffer up front, which a
//! connection that never gets past its handshake (or junk) then pays for.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes gathered at most before they are written: one yamux frame (the
/// header and a body of at most 16 KiB, yamux's split size) fits.
const CAPACITY: usize = 20 * 1024;

/// `inner` with writes gathered until a flush, or until `CAPACITY`.
pub struct Coalesce<S> {
    inner: S,
    buf: Vec<u8>,
    written: usize,
}

impl<S> Coalesce<S> {
    /// Wraps `inner`; nothing is allocated yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            written: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    /// Writes out what is gathered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() + data.len() > CAPACITY {
            ready!(this.poll_drain(cx))?;
        }
        if data.len() >= CAPACITY {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        // Grown as needed: a connection that only ever sends pings keeps a
        // few bytes, one that carries data soon holds a frame's worth.
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn gathers_until_a_flush_and_passes_big_writes_through() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = Coalesce::new(a);
        assert_eq!(w.buf.capacity(), 0, "nothing allocated before a write");
        w.write_all(b"head").await.unwrap();
        w.write_all(b"body").await.unwrap();
        assert_eq!(w.buf, b"headbody", "gathered, not yet written");
        w.flush().await.unwrap();
        let big = vec![7u8; CAPACITY + 1];
        w.write_all(&big).await.unwrap();
        w.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(&got[..8], b"headbody");
        assert_eq!(&got[8..], &big[..]);
    }
}
