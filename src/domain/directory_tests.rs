//! Rules decided by the directory: uniqueness and limits across entities.

use super::*;
use crate::domain::testkit::envelope;
use crate::domain::{Aggregate, KeyCommand, TunnelCommand};
use beamd_events::vocabulary::{Plan, TransportKind, TunnelReleased};

/// A directory with one tenant and one agent key, and the states beside it.
struct World {
    dir: Directory,
    tenant: Tenant,
    key: Key,
    version: u64,
}

fn plan(max_tunnels: Option<u32>, max_domains: Option<u32>, bandwidth: Option<u64>) -> Plan {
    Plan {
        name: "test".into(),
        max_tunnels,
        max_domains,
        bandwidth_bytes_per_month: bandwidth,
        max_pending_domains: None,
    }
}

impl World {
    fn new(plan: Plan, limit_bytes: Option<u64>) -> Self {
        let mut w = World {
            dir: Directory::default(),
            tenant: Tenant::default(),
            key: Key::default(),
            version: 0,
        };
        let create = CreateTenant {
            slug: "acme".into(),
            name: "Acme".into(),
            plan,
            tunnel_base: "t.example.com".into(),
        };
        let (id, events) = w.dir.create_tenant(&create, &Ctx::new(0, 1)).unwrap();
        assert_eq!(id, "ten_0000000000000001");
        w.record(&id, events);
        let issue = KeyCommand::Issue {
            tenant: id,
            label: "agent".into(),
            kind: KeyKind::Agent,
            scopes: crate::domain::Scopes::default(),
            secret_hash: "ab".repeat(32),
            limit_bytes,
            by: crate::domain::Scope::Admin,
        };
        let events = Key::default().decide(&issue, &Ctx::new(0, 2)).unwrap();
        w.record("tok_1", events);
        w
    }

    fn record(&mut self, stream: &str, events: Vec<Event>) {
        for e in events {
            self.version += 1;
            let env = envelope(stream, self.version, self.version, e);
            self.dir.apply(&env);
            if stream.starts_with("ten_") {
                self.tenant.apply(&env);
            }
            if stream.starts_with("tok_") {
                self.key.apply(&env);
            }
        }
    }

    fn open(&mut self, cmd: OpenTunnel, usage: OpenUsage) -> Result<String, DomainError> {
        let fresh = self.version + 100;
        let (id, events) =
            self.dir
                .open_tunnel(&cmd, &self.tenant, &self.key, &usage, &Ctx::new(0, fresh))?;
        self.record(&id, events);
        Ok(id)
    }

    fn release(&mut self, id: &str) {
        self.record(id, vec![TunnelReleased {}.into()]);
    }
}

fn http(name: &str) -> OpenTunnel {
    OpenTunnel {
        protocol: TunnelProtocol::Http,
        name: Some(name.into()),
        port: PortRequest::None,
        transport: TransportKind::Quic,
        node: "node_a".into(),
        local_addr: "127.0.0.1:3000".into(),
    }
}

fn tcp(port: PortRequest) -> OpenTunnel {
    OpenTunnel {
        protocol: TunnelProtocol::Tcp,
        name: None,
        port,
        ..http("x")
    }
}

#[test]
fn slugs_are_unique_and_valid() {
    let w = World::new(plan(None, None, None), None);
    let again = CreateTenant {
        slug: "acme".into(),
        name: "Other".into(),
        plan: plan(None, None, None),
        tunnel_base: "x.example.com".into(),
    };
    let err = w.dir.create_tenant(&again, &Ctx::new(0, 9)).unwrap_err();
    assert_eq!(err.code(), "conflict");
    let bad = CreateTenant {
        slug: "Not A Slug".into(),
        ..again
    };
    assert_eq!(
        w.dir
            .create_tenant(&bad, &Ctx::new(0, 9))
            .unwrap_err()
            .code(),
        "invalid_request"
    );
}

#[test]
fn a_revoked_key_opens_nothing() {
    let mut w = World::new(plan(None, None, None), None);
    let events = w
        .key
        .decide(
            &KeyCommand::Revoke {
                by: crate::domain::Scope::Admin,
            },
            &Ctx::new(0, 0),
        )
        .unwrap();
    w.record("tok_1", events);
    let err = w.open(http("app"), OpenUsage::default()).unwrap_err();
    assert_eq!(err, DomainError::Unauthorized("the key is revoked".into()));
    let err = w
        .open(
            tcp(PortRequest::Exact {
                port: 2000,
                from: 1,
                to: u16::MAX,
            }),
            OpenUsage::default(),
        )
        .unwrap_err();
    assert_eq!(err.code(), "unauthorized");
    assert!(w.dir.tunnels.is_empty());
}

#[test]
fn only_agent_keys_of_the_tenant_open_tunnels() {
    let mut w = World::new(plan(None, None, None), None);
    w.key.kind = Some(KeyKind::Api);
    assert_eq!(
        w.open(http("app"), OpenUsage::default())
            .unwrap_err()
            .code(),
        "unauthorized"
    );
    w.key.kind = Some(KeyKind::Agent);
    w.key.tenant = "ten_other".into();
    assert_eq!(
        w.open(http("app"), OpenUsage::default())
            .unwrap_err()
            .code(),
        "unauthorized"
    );
    let mut missing = World::new(plan(None, None, None), None);
    missing.key = Key::default();
    assert_eq!(
        missing.open(http("app"), OpenUsage::default()).unwrap_err(),
        DomainError::Unauthorized("unknown key".into())
    );
}

#[test]
fn http_names_are_unique_among_live_tunnels_and_freed_by_release() {
    let mut w = World::new(plan(None, None, None), None);
    let first = w.open(http("app"), OpenUsage::default()).unwrap();
    assert_eq!(w.dir.holder_of_host("app.t.example.com").unwrap().0, &first);
    let err = w.open(http("app"), OpenUsage::default()).unwrap_err();
    assert_eq!(
        err,
        DomainError::Conflict("app.t.example.com is taken".into())
    );
    // Offline keeps the name reserved.
    w.record(
        &first,
        vec![beamd_events::vocabulary::TunnelWentOffline { reason: "x".into() }.into()],
    );
    assert_eq!(
        w.open(http("app"), OpenUsage::default())
            .unwrap_err()
            .code(),
        "conflict"
    );
    w.release(&first);
    assert!(w.open(http("app"), OpenUsage::default()).is_ok());
    assert_eq!(
        w.open(http("Bad_Name"), OpenUsage::default())
            .unwrap_err()
            .code(),
        "invalid_request"
    );
}

#[test]
fn an_exact_port_must_lie_in_the_edges_range() {
    let mut w = World::new(plan(None, None, None), None);
    let outside = PortRequest::Exact {
        port: 24_999,
        from: 23_000,
        to: 23_050,
    };
    let err = w.open(tcp(outside), OpenUsage::default()).unwrap_err();
    assert_eq!(
        err,
        DomainError::InvalidRequest(
            "port 24999 is outside this edge's public ports 23000-23050".into()
        )
    );
    let inside = PortRequest::Exact {
        port: 23_050,
        from: 23_000,
        to: 23_050,
    };
    assert!(w.open(tcp(inside), OpenUsage::default()).is_ok());
}

#[test]
fn tcp_ports_are_unique_and_allocated_lowest_first() {
    let mut w = World::new(plan(None, None, None), None);
    let a = w
        .open(
            tcp(PortRequest::Exact {
                port: 20_001,
                from: 1,
                to: u16::MAX,
            }),
            OpenUsage::default(),
        )
        .unwrap();
    let err = w
        .open(
            tcp(PortRequest::Exact {
                port: 20_001,
                from: 1,
                to: u16::MAX,
            }),
            OpenUsage::default(),
        )
        .unwrap_err();
    assert_eq!(err, DomainError::Conflict("port 20001 is taken".into()));
    let range = PortRequest::Any {
        from: 20_000,
        to: 20_002,
    };
    let b = w.open(tcp(range), OpenUsage::default()).unwrap();
    assert_eq!(w.dir.tunnels[&b].port, Some(20_000));
    let c = w.open(tcp(range), OpenUsage::default()).unwrap();
    assert_eq!(w.dir.tunnels[&c].port, Some(20_002));
    assert_eq!(
        w.open(tcp(range), OpenUsage::default()).unwrap_err().code(),
        "conflict"
    );
    w.release(&a);
    let d = w.open(tcp(range), OpenUsage::default()).unwrap();
    assert_eq!(
        w.dir.tunnels[&d].port,
        Some(20_001),
        "a released port is free again"
    );
}

#[test]
fn the_plan_tunnel_limit_holds_and_release_frees_a_slot() {
    let mut w = World::new(plan(Some(2), None, None), None);
    let a = w.open(http("a"), OpenUsage::default()).unwrap();
    w.open(http("b"), OpenUsage::default()).unwrap();
    let err = w.open(http("c"), OpenUsage::default()).unwrap_err();
    assert_eq!(
        err,
        DomainError::LimitExceeded {
            limit: "tunnels",
            max: 2
        }
    );
    w.release(&a);
    assert!(w.open(http("c"), OpenUsage::default()).is_ok());
}

#[test]
fn the_monthly_bandwidth_limit_holds() {
    let mut w = World::new(plan(None, None, Some(1_000)), None);
    let under = OpenUsage {
        tenant_month_bytes: 999,
        key_bytes: 0,
    };
    assert!(w.open(http("a"), under).is_ok());
    let at = OpenUsage {
        tenant_month_bytes: 1_000,
        key_bytes: 0,
    };
    let err = w.open(http("b"), at).unwrap_err();
    assert_eq!(
        err,
        DomainError::LimitExceeded {
            limit: "bandwidthBytes",
            max: 1_000
        }
    );
    assert_eq!(err.code(), "limit_exceeded");
}

#[test]
fn the_key_byte_limit_holds() {
    let mut w = World::new(plan(None, None, None), Some(500));
    assert!(w
        .open(
            http("a"),
            OpenUsage {
                tenant_month_bytes: 0,
                key_bytes: 499
            }
        )
        .is_ok());
    let err = w
        .open(
            http("b"),
            OpenUsage {
                tenant_month_bytes: 0,
                key_bytes: 500,
            },
        )
        .unwrap_err();
    assert_eq!(
        err,
        DomainError::LimitExceeded {
            limit: "limitBytes",
            max: 500
        }
    );
}

#[test]
fn domains_are_limited_unique_and_freed_by_removal() {
    let mut w = World::new(plan(None, Some(1), None), None);
    let add = AddDomain {
        host: "App.Example.org.".into(),
        claim_ttl_ms: 1_000,
    };
    let (id, events) = w.dir.add_domain(&add, &w.tenant, &Ctx::new(0, 7)).unwrap();
    assert!(
        matches!(&events[0], Event::DomainAdded(d) if d.host == "app.example.org" && d.txt_token.len() == 32)
    );
    w.record(&id, events);
    let other = AddDomain {
        host: "b.example.org".into(),
        claim_ttl_ms: 1_000,
    };
    let err = w
        .dir
        .add_domain(&other, &w.tenant, &Ctx::new(0, 8))
        .unwrap_err();
    assert_eq!(
        err,
        DomainError::LimitExceeded {
            limit: "domains",
            max: 1
        }
    );
    w.tenant.plan.max_domains = None;
    assert_eq!(
        w.dir
            .add_domain(&add, &w.tenant, &Ctx::new(0, 8))
            .unwrap_err()
            .code(),
        "conflict"
    );
    w.record(&id, vec![beamd_events::vocabulary::DomainRemoved {}.into()]);
    assert!(w.dir.add_domain(&add, &w.tenant, &Ctx::new(0, 9)).is_ok());
    assert_eq!(w.dir.tenants[&w.tenant.id].domains, 0);
}

#[test]
fn tunnel_commands_after_open_use_the_tunnel_aggregate() {
    let mut w = World::new(plan(None, None, None), None);
    let id = w.open(http("app"), OpenUsage::default()).unwrap();
    let mut t = crate::domain::Tunnel::default();
    let (_, events) = w
        .dir
        .open_tunnel(
            &http("other"),
            &w.tenant,
            &w.key,
            &OpenUsage::default(),
            &Ctx::new(0, 5),
        )
        .unwrap();
    t.apply(&envelope(&id, 1, 1, events[0].clone()));
    assert!(t.decide(&TunnelCommand::Release, &Ctx::new(0, 0)).is_ok());
    crate::domain::testkit::round_trip(&w.dir);
}

#[test]
fn offline_tunnels_expire_after_their_grace_and_crashed_nodes_are_found() {
    let mut w = World::new(plan(None, None, None), None);
    let a = w
        .open(
            tcp(PortRequest::Exact {
                port: 20_001,
                from: 1,
                to: u16::MAX,
            }),
            OpenUsage::default(),
        )
        .unwrap();
    let b = w
        .open(
            tcp(PortRequest::Exact {
                port: 20_002,
                from: 1,
                to: u16::MAX,
            }),
            OpenUsage::default(),
        )
        .unwrap();
    assert_eq!(w.dir.online_on("node_a").len(), 2);
    assert!(w.dir.online_on("node_b").is_empty());
    w.record(
        &a,
        vec![beamd_events::vocabulary::TunnelWentOffline { reason: "x".into() }.into()],
    );
    let went_offline_at = w.version;
    assert!(
        w.dir.expired(went_offline_at).is_empty(),
        "not before the grace is over"
    );
    assert_eq!(w.dir.expired(went_offline_at + 1), vec![a.clone()]);
    let resume = beamd_events::vocabulary::TunnelResumed {
        node: "node_b".into(),
        transport: TransportKind::Tcp,
    };
    w.record(&a, vec![resume.into()]);
    assert!(
        w.dir.expired(u64::MAX).is_empty(),
        "a resumed tunnel does not expire"
    );
    assert_eq!(w.dir.online_on("node_b"), vec![a]);
    assert_eq!(w.dir.online_on("node_a"), vec![b]);
}

#[test]
fn pending_claims_are_capped_by_the_plan_and_lapsed_ones_do_not_count() {
    let mut p = plan(None, None, None);
    p.max_pending_domains = Some(2);
    let mut w = World::new(p, None);
    let add = |host: &str| AddDomain {
        host: host.into(),
        claim_ttl_ms: 1_000,
    };
    for (i, host) in ["a.example.org", "b.example.org"].into_iter().enumerate() {
        let (id, events) = w
            .dir
            .add_domain(&add(host), &w.tenant, &Ctx::new(0, i as u64))
            .unwrap();
        w.record(&id, events);
    }
    let err = w
        .dir
        .add_domain(&add("c.example.org"), &w.tenant, &Ctx::new(999, 3))
        .unwrap_err();
    assert_eq!(
        err,
        DomainError::LimitExceeded {
            limit: "pendingDomains",
            max: 2
        }
    );
    assert!(
        w.dir
            .add_domain(&add("c.example.org"), &w.tenant, &Ctx::new(1_100, 3))
            .is_ok(),
        "lapsed claims are not counted"
    );
    // A verified domain is no longer pending; an expired claim frees its host.
    let a = w.dir.domains["a.example.org"].0.clone();
    w.record(&a, vec![beamd_events::vocabulary::DomainVerified {}.into()]);
    let b = w.dir.domains["b.example.org"].0.clone();
    w.record(
        &b,
        vec![beamd_events::vocabulary::DomainClaimExpired {}.into()],
    );
    assert!(!w.dir.domains.contains_key("b.example.org"));
    assert!(w.dir.pending.is_empty());
    assert_eq!(w.dir.tenants[&w.tenant.id].domains, 1);
}
