//! Projections: folds over committed events, checkpointed with snapshots.
//!
//! Every projection registered in `GLOBAL_FOLDS` is rebuilt and compared
//! with its snapshots by `beamd audit`.

mod log_summary;

pub use log_summary::LogSummary;

/// The snapshot kinds of folds over the whole log, checked by `beamd audit`.
pub const GLOBAL_FOLDS: &[&str] = &[<LogSummary as beamd_snapshots::Fold>::KIND];
