//! The domains projection: every custom domain not removed (nor expired), by id and by
//! host, so the HTTP ingress can check a host per request without asking an
//! actor, and the API can list a tenant's domains.

use std::collections::BTreeMap;

use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use crate::domain::{DomainName, DomainStatus};

/// Custom domains not removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainsProjection {
    /// Domain id → state.
    domains: BTreeMap<String, DomainName>,
    /// Host → domain id.
    hosts: BTreeMap<String, String>,
}

impl DomainsProjection {
    /// The domain registered for `host`, if any.
    pub fn by_host(&self, host: &str) -> Option<&DomainName> {
        self.domains.get(self.hosts.get(host)?)
    }

    /// The domain with this id, if not removed.
    pub fn get(&self, id: &str) -> Option<&DomainName> {
        self.domains.get(id)
    }

    /// Whether `host` is a verified domain of `tenant`.
    pub fn verified_for(&self, host: &str, tenant: &str) -> bool {
        self.by_host(host)
            .is_some_and(|d| d.tenant == tenant && d.status == DomainStatus::Verified)
    }

    /// Domains pending past `ttl_ms` at `now_ms`, whose claims lapsed.
    pub fn lapsed(&self, now_ms: u64, ttl_ms: u64) -> Vec<String> {
        (self.domains.values())
            .filter(|d| d.claim_lapsed(now_ms, ttl_ms))
            .map(|d| d.id.clone())
            .collect()
    }

    /// A tenant's domains, by host.
    pub fn of_tenant<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a DomainName> + 'a {
        self.hosts
            .values()
            .filter_map(|id| self.domains.get(id))
            .filter(move |d| d.tenant == tenant)
    }
}

impl Fold for DomainsProjection {
    const KIND: &'static str = "domains";

    fn apply(&mut self, envelope: &Envelope) {
        let id = envelope.stream.as_str();
        match &envelope.event {
            Event::DomainAdded(_) => {
                let mut domain = DomainName::default();
                domain.apply(envelope);
                self.hosts.insert(domain.host.clone(), id.to_string());
                self.domains.insert(id.to_string(), domain);
            }
            Event::DomainRemoved(_) | Event::DomainClaimExpired(_) => {
                if let Some(d) = self.domains.remove(id) {
                    self.hosts.remove(&d.host);
                }
            }
            Event::DomainVerified(_) | Event::DomainVerificationFailed(_) => {
                if let Some(d) = self.domains.get_mut(id) {
                    d.apply(envelope);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::envelope;
    use beamd_events::vocabulary::{DomainAdded, DomainRemoved, DomainVerified};

    #[test]
    fn follows_a_domain_from_added_to_removed() {
        let mut p = DomainsProjection::default();
        let added = DomainAdded {
            tenant: "ten_1".into(),
            host: "app.example.com".into(),
            txt_token: "t".into(),
        };
        p.apply(&envelope("dom_1", 1, 5, added.into()));
        assert!(!p.verified_for("app.example.com", "ten_1"));
        p.apply(&envelope("dom_1", 2, 6, DomainVerified {}.into()));
        assert!(p.verified_for("app.example.com", "ten_1"));
        assert!(!p.verified_for("app.example.com", "ten_2"));
        assert_eq!(p.of_tenant("ten_1").count(), 1);
        p.apply(&envelope("dom_1", 3, 7, DomainRemoved {}.into()));
        assert!(p.by_host("app.example.com").is_none());
        assert_eq!(p, DomainsProjection::default());
    }
}
