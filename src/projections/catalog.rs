//! The catalog projection: every tenant, key and live tunnel as its
//! aggregate's own fold, indexed by tenant, so the API lists them in pages
//! without waking an actor per row. Byte totals are not here: the usage
//! projection owns them.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use crate::domain::{Key, Tenant, Tunnel};

/// Entities of one kind, by id and by (tenant, id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "T: Serialize + serde::de::DeserializeOwned")]
pub struct Shelf<T> {
    items: BTreeMap<String, T>,
    by_tenant: BTreeSet<(String, String)>,
}

impl<T> Default for Shelf<T> {
    fn default() -> Self {
        Self {
            items: BTreeMap::new(),
            by_tenant: BTreeSet::new(),
        }
    }
}

impl<T: Fold> Shelf<T> {
    fn apply(&mut self, envelope: &Envelope, tenant_of: impl Fn(&T) -> String) {
        let id = envelope.stream.as_str();
        let item = self.items.entry(id.to_string()).or_default();
        item.apply(envelope);
        self.by_tenant.insert((tenant_of(item), id.to_string()));
    }

    fn remove(&mut self, id: &str, tenant_of: impl Fn(&T) -> String) {
        if let Some(item) = self.items.remove(id) {
            self.by_tenant.remove(&(tenant_of(&item), id.to_string()));
        }
    }

    /// The item with this id.
    pub fn get(&self, id: &str) -> Option<&T> {
        self.items.get(id)
    }

    /// All items, by id.
    pub fn all(&self) -> impl Iterator<Item = &T> {
        self.items.values()
    }

    /// A tenant's items by id, starting after `after`.
    pub fn of_tenant<'a>(
        &'a self,
        tenant: &str,
        after: Option<&str>,
    ) -> impl Iterator<Item = &'a T> + 'a {
        let start = match after {
            Some(a) => Bound::Excluded((tenant.to_string(), a.to_string())),
            None => Bound::Included((tenant.to_string(), String::new())),
        };
        let tenant = tenant.to_string();
        self.by_tenant
            .range((start, Bound::Unbounded))
            .take_while(move |(t, _)| *t == tenant)
            .filter_map(|(_, id)| self.items.get(id))
    }
}

/// Tenants, keys and tunnels not released.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogProjection {
    /// Tenants.
    pub tenants: BTreeMap<String, Tenant>,
    /// Keys, revoked ones included.
    pub keys: Shelf<Key>,
    /// Tunnels until released.
    pub tunnels: Shelf<Tunnel>,
}

impl Fold for CatalogProjection {
    const KIND: &'static str = "catalog";

    fn apply(&mut self, envelope: &Envelope) {
        let id = envelope.stream.as_str();
        match &envelope.event {
            Event::TenantCreated(_) | Event::TenantPlanChanged(_) | Event::TenantRenamed(_) => {
                self.tenants
                    .entry(id.to_string())
                    .or_default()
                    .apply(envelope);
            }
            Event::KeyIssued(_)
            | Event::KeyLimitSet(_)
            | Event::KeyCountersReset(_)
            | Event::KeyRevoked(_) => self.keys.apply(envelope, |k| k.tenant.clone()),
            Event::TunnelReleased(_) => self.tunnels.remove(id, |t| t.tenant.clone()),
            Event::TunnelOpened(_)
            | Event::TunnelWentOffline(_)
            | Event::TunnelResumed(_)
            | Event::TunnelMemberJoined(_)
            | Event::TunnelMemberLeft(_)
            | Event::TunnelInspectSet(_)
            | Event::TrafficRecorded(_) => self.tunnels.apply(envelope, |t| t.tenant.clone()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::envelope;
    use beamd_events::vocabulary::{KeyIssued, KeyKind, KeyRevoked};

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

    #[test]
    fn keys_are_listed_per_tenant_in_pages() {
        let mut c = CatalogProjection::default();
        c.apply(&envelope("tok_b", 1, 1, issued("ten_1")));
        c.apply(&envelope("tok_a", 1, 2, issued("ten_1")));
        c.apply(&envelope("tok_c", 1, 3, issued("ten_2")));
        let ids = |after| {
            c.keys
                .of_tenant("ten_1", after)
                .map(|k| k.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(None), ["tok_a", "tok_b"]);
        assert_eq!(ids(Some("tok_a")), ["tok_b"]);
        c.apply(&envelope("tok_a", 2, 4, KeyRevoked {}.into()));
        assert!(c.keys.get("tok_a").is_some_and(|k| k.revoked_at == Some(4)));
        assert_eq!(c.keys.of_tenant("ten_2", None).count(), 1);
    }
}
