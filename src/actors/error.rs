//! The error of the actor layer: a refusal, or a failure of the log, snapshots or messaging.

use beamd_events::LogError;
use beamd_snapshots::SnapshotError;

use crate::domain::DomainError;

/// What a command sent to the core can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The aggregate refused the command.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The event log failed (a conflict that retries could not resolve, or a storage failure).
    #[error(transparent)]
    Log(#[from] LogError),
    /// Loading or saving a snapshot failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// An actor could not be reached, stopped before replying, or timed out.
    #[error("actor {0}")]
    Actor(String),
}
