//! A guard in front of yamux's frame decoder. yamux sets aside a buffer the
//! size a data frame's header announces (up to 1 MiB) before a byte of the
//! body has arrived, so twelve crafted bytes cost the receiver a megabyte
//! until the connection times out: 2,500 such connections grew an edge by
//! 2.7 GB before any of them had said hello. beamd's two ends split what
//! they send into frames of `MAX_DATA_FRAME` bytes at most, so the gate
//! follows the frame boundaries in the bytes read and ends the connection
//! at the first data frame that announces more.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};

/// The largest data frame body either end sends (yamux's split size) and
/// accepts.
pub const MAX_DATA_FRAME: usize = 16 * 1024;

const HEADER: usize = 12;
const TYPE_DATA: u8 = 0;

/// Follows yamux frame boundaries in a byte stream and refuses oversized data frames.
#[derive(Debug, Default)]
struct Frames {
    header: [u8; HEADER],
    filled: usize,
    body_left: u64,
}

impl Frames {
    /// Takes the next bytes of the stream; fails at an oversized data frame.
    fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = (self.body_left.min(bytes.len() as u64)) as usize;
                self.body_left -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let n = (HEADER - self.filled).min(bytes.len());
            self.header[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled < HEADER {
                continue;
            }
            self.filled = 0;
            if self.header[1] == TYPE_DATA {
                let len = u32::from_be_bytes([
                    self.header[8],
                    self.header[9],
                    self.header[10],
                    self.header[11],
                ]);
                if len as usize > MAX_DATA_FRAME {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "a multiplexer data frame of {len} bytes exceeds the \
                             {MAX_DATA_FRAME}-byte limit"
                        ),
                    ));
                }
                self.body_left = u64::from(len);
            }
        }
        Ok(())
    }
}

/// A byte stream whose reads pass through the frame gate.
pub struct FrameGate<T> {
    inner: T,
    frames: Frames,
}

impl<T> FrameGate<T> {
    /// Wraps `inner`; nothing has been read yet.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            frames: Frames::default(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FrameGate<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        this.frames.feed(&buf[..n])?;
        Poll::Ready(Ok(n))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FrameGate<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8, len: u32) -> Vec<u8> {
        let mut h = vec![0, kind, 0, 1, 0, 0, 0, 1];
        h.extend_from_slice(&len.to_be_bytes());
        h
    }

    #[test]
    fn frames_within_the_limit_pass_in_any_split() {
        let mut stream = header(TYPE_DATA, 5);
        stream.extend_from_slice(b"hello");
        // A window update announces a window, not a body.
        stream.extend(header(1, 1 << 20));
        stream.extend(header(TYPE_DATA, MAX_DATA_FRAME as u32));
        stream.extend(vec![7; MAX_DATA_FRAME]);
        stream.extend(header(2, 99));
        for chunk in [1, 5, 12, 13, 4096, stream.len()] {
            let mut f = Frames::default();
            for part in stream.chunks(chunk) {
                f.feed(part).expect("every frame is within the limit");
            }
            assert_eq!((f.filled, f.body_left), (0, 0), "chunks of {chunk}");
        }
    }

    #[test]
    fn an_oversized_data_frame_is_refused_on_its_header() {
        let mut f = Frames::default();
        f.feed(&header(TYPE_DATA, 3)).unwrap();
        f.feed(b"abc").unwrap();
        let big = header(TYPE_DATA, 1 << 20);
        f.feed(&big[..7]).unwrap();
        let err = f.feed(&big[7..]).unwrap_err();
        assert!(err.to_string().contains("1048576 bytes exceeds"), "{err}");
    }
}
