//! The core: the log writer, one supervisor per aggregate kind, the directory
//! and the projector, started together and driven through one handle.

use std::sync::Arc;

use beamd_events::vocabulary::{KeyKind, TrafficRecorded};
use beamd_events::{Clock, EventLog};
use beamd_snapshots::{SnapshotPolicy, SnapshotStore};
use ractor::{Actor, ActorCell, ActorRef};

use super::ask::ask;
use super::directory::{entity, DirectoryActor, DirectoryArgs, DirectoryMsg};
use super::log_writer::LogWriter;
use super::projector::{start_projector, ProjectorHandle};
use super::secret::Secret;
use super::supervisor::{command, snapshot_all, start_supervisor, SupervisorMsg};
use super::{CoreError, Shell, Timings};
use crate::domain::gateway::{Consumer, ErrorGroup, Route, RouteCommand, Service};
use crate::domain::{
    Account, AddDomain, CreateTenant, Directory, DomainCommand, DomainError, DomainName,
    DomainStatus, Key, KeyCommand, Node, NodeCommand, OpenTunnel, Scope, Scopes, Tenant,
    TenantCommand, Tunnel, TunnelCommand,
};
use crate::projections::{InspectorIndex, Queries, DEFAULT_RECENT};

/// How the core is started.
pub struct CoreConfig {
    /// The event log.
    pub log: Arc<dyn EventLog>,
    /// Snapshot storage.
    pub snapshots: Arc<dyn SnapshotStore>,
    /// The inspector's history index, if kept.
    pub index: Option<InspectorIndex>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Snapshot policy.
    pub policy: SnapshotPolicy,
    /// Idle timings.
    pub timings: Timings,
    /// Recent requests kept per tenant.
    pub inspector_capacity: usize,
    /// Run the projector on its own thread (the default), so folding bursts
    /// of events never stalls the runtime that carries traffic. The
    /// deterministic simulation turns this off to keep everything on its one thread.
    pub projector_thread: bool,
}

impl CoreConfig {
    /// Defaults around a log and a snapshot store.
    pub fn new(
        log: Arc<dyn EventLog>,
        snapshots: Arc<dyn SnapshotStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            log,
            snapshots,
            index: None,
            clock,
            policy: SnapshotPolicy::default(),
            timings: Timings::default(),
            inspector_capacity: DEFAULT_RECENT,
            projector_thread: true,
        }
    }
}

/// The running core.
pub struct Core {
    shell: Shell,
    tenants: ActorRef<SupervisorMsg<Tenant>>,
    keys: ActorRef<SupervisorMsg<Key>>,
    tunnels: ActorRef<SupervisorMsg<Tunnel>>,
    domains: ActorRef<SupervisorMsg<DomainName>>,
    nodes: ActorRef<SupervisorMsg<Node>>,
    directory: ActorRef<DirectoryMsg>,
    projector: ProjectorHandle,
    index: Option<InspectorIndex>,
    pub(super) gateway: GatewayActors,
}

impl Core {
    /// Starts the core: projections and the directory are rebuilt from snapshots and the log.
    pub async fn start(config: CoreConfig) -> Result<Self, CoreError> {
        let (writer, _) = Actor::spawn(None, LogWriter, config.log.clone())
            .await
            .map_err(|e| CoreError::Actor(format!("log writer failed to start: {e}")))?;
        let shell = Shell {
            log: config.log.clone(),
            writer,
            snapshots: config.snapshots.clone(),
            clock: config.clock,
            policy: config.policy,
            timings: config.timings,
        };
        let index = config.index.clone();
        let projector = start_projector(
            config.log,
            config.snapshots,
            config.index,
            config.policy,
            config.inspector_capacity,
            config.projector_thread,
        )
        .await?;
        let (tenants, keys, tunnels) = (
            start_supervisor(&shell).await?,
            start_supervisor(&shell).await?,
            start_supervisor(&shell).await?,
        );
        let args = DirectoryArgs {
            shell: shell.clone(),
            tenants: tenants.clone(),
            keys: keys.clone(),
            tunnels: tunnels.clone(),
            projections: projector.queries().clone(),
        };
        let (directory, _) = Actor::spawn(None, DirectoryActor, args)
            .await
            .map_err(|e| CoreError::Actor(format!("directory failed to start: {e}")))?;
        Ok(Self {
            domains: start_supervisor(&shell).await?,
            nodes: start_supervisor(&shell).await?,
            gateway: GatewayActors::start(&shell).await?,
            shell,
            tenants,
            keys,
            tunnels,
            directory,
            projector,
            index,
        })
    }

    /// Entity actors running now (tenants, keys, tunnels, domains, nodes).
    pub fn actors_alive(&self) -> usize {
        self.supervisors()
            .iter()
            .map(|cell| cell.get_children().len())
            .sum()
    }

    /// Every entity supervisor.
    fn supervisors(&self) -> Vec<ractor::ActorCell> {
        let mut cells = vec![
            self.tenants.get_cell(),
            self.keys.get_cell(),
            self.tunnels.get_cell(),
            self.domains.get_cell(),
            self.nodes.get_cell(),
        ];
        cells.extend(self.gateway.cells());
        cells
    }

    /// The history of captured requests, when the core keeps one.
    pub fn inspector_index(&self) -> Option<&InspectorIndex> {
        self.index.as_ref()
    }

    /// The projections: their progress, grant changes, the request path's view.
    pub fn projections(&self) -> &ProjectorHandle {
        &self.projector
    }

    /// The projections' named queries.
    pub fn queries(&self) -> &Queries {
        self.projector.queries()
    }

    /// Now, in ms since the epoch, from the core's clock (virtual in simulations).
    pub fn now_ms(&self) -> u64 {
        self.shell.clock.now_ms()
    }

    pub(super) fn directory_actor(&self) -> &ActorRef<DirectoryMsg> {
        &self.directory
    }

    /// The event log.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.shell.log
    }

    /// Creates a tenant.
    pub async fn create_tenant(&self, cmd: CreateTenant) -> Result<Tenant, CoreError> {
        ask(&self.directory, |r| DirectoryMsg::CreateTenant(cmd, r)).await?
    }

    /// Sends a command to a tenant.
    pub async fn tenant_command(&self, id: &str, cmd: TenantCommand) -> Result<Tenant, CoreError> {
        command(&self.tenants, id, cmd).await
    }

    /// A tenant's state.
    pub async fn tenant(&self, id: &str) -> Result<Tenant, CoreError> {
        entity(&self.tenants, id).await
    }

    /// Issues a key for an existing tenant on behalf of someone holding
    /// `by`; returns it with its secret (shown once).
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_key(
        &self,
        tenant: &str,
        label: &str,
        kind: KeyKind,
        scopes: Scopes,
        limit_bytes: Option<u64>,
        by: Scope,
    ) -> Result<(Key, Secret), CoreError> {
        let id = format!("tok_{:016x}", fastrand::u64(..));
        let secret = Secret::generate()?;
        self.issue_key_as(tenant, &id, secret, label, kind, scopes, limit_bytes, by)
            .await
    }

    /// Issues a key with a given id and secret (e.g. an admin token taken from the environment).
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_key_as(
        &self,
        tenant: &str,
        id: &str,
        secret: Secret,
        label: &str,
        kind: KeyKind,
        scopes: Scopes,
        limit_bytes: Option<u64>,
        by: Scope,
    ) -> Result<(Key, Secret), CoreError> {
        if !self.tenant(tenant).await?.exists() {
            return Err(DomainError::NotFound("tenant".into()).into());
        }
        let issue = KeyCommand::Issue {
            tenant: tenant.to_string(),
            label: label.to_string(),
            kind,
            scopes,
            secret_hash: secret.hash(),
            limit_bytes,
            by,
        };
        Ok((command(&self.keys, id, issue).await?, secret))
    }

    /// Sends a command to a key.
    pub async fn key_command(&self, id: &str, cmd: KeyCommand) -> Result<Key, CoreError> {
        command(&self.keys, id, cmd).await
    }

    /// A key's state, from its actor (started if it is not running): for
    /// keys known to exist. Authentication reads `known_key` instead.
    pub async fn key(&self, id: &str) -> Result<Key, CoreError> {
        entity(&self.keys, id).await
    }

    /// The key the log holds under `id`, from the catalog projection, or
    /// `None`: what authentication reads, so that an id the log never held
    /// costs no actor, no event and no memory. A key committed a moment ago
    /// that the projection has not folded yet is waited for.
    pub async fn known_key(&self, id: &str) -> Result<Option<Key>, CoreError> {
        let find = || self.queries().key(id);
        if let Some(key) = find() {
            return Ok(Some(key));
        }
        self.projector.wait_for(self.shell.log.head().seq).await?;
        Ok(find())
    }

    /// Opens a tunnel for a key (or resumes the one it held under the same name or port).
    pub async fn open_tunnel(&self, key: &str, cmd: OpenTunnel) -> Result<Tunnel, CoreError> {
        ask(&self.directory, |r| {
            DirectoryMsg::OpenTunnel(key.to_string(), cmd, r)
        })
        .await?
    }

    /// Sends a command to a tunnel.
    pub async fn tunnel_command(&self, id: &str, cmd: TunnelCommand) -> Result<Tunnel, CoreError> {
        command(&self.tunnels, id, cmd).await
    }

    /// A tunnel's state.
    pub async fn tunnel(&self, id: &str) -> Result<Tunnel, CoreError> {
        entity(&self.tunnels, id).await
    }

    /// Records one window of a tunnel's traffic, as the data plane's meter
    /// counted it: decided and appended at once, one `TrafficRecorded` (none
    /// for an empty window). The meter is the only window; what this fails to
    /// record stays with the caller for its next window.
    pub async fn record_traffic(
        &self,
        id: &str,
        window: TrafficRecorded,
    ) -> Result<Tunnel, CoreError> {
        self.tunnel_command(id, TunnelCommand::RecordTraffic(window))
            .await
    }

    /// Adds a custom domain. Returns once the domains projection shows it.
    /// A claim on the host that stayed pending past its lifetime is expired
    /// first (an event), so that it no longer blocks the host.
    pub async fn add_domain(&self, tenant: &str, cmd: AddDomain) -> Result<DomainName, CoreError> {
        let host = cmd.host.trim_end_matches('.').to_ascii_lowercase();
        let lapsed = (self.queries().domain_of_host(&host))
            .filter(|d| d.claim_lapsed(self.now_ms(), cmd.claim_ttl_ms))
            .map(|d| d.id);
        if let Some(id) = lapsed {
            let expire = DomainCommand::ExpireClaim {
                ttl_ms: cmd.claim_ttl_ms,
            };
            self.domain_command(&id, expire).await?;
        }
        let added = ask(&self.directory, |r| {
            DirectoryMsg::AddDomain(tenant.to_string(), cmd, r)
        })
        .await??;
        self.projector.wait_for(self.shell.log.head().seq).await?;
        Ok(added)
    }

    /// Sends a command to a domain. Returns once the domains projection shows
    /// the outcome, so the HTTP ingress routes (or stops routing) the host at once.
    ///
    /// Removing a domain retires its tenant's gateway routes on the host
    /// (one `RouteRetired` each); requests stopped reaching them already,
    /// since every request checks the host against the tenant.
    pub async fn domain_command(
        &self,
        id: &str,
        cmd: DomainCommand,
    ) -> Result<DomainName, CoreError> {
        let domain = command(&self.domains, id, cmd).await?;
        self.projector.wait_for(self.shell.log.head().seq).await?;
        if domain.status == DomainStatus::Removed {
            let routes: Vec<String> = (self.queries().routes_of(&domain.tenant))
                .into_iter()
                .filter(|r| r.config.as_ref().is_some_and(|c| c.host == domain.host))
                .map(|r| r.id)
                .collect();
            for route in routes {
                let retire = RouteCommand::Retire {
                    domain: domain.id.clone(),
                };
                self.route_command(&route, retire).await?;
            }
        }
        Ok(domain)
    }

    /// Sends a command to a node.
    pub async fn node_command(&self, id: &str, cmd: NodeCommand) -> Result<Node, CoreError> {
        command(&self.nodes, id, cmd).await
    }

    /// Whether a tunnel (online or not) holds this HTTP host; cheap, unlike `directory()`.
    pub async fn host_held(&self, host: &str) -> Result<bool, CoreError> {
        ask(&self.directory, |r| {
            DirectoryMsg::HostHeld(host.to_string(), r)
        })
        .await
    }

    /// The directory's state.
    pub async fn directory(&self) -> Result<Directory, CoreError> {
        ask(&self.directory, DirectoryMsg::Get).await
    }

    /// The tunnel supervisor (for tests of supervision).
    pub fn tunnel_supervisor(&self) -> &ActorRef<SupervisorMsg<Tunnel>> {
        &self.tunnels
    }

    /// Stops cleanly: every live entity and the projections are
    /// snapshotted, then the actors stop. Traffic is the data plane's to
    /// record before this (its sessions end first).
    pub async fn shutdown(&self) -> Result<(), CoreError> {
        snapshot_all(&self.tunnels).await?;
        snapshot_all(&self.tenants).await?;
        snapshot_all(&self.keys).await?;
        snapshot_all(&self.domains).await?;
        snapshot_all(&self.nodes).await?;
        self.gateway.snapshot().await?;
        ask(&self.directory, DirectoryMsg::Snapshot).await??;
        let head = self.shell.log.head().seq;
        self.projector.wait_for(head).await?;
        self.projector.stop().await?;
        self.shell.snapshots.flush()?;
        let wait = Some(std::time::Duration::from_secs(10));
        // Stopped and awaited, so that nothing holds the log or the database afterwards.
        let _ = self.directory.stop_and_wait(None, wait).await;
        for s in self.supervisors() {
            s.stop_children_and_wait(None, wait).await;
            let _ = s.stop_and_wait(None, wait).await;
        }
        let _ = self.shell.writer.stop_and_wait(None, wait).await;
        Ok(())
    }
}

impl Core {
    /// Stops every actor at once, flushing and snapshotting nothing: what a
    /// crash does. The deterministic simulation uses it before it drops the
    /// unflushed tail of its store and starts a new core.
    pub fn kill(&self) {
        self.projector.abandon();
        self.directory.get_cell().kill();
        for s in self.supervisors() {
            for child in s.get_children() {
                child.kill();
            }
            s.kill();
        }
        self.shell.writer.get_cell().kill();
    }
}

/// The gateway's supervisors (and the accounts').
pub(super) struct GatewayActors {
    pub(super) accounts: ActorRef<SupervisorMsg<Account>>,
    pub(super) services: ActorRef<SupervisorMsg<Service>>,
    pub(super) routes: ActorRef<SupervisorMsg<Route>>,
    pub(super) consumers: ActorRef<SupervisorMsg<Consumer>>,
    pub(super) errors: ActorRef<SupervisorMsg<ErrorGroup>>,
}

impl GatewayActors {
    pub(super) async fn start(shell: &Shell) -> Result<Self, CoreError> {
        Ok(Self {
            services: start_supervisor(shell).await?,
            routes: start_supervisor(shell).await?,
            consumers: start_supervisor(shell).await?,
            errors: start_supervisor(shell).await?,
            accounts: start_supervisor(shell).await?,
        })
    }

    pub(super) fn cells(&self) -> [ActorCell; 5] {
        [
            self.accounts.get_cell(),
            self.services.get_cell(),
            self.routes.get_cell(),
            self.consumers.get_cell(),
            self.errors.get_cell(),
        ]
    }

    pub(super) async fn snapshot(&self) -> Result<(), CoreError> {
        snapshot_all(&self.services).await?;
        snapshot_all(&self.routes).await?;
        snapshot_all(&self.consumers).await?;
        snapshot_all(&self.errors).await?;
        snapshot_all(&self.accounts).await
    }
}
