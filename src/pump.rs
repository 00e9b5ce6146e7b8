//! Copying bytes between two streams, both ways, optionally counting them.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
        let n = r.read(&mut buf).await?;
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
