//! Projections: folds over committed events, checkpointed with snapshots,
//! and read by the rest of the process through `Queries`.
//!
//! Every projection listed in `all.rs` is rebuilt and compared
//! with its snapshots by `beamd audit`.

mod accounts;
mod all;
mod catalog;
mod domains;
mod gateway;
mod hot;
mod inspector;
mod inspector_index;
mod log_summary;
mod queries;
mod status;
mod usage;

pub use accounts::AccountsProjection;
pub use all::{Projections, GLOBAL_ID};
pub use catalog::{CatalogProjection, Shelf};
pub use domains::DomainsProjection;
pub use gateway::GatewayProjection;
pub use hot::Hot;
pub use inspector::{CapturedRequest, InspectorProjection, DEFAULT_RECENT};
pub use inspector_index::{
    IndexError, InspectorIndex, LogPage, LogQuery, INSPECTOR_TREE, PAGE_SIZE,
};
pub use log_summary::LogSummary;
pub use queries::{Folded, Page, Queries};
pub use status::{Counts, StatusProjection};
pub use usage::{DayUsage, KeyCounters, TenantTotals, TunnelTotals, UsageProjection};

/// Snapshot kinds of shapes no longer written: a fold whose state changed
/// shape took a new kind, and what was stored under the old one is never
/// read again (the fold is rebuilt from the log instead). `beamd audit`
/// checks their hash only.
pub const RETIRED_KINDS: &[&str] = &[
    // Usage without per-tunnel totals, before `usage.2`.
    "usage",
];

/// Whether snapshots of `kind` are folds over the whole log (every
/// projection, and the directory), which `beamd audit` checks against every
/// event rather than one stream's.
pub fn is_global_fold(kind: &str) -> bool {
    Projections::KINDS.contains(&kind)
        || kind == <crate::domain::Directory as beamd_snapshots::Fold>::KIND
}
