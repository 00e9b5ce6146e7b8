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
    /// The actor stopped (for instance passivated when idle) before it took the
    /// message: nothing was done, so the message can be sent again.
    #[error("actor stopped before it took the message")]
    Gone,
    /// An actor could not be reached or timed out.
    #[error("actor {0}")]
    Actor(String),
}
