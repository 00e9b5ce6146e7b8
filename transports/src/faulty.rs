//! A transport wrapper that injects network faults from a seeded random
//! source: a stream's first read may wait (so data sent on one stream can
//! overtake data sent earlier on another stream of the same connection), and
//! a connection may be cut a while after it opens. Byte order within a
//! stream is kept, as every real transport keeps it. Meant for simulations
//! and tests: under tokio's paused clock the waits are virtual time.
//!
//! Faults are drawn once per connection and once per stream, never per read:
//! how a byte stream is split into reads depends on the multiplexer's flow
//! control (yamux tunes its windows by wall-clock round trips), and a draw
//! per read would let that leak into a seeded run.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::{Connection, Listener, Transport, TransportError};

/// Which faults, how often.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkFaults {
    /// Chance, per thousand streams, that the stream's first read waits.
    pub delay_per_mille: u16,
    /// The longest such wait.
    pub max_delay: Duration,
    /// Chance, per thousand connections, that the connection is cut.
    pub drop_per_mille: u16,
    /// How long, at most, a connection to be cut lives.
    pub drop_within: Duration,
}

/// The faults and the random source every connection and stream draws from.
#[derive(Clone)]
struct Link {
    faults: LinkFaults,
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl Link {
    fn draw<T>(&self, f: impl FnOnce(&mut fastrand::Rng) -> T) -> T {
        // The generator holds no invariant a panic could break.
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut rng)
    }

    fn delay(&self) -> Option<Duration> {
        let f = self.faults;
        if f.delay_per_mille == 0 || f.max_delay.is_zero() {
            return None;
        }
        self.draw(|r| {
            (r.u16(0..1000) < f.delay_per_mille)
                .then(|| Duration::from_micros(r.u64(1..=f.max_delay.as_micros() as u64)))
        })
    }

    fn wrap<C: Connection>(&self, conn: C) -> FaultyConnection<C> {
        let conn = Arc::new(conn);
        let f = self.faults;
        let cut = (f.drop_per_mille > 0).then(|| {
            self.draw(|r| {
                (r.u16(0..1000) < f.drop_per_mille)
                    .then(|| Duration::from_micros(r.u64(0..=f.drop_within.as_micros() as u64)))
            })
        });
        if let Some(Some(after)) = cut {
            let weak = Arc::downgrade(&conn);
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                if let Some(conn) = weak.upgrade() {
                    conn.close();
                }
            });
        }
        FaultyConnection {
            inner: conn,
            link: self.clone(),
        }
    }
}

/// `T` with faults injected into every connection it makes or accepts.
#[derive(Clone)]
pub struct Faulty<T> {
    inner: T,
    link: Link,
}

impl<T> Faulty<T> {
    /// Wraps `inner`; `seed` fixes every fault drawn.
    pub fn new(inner: T, faults: LinkFaults, seed: u64) -> Self {
        Self {
            inner,
            link: Link {
                faults,
                rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(seed))),
            },
        }
    }
}

impl<T: Transport> Transport for Faulty<T> {
    type Connection = FaultyConnection<T::Connection>;
    type Listener = FaultyListener<T::Listener>;

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn listen(&self, addr: SocketAddr) -> Result<Self::Listener, TransportError> {
        Ok(FaultyListener {
            inner: self.inner.listen(addr).await?,
            link: self.link.clone(),
        })
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Self::Connection, TransportError> {
        Ok(self.link.wrap(self.inner.connect(addr).await?))
    }
}

/// A listener whose connections carry faults.
pub struct FaultyListener<L> {
    inner: L,
    link: Link,
}

impl<L: Listener> Listener for FaultyListener<L> {
    type Connection = FaultyConnection<L::Connection>;

    async fn accept(&mut self) -> Result<Self::Connection, TransportError> {
        Ok(self.link.wrap(self.inner.accept().await?))
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }
}

/// A connection whose streams' reads may wait, and which may be cut.
pub struct FaultyConnection<C> {
    inner: Arc<C>,
    link: Link,
}

impl<C: Connection> Connection for FaultyConnection<C> {
    type Stream = FaultyStream<C::Stream>;

    async fn open_stream(&self) -> Result<Self::Stream, TransportError> {
        Ok(FaultyStream::new(
            self.inner.open_stream().await?,
            self.link.clone(),
        ))
    }

    async fn accept_stream(&self) -> Result<Self::Stream, TransportError> {
        Ok(FaultyStream::new(
            self.inner.accept_stream().await?,
            self.link.clone(),
        ))
    }

    fn peer_addr(&self) -> SocketAddr {
        self.inner.peer_addr()
    }

    fn close(&self) {
        self.inner.close();
    }
}

/// Faults are injected on the way through user space: never spliced.
impl<S> crate::PlainSocket for FaultyStream<S> {}

/// A stream whose first read may wait before delivering.
pub struct FaultyStream<S> {
    inner: S,
    wait: Option<Pin<Box<Sleep>>>,
}

impl<S> FaultyStream<S> {
    fn new(inner: S, link: Link) -> Self {
        Self {
            inner,
            wait: link.delay().map(|d| Box::pin(tokio::time::sleep(d))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FaultyStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(wait) = self.wait.as_mut() {
            ready!(wait.as_mut().poll(cx));
            self.wait = None;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FaultyStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
