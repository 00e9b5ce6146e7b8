//! The simulated workload: one random step of tenants, keys, tunnels,
//! agents, traffic, domains or time, on the world's real core and edge.

use std::time::Duration;

use beamd_events::vocabulary::{
    InspectMode, KeyKind, Plan, TrafficRecorded, TransportKind, TunnelProtocol,
};
use beamd_transports::Connection;

use super::world::BeamdWorld;
use super::{agents, public};
use crate::actors::{CoreError, Secret};
use crate::domain::{
    AddDomain, CreateTenant, DomainCommand, KeyCommand, OpenTunnel, PortRequest, Scope, Scopes,
    TunnelCommand,
};

impl BeamdWorld {
    pub(super) async fn step_inner(&mut self, roll: u8) -> Result<String, CoreError> {
        let n = self.rng.u64(..);
        Ok(match roll {
            0..=7 => {
                let slug = format!("t{}", self.tenants.len());
                let plan = Plan {
                    name: "sim".into(),
                    max_tunnels: Some(self.rng.u32(1..5)),
                    max_domains: Some(self.rng.u32(1..3)),
                    bandwidth_bytes_per_month: None,
                    max_pending_domains: None,
                };
                let cmd = CreateTenant {
                    tunnel_base: format!("{slug}.sim"),
                    name: slug.clone(),
                    slug,
                    plan,
                };
                let t = self.core.create_tenant(cmd).await?;
                self.tenants.push(t.id.clone());
                format!("create tenant {}", t.id)
            }
            8..=17 => {
                let Some(tenant) = self.pick(&self.tenants.clone()) else {
                    return Ok("no tenant".into());
                };
                let id = format!("tok_{n:016x}");
                let text = format!("{:032x}", self.rng.u128(..));
                let secret = Secret::from_text(&text)?;
                self.secrets.insert(id.clone(), text);
                let limit = self.rng.bool().then(|| self.rng.u64(1_000..200_000));
                self.core
                    .issue_key_as(
                        &tenant,
                        &id,
                        secret,
                        "sim",
                        KeyKind::Agent,
                        Scopes::default(),
                        limit,
                        Scope::Admin,
                    )
                    .await?;
                self.keys.push(id.clone());
                format!("issue key {id} (limit {limit:?})")
            }
            18..=21 => {
                let Some(key) = self.pick(&self.keys.clone()) else {
                    return Ok("no key".into());
                };
                self.core
                    .key_command(&key, KeyCommand::Revoke { by: Scope::Admin })
                    .await?;
                self.revoked.insert(key.clone());
                format!("revoke {key}")
            }
            22..=25 => {
                let Some(key) = self.pick(&self.keys.clone()) else {
                    return Ok("no key".into());
                };
                let limit_bytes = self.rng.bool().then(|| self.rng.u64(1_000..200_000));
                self.core
                    .key_command(
                        &key,
                        KeyCommand::SetLimit {
                            limit_bytes,
                            by: Scope::Admin,
                        },
                    )
                    .await?;
                format!("limit {key} to {limit_bytes:?}")
            }
            26..=35 => return self.open().await,
            36..=45 => return self.connect_agent().await,
            46..=58 => return self.public_request().await,
            59..=70 => {
                let Some(t) = self.pick(&self.tunnels.clone()) else {
                    return Ok("no tunnel".into());
                };
                let window = TrafficRecorded {
                    bytes_in: self.rng.u64(0..20_000),
                    bytes_out: self.rng.u64(0..50_000),
                    connections: self.rng.u64(0..3),
                    requests: self.rng.u64(0..5),
                    window_ms: self.ctx.settings.window.as_millis() as u64,
                    member: None,
                    key: None,
                    datagrams: 0,
                };
                self.core.record_traffic(&t, window.clone()).await?;
                self.ledger.reported(&t, &window);
                format!("traffic on {t}")
            }
            74..=75 => {
                if self.agents.is_empty() {
                    return Ok("no agent".into());
                }
                let agent = self.agents.remove(self.rng.usize(0..self.agents.len()));
                agent.conn.close();
                // Let the session notice and end.
                tokio::time::sleep(Duration::from_secs(2)).await;
                format!("agent of {} dropped", agent.tunnel)
            }
            71..=73 => {
                let Some(t) = self.pick(&self.tunnels.clone()) else {
                    return Ok("no tunnel".into());
                };
                let modes = [InspectMode::Off, InspectMode::Meta, InspectMode::Full];
                let cmd = match self.rng.u8(0..3) {
                    0 => TunnelCommand::GoOffline {
                        reason: "sim".into(),
                        node: None,
                    },
                    1 => TunnelCommand::Release,
                    _ => TunnelCommand::SetInspect(modes[self.rng.usize(0..3)]),
                };
                self.core.tunnel_command(&t, cmd.clone()).await?;
                format!("{cmd:?} {t}")
            }
            76..=79 => {
                let Some(tenant) = self.pick(&self.tenants.clone()) else {
                    return Ok("no tenant".into());
                };
                let host = format!("d{}.example.test", self.rng.u8(0..6));
                let add = AddDomain {
                    host,
                    claim_ttl_ms: crate::domain::DEFAULT_CLAIM_TTL_MS,
                };
                let d = self.core.add_domain(&tenant, add).await?;
                self.domains.push(d.id.clone());
                format!("add domain {} {}", d.id, d.host)
            }
            80..=82 => {
                let Some(d) = self.pick(&self.domains.clone()) else {
                    return Ok("no domain".into());
                };
                let cmd = match self.rng.bool() {
                    true => DomainCommand::Remove,
                    false => DomainCommand::Verify {
                        found: Ok(vec![format!("{n:x}")]),
                        claim_ttl_ms: crate::domain::DEFAULT_CLAIM_TTL_MS,
                    },
                };
                self.core.domain_command(&d, cmd).await?;
                format!("domain {d}")
            }
            _ => {
                let ms = self.rng.u64(1..30_000);
                self.clock.advance(ms);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                format!("time +{ms} ms")
            }
        })
    }

    async fn connect_agent(&mut self) -> Result<String, CoreError> {
        let Some(key) = self.pick(&self.keys.clone()) else {
            return Ok("no key".into());
        };
        let token = format!(
            "{key}.{}",
            self.secrets.get(&key).cloned().unwrap_or_default()
        );
        let name = format!("n{}", self.rng.u8(0..4));
        let ledger = &mut self.ledger;
        let connected = agents::connect(
            &self.transport,
            token,
            name.clone(),
            self.faults.link,
            |t| ledger.carried(t),
        )
        .await
        .map_err(|v| CoreError::Actor(format!("SESSION {}", v.detail)))?;
        match connected {
            Ok(agent) => {
                if self.revoked.contains(&key) {
                    return Err(CoreError::Actor(format!(
                        "INVARIANT revoked key {key} opened {} over a session",
                        agent.tunnel
                    )));
                }
                let line = format!("agent with {key} serves {} as {name}", agent.tunnel);
                if !self.tunnels.contains(&agent.tunnel) {
                    self.tunnels.push(agent.tunnel.clone());
                }
                self.agents.push(agent);
                Ok(line)
            }
            Err(refusal) => Ok(format!("agent with {key} refused: {refusal}")),
        }
    }

    /// A public HTTP request through a connected agent's tunnel, booked in the ledger.
    async fn public_request(&mut self) -> Result<String, CoreError> {
        if self.agents.is_empty() {
            return Ok("no agent".into());
        }
        let agent = &self.agents[self.rng.usize(0..self.agents.len())];
        let (tunnel, host) = (agent.tunnel.clone(), agent.host.clone());
        let (sent, wanted) = (self.rng.usize(0..16_000), self.rng.usize(0..64_000));
        let before = self.ledger.before();
        let routed = self.ctx.route(&host).map(|r| r.tunnel);
        let outcome = public::request(self.ctx.clone(), &host, sent, wanted).await;
        self.ledger
            .after(&before, &outcome, routed.as_deref())
            .map_err(|v| CoreError::Actor(format!("SESSION {}", v.detail)))?;
        Ok(format!(
            "request to {host} (served by {tunnel} when it connected), {sent} bytes up, {wanted} down: {outcome:?}"
        ))
    }

    async fn open(&mut self) -> Result<String, CoreError> {
        let Some(key) = self.pick(&self.keys.clone()) else {
            return Ok("no key".into());
        };
        let http = self.rng.bool();
        let open = OpenTunnel {
            protocol: if http {
                TunnelProtocol::Http
            } else {
                TunnelProtocol::Tcp
            },
            name: http.then(|| format!("n{}", self.rng.u8(0..4))),
            port: match (http, self.rng.bool()) {
                (true, _) => PortRequest::None,
                (false, true) => PortRequest::Any {
                    from: 20_000,
                    to: 20_004,
                },
                (false, false) => PortRequest::Exact {
                    port: 20_000 + self.rng.u16(0..5),
                    from: 20_000,
                    to: 20_004,
                },
            },
            transport: TransportKind::Tcp,
            node: "node_core".into(),
            local_addr: "127.0.0.1:1".into(),
            pool: None,
        };
        // What the key had used, and its limit, before the open was decided.
        let (used, limit) = {
            let queries = self.core.queries();
            let limit = queries.key(&key).and_then(|k| k.limit_bytes);
            (queries.key_counters(&key).bytes(), limit)
        };
        let t = self.core.open_tunnel(&key, open).await?;
        if self.revoked.contains(&key) {
            return Err(CoreError::Actor(format!(
                "INVARIANT revoked key {key} opened {}",
                t.id
            )));
        }
        if limit.is_some_and(|l| used >= l) {
            return Err(CoreError::Actor(format!(
                "INVARIANT key {key} opened {} with {used} of its {limit:?} bytes used",
                t.id
            )));
        }
        if !self.tunnels.contains(&t.id) {
            self.tunnels.push(t.id.clone());
        }
        Ok(format!("open {} with {key}", t.id))
    }
}
