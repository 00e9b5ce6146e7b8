//! Every projection over the whole log, listed once: the plain set at one
//! seq (what is snapshotted, rebuilt and compared) and the live set, each
//! projection behind a lock of its own (what the projector folds into and
//! `Queries` reads). Adding a projection is one line in the list below.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use beamd_events::Envelope;
use beamd_snapshots::{Fold, Snapshot, SnapshotError, SnapshotStore};

use super::{
    AccountsProjection, CapturedRequest, CatalogProjection, DomainsProjection, GatewayProjection,
    InspectorProjection, LogSummary, StatusProjection, UsageProjection,
};

/// The id under which projections over the whole log are snapshotted.
pub const GLOBAL_ID: &str = "all";

/// How a projection takes a slice of committed events while the projector
/// holds its write lock. The inspector also hands out the requests the
/// slice captured, read as each event is folded (a tunnel released later in
/// the same slice would no longer name its tenant).
pub(super) trait FoldSlice: Fold {
    fn fold_slice(&mut self, events: &[Envelope], _captured: &mut Vec<CapturedRequest>) {
        events.iter().for_each(|e| self.apply(e));
    }
}

impl FoldSlice for LogSummary {}
impl FoldSlice for UsageProjection {}
impl FoldSlice for StatusProjection {}
impl FoldSlice for DomainsProjection {}
impl FoldSlice for CatalogProjection {}
impl FoldSlice for GatewayProjection {}
impl FoldSlice for AccountsProjection {}
impl FoldSlice for InspectorProjection {
    fn fold_slice(&mut self, events: &[Envelope], captured: &mut Vec<CapturedRequest>) {
        for e in events {
            self.apply(e);
            captured.extend(self.captured(e));
        }
    }
}

/// A lock's guard even if a reader panicked: a fold replaces values whole,
/// so a poisoned lock still holds a consistent projection.
pub(super) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

macro_rules! projections {
    ($($(#[doc = $doc:literal])* $field:ident: $ty:ty,)*) => {
        /// The projections, all at the same seq.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Projections {
            /// The last seq folded in.
            pub seq: u64,
            $($(#[doc = $doc])* pub $field: $ty,)*
        }

        impl Projections {
            /// The snapshot kind of each projection.
            pub const KINDS: &'static [&'static str] = &[$(<$ty as Fold>::KIND,)*];

            /// Folds one event into every projection.
            pub fn apply(&mut self, env: &Envelope) {
                $(self.$field.apply(env);)*
                self.seq = env.seq;
            }

            /// Snapshots every projection at their seq, then flushes the store.
            pub fn save(&self, store: &dyn SnapshotStore) -> Result<(), SnapshotError> {
                $(store.save(&Snapshot::new(<$ty as Fold>::KIND, GLOBAL_ID, self.seq, 0, &self.$field)?)?;)*
                store.flush()
            }

            /// The newest snapshots, if there is one of every projection, all
            /// at one seq no later than `head` (they are snapshotted together;
            /// otherwise the caller starts them all from one point).
            pub fn load(store: &dyn SnapshotStore, head: u64) -> Result<Option<Self>, SnapshotError> {
                let mut seq = None;
                $(
                    let $field: $ty = match store.latest(<$ty as Fold>::KIND, GLOBAL_ID)? {
                        Some(s) if s.seq <= head && seq.is_none_or(|at| at == s.seq) => {
                            seq = Some(s.seq);
                            s.decode()?
                        }
                        _ => return Ok(None),
                    };
                )*
                Ok(seq.map(|seq| Self { seq, $($field,)* }))
            }
        }

        /// The projections the process reads, each behind a lock of its own.
        /// Only `Queries` (the reads) and the projector's fold touch them.
        #[derive(Debug)]
        pub(super) struct Locked {
            $(pub(super) $field: RwLock<$ty>,)*
        }

        impl Locked {
            pub(super) fn new(p: Projections) -> Self {
                Self { $($field: RwLock::new(p.$field),)* }
            }

            /// Folds a slice into each projection in turn, each under its
            /// own write lock: a reader of one waits for that one's share of
            /// the slice only. Returns the requests the slice captured.
            pub(super) fn fold(&self, events: &[Envelope]) -> Vec<CapturedRequest> {
                let mut captured = Vec::new();
                $(write(&self.$field).fold_slice(events, &mut captured);)*
                captured
            }

            /// A copy of every projection, each taken under its own lock.
            pub(super) fn copy(&self, seq: u64) -> Projections {
                Projections { seq, $($field: read(&self.$field).clone(),)* }
            }
        }
    };
}

projections! {
    /// Event counts.
    summary: LogSummary,
    /// Usage per tenant and day, key counters.
    usage: UsageProjection,
    /// Recent captured requests.
    inspector: InspectorProjection,
    /// Live counts and nodes.
    status: StatusProjection,
    /// Custom domains.
    domains: DomainsProjection,
    /// Tenants, keys and tunnels, for listing.
    catalog: CatalogProjection,
    /// Gateway services, routes and consumers.
    gateway: GatewayProjection,
    /// Accounts.
    accounts: AccountsProjection,
}
