//! The directory: what must be unique across entities (tenant slugs, tunnel
//! names per base host, public TCP ports, custom domain hosts) and the plan
//! limits that count across them. It is a fold over the whole log, and it
//! decides every creation so that uniqueness is checked in one place.

use std::collections::BTreeMap;

use beamd_events::vocabulary::{
    DomainAdded, TenantCreated, TunnelMemberJoined, TunnelOpened, TunnelProtocol,
};
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

pub use super::creation::{AddDomain, CreateTenant, JoinAs, OpenTunnel, OpenUsage, PortRequest};
use super::domain_name::claim_lapsed;
use super::tenant::{max_pending_domains, validate_plan};
use super::{validate, Ctx, DomainError, Key, Tenant};

/// A tenant as the directory needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantEntry {
    /// Slug.
    pub slug: String,
    /// Base host of its HTTP tunnels.
    pub tunnel_base: String,
    /// Tunnels not released.
    pub live_tunnels: u64,
    /// Domains not removed.
    pub domains: u64,
}

/// A tunnel that holds a name or port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveTunnel {
    /// Owning tenant.
    pub tenant: String,
    /// Key that opened it.
    pub key: String,
    /// Full host name of an HTTP tunnel.
    pub host: Option<String>,
    /// Port of a TCP or UDP tunnel.
    pub port: Option<u16>,
    /// Whether the port is a UDP one.
    #[serde(default)]
    pub udp: bool,
    /// Whether an agent serves it.
    pub online: bool,
    /// The node that serves (or last served) it.
    #[serde(default)]
    pub node: String,
    /// When it went offline (ms), while it is offline.
    #[serde(default)]
    pub offline_since: Option<u64>,
    /// Whether it is a pool.
    #[serde(default)]
    pub pool: bool,
    /// A pool's members: member id → the node it is connected to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<String, String>,
}

/// The directory's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    /// Tenant id → entry.
    pub tenants: BTreeMap<String, TenantEntry>,
    /// Slug → tenant id.
    pub slugs: BTreeMap<String, String>,
    /// Tunnel id → live tunnel (released tunnels are removed).
    pub tunnels: BTreeMap<String, LiveTunnel>,
    /// HTTP host → tunnel id.
    pub hosts: BTreeMap<String, String>,
    /// TCP port → tunnel id.
    pub ports: BTreeMap<u16, String>,
    /// UDP port → tunnel id (a number may be one tunnel's TCP port and
    /// another's UDP port, as TCP and UDP services share numbers).
    #[serde(default)]
    pub udp_ports: BTreeMap<u16, String>,
    /// Custom domain host → (domain id, tenant id).
    pub domains: BTreeMap<String, (String, String)>,
    /// Account email → account id.
    #[serde(default)]
    pub emails: BTreeMap<String, String>,
    /// Pending custom domains: domain id → (tenant id, when added, ms).
    #[serde(default)]
    pub pending: BTreeMap<String, (String, u64)>,
}

fn limit(limit: &'static str, max: Option<impl Into<u64>>, used: u64) -> Result<(), DomainError> {
    match max.map(Into::into) {
        Some(max) if used >= max => Err(DomainError::LimitExceeded { limit, max }),
        _ => Ok(()),
    }
}

impl Directory {
    /// Tunnels offline since before `cutoff_ms`: their grace period is over.
    pub fn expired(&self, cutoff_ms: u64) -> Vec<String> {
        self.tunnels
            .iter()
            .filter(|(_, t)| t.offline_since.is_some_and(|since| since < cutoff_ms))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Tunnels the log says `node` serves, alone or as one of a pool's
    /// members (after a crash of that node, none really are).
    pub fn online_on(&self, node: &str) -> Vec<String> {
        self.tunnels
            .iter()
            .filter(|(_, t)| match t.pool {
                true => t.members.values().any(|n| n == node),
                false => t.online && t.node == node,
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The live tunnel holding an HTTP host, if any.
    pub fn holder_of_host(&self, host: &str) -> Option<(&String, &LiveTunnel)> {
        let id = self.hosts.get(host)?;
        Some((id, self.tunnels.get(id)?))
    }

    /// The live tunnel holding a TCP port (or, with `udp`, a UDP port), if any.
    pub fn holder_of_port(&self, port: u16, udp: bool) -> Option<(&String, &LiveTunnel)> {
        let id = self.port_map(udp).get(&port)?;
        Some((id, self.tunnels.get(id)?))
    }

    /// The held TCP ports, or UDP ports.
    pub fn port_map(&self, udp: bool) -> &BTreeMap<u16, String> {
        if udp {
            &self.udp_ports
        } else {
            &self.ports
        }
    }

    /// The full host of tunnel `name` for a tenant.
    pub fn host_for(&self, tenant: &str, name: &str) -> Option<String> {
        let base = &self.tenants.get(tenant)?.tunnel_base;
        Some(format!("{name}.{base}"))
    }

    /// Decides an account's registration for an existing tenant: the email
    /// must be free. Returns its id and events.
    pub fn register_account(
        &self,
        tenant: &str,
        email: &str,
        name: &str,
        password_hash: &str,
        ctx: &Ctx,
    ) -> Result<(String, Vec<Event>), DomainError> {
        let email = validate::email(email)?;
        validate::text("name", name, 100)?;
        if self.emails.contains_key(&email) {
            return Err(DomainError::Conflict(
                "an account with this email exists".into(),
            ));
        }
        if !self.tenants.contains_key(tenant) {
            return Err(DomainError::NotFound("tenant".into()));
        }
        let event = super::account::registered(tenant, &email, name, password_hash);
        Ok((ctx.id("acc"), vec![event]))
    }

    /// Decides a tenant's creation: returns its id and events.
    pub fn create_tenant(
        &self,
        cmd: &CreateTenant,
        ctx: &Ctx,
    ) -> Result<(String, Vec<Event>), DomainError> {
        validate::label("slug", &cmd.slug)?;
        validate::text("tenant name", &cmd.name, 100)?;
        validate::host("tunnel base", &cmd.tunnel_base)?;
        validate_plan(&cmd.plan)?;
        if self.slugs.contains_key(&cmd.slug) {
            return Err(DomainError::Conflict(format!(
                "slug {:?} is taken",
                cmd.slug
            )));
        }
        let event = TenantCreated {
            slug: cmd.slug.clone(),
            name: cmd.name.clone(),
            plan: cmd.plan.clone(),
            tunnel_base: cmd.tunnel_base.clone(),
        };
        Ok((ctx.id("ten"), vec![event.into()]))
    }

    /// Decides a tunnel's opening: the key may open it, the plan and key
    /// limits hold, and its name or port is free. Returns its id and events.
    pub fn open_tunnel(
        &self,
        cmd: &OpenTunnel,
        tenant: &Tenant,
        key: &Key,
        usage: &OpenUsage,
        ctx: &Ctx,
    ) -> Result<(String, Vec<Event>), DomainError> {
        // Revoked, unknown, or out of bytes: the rule every session window checks too.
        key.may_carry(&tenant.plan, usage)?;
        key.may_serve()?;
        let entry = match self.tenants.get(&tenant.id) {
            Some(entry) if tenant.exists() && key.tenant == tenant.id => entry,
            _ => {
                return Err(DomainError::Unauthorized(
                    "the key's tenant does not exist".into(),
                ))
            }
        };
        limit("tunnels", tenant.plan.max_tunnels, entry.live_tunnels)?;
        let (name, port) = match (cmd.protocol, &cmd.name, cmd.port) {
            (TunnelProtocol::Http, Some(name), PortRequest::None) => {
                validate::label("tunnel name", name)?;
                let host = format!("{name}.{}", entry.tunnel_base);
                if self.hosts.contains_key(&host) {
                    return Err(DomainError::Conflict(format!("{host} is taken")));
                }
                (Some(name.clone()), None)
            }
            (TunnelProtocol::Http, _, _) => {
                return Err(DomainError::InvalidRequest(
                    "an HTTP tunnel needs a name and no port".into(),
                ))
            }
            (
                protocol @ (TunnelProtocol::Tcp | TunnelProtocol::Udp),
                None,
                PortRequest::Exact { port: p, from, to },
            ) => {
                if p == 0 {
                    return Err(DomainError::InvalidRequest("port 0 is not a port".into()));
                }
                if !(from..=to).contains(&p) {
                    return Err(DomainError::InvalidRequest(format!(
                        "port {p} is outside this edge's public ports {from}-{to}"
                    )));
                }
                if self
                    .port_map(protocol == TunnelProtocol::Udp)
                    .contains_key(&p)
                {
                    return Err(DomainError::Conflict(format!("port {p} is taken")));
                }
                (None, Some(p))
            }
            (
                protocol @ (TunnelProtocol::Tcp | TunnelProtocol::Udp),
                None,
                PortRequest::Any { from, to },
            ) => {
                let held = self.port_map(protocol == TunnelProtocol::Udp);
                let free = (from.max(1)..=to).find(|p| !held.contains_key(p));
                let p = free
                    .ok_or_else(|| DomainError::Conflict(format!("no free port in {from}-{to}")))?;
                (None, Some(p))
            }
            (TunnelProtocol::Tcp | TunnelProtocol::Udp, _, _) => {
                return Err(DomainError::InvalidRequest(
                    "a TCP or UDP tunnel needs a port and no name".into(),
                ))
            }
        };
        let event = TunnelOpened {
            tenant: tenant.id.clone(),
            key: key.id.clone(),
            protocol: cmd.protocol,
            name,
            port,
            transport: cmd.transport,
            node: cmd.node.clone(),
            local_addr: cmd.local_addr.clone(),
            pool: cmd.pool.is_some(),
        };
        let mut events = vec![event.into()];
        if let Some(join) = &cmd.pool {
            if cmd.protocol == TunnelProtocol::Udp {
                return Err(DomainError::InvalidRequest(
                    "pools are for HTTP and TCP tunnels".into(),
                ));
            }
            events.push(
                TunnelMemberJoined {
                    member: join.member.clone(),
                    node: cmd.node.clone(),
                    transport: cmd.transport,
                    key: key.id.clone(),
                    peer: join.peer.clone(),
                    rules: join.rules.clone(),
                }
                .into(),
            );
        }
        Ok((ctx.id("tun"), events))
    }

    /// Decides adding a custom domain: plan limit, valid and unused host.
    pub fn add_domain(
        &self,
        cmd: &AddDomain,
        tenant: &Tenant,
        ctx: &Ctx,
    ) -> Result<(String, Vec<Event>), DomainError> {
        let Some(entry) = self.tenants.get(&tenant.id).filter(|_| tenant.exists()) else {
            return Err(DomainError::NotFound("tenant".into()));
        };
        limit("domains", tenant.plan.max_domains, entry.domains)?;
        let pending = (self.pending.values())
            .filter(|(t, added)| {
                *t == tenant.id && !claim_lapsed(*added, ctx.now_ms, cmd.claim_ttl_ms)
            })
            .count() as u64;
        limit(
            "pendingDomains",
            Some(max_pending_domains(&tenant.plan)),
            pending,
        )?;
        let host = cmd.host.trim_end_matches('.').to_ascii_lowercase();
        validate::host("domain", &host)?;
        // A lapsed claim still holding the host is expired first (by the core, as an event).
        if self.domains.contains_key(&host) {
            return Err(DomainError::Conflict(format!(
                "{host} is already registered"
            )));
        }
        let event = DomainAdded {
            tenant: tenant.id.clone(),
            host,
            txt_token: ctx.token("domain-txt"),
        };
        Ok((ctx.id("dom"), vec![event.into()]))
    }
}

impl Fold for Directory {
    const KIND: &'static str = "directory";

    fn apply(&mut self, envelope: &Envelope) {
        let id = envelope.stream.as_str();
        match &envelope.event {
            Event::TenantCreated(e) => {
                self.slugs.insert(e.slug.clone(), id.to_string());
                self.tenants.insert(
                    id.to_string(),
                    TenantEntry {
                        slug: e.slug.clone(),
                        tunnel_base: e.tunnel_base.clone(),
                        ..TenantEntry::default()
                    },
                );
            }
            Event::AccountRegistered(e) => {
                self.emails.insert(e.email.clone(), id.to_string());
            }
            Event::TunnelOpened(e) => {
                let host = e.name.as_ref().and_then(|n| self.host_for(&e.tenant, n));
                if let Some(h) = &host {
                    self.hosts.insert(h.clone(), id.to_string());
                }
                let udp = e.protocol == TunnelProtocol::Udp;
                if let Some(p) = e.port {
                    match udp {
                        true => self.udp_ports.insert(p, id.to_string()),
                        false => self.ports.insert(p, id.to_string()),
                    };
                }
                if let Some(t) = self.tenants.get_mut(&e.tenant) {
                    t.live_tunnels += 1;
                }
                let live = LiveTunnel {
                    tenant: e.tenant.clone(),
                    key: e.key.clone(),
                    host,
                    port: e.port,
                    udp,
                    online: true,
                    node: e.node.clone(),
                    offline_since: None,
                    pool: e.pool,
                    members: BTreeMap::new(),
                };
                self.tunnels.insert(id.to_string(), live);
            }
            Event::TunnelMemberJoined(e) => {
                if let Some(t) = self.tunnels.get_mut(id) {
                    t.online = true;
                    t.offline_since = None;
                    t.node = e.node.clone();
                    t.members.insert(e.member.clone(), e.node.clone());
                }
            }
            Event::TunnelMemberLeft(e) => {
                if let Some(t) = self.tunnels.get_mut(id) {
                    t.members.remove(&e.member);
                }
            }
            Event::TunnelWentOffline(_) => {
                if let Some(t) = self.tunnels.get_mut(id) {
                    t.online = false;
                    t.offline_since = Some(envelope.at);
                }
            }
            Event::TunnelResumed(e) => {
                if let Some(t) = self.tunnels.get_mut(id) {
                    t.online = true;
                    t.offline_since = None;
                    t.node = e.node.clone();
                }
            }
            Event::TunnelReleased(_) => {
                if let Some(t) = self.tunnels.remove(id) {
                    if let Some(h) = t.host {
                        self.hosts.remove(&h);
                    }
                    if let Some(p) = t.port {
                        match t.udp {
                            true => self.udp_ports.remove(&p),
                            false => self.ports.remove(&p),
                        };
                    }
                    if let Some(entry) = self.tenants.get_mut(&t.tenant) {
                        entry.live_tunnels = entry.live_tunnels.saturating_sub(1);
                    }
                }
            }
            Event::DomainAdded(e) => {
                self.domains
                    .insert(e.host.clone(), (id.to_string(), e.tenant.clone()));
                self.pending
                    .insert(id.to_string(), (e.tenant.clone(), envelope.at));
                if let Some(t) = self.tenants.get_mut(&e.tenant) {
                    t.domains += 1;
                }
            }
            Event::DomainVerified(_) => {
                self.pending.remove(id);
            }
            Event::DomainRemoved(_) | Event::DomainClaimExpired(_) => {
                self.pending.remove(id);
                let host = self
                    .domains
                    .iter()
                    .find(|(_, (d, _))| d == id)
                    .map(|(h, _)| h.clone());
                if let Some((_, tenant)) = host.and_then(|h| self.domains.remove(&h)) {
                    if let Some(t) = self.tenants.get_mut(&tenant) {
                        t.domains = t.domains.saturating_sub(1);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    // Rules decided by the directory: uniqueness and limits across entities.
    use super::*;
    use crate::testkit::envelope;
    use crate::{Aggregate, KeyCommand, TunnelCommand};
    use beamd_events::vocabulary::{KeyKind, Plan, TransportKind, TunnelReleased};

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
                scopes: crate::Scopes::default(),
                secret_hash: "ab".repeat(32),
                limit_bytes,
                by: crate::Scope::Admin,
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
            pool: None,
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
                    by: crate::Scope::Admin,
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
    fn a_port_number_is_one_tcp_and_one_udp_tunnels() {
        let mut w = World::new(plan(None, None, None), None);
        let port = PortRequest::Exact {
            port: 20_001,
            from: 1,
            to: u16::MAX,
        };
        let udp = |port| OpenTunnel {
            protocol: TunnelProtocol::Udp,
            ..tcp(port)
        };
        let t = w.open(tcp(port), OpenUsage::default()).unwrap();
        let u = w.open(udp(port), OpenUsage::default()).unwrap();
        assert_eq!(w.dir.ports[&20_001], t);
        assert_eq!(w.dir.udp_ports[&20_001], u);
        let err = w.open(udp(port), OpenUsage::default()).unwrap_err();
        assert_eq!(err, DomainError::Conflict("port 20001 is taken".into()));
        w.release(&u);
        assert!(w.dir.udp_ports.is_empty() && w.dir.ports.len() == 1);
        assert_eq!(w.dir.holder_of_port(20_001, false).unwrap().0, &t);
    }

    #[test]
    fn a_pool_opens_with_its_first_member_and_its_nodes_are_known() {
        let mut w = World::new(plan(None, None, None), None);
        let pool = OpenTunnel {
            pool: Some(JoinAs {
                member: "ses_a".into(),
                peer: "192.0.2.1:4000".into(),
                rules: String::new(),
            }),
            ..http("web")
        };
        let fresh = w.version + 100;
        let (id, events) = (w.dir)
            .open_tunnel(
                &pool,
                &w.tenant,
                &w.key,
                &OpenUsage::default(),
                &Ctx::new(0, fresh),
            )
            .unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
        assert_eq!(kinds, ["TunnelOpened", "TunnelMemberJoined"]);
        w.record(&id, events);
        let live = &w.dir.tunnels[&id];
        assert!(live.pool && live.online);
        assert_eq!(live.members["ses_a"], "node_a");
        assert_eq!(w.dir.online_on("node_a"), vec![id.clone()]);
        assert!(w.dir.online_on("node_b").is_empty());
        let joined = TunnelMemberJoined {
            member: "ses_b".into(),
            node: "node_b".into(),
            transport: TransportKind::Tcp,
            key: "tok_1".into(),
            peer: String::new(),
            rules: String::new(),
        };
        w.record(&id, vec![joined.into()]);
        assert_eq!(w.dir.online_on("node_b"), vec![id.clone()]);
        assert_eq!(
            w.dir.online_on("node_a"),
            vec![id.clone()],
            "both nodes serve it"
        );
        let udp = OpenTunnel {
            protocol: TunnelProtocol::Udp,
            ..tcp(PortRequest::Exact {
                port: 20_002,
                from: 1,
                to: u16::MAX,
            })
        };
        let udp = OpenTunnel {
            pool: pool.pool.clone(),
            ..udp
        };
        assert_eq!(
            w.open(udp, OpenUsage::default()).unwrap_err().code(),
            "invalid_request"
        );
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
        let mut t = crate::Tunnel::default();
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
        crate::testkit::round_trip(&w.dir);
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
}
