//! What the data path reads on every request (the gateway's routes and
//! consumers, each tunnel's inspect mode, custom domains), as a copy of its
//! own. The projector folds floods of events (a `RequestCaptured` per
//! request) under the projections' write locks; readers of a lock would wait
//! for each slice, and for as long as the projector is descheduled while
//! holding it. The copy is rebuilt only when an event that can change it is
//! folded, and swapped whole.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use beamd_events::vocabulary::InspectMode;
use beamd_events::{Envelope, Event};

use super::all::{read, Locked};
use super::{DomainsProjection, GatewayProjection};
use crate::domain::host_reaches;

/// The request path's view of the projections.
#[derive(Debug, Default)]
pub struct Hot {
    /// Gateway services, routes and consumers.
    pub gateway: GatewayProjection,
    /// Each tunnel's inspect mode (absent: not opened, or released).
    pub inspect: HashMap<String, InspectMode>,
    /// Each tenant's base host for its tunnels' names.
    pub tunnel_base: HashMap<String, String>,
    /// Custom domains, by host.
    pub domains: DomainsProjection,
}

impl Hot {
    /// Whether a request for `host` may reach `tenant` now (see `host_reaches`).
    pub fn reaches(&self, host: &str, tenant: &str) -> bool {
        let base = self.tunnel_base.get(tenant).map_or("", String::as_str);
        host_reaches(host, tenant, base, self.domains.by_host(host))
    }
}

impl Hot {
    fn of(p: &Locked) -> Self {
        let (inspect, tunnel_base) = {
            let catalog = read(&p.catalog);
            let inspect = (catalog.tunnels.all())
                .map(|t| (t.id.clone(), t.inspect))
                .collect();
            let tunnel_base = (catalog.tenants.iter())
                .map(|(id, t)| (id.clone(), t.tunnel_base.clone()))
                .collect();
            (inspect, tunnel_base)
        };
        Self {
            gateway: read(&p.gateway).clone(),
            inspect,
            tunnel_base,
            domains: read(&p.domains).clone(),
        }
    }
}

/// Whether folding `env` can change the hot view: every event but the
/// high-volume ones, which only count.
fn touches(env: &Envelope) -> bool {
    !matches!(
        env.event,
        Event::RequestCaptured(_)
            | Event::RequestsCaptured(_)
            | Event::TrafficRecorded(_)
            | Event::NodeHeartbeat(_)
    )
}

/// Whether folding `env` changes a grant a live session holds: a key
/// revoked or limited, a tenant moved to another plan. Sessions and feeds
/// check their key again (`Key::may_carry`) when one is folded.
pub(super) fn changes_grants(env: &Envelope) -> bool {
    matches!(
        env.event,
        Event::KeyRevoked(_) | Event::KeyLimitSet(_) | Event::TenantPlanChanged(_)
    )
}

/// The current hot view, swapped whole.
#[derive(Debug, Default)]
pub(super) struct HotView(RwLock<Arc<Hot>>);

impl HotView {
    /// A view of `p`.
    pub(super) fn new(p: &Locked) -> Self {
        Self(RwLock::new(Arc::new(Hot::of(p))))
    }

    /// The view now (the lock is held only to copy a pointer).
    pub(super) fn get(&self) -> Arc<Hot> {
        read(&self.0).clone()
    }

    /// Rebuilds the view from `p` if folding `events` may have changed it.
    pub(super) fn refresh(&self, p: &Locked, events: &[Envelope]) {
        if events.iter().any(touches) {
            let fresh = Arc::new(Hot::of(p));
            *self.0.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        }
    }
}
