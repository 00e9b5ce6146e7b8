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

/// How an ask that got no reply in time is worded (`CoreError::Actor`).
pub(super) const TIMED_OUT: &str = "timed out after";

impl CoreError {
    /// Whether the command may have been carried out although the caller got
    /// an error: its events were appended and only the snapshot after them
    /// failed, or the caller stopped waiting while the actor may still append.
    /// What such a command carried must not be sent again as new.
    pub fn may_have_happened(&self) -> bool {
        match self {
            CoreError::Snapshot(_) => true,
            CoreError::Actor(why) => why.starts_with(TIMED_OUT),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_timeout_or_a_failed_snapshot_may_have_happened() {
        let timeout = CoreError::Actor(format!("{TIMED_OUT} 30s"));
        assert!(timeout.may_have_happened());
        assert!(!CoreError::Gone.may_have_happened());
        assert!(!CoreError::Actor("tunnel tun_1 failed to start".into()).may_have_happened());
        assert!(!CoreError::Domain(DomainError::NotFound("tunnel".into())).may_have_happened());
        assert!(!CoreError::Log(LogError::Closed).may_have_happened());
    }
}
