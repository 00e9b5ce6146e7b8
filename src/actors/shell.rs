//! What every actor of the core shares: the log, the log writer, snapshots, clock and timings.

use std::sync::Arc;
use std::time::Duration;

use beamd_events::{Clock, EventLog};
use beamd_snapshots::{SnapshotPolicy, SnapshotStore};
use ractor::ActorRef;

use super::log_writer::LogWriterMsg;

/// Timings of the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// An entity actor with no message for this long is stopped (after a snapshot).
    pub idle: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(300),
        }
    }
}

/// Handles shared by the actors.
#[derive(Clone)]
pub struct Shell {
    /// Reads (rehydration, catch-up).
    pub log: Arc<dyn EventLog>,
    /// The single appender.
    pub writer: ActorRef<LogWriterMsg>,
    /// Snapshots of entities and projections.
    pub snapshots: Arc<dyn SnapshotStore>,
    /// The clock decisions are stamped with.
    pub clock: Arc<dyn Clock>,
    /// When to snapshot.
    pub policy: SnapshotPolicy,
    /// Idle timings.
    pub timings: Timings,
}
