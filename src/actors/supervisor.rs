//! One supervisor per aggregate kind: spawns entity actors on demand, forgets
//! them when they stop idle, and restarts (rehydrates) them when they fail.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;

use beamd_events::StreamId;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::ask::ask;
use super::entity::{EntityActor, EntityArgs, EntityMsg, Hosted};
use super::{CoreError, Shell};
use crate::domain::DomainError;

/// Messages to a supervisor.
pub enum SupervisorMsg<A: Hosted> {
    /// The actor of a stream, spawned (and rehydrated) if it is not running.
    Get(
        StreamId,
        RpcReplyPort<Result<ActorRef<EntityMsg<A>>, CoreError>>,
    ),
    /// Every running actor.
    Running(RpcReplyPort<Vec<ActorRef<EntityMsg<A>>>>),
    /// How many actors were restarted after failing.
    Restarts(RpcReplyPort<u64>),
}

/// Sends a message to the actor of `stream` and waits for its reply. An actor
/// that stopped (passivated) before taking the message did nothing, so the
/// message goes again to its successor.
pub async fn deliver<A: Hosted, T: Send + 'static>(
    supervisor: &ActorRef<SupervisorMsg<A>>,
    stream: &StreamId,
    build: impl Fn(RpcReplyPort<T>) -> EntityMsg<A>,
) -> Result<T, CoreError> {
    let mut tries = 0;
    loop {
        let actor = ask(supervisor, |r| SupervisorMsg::Get(stream.clone(), r)).await??;
        match ask(&actor, &build).await {
            Err(CoreError::Gone) if tries < 10 => {
                tries += 1;
                // The supervisor learns of the stop asynchronously; give it a moment.
                tokio::time::sleep(std::time::Duration::from_millis(5 * tries)).await;
            }
            other => return other,
        }
    }
}

/// A supervisor's state.
pub struct SupervisorState<A: Hosted> {
    shell: Shell,
    /// Ordered, so that walking the children (snapshots on shutdown) is the
    /// same on every run: the simulation's determinism depends on it.
    children: BTreeMap<StreamId, ActorRef<EntityMsg<A>>>,
    streams: HashMap<ActorId, StreamId>,
    restarts: u64,
}

/// The supervisor of all entity actors of aggregate `A`.
pub struct EntitySupervisor<A>(PhantomData<fn() -> A>);

impl<A> Default for EntitySupervisor<A> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<A: Hosted> SupervisorState<A> {
    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg<A>>,
        stream: StreamId,
    ) -> Result<ActorRef<EntityMsg<A>>, CoreError> {
        let args = EntityArgs {
            stream: stream.clone(),
            shell: self.shell.clone(),
        };
        let (child, _) =
            Actor::spawn_linked(None, EntityActor::<A>::default(), args, myself.get_cell())
                .await
                .map_err(|e| {
                    // ractor words every failed start as a panic; say what it was.
                    let why = match &e {
                        ractor::SpawnErr::StartupFailed(inner) => inner.to_string(),
                        other => other.to_string(),
                    };
                    CoreError::Actor(format!("{} {stream} failed to start: {why}", A::KIND))
                })?;
        self.streams.insert(child.get_id(), stream.clone());
        self.children.insert(stream, child.clone());
        Ok(child)
    }

    fn forget(&mut self, id: ActorId) -> Option<StreamId> {
        let stream = self.streams.remove(&id)?;
        self.children.remove(&stream);
        Some(stream)
    }
}

impl<A: Hosted> Actor for EntitySupervisor<A> {
    type Msg = SupervisorMsg<A>;
    type State = SupervisorState<A>;
    type Arguments = Shell;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        shell: Shell,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SupervisorState {
            shell,
            children: BTreeMap::new(),
            streams: HashMap::new(),
            restarts: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Get(stream, reply) => {
                let found = match st.children.get(&stream) {
                    Some(child) => Ok(child.clone()),
                    None => st.spawn(&myself, stream).await,
                };
                let _ = reply.send(found);
            }
            SupervisorMsg::Running(reply) => {
                let _ = reply.send(st.children.values().cloned().collect());
            }
            SupervisorMsg::Restarts(reply) => {
                let _ = reply.send(st.restarts);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                st.forget(cell.get_id());
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                if let Some(stream) = st.forget(cell.get_id()) {
                    tracing::warn!(kind = A::KIND, %stream, %error, "actor failed; restarting it from the log");
                    st.restarts += 1;
                    // A restart that cannot rehydrate leaves the stream to be spawned on next use.
                    if let Err(e) = st.spawn(&myself, stream).await {
                        tracing::error!(error = %e, "restart failed");
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Starts the supervisor of one aggregate kind.
pub(super) async fn start_supervisor<A: Hosted>(
    shell: &Shell,
) -> Result<ActorRef<SupervisorMsg<A>>, CoreError> {
    let (actor, _) = Actor::spawn(None, EntitySupervisor::<A>::default(), shell.clone())
        .await
        .map_err(|e| CoreError::Actor(format!("{} supervisor failed to start: {e}", A::KIND)))?;
    Ok(actor)
}

/// Runs `cmd` on the actor of `id` under `supervisor`: the entity after it.
pub(super) async fn command<A: Hosted>(
    supervisor: &ActorRef<SupervisorMsg<A>>,
    id: &str,
    cmd: A::Command,
) -> Result<A, CoreError> {
    let stream = StreamId::new(id).map_err(|_| DomainError::NotFound(A::KIND.into()))?;
    deliver(supervisor, &stream, |r| EntityMsg::Command(cmd.clone(), r)).await?
}

/// Has every running actor under `supervisor` snapshot its state.
pub(super) async fn snapshot_all<A: Hosted>(
    supervisor: &ActorRef<SupervisorMsg<A>>,
) -> Result<(), CoreError> {
    for actor in ask(supervisor, SupervisorMsg::Running).await? {
        match ask(&actor, EntityMsg::Snapshot).await {
            // An actor that passivated meanwhile snapshotted on its way out.
            Err(CoreError::Gone) => {}
            other => {
                other??;
            }
        }
    }
    Ok(())
}
