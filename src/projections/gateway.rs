//! The gateway projection: every service, route and consumer (deleted and
//! revoked ones too, marked), so the HTTP ingress can pick a request's route
//! and check its consumer key without asking an actor, and the API can list
//! them.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use crate::domain::gateway::{Consumer, ErrorGroup, PathPattern, Route, Service};

/// Services, routes and consumers by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayProjection {
    services: BTreeMap<String, Service>,
    routes: BTreeMap<String, Route>,
    consumers: BTreeMap<String, Consumer>,
    /// Error groups.
    #[serde(default)]
    errors: BTreeMap<String, ErrorGroup>,
    /// Host → its live routes, so a request to a host without routes costs one lookup.
    #[serde(default)]
    hosts: BTreeMap<String, BTreeSet<String>>,
}

fn fold_into<A: Fold + Default>(map: &mut BTreeMap<String, A>, envelope: &Envelope) {
    map.entry(envelope.stream.as_str().to_string())
        .or_default()
        .apply(envelope);
}

impl GatewayProjection {
    /// A service, deleted or not.
    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.get(id)
    }

    /// A route, deleted or not.
    pub fn route(&self, id: &str) -> Option<&Route> {
        self.routes.get(id)
    }

    /// A consumer, revoked or not.
    pub fn consumer(&self, id: &str) -> Option<&Consumer> {
        self.consumers.get(id)
    }

    /// Every live service, of every tenant (for the health prober).
    pub fn live_services(&self) -> impl Iterator<Item = &Service> {
        self.services.values().filter(|s| s.live())
    }

    /// An error group.
    pub fn error(&self, id: &str) -> Option<&ErrorGroup> {
        self.errors.get(id)
    }

    /// A tenant's error groups, the most recent failure first.
    pub fn errors_of(&self, tenant: &str) -> Vec<&ErrorGroup> {
        let mut out: Vec<&ErrorGroup> = self
            .errors
            .values()
            .filter(|e| e.tenant == tenant)
            .collect();
        out.sort_by(|a, b| b.last_at.cmp(&a.last_at).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// A tenant's services not deleted.
    pub fn services_of<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a Service> + 'a {
        self.services
            .values()
            .filter(move |s| s.tenant == tenant && s.live())
    }

    /// A tenant's routes not deleted.
    pub fn routes_of<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes
            .values()
            .filter(move |r| r.tenant == tenant && r.live())
    }

    /// A tenant's consumers not revoked.
    pub fn consumers_of<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a Consumer> + 'a {
        self.consumers
            .values()
            .filter(move |c| c.tenant == tenant && c.live())
    }

    /// Whether any live route is bound to `host` (then the gateway, not the
    /// plain tunnel, answers requests for it).
    pub fn serves_host(&self, host: &str) -> bool {
        self.hosts.contains_key(host)
    }

    /// Whether a live route of a tenant that `host` reaches now is bound to it.
    pub fn serves_host_for(&self, host: &str, reaches: &dyn Fn(&str) -> bool) -> bool {
        self.hosts.get(host).is_some_and(|ids| {
            ids.iter()
                .filter_map(|id| self.routes.get(id))
                .any(|r| reaches(&r.tenant))
        })
    }

    /// The enabled route for a request: bound to `host`, of a tenant the
    /// host `reaches` now, naming `method` (or `*`), with a pattern matching
    /// `path`; the most specific pattern wins, then an exact method over
    /// `*`, then the older route.
    pub fn route_for(
        &self,
        host: &str,
        method: &str,
        path: &str,
        reaches: &dyn Fn(&str) -> bool,
    ) -> Option<&Route> {
        let mut best: Option<(&Route, PathPattern)> = None;
        let ids = self.hosts.get(host)?;
        for route in ids
            .iter()
            .filter_map(|id| self.routes.get(id))
            .filter(|r| r.live() && reaches(&r.tenant))
        {
            let Some(c) = route.config.as_ref() else {
                continue;
            };
            if !c.enabled || c.host != host || (c.method != "*" && c.method != method) {
                continue;
            }
            let Ok(pattern) = PathPattern::parse(&c.path_pattern) else {
                continue;
            };
            if !pattern.matches(path) {
                continue;
            }
            let wins = match &best {
                None => true,
                Some((held, held_pattern)) => {
                    let held_exact = held.config.as_ref().is_some_and(|h| h.method != "*");
                    match pattern.specificity(held_pattern) {
                        Ordering::Greater => true,
                        Ordering::Less => false,
                        Ordering::Equal => match (c.method != "*", held_exact) {
                            (true, false) => true,
                            (false, true) => false,
                            _ => route.created_at < held.created_at,
                        },
                    }
                }
            };
            if wins {
                best = Some((route, pattern));
            }
        }
        best.map(|(r, _)| r)
    }

    /// The live consumer of `tenant` whose key is `key` (`con_….SECRET`).
    pub fn consumer_by_key(&self, tenant: &str, key: &str) -> Option<&Consumer> {
        let (id, secret) = key.split_once('.')?;
        let c = self.consumers.get(id)?;
        let hash = blake3::hash(secret.as_bytes()).to_hex();
        let same = constant_time_eq(hash.as_bytes(), c.key_hash.as_bytes());
        (c.live() && c.tenant == tenant && same).then_some(c)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Fold for GatewayProjection {
    const KIND: &'static str = "gateway";

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::ServiceCreated(_)
            | Event::ServiceUpdated(_)
            | Event::ServiceDeleted(_)
            | Event::ServiceHealthChanged(_) => fold_into(&mut self.services, envelope),
            Event::RouteCreated(_)
            | Event::RouteUpdated(_)
            | Event::RouteDeleted(_)
            | Event::RouteRetired(_) => {
                let id = envelope.stream.as_str();
                if let Some(host) = self
                    .routes
                    .get(id)
                    .and_then(|r| r.config.as_ref())
                    .map(|c| c.host.clone())
                {
                    if let Some(ids) = self.hosts.get_mut(&host) {
                        ids.remove(id);
                        if ids.is_empty() {
                            self.hosts.remove(&host);
                        }
                    }
                }
                fold_into(&mut self.routes, envelope);
                if let Some(r) = self.routes.get(id).filter(|r| r.live()) {
                    if let Some(c) = &r.config {
                        self.hosts
                            .entry(c.host.clone())
                            .or_default()
                            .insert(id.to_string());
                    }
                }
            }
            Event::ConsumerCreated(_) | Event::ConsumerRevoked(_) => {
                fold_into(&mut self.consumers, envelope)
            }
            Event::GatewayErrorsRecorded(_) | Event::GatewayErrorResolved(_) => {
                fold_into(&mut self.errors, envelope)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beamd_events::vocabulary::{RouteConfig, RouteCreated, RouteDeleted, RouteUpdated};
    use beamd_events::StreamId;

    fn env(stream: &str, seq: u64, event: Event) -> Envelope {
        Envelope {
            seq,
            at: seq,
            stream: StreamId::new(stream).unwrap(),
            version: seq,
            schema: beamd_events::SCHEMA_VERSION,
            event,
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }

    fn config(host: &str, method: &str, pattern: &str) -> RouteConfig {
        RouteConfig {
            host: host.into(),
            method: method.into(),
            path_pattern: pattern.into(),
            service_id: "svc_1".into(),
            auth_required: false,
            rate_limit_override: None,
            enabled: true,
        }
    }

    #[test]
    fn routes_are_found_by_host_method_and_the_most_specific_pattern() {
        let mut p = GatewayProjection::default();
        let created = |c: RouteConfig| {
            Event::RouteCreated(RouteCreated {
                tenant: "ten_1".into(),
                config: c,
            })
        };
        p.apply(&env(
            "rte_1",
            1,
            created(config("a.x", "GET", "/users/:id")),
        ));
        p.apply(&env("rte_2", 2, created(config("a.x", "*", "/*"))));
        p.apply(&env("rte_3", 3, created(config("a.x", "GET", "/users/me"))));
        fn id(p: &GatewayProjection, m: &str, path: &str) -> Option<String> {
            p.route_for("a.x", m, path, &|_| true).map(|r| r.id.clone())
        }
        assert_eq!(id(&p, "GET", "/users/me").as_deref(), Some("rte_3"));
        assert_eq!(id(&p, "GET", "/users/7").as_deref(), Some("rte_1"));
        assert_eq!(id(&p, "POST", "/users/7").as_deref(), Some("rte_2"));
        assert!(p.route_for("b.x", "GET", "/users/7", &|_| true).is_none());

        // Moving a route to another host and deleting one keep the host index right.
        let moved = Event::RouteUpdated(RouteUpdated {
            config: config("b.x", "GET", "/users/:id"),
        });
        p.apply(&env("rte_1", 4, moved));
        assert_eq!(
            p.route_for("b.x", "GET", "/users/7", &|_| true)
                .map(|r| r.id.as_str()),
            Some("rte_1")
        );
        assert_eq!(id(&p, "GET", "/users/7").as_deref(), Some("rte_2"));
        p.apply(&env("rte_2", 5, Event::RouteDeleted(RouteDeleted {})));
        p.apply(&env("rte_3", 6, Event::RouteDeleted(RouteDeleted {})));
        assert!(!p.serves_host("a.x"), "no live route is bound to a.x");
        assert!(p.serves_host("b.x"));
        assert!(
            !p.serves_host_for("b.x", &|t| t == "ten_2"),
            "not ten_2's host"
        );
        assert!(p
            .route_for("b.x", "GET", "/users/7", &|t| t == "ten_2")
            .is_none());
        p.apply(&env(
            "rte_1",
            7,
            Event::RouteRetired(beamd_events::vocabulary::RouteRetired {
                domain: "dom_1".into(),
            }),
        ));
        assert!(!p.serves_host("b.x"), "a retired route is not bound");
    }
}
