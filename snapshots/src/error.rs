//! The snapshot crate's error type.

use beamd_events::LogError;

/// What can go wrong storing, loading or checking a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The storage backend failed.
    #[error("snapshot storage error while {context}: {source}")]
    Storage {
        /// What the store was doing.
        context: &'static str,
        /// The backend's error.
        #[source]
        source: sled::Error,
    },
    /// A state could not be encoded.
    #[error("cannot encode {kind} snapshot: {reason}")]
    Encode {
        /// The snapshot's kind.
        kind: String,
        /// The encoder's message.
        reason: String,
    },
    /// A stored snapshot failed its hash or could not be decoded.
    #[error("snapshot {kind}/{id} at seq {seq} is corrupt: {reason}")]
    Corrupt {
        /// The snapshot's kind.
        kind: String,
        /// The snapshot's entity id.
        id: String,
        /// The seq it was taken at.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// Reading the log tail failed.
    #[error(transparent)]
    Log(#[from] LogError),
}
