//! Copying bytes between two streams, both ways, optionally counting them.

use std::sync::atomic::{AtomicU64, Ordering};

use beamd_transports::{splice_pair, PlainSocket, CONNECTIONS_COPIED};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A pump starts with a small buffer, so that the many connections that sit
/// idle or carry small messages cost little memory, and grows it (4 KiB, 16,
/// 64) each time a read fills it, so that a bulk transfer soon reads 64 KiB
/// at a time.
const FIRST_BUF: usize = 4 * 1024;
const MAX_BUF: usize = 64 * 1024;

/// Copies `r` into `w` until EOF, then shuts `w` down; adds each chunk to `counter` as it goes.
pub async fn pump(
    mut r: impl AsyncRead + Unpin,
    mut w: impl AsyncWrite + Unpin,
    counter: Option<&AtomicU64>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; FIRST_BUF];
    loop {
        let n = {
            let read = r.read(&mut buf);
            tokio::pin!(read);
            match futures_util::FutureExt::now_or_never(&mut read) {
                Some(n) => n?,
                // Nothing more to read yet: what was written goes out now
                // (a WebSocket or TLS writer holds it until a flush).
                None => {
                    w.flush().await?;
                    read.await?
                }
            }
        };
        if n == 0 {
            return w.shutdown().await;
        }
        w.write_all(&buf[..n]).await?;
        if let Some(c) = counter {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        if n == buf.len() && buf.len() < MAX_BUF {
            buf = vec![0u8; (buf.len() * 4).min(MAX_BUF)];
        }
    }
}

/// Joins two streams until both directions end; `a_to_b` and `b_to_a` count the bytes.
pub async fn join(
    a: impl AsyncRead + AsyncWrite + Unpin,
    b: impl AsyncRead + AsyncWrite + Unpin,
    a_to_b: Option<&AtomicU64>,
    b_to_a: Option<&AtomicU64>,
) {
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    // One direction failing (a reset) ends the pair; the other is dropped.
    let _ = tokio::try_join!(pump(ar, bw, a_to_b), pump(br, aw, b_to_a));
}

/// Joins a TCP socket (a public client's, or the local service's) with a
/// stream of the agent's connection until both directions end. When the
/// stream is a plain data channel of its own, the bytes are moved in the
/// kernel with `splice(2)`; otherwise they are copied through user space as
/// [`join`] does. Counted the same either way: `socket_to_stream` and
/// `stream_to_socket`.
pub async fn join_socket<S>(
    mut socket: TcpStream,
    mut stream: S,
    socket_to_stream: Option<&AtomicU64>,
    stream_to_socket: Option<&AtomicU64>,
) where
    S: AsyncRead + AsyncWrite + PlainSocket + Unpin,
{
    if let Some((head, plain)) = stream.plain_socket() {
        // What the stream had already read is the socket's first bytes.
        if !head.is_empty() {
            if socket.write_all(&head).await.is_err() {
                return;
            }
            if let Some(c) = stream_to_socket {
                c.fetch_add(head.len() as u64, Ordering::Relaxed);
            }
        }
        metrics::counter!(CONNECTIONS_COPIED, "copy" => "splice").increment(1);
        let _ = splice_pair(&socket, plain, socket_to_stream, stream_to_socket).await;
        return;
    }
    metrics::counter!(CONNECTIONS_COPIED, "copy" => "user").increment(1);
    join(socket, stream, socket_to_stream, stream_to_socket).await;
}
