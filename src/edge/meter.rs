//! Per-tunnel byte and connection counters, summed on the hot path with
//! atomics and reported to the tunnel actor once per window.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use beamd_events::vocabulary::RequestCaptured;

use crate::actors::{Core, TrafficDelta};

/// Captured requests are recorded at the latest when this many are waiting.
pub const CAPTURE_BATCH: usize = 4096;

/// Counters of one tunnel since the last report.
#[derive(Debug, Default)]
pub struct Meter {
    /// Bytes from public clients toward the agent.
    pub bytes_in: AtomicU64,
    /// Bytes from the agent back to public clients.
    pub bytes_out: AtomicU64,
    /// Public connections accepted.
    pub connections: AtomicU64,
    /// HTTP requests proxied.
    pub requests: AtomicU64,
    /// Public connections open right now (not reset by `take`).
    pub active: AtomicU64,
    /// Requests captured since the last report.
    captured: Mutex<Vec<RequestCaptured>>,
    /// Set when the session made its last report: captures are recorded at once.
    closed: AtomicBool,
}

impl Meter {
    /// Takes what was counted since the last call.
    pub fn take(&self) -> TrafficDelta {
        TrafficDelta {
            bytes_in: self.bytes_in.swap(0, Ordering::Relaxed),
            bytes_out: self.bytes_out.swap(0, Ordering::Relaxed),
            connections: self.connections.swap(0, Ordering::Relaxed),
            requests: self.requests.swap(0, Ordering::Relaxed),
        }
    }

    /// Adds a captured request; returns what to record now: a full batch,
    /// or everything once the session made its last report.
    pub fn capture(&self, request: RequestCaptured) -> Option<Vec<RequestCaptured>> {
        let mut captured = self.captured.lock().unwrap_or_else(|p| p.into_inner());
        captured.push(request);
        let now = captured.len() >= CAPTURE_BATCH || self.closed.load(Ordering::Acquire);
        now.then(|| std::mem::take(&mut *captured))
    }

    /// From now on, captures are handed back for recording at once.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Records, in the background, what a stream counted after the session's
    /// last report: a response or connection that was still streaming when
    /// the agent left or was cut off. Called by each stream when it ends.
    pub fn record_late(&self, core: &Arc<Core>, tunnel: &str) {
        if !self.closed.load(Ordering::Acquire) {
            return;
        }
        let delta = self.take();
        if is_empty(&delta) {
            return;
        }
        let (core, tunnel) = (core.clone(), tunnel.to_string());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let recorded = match core.report_traffic(&tunnel, delta).await {
                    Ok(()) => core.flush_tunnel(&tunnel).await.map(drop),
                    Err(e) => Err(e),
                };
                if let Err(e) = recorded {
                    tracing::warn!(%tunnel, "late traffic not recorded: {e}");
                }
            });
        }
    }

    /// Takes the requests captured since the last call.
    pub fn take_captured(&self) -> Vec<RequestCaptured> {
        // Only whole requests are pushed; a poisoned buffer is still consistent.
        std::mem::take(&mut *self.captured.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Whether a delta carries anything.
pub fn is_empty(d: &TrafficDelta) -> bool {
    d.bytes_in == 0 && d.bytes_out == 0 && d.connections == 0 && d.requests == 0
}
