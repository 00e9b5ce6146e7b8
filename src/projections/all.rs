//! Every projection over the whole log, at one seq: what the projector
//! folds each committed event into, snapshots together and serves reads from.

use beamd_events::Envelope;
use beamd_snapshots::Fold;

use super::{
    AccountsProjection, CatalogProjection, DomainsProjection, GatewayProjection,
    InspectorProjection, LogSummary, StatusProjection, UsageProjection,
};

/// The projections, all at the same seq.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projections {
    /// The last seq folded in.
    pub seq: u64,
    /// Event counts.
    pub summary: LogSummary,
    /// Usage per tenant and day, key counters.
    pub usage: UsageProjection,
    /// Recent captured requests.
    pub inspector: InspectorProjection,
    /// Live counts and nodes.
    pub status: StatusProjection,
    /// Custom domains.
    pub domains: DomainsProjection,
    /// Tenants, keys and tunnels, for listing.
    pub catalog: CatalogProjection,
    /// Gateway services, routes and consumers.
    pub gateway: GatewayProjection,
    /// Accounts.
    pub accounts: AccountsProjection,
}

impl Projections {
    /// Folds one event into every projection.
    pub fn apply(&mut self, env: &Envelope) {
        self.summary.apply(env);
        self.usage.apply(env);
        self.inspector.apply(env);
        self.status.apply(env);
        self.domains.apply(env);
        self.catalog.apply(env);
        self.gateway.apply(env);
        self.accounts.apply(env);
        self.seq = env.seq;
    }
}
