//! The projections as the rest of the process reads them: each behind a lock
//! of its own, asked named questions (usage for a tenant, the catalog entry
//! of a key, a page of tunnels, the domain of a host…). A query takes the
//! lock of the one projection it reads, copies out its answer and lets go;
//! no caller holds a lock over them all, and none holds one while it awaits.
//! The projector alone folds into them (`fold`), then publishes the seq.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use beamd_events::Envelope;

use super::all::{read, Locked};
use super::hot::{changes_grants, HotView};
use super::{
    CapturedRequest, Counts, DayUsage, Hot, KeyCounters, Projections, TenantTotals, TunnelTotals,
};
use crate::domain::gateway::{Consumer, ErrorGroup, Route, Service};
use crate::domain::{Account, DomainError, DomainName, Key, Node, OpenUsage, Tenant, Tunnel};

/// One page of a listing and the cursor of the next, if there is more.
pub type Page<T> = (Vec<T>, Option<String>);

/// Takes one page from `items` (sorted by the id `id_of` gives).
fn page<'a, T: Clone + 'a>(
    items: impl Iterator<Item = &'a T>,
    size: usize,
    id_of: impl Fn(&T) -> String,
) -> Page<T> {
    let mut items: Vec<T> = items.take(size + 1).cloned().collect();
    let next = if items.len() > size {
        items.truncate(size);
        items.last().map(&id_of)
    } else {
        None
    };
    (items, next)
}

/// What folding a slice of events brought.
#[derive(Debug, Default)]
pub struct Folded {
    /// The requests the slice captured, for the inspector's history index.
    pub captured: Vec<CapturedRequest>,
    /// Whether an event of the slice changed a grant live sessions hold.
    pub grants_changed: bool,
}

/// The live projections and their named queries.
#[derive(Debug)]
pub struct Queries {
    locked: Locked,
    hot: HotView,
    seq: AtomicU64,
}

impl Queries {
    /// Serves `p` (rebuilt from snapshots and the log).
    pub fn new(p: Projections) -> Self {
        let seq = AtomicU64::new(p.seq);
        let locked = Locked::new(p);
        let hot = HotView::new(&locked);
        Self { locked, hot, seq }
    }

    /// Folds a slice of committed events: each projection in turn under its
    /// own write lock, then the request path's view if the slice touches it.
    /// For the projector alone, which publishes the seq once all are folded.
    pub fn fold(&self, events: &[Envelope]) -> Folded {
        let Some(last) = events.last() else {
            return Folded::default();
        };
        let captured = self.locked.fold(events);
        self.hot.refresh(&self.locked, events);
        self.seq.store(last.seq, Ordering::Release);
        Folded {
            captured,
            grants_changed: events.iter().any(changes_grants),
        }
    }

    /// A copy of every projection (each taken under its own lock): what is
    /// snapshotted, and what the simulation compares with a fresh fold once
    /// the log is quiet.
    pub fn snapshot(&self) -> Projections {
        self.locked.copy(self.seq())
    }

    /// The last seq folded into every projection.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// What the request path reads, without any projection's lock.
    pub fn hot(&self) -> Arc<Hot> {
        self.hot.get()
    }

    // Tenants, keys and tunnels (the catalog).

    /// A tenant.
    pub fn tenant(&self, id: &str) -> Option<Tenant> {
        read(&self.locked.catalog).tenants.get(id).cloned()
    }

    /// A page of every tenant, by id, after `after`.
    pub fn tenants_page(&self, after: Option<&str>, size: usize) -> Page<Tenant> {
        let catalog = read(&self.locked.catalog);
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_string()));
        let tenants = catalog
            .tenants
            .range::<String, _>((start, Bound::Unbounded));
        page(tenants.map(|(_, t)| t), size, |t| t.id.clone())
    }

    /// A key, revoked ones included.
    pub fn key(&self, id: &str) -> Option<Key> {
        read(&self.locked.catalog).keys.get(id).cloned()
    }

    /// A page of a tenant's keys, by id, after `after`.
    pub fn keys_page(&self, tenant: &str, after: Option<&str>, size: usize) -> Page<Key> {
        let catalog = read(&self.locked.catalog);
        page(catalog.keys.of_tenant(tenant, after), size, |k| {
            k.id.clone()
        })
    }

    /// A tunnel not released.
    pub fn tunnel(&self, id: &str) -> Option<Tunnel> {
        read(&self.locked.catalog).tunnels.get(id).cloned()
    }

    /// A page of a tenant's tunnels, by id, after `after`.
    pub fn tunnels_page(&self, tenant: &str, after: Option<&str>, size: usize) -> Page<Tunnel> {
        let catalog = read(&self.locked.catalog);
        page(catalog.tunnels.of_tenant(tenant, after), size, |t| {
            t.id.clone()
        })
    }

    /// How many tunnels a tenant has that are not released.
    pub fn tunnel_count(&self, tenant: &str) -> u64 {
        read(&self.locked.catalog)
            .tunnels
            .of_tenant(tenant, None)
            .count() as u64
    }

    /// Whether `key` may carry more bytes now: the key as the log has it
    /// now, its tenant's plan and the bytes counted so far (`Key::may_carry`).
    pub fn grant(&self, key: &str, now_ms: u64) -> Result<(), DomainError> {
        let (current, plan) = {
            let catalog = read(&self.locked.catalog);
            let current = catalog.keys.get(key).cloned();
            let plan = current
                .as_ref()
                .and_then(|k| catalog.tenants.get(&k.tenant))
                .map(|t| t.plan.clone());
            (current, plan)
        };
        match (current, plan) {
            (Some(current), Some(plan)) => {
                let usage = self.open_usage(&current.tenant, key, now_ms);
                current.may_carry(&plan, &usage)
            }
            _ => Err(DomainError::Unauthorized("unknown key".into())),
        }
    }

    // Usage.

    /// The bytes the limits of a new tunnel of `key` are held against.
    pub fn open_usage(&self, tenant: &str, key: &str, now_ms: u64) -> OpenUsage {
        let usage = read(&self.locked.usage);
        OpenUsage {
            tenant_month_bytes: usage.month_bytes(tenant, now_ms),
            key_bytes: usage.key(key).bytes(),
        }
    }

    /// A tenant's usage per day over the last `days` days up to `now_ms`.
    pub fn usage_series(&self, tenant: &str, now_ms: u64, days: u64) -> Vec<(u64, DayUsage)> {
        read(&self.locked.usage).series(tenant, now_ms, days)
    }

    /// A tenant's bytes in the calendar month of `now_ms`.
    pub fn month_bytes(&self, tenant: &str, now_ms: u64) -> u64 {
        read(&self.locked.usage).month_bytes(tenant, now_ms)
    }

    /// A tunnel's byte and request totals (zero once it is released).
    pub fn tunnel_totals(&self, tunnel: &str) -> TunnelTotals {
        read(&self.locked.usage).tunnel(tunnel)
    }

    /// Each member's share of a pool tunnel's totals.
    pub fn member_totals(&self, tunnel: &str) -> Vec<(String, TunnelTotals)> {
        read(&self.locked.usage).members(tunnel)
    }

    /// A tenant's totals.
    pub fn tenant_totals(&self, tenant: &str) -> TenantTotals {
        read(&self.locked.usage).tenant(tenant)
    }

    /// A key's counters.
    pub fn key_counters(&self, key: &str) -> KeyCounters {
        read(&self.locked.usage).key(key)
    }

    /// The tenant a committed event belongs to, if it belongs to one (node
    /// events do not). Valid once the projections have folded it in.
    pub fn owner_of(&self, envelope: &Envelope) -> Option<String> {
        read(&self.locked.usage).tenant_of(envelope)
    }

    // Captured requests (the inspector's recent ones; the history is in the index).

    /// The tenant's recent request named `id` (`req_…`).
    pub fn recent_request(&self, tenant: &str, id: &str) -> Option<CapturedRequest> {
        read(&self.locked.inspector).by_id(tenant, id).cloned()
    }

    /// The tenant's most recent requests, newest first.
    pub fn recent_requests(&self, tenant: &str, limit: usize) -> Vec<CapturedRequest> {
        read(&self.locked.inspector).recent(tenant, limit)
    }

    /// The requests a committed event captured (`RequestCaptured`,
    /// `RequestsCaptured`) for a known tunnel.
    pub fn captured(&self, envelope: &Envelope) -> Vec<CapturedRequest> {
        read(&self.locked.inspector).captured(envelope)
    }

    // Status.

    /// Live counts.
    pub fn counts(&self) -> Counts {
        read(&self.locked.status).counts
    }

    /// Every node that joined, by id.
    pub fn nodes(&self) -> BTreeMap<String, Node> {
        read(&self.locked.status).nodes.clone()
    }

    // Custom domains.

    /// A domain, by id.
    pub fn domain(&self, id: &str) -> Option<DomainName> {
        read(&self.locked.domains).get(id).cloned()
    }

    /// The domain claimed for `host`.
    pub fn domain_of_host(&self, host: &str) -> Option<DomainName> {
        read(&self.locked.domains).by_host(host).cloned()
    }

    /// A tenant's domains, by host.
    pub fn domains_of(&self, tenant: &str) -> Vec<DomainName> {
        read(&self.locked.domains)
            .of_tenant(tenant)
            .cloned()
            .collect()
    }

    /// A page of a tenant's domains, by host, after `after`.
    pub fn domains_page(&self, tenant: &str, after: &str, size: usize) -> Page<DomainName> {
        let domains = read(&self.locked.domains);
        let mine = domains
            .of_tenant(tenant)
            .filter(|d| d.host.as_str() > after);
        page(mine, size, |d| d.host.clone())
    }

    /// Pending claims older than `ttl_ms` at `now_ms`.
    pub fn lapsed_claims(&self, now_ms: u64, ttl_ms: u64) -> Vec<String> {
        read(&self.locked.domains).lapsed(now_ms, ttl_ms)
    }

    // The gateway.

    /// A service, by id.
    pub fn service(&self, id: &str) -> Option<Service> {
        read(&self.locked.gateway).service(id).cloned()
    }

    /// A tenant's services.
    pub fn services_of(&self, tenant: &str) -> Vec<Service> {
        read(&self.locked.gateway)
            .services_of(tenant)
            .cloned()
            .collect()
    }

    /// Every live service.
    pub fn live_services(&self) -> Vec<Service> {
        read(&self.locked.gateway)
            .live_services()
            .cloned()
            .collect()
    }

    /// A route, by id.
    pub fn route(&self, id: &str) -> Option<Route> {
        read(&self.locked.gateway).route(id).cloned()
    }

    /// A tenant's routes.
    pub fn routes_of(&self, tenant: &str) -> Vec<Route> {
        read(&self.locked.gateway)
            .routes_of(tenant)
            .cloned()
            .collect()
    }

    /// A consumer, by id.
    pub fn consumer(&self, id: &str) -> Option<Consumer> {
        read(&self.locked.gateway).consumer(id).cloned()
    }

    /// A tenant's consumers.
    pub fn consumers_of(&self, tenant: &str) -> Vec<Consumer> {
        read(&self.locked.gateway)
            .consumers_of(tenant)
            .cloned()
            .collect()
    }

    /// An error group, by id.
    pub fn error_group(&self, id: &str) -> Option<ErrorGroup> {
        read(&self.locked.gateway).error(id).cloned()
    }

    /// A tenant's error groups.
    pub fn error_groups_of(&self, tenant: &str) -> Vec<ErrorGroup> {
        read(&self.locked.gateway)
            .errors_of(tenant)
            .into_iter()
            .cloned()
            .collect()
    }

    // Accounts.

    /// An account, by id.
    pub fn account(&self, id: &str) -> Option<Account> {
        read(&self.locked.accounts).get(id).cloned()
    }

    /// The account signed up with `email`.
    pub fn account_by_email(&self, email: &str) -> Option<Account> {
        read(&self.locked.accounts).by_email(email).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::envelope;
    use beamd_events::vocabulary::{KeyIssued, KeyKind, KeyRevoked};
    use beamd_events::Event;

    fn issued(tenant: &str) -> Event {
        KeyIssued {
            tenant: tenant.into(),
            label: "l".into(),
            kind: KeyKind::Agent,
            scopes: vec![],
            secret_hash: "00".into(),
            limit_bytes: None,
        }
        .into()
    }

    fn at(seq: u64, stream: &str, event: Event) -> Envelope {
        Envelope {
            seq,
            ..envelope(stream, 1, seq, event)
        }
    }

    #[test]
    fn folded_slices_answer_like_one_fold_of_everything() {
        let events = [
            at(1, "tok_b", issued("ten_1")),
            at(2, "tok_a", issued("ten_1")),
            at(3, "tok_c", issued("ten_2")),
            at(4, "tok_d", issued("ten_1")),
        ];
        let q = Queries::new(Projections::default());
        let first = q.fold(&events[..2]);
        assert!(!first.grants_changed);
        assert_eq!(q.seq(), 2);
        q.fold(&events[2..]);
        assert_eq!(q.seq(), 4);

        let mut plain = Projections::default();
        events.iter().for_each(|e| plain.apply(e));
        assert_eq!(q.snapshot(), plain);

        let (page1, next) = q.keys_page("ten_1", None, 2);
        let ids: Vec<&str> = page1.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["tok_a", "tok_b"]);
        assert_eq!(next.as_deref(), Some("tok_b"));
        let (page2, next) = q.keys_page("ten_1", next.as_deref(), 2);
        assert_eq!(page2.len(), 1);
        assert_eq!(next, None);
        assert_eq!(q.key("tok_c").map(|k| k.tenant), Some("ten_2".into()));
        assert!(q.key("tok_z").is_none());
    }

    #[test]
    fn a_revocation_is_reported_as_a_grant_change() {
        let q = Queries::new(Projections::default());
        q.fold(&[at(1, "tok_a", issued("ten_1"))]);
        let revoked = Envelope {
            version: 2,
            ..at(2, "tok_a", KeyRevoked::default().into())
        };
        assert!(q.fold(&[revoked]).grants_changed);
        assert_eq!(q.fold(&[]).captured.len(), 0);
        assert_eq!(q.seq(), 2, "an empty slice publishes nothing");
    }
}
