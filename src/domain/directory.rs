//! The directory: what must be unique across entities (tenant slugs, tunnel
//! names per base host, public TCP ports, custom domain hosts) and the plan
//! limits that count across them. It is a fold over the whole log, and it
//! decides every creation so that uniqueness is checked in one place.

use std::collections::BTreeMap;

use beamd_events::vocabulary::{DomainAdded, TenantCreated, TunnelOpened, TunnelProtocol};
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

pub use super::creation::{AddDomain, CreateTenant, OpenTunnel, OpenUsage, PortRequest};
use super::domain_name::claim_lapsed;
use super::tenant::{max_pending_domains, validate_plan};
use super::{validate, Ctx, DomainError, Key, Tenant};
use beamd_events::vocabulary::KeyKind;

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
    /// Port of a TCP tunnel.
    pub port: Option<u16>,
    /// Whether an agent serves it.
    pub online: bool,
    /// The node that serves (or last served) it.
    #[serde(default)]
    pub node: String,
    /// When it went offline (ms), while it is offline.
    #[serde(default)]
    pub offline_since: Option<u64>,
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

    /// Tunnels the log says `node` serves (after a crash of that node, none really are).
    pub fn online_on(&self, node: &str) -> Vec<String> {
        self.tunnels
            .iter()
            .filter(|(_, t)| t.online && t.node == node)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The live tunnel holding an HTTP host, if any.
    pub fn holder_of_host(&self, host: &str) -> Option<(&String, &LiveTunnel)> {
        let id = self.hosts.get(host)?;
        Some((id, self.tunnels.get(id)?))
    }

    /// The live tunnel holding a TCP port, if any.
    pub fn holder_of_port(&self, port: u16) -> Option<(&String, &LiveTunnel)> {
        let id = self.ports.get(&port)?;
        Some((id, self.tunnels.get(id)?))
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
        if key.kind != Some(KeyKind::Agent) {
            return Err(DomainError::Unauthorized(
                "only agent keys open tunnels".into(),
            ));
        }
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
            (TunnelProtocol::Tcp, None, PortRequest::Exact { port: p, from, to }) => {
                if p == 0 {
                    return Err(DomainError::InvalidRequest("port 0 is not a port".into()));
                }
                if !(from..=to).contains(&p) {
                    return Err(DomainError::InvalidRequest(format!(
                        "port {p} is outside this edge's public ports {from}-{to}"
                    )));
                }
                if self.ports.contains_key(&p) {
                    return Err(DomainError::Conflict(format!("port {p} is taken")));
                }
                (None, Some(p))
            }
            (TunnelProtocol::Tcp, None, PortRequest::Any { from, to }) => {
                let free = (from.max(1)..=to).find(|p| !self.ports.contains_key(p));
                let p = free
                    .ok_or_else(|| DomainError::Conflict(format!("no free port in {from}-{to}")))?;
                (None, Some(p))
            }
            (TunnelProtocol::Tcp, _, _) => {
                return Err(DomainError::InvalidRequest(
                    "a TCP tunnel needs a port and no name".into(),
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
        };
        Ok((ctx.id("tun"), vec![event.into()]))
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
                if let Some(p) = e.port {
                    self.ports.insert(p, id.to_string());
                }
                if let Some(t) = self.tenants.get_mut(&e.tenant) {
                    t.live_tunnels += 1;
                }
                let live = LiveTunnel {
                    tenant: e.tenant.clone(),
                    key: e.key.clone(),
                    host,
                    port: e.port,
                    online: true,
                    node: e.node.clone(),
                    offline_since: None,
                };
                self.tunnels.insert(id.to_string(), live);
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
                        self.ports.remove(&p);
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
#[path = "directory_tests.rs"]
mod tests;
