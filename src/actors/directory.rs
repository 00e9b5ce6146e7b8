//! The directory actor: the one place creations are decided (tenant slugs,
//! tunnel names and ports, domain hosts), so uniqueness holds without locks.
//! Before each decision it catches up with the log, so releases recorded by
//! tunnel actors free their names at once.

use std::sync::Arc;

use beamd_events::{Append, Envelope, ExpectedVersion, Guard, LogError, StreamId};
use beamd_snapshots::{load_global, Fold, Snapshot};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::ask::ask;
use super::entity::{EntityMsg, Hosted};
use super::log_writer::append;
use super::projector::GLOBAL_ID;
use super::supervisor::{deliver, SupervisorMsg};
use super::{CoreError, Shell};
use crate::domain::{
    Account, AddDomain, CreateTenant, Ctx, Directory, DomainError, DomainName, Key, OpenTunnel,
    PortRequest, Tenant, Tunnel, TunnelCommand,
};
use crate::metric_catalog;
use crate::projections::Queries;

/// The events the directory's decisions depend on: a creation is recorded
/// only if none of them was committed (on any node) after the seq it was
/// decided at. Releases are left out: missing one only makes a decision
/// stricter than it had to be.
pub const CLAIMS: &[&str] = &[
    "TenantCreated",
    "TenantPlanChanged",
    "AccountRegistered",
    "TunnelOpened",
    "DomainAdded",
];

/// How many times a creation is decided again after another one overtook it.
const STALE_RETRIES: u32 = 16;

/// Whether `result` failed because another creation overtook it; if so, and
/// tries remain, the caller decides again.
fn overtaken<T>(result: &Result<T, CoreError>, attempt: u32) -> bool {
    let stale = matches!(result, Err(CoreError::Log(LogError::Stale { .. })));
    if stale {
        metrics::counter!(metric_catalog::DIRECTORY_RETRIES.name).increment(1);
    }
    stale && attempt < STALE_RETRIES
}

/// Runs a decision until it is recorded or fails for another reason than
/// being overtaken.
macro_rules! decided_again {
    ($decide:expr) => {{
        let mut attempt = 0;
        loop {
            let result = $decide;
            attempt += 1;
            if !overtaken(&result, attempt) {
                break result;
            }
        }
    }};
}

/// Messages to the directory.
pub enum DirectoryMsg {
    /// Create a tenant.
    CreateTenant(CreateTenant, RpcReplyPort<Result<Tenant, CoreError>>),
    /// Open a tunnel for a key, or give the key back the tunnel that holds the
    /// same name or port (a reconnect).
    OpenTunnel(String, OpenTunnel, RpcReplyPort<Result<Tunnel, CoreError>>),
    /// Add a custom domain to a tenant.
    AddDomain(
        String,
        AddDomain,
        RpcReplyPort<Result<DomainName, CoreError>>,
    ),
    /// Register an account (tenant, email, name, password hash) for an existing tenant.
    RegisterAccount([String; 4], RpcReplyPort<Result<Account, CoreError>>),
    /// The directory's current state.
    Get(RpcReplyPort<Directory>),
    /// Whether a tunnel (online or not) holds this HTTP host.
    HostHeld(String, RpcReplyPort<bool>),
    /// Catch up and snapshot now (clean shutdown).
    Snapshot(RpcReplyPort<Result<(), CoreError>>),
}

/// What the directory works with.
pub struct DirectoryArgs {
    /// Shared handles.
    pub shell: Shell,
    /// Tenant actors.
    pub tenants: ActorRef<SupervisorMsg<Tenant>>,
    /// Key actors.
    pub keys: ActorRef<SupervisorMsg<Key>>,
    /// Tunnel actors.
    pub tunnels: ActorRef<SupervisorMsg<Tunnel>>,
    /// The projections (usage for limits).
    pub projections: Arc<Queries>,
}

/// The directory actor's state.
pub struct DirectoryState {
    args: DirectoryArgs,
    dir: Directory,
    seq: u64,
    snapshot_seq: u64,
}

/// The directory actor.
pub struct DirectoryActor;

/// The current state of one entity.
pub async fn entity<A: Hosted>(
    supervisor: &ActorRef<SupervisorMsg<A>>,
    id: &str,
) -> Result<A, CoreError> {
    let stream = StreamId::new(id).map_err(|_| DomainError::NotFound(A::KIND.into()))?;
    deliver(supervisor, &stream, EntityMsg::Get).await
}

fn fold<A: Fold>(envelopes: &[Envelope]) -> A {
    let mut state = A::default();
    envelopes.iter().for_each(|e| state.apply(e));
    state
}

impl DirectoryState {
    async fn catch_up(&mut self) -> Result<(), CoreError> {
        loop {
            let events = self.args.shell.log.read_from(self.seq + 1, 4096).await?;
            let Some(last) = events.last() else { break };
            self.seq = last.seq;
            events.iter().for_each(|e| self.dir.apply(e));
        }
        if self.args.shell.policy.due(self.seq - self.snapshot_seq) {
            self.snapshot()?;
        }
        Ok(())
    }

    fn snapshot(&mut self) -> Result<(), CoreError> {
        if self.seq > self.snapshot_seq {
            let snap = Snapshot::new(Directory::KIND, GLOBAL_ID, self.seq, 0, &self.dir)?;
            self.args.shell.snapshots.save(&snap)?;
            self.snapshot_seq = self.seq;
        }
        Ok(())
    }

    fn ctx(&self) -> Ctx {
        Ctx::new(self.args.shell.clock.now_ms(), fastrand::u64(..))
    }

    async fn record(
        &mut self,
        id: String,
        events: Vec<beamd_events::Event>,
    ) -> Result<Vec<Envelope>, CoreError> {
        let stream = StreamId::new(id).map_err(|e| CoreError::Actor(e.to_string()))?;
        let guard = Guard {
            after: self.seq,
            kinds: CLAIMS,
        };
        let envelopes = append(
            &self.args.shell.writer,
            Append::new(stream, ExpectedVersion::NoStream, events).guarded(guard),
        )
        .await;
        if envelopes.is_err() {
            // Whatever overtook the decision is in the log: see it before deciding again.
            self.catch_up().await?;
        }
        let envelopes = envelopes?;
        self.catch_up().await?;
        Ok(envelopes)
    }

    async fn open_tunnel(&mut self, key_id: &str, cmd: &OpenTunnel) -> Result<Tunnel, CoreError> {
        let key: Key = entity(&self.args.keys, key_id)
            .await
            .map_err(|_| DomainError::Unauthorized("unknown key".into()))?;
        let tenant: Tenant = match key.tenant.as_str() {
            "" => Tenant::default(),
            id => entity(&self.args.tenants, id).await?,
        };
        let held = match (&cmd.name, cmd.port) {
            (Some(name), _) => self
                .dir
                .host_for(&tenant.id, name)
                .and_then(|h| self.dir.holder_of_host(&h)),
            (None, PortRequest::Exact { port: p, .. }) => self.dir.holder_of_port(
                p,
                cmd.protocol == beamd_events::vocabulary::TunnelProtocol::Udp,
            ),
            _ => None,
        }
        .map(|(id, t)| (id.clone(), t.clone()));
        let ctx = self.ctx();
        let usage = (self.args.projections).open_usage(&tenant.id, &key.id, ctx.now_ms);
        if let (Some((tunnel_id, holder)), crate::domain::KeyStatus::Active) = (held, key.status) {
            // A pool is joined by any agent key of its tenant; a tunnel
            // without one is taken back by its own key. The tunnel decides
            // whether it is what was asked for.
            let command = match &cmd.pool {
                Some(join) if holder.tenant == key.tenant => Some(TunnelCommand::Join {
                    member: join.member.clone(),
                    node: cmd.node.clone(),
                    transport: cmd.transport,
                    key: key.id.clone(),
                    tenant: key.tenant.clone(),
                    peer: join.peer.clone(),
                    rules: join.rules.clone(),
                }),
                None if holder.key == key.id => Some(TunnelCommand::Resume {
                    node: cmd.node.clone(),
                    transport: cmd.transport,
                    key: key.id.clone(),
                }),
                _ => None,
            };
            if let Some(command) = command {
                // Held to the same rules as an open.
                key.may_carry(&tenant.plan, &usage)?;
                key.may_serve()?;
                let stream =
                    StreamId::new(tunnel_id).map_err(|e| CoreError::Actor(e.to_string()))?;
                let actor = ask(&self.args.tunnels, |r| SupervisorMsg::Get(stream, r)).await??;
                return ask(&actor, |r| EntityMsg::Command(command, r)).await?;
            }
        }
        let (id, events) = self.dir.open_tunnel(cmd, &tenant, &key, &usage, &ctx)?;
        Ok(fold(&self.record(id, events).await?))
    }
}

impl Actor for DirectoryActor {
    type Msg = DirectoryMsg;
    type State = DirectoryState;
    type Arguments = DirectoryArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: DirectoryArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let started = std::time::Instant::now();
        let loaded = load_global::<Directory>(
            args.shell.log.as_ref(),
            args.shell.snapshots.as_ref(),
            GLOBAL_ID,
        )
        .await?;
        tracing::debug!(seq = loaded.seq, replayed = loaded.replayed, elapsed = ?started.elapsed(), "directory rehydrated");
        Ok(DirectoryState {
            args,
            snapshot_seq: loaded.seq - loaded.replayed,
            dir: loaded.state,
            seq: loaded.seq,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Err(e) = st.catch_up().await {
            return Err(e.to_string().into());
        }
        match message {
            DirectoryMsg::CreateTenant(cmd, reply) => {
                let result = decided_again!({
                    let ctx = st.ctx();
                    match st.dir.create_tenant(&cmd, &ctx) {
                        Ok((id, events)) => st.record(id, events).await.map(|e| fold(&e)),
                        Err(e) => Err(e.into()),
                    }
                });
                let _ = reply.send(result);
            }
            DirectoryMsg::OpenTunnel(key, cmd, reply) => {
                let result = decided_again!({ st.open_tunnel(&key, &cmd).await });
                let _ = reply.send(result);
            }
            DirectoryMsg::AddDomain(tenant, cmd, reply) => {
                let result = decided_again!({
                    async {
                        let tenant: Tenant = entity(&st.args.tenants, &tenant).await?;
                        let (id, events) = st.dir.add_domain(&cmd, &tenant, &st.ctx())?;
                        Ok(fold(&st.record(id, events).await?))
                    }
                    .await
                });
                let _ = reply.send(result);
            }
            DirectoryMsg::RegisterAccount([tenant, email, name, hash], reply) => {
                let result = decided_again!({
                    let ctx = st.ctx();
                    match st.dir.register_account(&tenant, &email, &name, &hash, &ctx) {
                        Ok((id, events)) => st.record(id, events).await.map(|e| fold(&e)),
                        Err(e) => Err(e.into()),
                    }
                });
                let _ = reply.send(result);
            }
            DirectoryMsg::Get(reply) => {
                let _ = reply.send(st.dir.clone());
            }
            DirectoryMsg::HostHeld(host, reply) => {
                let _ = reply.send(st.dir.holder_of_host(&host).is_some());
            }
            DirectoryMsg::Snapshot(reply) => {
                let _ = reply.send(st.snapshot());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn claims_name_real_event_kinds() {
        for kind in super::CLAIMS {
            assert!(beamd_events::Event::KINDS.contains(kind), "{kind}");
        }
    }
}
