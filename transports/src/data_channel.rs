//! Data channels of the TCP and WebSocket transports: each public
//! connection the edge opens to an agent rides a connection of its own, as
//! bore and rathole do, instead of a stream of the agent's one yamux session
//! (one task drives a whole session, which caps a busy tunnel at what that
//! task can copy).
//!
//! - The edge hands the agent a ticket (32 random bytes) on the first stream
//!   it opens, a yamux stream that stays open as the channel through which
//!   the edge asks for more data channels (one byte: how many).
//! - The agent dials the edge's agent listener again, the way it dialled
//!   its first connection (TLS when the transport uses it; a WebSocket
//!   handshake on the WebSocket transport, whose data channel then carries
//!   the bytes in binary messages, as its first connection does), and
//!   writes [`DATA_TAG`] and the ticket; the listener puts the channel in
//!   that connection's pool of idle data channels. An unknown ticket, or a
//!   full pool, closes the socket.
//! - Opening a stream takes an idle data channel and asks for a
//!   replacement; with none idle it uses a yamux stream at once: no public connection waits on a dial (measured: waiting even
//!   10 ms for one cost new connections more than the yamux stream does).
//! - Closing the connection closes every data channel it owns, idle or in
//!   use: a connection the edge cuts (a revoked key) keeps nothing serving.
//! - A data channel costs the edge a descriptor per public connection (as
//!   in bore and rathole). Past half the descriptor limit the edge takes no
//!   more: one that arrives there is closed, its connection asks for none
//!   for a second, and public connections ride the yamux session, which
//!   costs no descriptor. So the edge serves as many connections as before
//!   the data channels, and the fast path while descriptors are plentiful.
//!
//! The ticket is made when the edge first opens a stream, which it does only
//! for an agent that authenticated: an unauthenticated connection gets no
//! ticket and no pool.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OnceCell};

use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::coalesce::Coalesce;
use crate::stream_tls::StreamTls;
use crate::{ChannelListener, Connection, MuxConnection, MuxStream, TransportError};

/// The first byte of a data channel. A control connection starts with a
/// yamux frame (version 0), inside TLS and WebSocket framing when the
/// transport has them.
pub(crate) const DATA_TAG: u8 = 0xbd;
/// What opens the ticket stream, before the ticket.
const TICKET_MAGIC: &[u8; 8] = b"beamd-dc";
/// A ticket's length.
const TICKET_LEN: usize = 32;
/// Idle data channels the edge keeps asked for per agent connection.
const IDLE_TARGET: usize = 8;
/// Idle data channels one connection may hold; more are closed.
const MAX_IDLE: usize = 64;
/// Dials asked for and not yet arrived, at most.
const MAX_ASKED: usize = 64;
/// Dials asked for and not arrived after this long are taken as failed.
const ASK_EXPIRY: Duration = Duration::from_secs(1);
/// How long a connection asks for no data channel after one arrived with
/// descriptors scarce.
const SCARCE_PAUSE: Duration = Duration::from_secs(1);
/// How long an accepted socket may take to say what it is.
pub(crate) const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);
/// Dials an agent keeps outstanding (idle, waiting for the edge), at most.
const AGENT_MAX_IDLE: usize = 256;

type Ticket = [u8; TICKET_LEN];

/// A socket a data channel runs on: plain TCP or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A byte stream with bytes already read from it put back in front.
pub(crate) struct Prefixed<S> {
    head: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(head: Vec<u8>, inner: S) -> Self {
        Self { head, at: 0, inner }
    }

    /// The bytes put back and not read yet, taken out.
    fn take_head(&mut self) -> Vec<u8> {
        let mut head = std::mem::take(&mut self.head);
        head.drain(..self.at);
        self.at = 0;
        head
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.head.len() {
            let n = (self.head.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.head[at..at + n]);
            self.at += n;
            if self.at == self.head.len() {
                self.head = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only whole values are stored under these locks.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A TCP socket shared between the task using it and its connection's
/// [`Closer`], which can shut it down from outside that task without a
/// second descriptor.
pub(crate) struct Shared(Arc<TcpStream>);

impl Shared {
    pub(crate) fn new(socket: TcpStream) -> Self {
        Self(Arc::new(socket))
    }

    pub(crate) fn weak(&self) -> Weak<TcpStream> {
        Arc::downgrade(&self.0)
    }

    pub(crate) fn strong(&self) -> Arc<TcpStream> {
        self.0.clone()
    }
}

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            std::task::ready!(self.0.poll_read_ready(cx))?;
            // Initialized once per buffer: copy loops reuse theirs.
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            std::task::ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            std::task::ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(bufs) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(
            rustix::net::shutdown(&*self.0, rustix::net::Shutdown::Write).map_err(Into::into),
        )
    }
}

/// The data channels of one connection, shut down together when it closes.
#[derive(Default)]
struct Closer {
    closed: AtomicBool,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Weak<TcpStream>>>,
}

fn shut(socket: &Weak<TcpStream>) {
    if let Some(socket) = socket.upgrade() {
        let _ = rustix::net::shutdown(&*socket, rustix::net::Shutdown::Both);
    }
}

impl Closer {
    /// Registers a socket; `None` once the connection is closed (the socket
    /// is shut down at once then).
    fn register(self: &Arc<Self>, socket: Weak<TcpStream>) -> Option<Registration> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut open = lock(&self.open);
        if self.closed.load(Ordering::Acquire) {
            shut(&socket);
            return None;
        }
        open.insert(id, socket);
        Some(Registration {
            closer: self.clone(),
            id,
        })
    }

    fn close(&self) {
        let mut open = lock(&self.open);
        self.closed.store(true, Ordering::Release);
        for (_, socket) in open.drain() {
            shut(&socket);
        }
    }
}

/// A data channel's place in its connection's [`Closer`], given up on drop.
struct Registration {
    closer: Arc<Closer>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.closer.open).remove(&self.id);
    }
}

/// One public connection's own connection between edge and agent.
pub struct DataStream {
    io: Prefixed<Box<dyn Io>>,
    /// The socket, when nothing runs over it (no TLS): it can be spliced.
    plain: Option<Arc<TcpStream>>,
    _registration: Registration,
}

impl crate::PlainSocket for ChannelStream {
    fn plain_socket(&mut self) -> Option<(Vec<u8>, &TcpStream)> {
        match self {
            ChannelStream::Data(d) => {
                let socket = d.plain.as_deref()?;
                Some((d.io.take_head(), socket))
            }
            ChannelStream::Mux(_) => None,
        }
    }
}

/// A stream of the TCP or WebSocket transport: a data channel, or a yamux
/// stream.
pub enum ChannelStream {
    /// On a connection of its own.
    Data(DataStream),
    /// On the agent's yamux session.
    Mux(MuxStream),
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            ChannelStream::Data(d) => {
                let $s = Pin::new(&mut d.io);
                $e
            }
            ChannelStream::Mux(m) => {
                let $s = Pin::new(m);
                $e
            }
        }
    };
}

impl AsyncRead for ChannelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        both!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for ChannelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        both!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        both!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        both!(self, s => s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        both!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ChannelStream::Data(d) => d.io.is_write_vectored(),
            ChannelStream::Mux(m) => m.is_write_vectored(),
        }
    }
}

/// The edge's tickets, by ticket: where the listener hands a data channel.
#[derive(Clone)]
pub(crate) struct Tickets {
    pools: Arc<Mutex<HashMap<Ticket, Weak<EdgePool>>>>,
    /// The listener, as named in the refusal count.
    listener: crate::ListenerKind,
}

impl Tickets {
    pub(crate) fn new(listener: crate::ListenerKind) -> Self {
        Self {
            pools: Arc::default(),
            listener,
        }
    }

    /// Hands `io`, a data channel that presented `ticket`, to its
    /// connection's pool; closes it when the ticket is unknown.
    /// `plentiful`: whether the data channel's descriptor lies below half
    /// the limit.
    pub(crate) fn offer(
        &self,
        ticket: &[u8],
        io: Box<dyn Io>,
        socket: Weak<TcpStream>,
        plain: Option<Arc<TcpStream>>,
        plentiful: bool,
    ) {
        let pool = <Ticket>::try_from(ticket)
            .ok()
            .and_then(|t| lock(&self.pools).get(&t).and_then(Weak::upgrade));
        match pool {
            Some(pool) if !plentiful => {
                pool.scarce();
                drop(io);
                shut(&socket);
            }
            Some(pool) => pool.arrived(io, socket, plain),
            None => {
                crate::count_refusal(crate::RefusalReason::UnknownTicket, self.listener);
                drop(io);
                shut(&socket);
            }
        }
    }
}

/// Reads what an accepted socket is: a data channel (its ticket follows the
/// tag) or a control connection (the byte read is put back).
pub(crate) async fn first_bytes(
    mut io: Box<dyn Io>,
) -> std::io::Result<Result<(Ticket, Box<dyn Io>), Prefixed<Box<dyn Io>>>> {
    let mut tag = [0u8; 1];
    io.read_exact(&mut tag).await?;
    if tag[0] != DATA_TAG {
        return Ok(Err(Prefixed::new(tag.to_vec(), io)));
    }
    let mut ticket = [0u8; TICKET_LEN];
    io.read_exact(&mut ticket).await?;
    Ok(Ok((ticket, io)))
}

/// The edge side's idle data channels of one connection.
pub(crate) struct EdgePool {
    tickets: Tickets,
    ticket: Ticket,
    /// The ticket stream, opened (and the ticket sent) on the first open.
    asks: OnceCell<Option<mpsc::UnboundedSender<u8>>>,
    idle: Mutex<VecDeque<DataStream>>,
    asked: AtomicUsize,
    /// When dials were last asked for.
    asked_at: Mutex<Instant>,
    /// Until when to ask for no data channel (descriptors were scarce).
    paused_until: Mutex<Option<Instant>>,
    closer: Arc<Closer>,
}

/// Whether a socket's descriptor lies below half the process's limit.
pub(crate) fn descriptors_plentiful(socket: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd().max(0) as u64;
    crate::fd_limit().is_none_or(|limit| fd < limit / 2)
}

impl EdgePool {
    pub(crate) fn new(tickets: Tickets) -> Option<Arc<Self>> {
        let mut ticket = [0u8; TICKET_LEN];
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut ticket)
            .ok()?;
        let pool = Arc::new(Self {
            tickets: tickets.clone(),
            ticket,
            asks: OnceCell::new(),
            idle: Mutex::default(),
            asked: AtomicUsize::new(0),
            asked_at: Mutex::new(Instant::now()),
            paused_until: Mutex::new(None),
            closer: Arc::default(),
        });
        lock(&tickets.pools).insert(ticket, Arc::downgrade(&pool));
        Some(pool)
    }

    fn arrived(&self, io: Box<dyn Io>, socket: Weak<TcpStream>, plain: Option<Arc<TcpStream>>) {
        let _ = self
            .asked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        let Some(registration) = self.closer.register(socket) else {
            return;
        };
        let mut idle = lock(&self.idle);
        if idle.len() >= MAX_IDLE {
            return;
        }
        idle.push_back(DataStream {
            io: Prefixed::new(Vec::new(), io),
            plain,
            _registration: registration,
        });
    }

    /// A data channel arrived with descriptors scarce: ask for none for a while.
    fn scarce(&self) {
        *lock(&self.paused_until) = Some(Instant::now() + SCARCE_PAUSE);
        let _ = self
            .asked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    fn paused(&self) -> bool {
        lock(&self.paused_until).is_some_and(|until| Instant::now() < until)
    }

    fn take(&self) -> Option<DataStream> {
        lock(&self.idle).pop_front()
    }

    /// Asks the agent for `n` more data channels, within the limits.
    fn ask(&self, asks: &mpsc::UnboundedSender<u8>, n: usize) {
        if self.paused() {
            return;
        }
        let room = MAX_ASKED.saturating_sub(self.asked.load(Ordering::Acquire));
        let n = n.min(room).min(u8::MAX as usize);
        if n > 0 && asks.send(n as u8).is_ok() {
            self.asked.fetch_add(n, Ordering::AcqRel);
            *lock(&self.asked_at) = Instant::now();
        }
    }

    /// Keeps `IDLE_TARGET` idle or asked for.
    fn top_up(&self, asks: &mpsc::UnboundedSender<u8>) {
        if lock(&self.asked_at).elapsed() > ASK_EXPIRY {
            // What was asked for and never came (a failed dial) is asked afresh.
            self.asked.store(0, Ordering::Release);
        }
        let have = lock(&self.idle).len() + self.asked.load(Ordering::Acquire);
        self.ask(asks, IDLE_TARGET.saturating_sub(have));
    }

    /// Opens the ticket stream on `mux` the first time; the sender of asks,
    /// or `None` when the ticket could not be sent (no data channels then).
    async fn asks(&self, mux: &MuxConnection) -> Option<mpsc::UnboundedSender<u8>> {
        self.asks
            .get_or_init(|| async {
                let mut stream = mux.open_stream().await.ok()?;
                let mut hello = TICKET_MAGIC.to_vec();
                hello.extend_from_slice(&self.ticket);
                stream.write_all(&hello).await.ok()?;
                stream.flush().await.ok()?;
                let (tx, mut rx) = mpsc::unbounded_channel::<u8>();
                tokio::spawn(async move {
                    while let Some(n) = rx.recv().await {
                        if stream.write_all(&[n]).await.is_err() || stream.flush().await.is_err() {
                            break;
                        }
                    }
                });
                Some(tx)
            })
            .await
            .clone()
    }

    /// A data channel for a new stream, or `None` (use a yamux stream).
    pub(crate) async fn open(&self, mux: &MuxConnection) -> Option<DataStream> {
        let asks = self.asks(mux).await?;
        let taken = self.take();
        self.top_up(&asks);
        taken
    }

    pub(crate) fn close(&self) {
        self.closer.close();
        lock(&self.idle).clear();
    }
}

impl Drop for EdgePool {
    fn drop(&mut self) {
        lock(&self.tickets.pools).remove(&self.ticket);
        self.closer.close();
    }
}

/// What the TCP and WebSocket transports put over a TCP connection, the
/// agent's first connection and its data channels alike.
#[derive(Clone, Default)]
pub(crate) struct Framing {
    /// TLS 1.3 first, when set.
    pub(crate) tls: Option<StreamTls>,
    /// Then a WebSocket, whose binary messages carry the bytes.
    pub(crate) websocket: bool,
}

impl Framing {
    /// The client's side of the framing over `socket`, dialled to `addr`.
    async fn connect(
        &self,
        socket: Box<dyn Io>,
        addr: SocketAddr,
    ) -> Result<Box<dyn Io>, TransportError> {
        let mut io = socket;
        if let Some(tls) = &self.tls {
            io = Box::new(tls.connect(io).await?);
        }
        if self.websocket {
            io = crate::websocket::client(io, addr, self.tls.is_some()).await?;
        }
        Ok(io)
    }

    /// The server's side of the framing over an accepted socket.
    async fn accept(&self, socket: Box<dyn Io>) -> Result<Box<dyn Io>, TransportError> {
        let mut io = socket;
        if let Some(tls) = &self.tls {
            io = Box::new(tls.accept(io).await?);
        }
        if self.websocket {
            io = crate::websocket::server(io).await?;
        }
        Ok(io)
    }

    /// The agent's yamux session over a first connection.
    fn mux<S: Io>(&self, io: S, client: bool, peer: SocketAddr) -> MuxConnection {
        if self.websocket {
            // tungstenite gathers a frame's writes until the flush itself.
            MuxConnection::start(io.compat(), client, peer)
        } else {
            MuxConnection::start(Coalesce::new(io).compat(), client, peer)
        }
    }
}

/// How the agent dials its data channels.
#[derive(Clone)]
pub(crate) struct Dialer {
    pub(crate) addr: SocketAddr,
    pub(crate) framing: Framing,
}

/// The agent side's data channels of one connection.
pub(crate) struct AgentPool {
    dialer: Dialer,
    ticket_seen: AtomicBool,
    idle: AtomicUsize,
    ready_tx: mpsc::UnboundedSender<DataStream>,
    ready: tokio::sync::Mutex<mpsc::UnboundedReceiver<DataStream>>,
    closer: Arc<Closer>,
}

impl AgentPool {
    pub(crate) fn new(dialer: Dialer) -> Arc<Self> {
        let (ready_tx, ready) = mpsc::unbounded_channel();
        Arc::new(Self {
            dialer,
            ticket_seen: AtomicBool::new(false),
            idle: AtomicUsize::new(0),
            ready_tx,
            ready: tokio::sync::Mutex::new(ready),
            closer: Arc::default(),
        })
    }

    /// The next stream the edge opened: a data channel it started using,
    /// or a yamux stream. The edge's first yamux stream is the ticket
    /// stream, served here and never handed out.
    pub(crate) async fn accept(
        self: &Arc<Self>,
        mux: &MuxConnection,
    ) -> Result<ChannelStream, TransportError> {
        loop {
            tokio::select! {
                data = async { self.ready.lock().await.recv().await } => {
                    if let Some(d) = data {
                        return Ok(ChannelStream::Data(d));
                    }
                }
                stream = mux.accept_stream() => {
                    let stream = stream?;
                    if self.ticket_seen.swap(true, Ordering::AcqRel) {
                        return Ok(ChannelStream::Mux(stream));
                    }
                    tokio::spawn(self.clone().serve_tickets(stream));
                }
            }
        }
    }

    /// Reads the ticket, then dials as many data channels as the edge asks.
    async fn serve_tickets(self: Arc<Self>, mut stream: MuxStream) {
        let mut hello = [0u8; TICKET_MAGIC.len() + TICKET_LEN];
        if stream.read_exact(&mut hello).await.is_err() || &hello[..8] != TICKET_MAGIC {
            tracing::warn!(
                "the edge's first stream is not a data-channel ticket; no data channels"
            );
            return;
        }
        let mut ticket = [0u8; TICKET_LEN];
        ticket.copy_from_slice(&hello[8..]);
        let mut n = [0u8; 1];
        while stream.read_exact(&mut n).await.is_ok() {
            if self.closer.closed.load(Ordering::Acquire) {
                return;
            }
            for _ in 0..n[0] {
                if self.idle.load(Ordering::Acquire) >= AGENT_MAX_IDLE {
                    break;
                }
                self.idle.fetch_add(1, Ordering::AcqRel);
                tokio::spawn(self.clone().dial(ticket));
            }
        }
    }

    /// One data channel: dialed, presented, then handed out once the edge
    /// writes to it.
    async fn dial(self: Arc<Self>, ticket: Ticket) {
        let dialed = self.dial_once(ticket).await;
        self.idle.fetch_sub(1, Ordering::AcqRel);
        match dialed {
            Ok(Some(d)) => {
                let _ = self.ready_tx.send(d);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("a data channel failed: {e}"),
        }
    }

    async fn dial_once(&self, ticket: Ticket) -> std::io::Result<Option<DataStream>> {
        let socket = TcpStream::connect(self.dialer.addr).await?;
        if !descriptors_plentiful(&socket) {
            // Past half the agent's own limit: the rest is for the
            // connections to its local services.
            return Ok(None);
        }
        let _ = socket.set_nodelay(true);
        let socket = Shared::new(socket);
        let Some(registration) = self.closer.register(socket.weak()) else {
            return Ok(None);
        };
        let framing = &self.dialer.framing;
        let bare = framing.tls.is_none() && !framing.websocket;
        let plain = bare.then(|| socket.strong());
        let mut io = framing
            .connect(Box::new(socket), self.dialer.addr)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut hello = vec![DATA_TAG];
        hello.extend_from_slice(&ticket);
        io.write_all(&hello).await?;
        io.flush().await?;
        // Idle until the edge writes: then the stream is the edge's.
        // Small: an idle data channel holds it while it waits.
        let mut head = vec![0u8; 512];
        let n = io.read(&mut head).await?;
        if n == 0 {
            return Ok(None);
        }
        head.truncate(n);
        Ok(Some(DataStream {
            io: Prefixed::new(head, io),
            plain,
            _registration: registration,
        }))
    }

    pub(crate) fn close(&self) {
        self.closer.close();
    }
}

/// The TCP or WebSocket transport's connection: the agent's yamux session
/// and, beside it, its data channels.
pub struct ChannelConnection {
    mux: MuxConnection,
    side: Side,
}

enum Side {
    Edge(Option<Arc<EdgePool>>),
    Agent(Arc<AgentPool>),
}

impl ChannelConnection {
    pub(crate) fn edge(mux: MuxConnection, tickets: &Tickets) -> Self {
        Self {
            mux,
            side: Side::Edge(EdgePool::new(tickets.clone())),
        }
    }

    pub(crate) fn agent(mux: MuxConnection, dialer: Dialer) -> Self {
        Self {
            mux,
            side: Side::Agent(AgentPool::new(dialer)),
        }
    }
}

impl Connection for ChannelConnection {
    type Stream = ChannelStream;

    async fn open_stream(&self) -> Result<ChannelStream, TransportError> {
        if let Side::Edge(Some(pool)) = &self.side {
            if let Some(d) = pool.open(&self.mux).await {
                metrics::counter!(STREAMS_OPENED, "carrier" => "data_channel").increment(1);
                return Ok(ChannelStream::Data(d));
            }
            metrics::counter!(STREAMS_OPENED, "carrier" => "mux").increment(1);
        }
        Ok(ChannelStream::Mux(self.mux.open_stream().await?))
    }

    async fn accept_stream(&self) -> Result<ChannelStream, TransportError> {
        match &self.side {
            Side::Agent(pool) => pool.accept(&self.mux).await,
            Side::Edge(_) => Ok(ChannelStream::Mux(self.mux.accept_stream().await?)),
        }
    }

    fn peer_addr(&self) -> SocketAddr {
        self.mux.peer_addr()
    }

    fn close(&self) {
        match &self.side {
            Side::Edge(Some(pool)) => pool.close(),
            Side::Edge(None) => {}
            Side::Agent(pool) => pool.close(),
        }
        self.mux.close();
    }
}

impl Drop for ChannelConnection {
    fn drop(&mut self) {
        if let Side::Agent(pool) = &self.side {
            pool.close();
        }
    }
}

/// Streams the edge opened to agents over the TCP and WebSocket
/// transports, by what carried them (`data_channel`, `mux`).
pub const STREAMS_OPENED: &str = "beamd_agent_streams_opened_total";
/// Its help text.
pub const STREAMS_OPENED_HELP: &str =
    "Streams the edge opened to agents over the TCP and WebSocket transports, by carrier: a data channel (a connection of its own) or the agent's yamux session";

/// An accepted socket, once it said what it is.
enum Accepted {
    /// A data channel: its ticket, the stream, its socket (to shut it
    /// down), the socket again when nothing runs over it (to splice it),
    /// and whether descriptors are plentiful.
    Data(
        Ticket,
        Box<dyn Io>,
        Weak<TcpStream>,
        Option<Arc<TcpStream>>,
        bool,
    ),
    /// An agent's connection, its first byte put back.
    Control(Prefixed<Box<dyn Io>>),
}

async fn accepted(socket: TcpStream, framing: &Framing) -> Option<Accepted> {
    let plentiful = descriptors_plentiful(&socket);
    let socket = Shared::new(socket);
    let weak = socket.weak();
    let bare = framing.tls.is_none() && !framing.websocket;
    let plain = bare.then(|| socket.strong());
    let io = framing.accept(Box::new(socket)).await.ok()?;
    match first_bytes(io).await.ok()? {
        Ok((ticket, io)) => Some(Accepted::Data(ticket, io, weak, plain, plentiful)),
        Err(control) => Some(Accepted::Control(control)),
    }
}

/// The agent listener of the TCP and WebSocket transports: agents'
/// connections and their data channels arrive on the same port, each told
/// from the other by its first bytes.
pub(crate) async fn listen(
    addr: SocketAddr,
    framing: Framing,
    kind: crate::ListenerKind,
) -> Result<ChannelListener<ChannelConnection>, TransportError> {
    let listener =
        crate::bind_tcp(addr).map_err(|e| TransportError::io("binding the agent listener", e))?;
    let local = listener
        .local_addr()
        .map_err(|e| TransportError::io("reading the bound address", e))?;
    let tickets = Tickets::new(kind);
    Ok(ChannelListener::spawn(local, move |ready| async move {
        loop {
            let (socket, peer) = crate::accept_tcp(&listener).await;
            if crate::over_fd_watermark(&socket, kind) {
                continue;
            }
            let _ = socket.set_nodelay(true);
            let (framing, ready, tickets) = (framing.clone(), ready.clone(), tickets.clone());
            // What the socket is (an agent's connection or a data channel)
            // is read off the accept loop: one slow client cannot hold up
            // the others.
            tokio::spawn(async move {
                let Ok(accepted) =
                    tokio::time::timeout(FIRST_BYTES_TIMEOUT, accepted(socket, &framing)).await
                else {
                    return;
                };
                match accepted {
                    Some(Accepted::Data(ticket, io, socket, plain, plentiful)) => {
                        tickets.offer(&ticket, io, socket, plain, plentiful)
                    }
                    Some(Accepted::Control(io)) => {
                        let mux = framing.mux(io, false, peer);
                        let _ = ready.send(ChannelConnection::edge(mux, &tickets)).await;
                    }
                    None => {}
                }
            });
        }
    }))
}

/// An agent's first connection to the edge at `addr`.
pub(crate) async fn connect(
    addr: SocketAddr,
    framing: Framing,
) -> Result<ChannelConnection, TransportError> {
    let socket = TcpStream::connect(addr)
        .await
        .map_err(|e| TransportError::io("connecting to the edge", e))?;
    let _ = socket.set_nodelay(true);
    let io = tokio::time::timeout(FIRST_BYTES_TIMEOUT, framing.connect(Box::new(socket), addr))
        .await
        .map_err(|_| TransportError::Handshake("the handshake timed out".into()))??;
    let mux = framing.mux(io, true, addr);
    Ok(ChannelConnection::agent(mux, Dialer { addr, framing }))
}
