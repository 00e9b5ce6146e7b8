//! Projections: folds over committed events, checkpointed with snapshots.
//!
//! Every projection registered in `GLOBAL_FOLDS` is rebuilt and compared
//! with its snapshots by `beamd audit`.

mod accounts;
mod all;
mod catalog;
mod domains;
mod gateway;
mod inspector;
mod inspector_index;
mod log_summary;
mod status;
mod usage;

pub use accounts::AccountsProjection;
pub use all::Projections;
pub use catalog::{CatalogProjection, Shelf};
pub use domains::DomainsProjection;
pub use gateway::GatewayProjection;
pub use inspector::{CapturedRequest, InspectorProjection, DEFAULT_RECENT};
pub use inspector_index::{
    IndexError, InspectorIndex, LogPage, LogQuery, INSPECTOR_TREE, PAGE_SIZE,
};
pub use log_summary::LogSummary;
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

/// The snapshot kinds of folds over the whole log, checked by `beamd audit`.
pub const GLOBAL_FOLDS: &[&str] = &[
    <LogSummary as beamd_snapshots::Fold>::KIND,
    <UsageProjection as beamd_snapshots::Fold>::KIND,
    <InspectorProjection as beamd_snapshots::Fold>::KIND,
    <StatusProjection as beamd_snapshots::Fold>::KIND,
    <DomainsProjection as beamd_snapshots::Fold>::KIND,
    <CatalogProjection as beamd_snapshots::Fold>::KIND,
    <GatewayProjection as beamd_snapshots::Fold>::KIND,
    <AccountsProjection as beamd_snapshots::Fold>::KIND,
    <crate::domain::Directory as beamd_snapshots::Fold>::KIND,
];
