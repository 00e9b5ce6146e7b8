//! A watch on the free space of the data dir's disk. Below a watermark the
//! edge refuses what would grow its log without bound (API commands, new
//! agent sessions, request captures) and keeps recording what it owes
//! (traffic counts, heartbeats, tunnels going offline), so a filling disk
//! turns into clear refusals instead of a failed write, which is fatal.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the free space is read.
const EVERY: Duration = Duration::from_secs(1);

/// The free space of one disk against a watermark.
#[derive(Debug)]
pub struct DiskGuard {
    path: PathBuf,
    min_free: AtomicU64,
    free: AtomicU64,
}

impl DiskGuard {
    /// A guard that never refuses (no data dir, or the check turned off).
    pub fn off() -> Arc<Self> {
        Arc::new(Self {
            path: PathBuf::new(),
            min_free: AtomicU64::new(0),
            free: AtomicU64::new(u64::MAX),
        })
    }

    /// Guards the disk holding `path`, refusing below `min_free` bytes
    /// (0 turns the check off). Reads the free space once now.
    pub fn new(path: PathBuf, min_free: u64) -> Arc<Self> {
        let guard = Arc::new(Self {
            path,
            min_free: AtomicU64::new(min_free),
            free: AtomicU64::new(u64::MAX),
        });
        guard.refresh();
        guard
    }

    /// Changes the watermark (a reload; 0 turns the check off), in force at once.
    pub fn set_min_free(&self, min_free: u64) {
        self.min_free.store(min_free, Ordering::Relaxed);
        if min_free == 0 {
            self.free.store(u64::MAX, Ordering::Relaxed);
        }
        self.refresh();
    }

    /// Reads the free space again; a failed read keeps the last figure.
    pub fn refresh(&self) {
        let min_free = self.min_free.load(Ordering::Relaxed);
        if min_free == 0 || self.path.as_os_str().is_empty() {
            return;
        }
        match fs2::available_space(&self.path) {
            Ok(free) => {
                let was = self.free.swap(free, Ordering::Relaxed);
                if (free < min_free) != (was < min_free) {
                    match free < min_free {
                        true => {
                            tracing::warn!(free, min_free, "disk nearly full: refusing commands")
                        }
                        false => tracing::warn!(free, "disk space freed: taking commands again"),
                    }
                }
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), "cannot read the free disk space: {e}")
            }
        }
    }

    /// Re-reads the free space every second until `stop` (while the check is on).
    pub fn watch(self: Arc<Self>, stop: CancellationToken) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => self.refresh(),
                    _ = stop.cancelled() => return,
                }
            }
        });
    }

    /// Why a write that can wait is refused now, if it is.
    pub fn short(&self) -> Option<String> {
        let free = self.free.load(Ordering::Relaxed);
        let min_free = self.min_free.load(Ordering::Relaxed);
        (free < min_free).then(|| {
            format!(
                "the data dir's disk has {} MiB free, under the {} MiB kept in reserve (--min-free-disk-mib); \
                 this is taken again once space is freed",
                free >> 20,
                min_free >> 20
            )
        })
    }
}
