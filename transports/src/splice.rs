//! Copying between two plain TCP sockets in the kernel: `splice(2)` moves
//! what one socket received into a pipe and from the pipe into the other
//! socket, so the bytes never cross into user space (as HAProxy does).
//!
//! - Only a stream that is a TCP socket of its own with nothing over it (no
//!   TLS, no multiplexer) can be spliced: a plain data channel of the TCP
//!   transport ([`PlainSocket`]). Every other stream is copied by the caller
//!   in user space.
//! - Each direction starts in user space and is spliced once a read fills
//!   its buffer: for a request and its answer, one read and one write cost
//!   less than two splices and the pipe's bookkeeping.
//! - A pipe is taken from a pool shared by the process for one chunk (at
//!   most 64 KiB) and given back once the chunk has left it, so pipes cost
//!   descriptors per transfer in flight, not per open connection: an idle
//!   connection holds none, and a spliced connection costs the edge no
//!   more descriptors than a copied one (HAProxy pools its pipes the same
//!   way). New pipes are made only while descriptors lie below half the
//!   process's limit, as data channels are; with none to be had, a chunk
//!   is copied through user space instead.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// TCP tunnel connections by how their bytes are copied (`splice`, `user`).
pub const CONNECTIONS_COPIED: &str = "beamd_tcp_connections_copied_total";
/// Its help text.
pub const CONNECTIONS_COPIED_HELP: &str = "TCP tunnel connections by how their bytes were copied: in the kernel with splice(2) (a plain data channel) or through user space.";

/// The most one splice moves at a time: a default pipe's capacity.
const CHUNK: usize = 64 * 1024;
/// What one read through user space takes at most; a direction whose read
/// fills it is spliced from then on.
const USER_CHUNK: usize = 16 * 1024;

/// A stream that may run on a TCP socket of its own, which a pump can then
/// copy with `splice(2)`.
pub trait PlainSocket {
    /// The plain TCP socket this stream alone runs on, and the bytes already
    /// read off it that its reads have not returned yet (the caller must
    /// deliver those first); `None` for any other stream (TLS, a
    /// multiplexed stream, QUIC). The stream keeps owning the socket: a
    /// connection that closes still shuts it down.
    fn plain_socket(&mut self) -> Option<(Vec<u8>, &TcpStream)> {
        None
    }
}

/// Idle pipes kept for the next transfer, at most.
const MAX_IDLE_PIPES: usize = 64;

/// A pipe, empty whenever it is not in the middle of a transfer.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

/// Empty pipes, shared by every spliced connection of the process: a pipe
/// is held only while a chunk crosses it, so descriptors go to transfers
/// in flight, not to open connections (an idle connection holds none).
static IDLE_PIPES: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());

fn idle_pipes() -> std::sync::MutexGuard<'static, Vec<Pipe>> {
    // Only whole pipes are stored under the lock.
    IDLE_PIPES.lock().unwrap_or_else(|p| p.into_inner())
}

/// An empty pipe: an idle one, or a new one while descriptors lie below
/// half the process's limit (as data channels do); `None` past that.
fn take_pipe() -> Option<Pipe> {
    if let Some(pipe) = idle_pipes().pop() {
        return Some(pipe);
    }
    let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC).ok()?;
    let limit = crate::fd_limit();
    let fd = read.as_raw_fd().max(write.as_raw_fd()).max(0) as u64;
    limit
        .is_none_or(|l| fd < l / 2)
        .then_some(Pipe { read, write })
}

/// Puts back a pipe that is empty again.
fn give_back(pipe: Pipe) {
    let mut idle = idle_pipes();
    if idle.len() < MAX_IDLE_PIPES {
        idle.push(pipe);
    }
}

/// Copies `a` into `b` and `b` into `a` in the kernel until both
/// directions end; each direction's bytes are added to its counter as they
/// reach the other socket. One direction failing (a reset) ends both, as
/// the user-space pump does.
pub async fn splice_pair(
    a: &TcpStream,
    b: &TcpStream,
    a_to_b: Option<&AtomicU64>,
    b_to_a: Option<&AtomicU64>,
) -> io::Result<()> {
    tokio::try_join!(one_way(a, b, a_to_b), one_way(b, a, b_to_a))?;
    Ok(())
}

fn count(counter: Option<&AtomicU64>, n: usize) {
    if let Some(c) = counter {
        c.fetch_add(n as u64, Ordering::Relaxed);
    }
}

async fn one_way(from: &TcpStream, to: &TcpStream, counter: Option<&AtomicU64>) -> io::Result<()> {
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    // Whether a read has filled its buffer: a bulk transfer, spliced from
    // then on.
    let mut bulk = false;
    loop {
        from.readable().await?;
        let Some(pipe) = bulk.then(take_pipe).flatten() else {
            // Small chunks (and any chunk while no pipe can be had) cross
            // user space, in a buffer held only while one does, so that
            // the many connections open do not each keep one.
            // Read into spare capacity: nothing to zero first.
            let mut buf = Vec::with_capacity(USER_CHUNK);
            match from.try_read_buf(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
                Ok(0) => return shut_write(to),
                Ok(n) => {
                    bulk |= n == USER_CHUNK;
                    write_all(to, &buf[..n], counter).await?;
                    continue;
                }
            }
        };
        let n = match from.try_io(Interest::READABLE, || {
            splice(from, None, &pipe.write, None, CHUNK, flags).map_err(io::Error::from)
        }) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                give_back(pipe);
                continue;
            }
            Err(e) => {
                give_back(pipe);
                return Err(e);
            }
            Ok(0) => {
                give_back(pipe);
                return shut_write(to);
            }
            Ok(n) => n,
        };
        // On an error here the pipe still holds bytes: it is closed, not
        // given back.
        let mut pending = n;
        while pending > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                splice(&pipe.read, None, to, None, pending, flags).map_err(io::Error::from)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => {
                    pending -= m;
                    count(counter, m);
                }
            }
        }
        give_back(pipe);
    }
}

fn shut_write(to: &TcpStream) -> io::Result<()> {
    rustix::net::shutdown(to, rustix::net::Shutdown::Write).map_err(Into::into)
}

async fn write_all(
    to: &TcpStream,
    mut bytes: &[u8],
    counter: Option<&AtomicU64>,
) -> io::Result<()> {
    while !bytes.is_empty() {
        to.writable().await?;
        match to.try_write(bytes) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(m) => {
                bytes = &bytes[m..];
                count(counter, m);
            }
        }
    }
    Ok(())
}
