//! beamd's simulated world: the real core (aggregates, actors, projections,
//! snapshot policy) over an `InlineLog` on a fault-injecting `MemoryStore`,
//! driven by a seeded workload with crashes, torn tails, failing flushes and
//! snapshots at random points.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use beamd_events::log::{Acknowledge, InlineLog, MemoryStore};
use beamd_events::vocabulary::{KeyKind, Plan, TransportKind, TunnelProtocol};
use beamd_events::{Clock, EventLog, LogHead, ManualClock};
use beamd_simulations::{Faults, Violation, World};
use beamd_snapshots::{MemorySnapshotStore, SnapshotPolicy};

use beamd_transports::{Connection, MemoryTransport};
use tokio::sync::watch;

use super::agents::{self, SimAgent};
use crate::actors::{Core, CoreConfig, CoreError, Secret, Timings, TrafficDelta};
use crate::domain::{
    AddDomain, CreateTenant, DomainCommand, KeyCommand, OpenTunnel, PortRequest, TunnelCommand,
};
use crate::edge::{take_offline_after_restart, EdgeContext, EdgeSettings};

/// A deliberately wrong rule, to prove the simulation catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planted {
    /// The log acknowledges appends before flushing them.
    AckBeforeFlush,
}

/// The world.
pub struct BeamdWorld {
    pub(super) rng: fastrand::Rng,
    pub(super) faults: Faults,
    planted: Option<Planted>,
    pub(super) store: Arc<MemoryStore>,
    snapshots: Arc<MemorySnapshotStore>,
    pub(super) clock: Arc<ManualClock>,
    pub(super) log: Arc<InlineLog<MemoryStore>>,
    pub(super) core: Arc<Core>,
    transport: MemoryTransport,
    pub(super) ctx: Arc<EdgeContext>,
    stop: watch::Sender<bool>,
    agents: Vec<SimAgent>,
    secrets: BTreeMap<String, String>,
    every: u64,
    pub(super) tenants: Vec<String>,
    pub(super) keys: Vec<String>,
    pub(super) revoked: BTreeSet<String>,
    pub(super) tunnels: Vec<String>,
    domains: Vec<String>,
    /// The highest head acknowledged to a caller.
    pub(super) acked: LogHead,
    /// Set after a restart: the next check is a full one.
    pub(super) restarted: bool,
}

fn err(e: impl std::fmt::Display) -> Violation {
    Violation::new("harness", e.to_string())
}

/// The node agents' sessions run on.
pub(super) const NODE: &str = "node_sim";

/// A started process: the log, the core, and an edge serving agents.
struct Process {
    log: Arc<InlineLog<MemoryStore>>,
    core: Arc<Core>,
    transport: MemoryTransport,
    ctx: Arc<EdgeContext>,
    stop: watch::Sender<bool>,
}

async fn start(
    store: &Arc<MemoryStore>,
    snapshots: &Arc<MemorySnapshotStore>,
    clock: &Arc<ManualClock>,
    every: u64,
    planted: Option<Planted>,
) -> Result<Process, Violation> {
    let ack = match planted {
        Some(Planted::AckBeforeFlush) => Acknowledge::BeforeFlush(4),
        None => Acknowledge::AfterFlush,
    };
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let (log, _) = InlineLog::open(store.clone(), dyn_clock.clone(), ack).map_err(err)?;
    let log = Arc::new(log);
    let mut config = CoreConfig::new(log.clone(), snapshots.clone(), dyn_clock);
    config.policy = SnapshotPolicy {
        every_events: every,
        on_shutdown: true,
    };
    config.projector_thread = false;
    // Windows and idle stops in virtual seconds: long enough that timers do
    // not dominate the run, short enough that time steps cross them.
    config.timings = Timings {
        idle: Duration::from_secs(20),
        flush_window: Duration::from_secs(5),
    };
    let core = Arc::new(Core::start(config).await.map_err(err)?);
    take_offline_after_restart(&core, NODE).await.map_err(err)?;
    let mut settings = EdgeSettings::new("127.0.0.1".parse().map_err(err)?, "edge.sim");
    settings.http_port = Some(80);
    settings.window = Duration::from_secs(5);
    let (stop, stopped) = watch::channel(false);
    let ctx = Arc::new(EdgeContext::new(
        core.clone(),
        NODE.into(),
        settings,
        stopped,
    ));
    let transport = MemoryTransport::new();
    agents::listen(&transport, ctx.clone()).await?;
    Ok(Process {
        log,
        core,
        transport,
        ctx,
        stop,
    })
}

impl BeamdWorld {
    /// A world from `rng`, with `faults` and an optional planted bug.
    pub async fn new(
        mut rng: fastrand::Rng,
        faults: Faults,
        planted: Option<Planted>,
    ) -> Result<Self, Violation> {
        let store = Arc::new(MemoryStore::new());
        let snapshots = Arc::new(MemorySnapshotStore::new());
        let clock = Arc::new(ManualClock::new(1_750_000_000_000));
        let every = if faults.snapshot {
            rng.u64(5..200)
        } else {
            1_000_000
        };
        let Process {
            log,
            core,
            transport,
            ctx,
            stop,
        } = start(&store, &snapshots, &clock, every, planted).await?;
        Ok(Self {
            rng,
            faults,
            planted,
            store,
            snapshots,
            clock,
            log,
            core,
            transport,
            ctx,
            stop,
            agents: Vec::new(),
            secrets: BTreeMap::new(),
            every,
            tenants: Vec::new(),
            keys: Vec::new(),
            revoked: BTreeSet::new(),
            tunnels: Vec::new(),
            domains: Vec::new(),
            acked: LogHead {
                seq: 0,
                hash: beamd_events::GENESIS_HASH,
            },
            restarted: false,
        })
    }

    fn pick(&mut self, of: &[String]) -> Option<String> {
        (!of.is_empty()).then(|| of[self.rng.usize(0..of.len())].clone())
    }

    /// Crash: every actor stops at once, the unflushed tail is lost (torn
    /// when asked), and a new core starts from snapshots and the log.
    async fn crash(&mut self, torn: bool) -> Result<String, Violation> {
        for agent in self.agents.drain(..) {
            agent.conn.close();
        }
        self.core.kill();
        self.log.close();
        self.store.crash(torn);
        self.store.fail_flushes(false);
        self.restart().await?;
        Ok(format!(
            "crash (torn: {torn}); head {}",
            self.log.head().seq
        ))
    }

    async fn restart(&mut self) -> Result<(), Violation> {
        let p = start(
            &self.store,
            &self.snapshots,
            &self.clock,
            self.every,
            self.planted,
        )
        .await?;
        self.log = p.log;
        self.core = p.core;
        self.transport = p.transport;
        self.ctx = p.ctx;
        self.stop = p.stop;
        self.restarted = true;
        Ok(())
    }

    async fn step_inner(&mut self, roll: u8) -> Result<String, CoreError> {
        let n = self.rng.u64(..);
        Ok(match roll {
            0..=7 => {
                let slug = format!("t{}", self.tenants.len());
                let plan = Plan {
                    name: "sim".into(),
                    max_tunnels: Some(self.rng.u32(1..5)),
                    max_domains: Some(self.rng.u32(1..3)),
                    bandwidth_bytes_per_month: None,
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
                    .issue_key_as(&tenant, &id, secret, "sim", KeyKind::Agent, vec![], limit)
                    .await?;
                self.keys.push(id.clone());
                format!("issue key {id} (limit {limit:?})")
            }
            18..=21 => {
                let Some(key) = self.pick(&self.keys.clone()) else {
                    return Ok("no key".into());
                };
                self.core.key_command(&key, KeyCommand::Revoke).await?;
                self.revoked.insert(key.clone());
                format!("revoke {key}")
            }
            22..=25 => {
                let Some(key) = self.pick(&self.keys.clone()) else {
                    return Ok("no key".into());
                };
                let limit_bytes = self.rng.bool().then(|| self.rng.u64(1_000..200_000));
                self.core
                    .key_command(&key, KeyCommand::SetLimit { limit_bytes })
                    .await?;
                format!("limit {key} to {limit_bytes:?}")
            }
            26..=35 => return self.open().await,
            36..=45 => return self.connect_agent().await,
            46..=70 => {
                let Some(t) = self.pick(&self.tunnels.clone()) else {
                    return Ok("no tunnel".into());
                };
                let delta = TrafficDelta {
                    bytes_in: self.rng.u64(0..20_000),
                    bytes_out: self.rng.u64(0..50_000),
                    connections: self.rng.u64(0..3),
                    requests: self.rng.u64(0..5),
                };
                self.core.report_traffic(&t, delta).await?;
                if self.rng.bool() {
                    self.core.flush_tunnel(&t).await?;
                }
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
                let cmd = match self.rng.bool() {
                    true => TunnelCommand::GoOffline {
                        reason: "sim".into(),
                    },
                    false => TunnelCommand::Release,
                };
                self.core.tunnel_command(&t, cmd.clone()).await?;
                format!("{cmd:?} {t}")
            }
            76..=79 => {
                let Some(tenant) = self.pick(&self.tenants.clone()) else {
                    return Ok("no tenant".into());
                };
                let host = format!("d{}.example.test", self.rng.u8(0..6));
                let d = self.core.add_domain(&tenant, AddDomain { host }).await?;
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
        let connected = agents::connect(&self.transport, token, name.clone())
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
                (false, false) => PortRequest::Exact(20_000 + self.rng.u16(0..5)),
            },
            transport: TransportKind::Tcp,
            node: "node_core".into(),
            local_addr: "127.0.0.1:1".into(),
        };
        // What the key had used, and its limit, before the open was decided.
        let (used, limit) = {
            let p = self.core.projections().read();
            let limit = p.catalog.keys.get(&key).and_then(|k| k.limit_bytes);
            (p.usage.key(&key).bytes(), limit)
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

impl World for BeamdWorld {
    async fn step(&mut self, _step: u64) -> Result<String, Violation> {
        let roll = self.rng.u8(0..100);
        let f = self.faults;
        if f.crash && roll >= 97 {
            let torn = f.torn && self.rng.bool();
            return self.crash(torn).await;
        }
        if f.flush && roll == 96 {
            // The next append's flush fails: the log is poisoned and the process restarts.
            self.store.fail_flushes(true);
            let roll = self.rng.u8(0..26);
            let outcome = self.step_inner(roll).await;
            let line = self.crash(false).await?;
            return Ok(format!(
                "failing flush ({:?}); {line}",
                outcome.err().map(|e| e.to_string())
            ));
        }
        if f.snapshot && roll == 95 {
            self.core.shutdown().await.map_err(err)?;
            self.log.close();
            self.restart().await?;
            return Ok("clean restart (snapshots)".into());
        }
        let outcome = self.step_inner(roll % 95).await;
        match outcome {
            Ok(line) => {
                self.acked = self.log.head();
                Ok(line)
            }
            Err(CoreError::Actor(m)) if m.starts_with("INVARIANT revoked") => {
                Err(Violation::new("a revoked key never opens a tunnel", m))
            }
            Err(CoreError::Actor(m)) if m.starts_with("INVARIANT ") => {
                Err(Violation::new("key limits hold", m))
            }
            Err(CoreError::Actor(m)) if m.starts_with("SESSION ") => {
                Err(Violation::new("agent sessions work", m))
            }
            // Refusals are part of the workload (limits, conflicts, released tunnels).
            Err(CoreError::Domain(d)) => {
                self.acked = self.log.head();
                Ok(format!("refused: {d}"))
            }
            Err(e) => Err(Violation::new(
                "commands succeed or are refused",
                e.to_string(),
            )),
        }
    }

    async fn check(&mut self, step: u64) -> Result<(), Violation> {
        super::invariants::check(self, step).await
    }

    async fn finish(mut self) -> Result<String, Violation> {
        super::invariants::check_full(&mut self).await?;
        let head = self.log.head();
        self.core.shutdown().await.map_err(err)?;
        Ok(format!(
            "{}:{}",
            head.seq,
            beamd_events::envelope::hex(&head.hash)
        ))
    }
}
