//! Snapshots: a fold's state at a seq, stored so that loading is the newest
//! snapshot plus the tail of the log instead of a full replay.
#![forbid(unsafe_code)]

mod error;
mod fold;
mod memory;
mod policy;
mod sled_store;
mod snapshot;

pub use error::SnapshotError;
pub use fold::{load_global, load_stream, Fold, Loaded};
pub use memory::MemorySnapshotStore;
pub use policy::SnapshotPolicy;
pub use sled_store::{SledSnapshotStore, SNAPSHOT_TREE};
pub use snapshot::Snapshot;

/// Stores snapshots. Each implementation passes `tests/conformance.rs`.
pub trait SnapshotStore: Send + Sync {
    /// Stores a snapshot, keeping at most the newest few of its (kind, id).
    fn save(&self, snapshot: &Snapshot) -> Result<(), SnapshotError>;
    /// The newest snapshot of (kind, id), integrity-checked.
    fn latest(&self, kind: &str, id: &str) -> Result<Option<Snapshot>, SnapshotError>;
    /// Every stored snapshot, ordered by (kind, id, seq), unchecked (for audits).
    fn all(&self) -> Result<Vec<Snapshot>, SnapshotError>;
    /// Makes saved snapshots durable.
    fn flush(&self) -> Result<(), SnapshotError>;
}

/// How many snapshots of one (kind, id) are kept.
pub const KEEP_PER_ENTITY: usize = 3;
