//! Per-tunnel byte and connection counters, summed on the hot path with
//! atomics and reported to the tunnel actor once per window.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::actors::TrafficDelta;

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
}

/// Whether a delta carries anything.
pub fn is_empty(d: &TrafficDelta) -> bool {
    d.bytes_in == 0 && d.bytes_out == 0 && d.connections == 0 && d.requests == 0
}
