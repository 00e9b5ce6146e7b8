//! The file-descriptor watermark: a connection accepted while fewer than a
//! reserve of descriptors are left is turned away at once (a plain close, or
//! a 503 where the listener speaks HTTP), so the edge keeps descriptors for
//! its log, its API and the connections it already serves, instead of
//! running out and leaving its accept loops to retry.
//!
//! The check costs no system call beyond one `getrlimit`: the kernel gives
//! every new descriptor the lowest free number, so a socket numbered `n`
//! means descriptors `0..n` are all open.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::refusals::{count_refusal, ListenerKind, RefusalReason};

/// Descriptors kept free by default.
pub const DEFAULT_FD_RESERVE: u64 = 128;

static RESERVE: AtomicU64 = AtomicU64::new(DEFAULT_FD_RESERVE);
static LAST_WARNING: AtomicU64 = AtomicU64::new(0);

/// Sets the reserve for this process (`beamd edge --fd-reserve`); 0 turns
/// the watermark off.
pub fn set_fd_reserve(reserve: u64) {
    RESERVE.store(reserve, Ordering::Relaxed);
}

/// The process's soft limit on open descriptors, if it has one.
pub fn fd_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Raises the soft descriptor limit to the hard one (as Go's runtime does):
/// a default soft limit of 1,024 is far below what an edge serving
/// thousands of connections needs. Returns the limit now in force.
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
        if soft < hard {
            limit.current = Some(hard);
            if let Err(e) = setrlimit(Resource::Nofile, limit) {
                tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {e}");
            }
        }
    }
    fd_limit()
}

/// Whether `socket`, just accepted, is past the watermark. If so the caller
/// turns it away; `listener` names the kind in the refusal count
/// (`beamd_connections_refused_total{reason="fd_watermark"}`) and in a
/// warning logged at most once a second.
pub fn over_fd_watermark(socket: &impl AsRawFd, listener: ListenerKind) -> bool {
    let reserve = RESERVE.load(Ordering::Relaxed);
    let Some(limit) = fd_limit().filter(|_| reserve > 0) else {
        return false;
    };
    let fd = socket.as_raw_fd() as u64;
    if fd.saturating_add(reserve) < limit {
        return false;
    }
    count_refusal(RefusalReason::FdWatermark, listener);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST_WARNING.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(
            "turning {} connections away: {fd} of {limit} file descriptors in use, \
             {reserve} kept in reserve (--fd-reserve)",
            listener.label()
        );
    }
    true
}
