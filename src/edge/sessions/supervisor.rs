//! The edge's transport actors: one ractor actor per listener, under a
//! supervisor that restarts a failed listener on the address it had bound.
//! Sessions are tasks the listener starts; a failed session closes its
//! connection and the agent reconnects.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use beamd_events::vocabulary::TransportKind;
use beamd_transports::tls::EdgeIdentity;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::task::JoinHandle;

use super::listener::listen;
use crate::edge::context::EdgeContext;

/// What a listener serves.
#[derive(Clone)]
pub struct ListenerSpec {
    /// The transport.
    pub kind: TransportKind,
    /// Where to bind.
    pub addr: SocketAddr,
    /// TLS over TCP and WebSocket.
    pub tls: bool,
}

/// Messages to a listener actor.
pub enum ListenerMsg {
    /// The bound address.
    Local(RpcReplyPort<SocketAddr>),
    /// The accept loop ended on its own: fail, so the supervisor restarts it.
    AcceptLoopEnded,
}

/// A listener actor's state.
pub struct ListenerState {
    local: SocketAddr,
    accept: tokio::task::AbortHandle,
    watcher: JoinHandle<()>,
}

// Whether the actor stops or fails, its accept loop ends with its state and
// drops the socket, so a restart can bind the address again.
impl Drop for ListenerState {
    fn drop(&mut self) {
        self.accept.abort();
        self.watcher.abort();
    }
}

/// One transport's listener.
pub struct ListenerActor;

/// What a listener actor starts from.
pub struct ListenerArgs {
    spec: ListenerSpec,
    identity: Arc<EdgeIdentity>,
    ctx: Arc<EdgeContext>,
}

impl Actor for ListenerActor {
    type Msg = ListenerMsg;
    type State = ListenerState;
    type Arguments = ListenerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ListenerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (local, accept) = listen(
            args.spec.kind,
            args.spec.addr,
            &args.identity,
            args.spec.tls,
            args.ctx.clone(),
        )
        .await
        .map_err(|e| format!("{e:#}"))?;
        let stopping = args.ctx.shutdown.clone();
        let abort = accept.abort_handle();
        let watcher = tokio::spawn(async move {
            let _ = accept.await;
            if !stopping.is_cancelled() {
                let _ = myself.cast(ListenerMsg::AcceptLoopEnded);
            }
        });
        Ok(ListenerState {
            local,
            accept: abort,
            watcher,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ListenerMsg::Local(reply) => {
                let _ = reply.send(st.local);
            }
            ListenerMsg::AcceptLoopEnded => {
                return Err(format!("the listener on {} stopped accepting", st.local).into())
            }
        }
        Ok(())
    }
}

/// Messages to the edge supervisor.
pub enum EdgeSupervisorMsg {
    /// Start a listener; replies with its bound address.
    Listen(ListenerSpec, RpcReplyPort<Result<SocketAddr, String>>),
    /// How many listeners were restarted.
    Restarts(RpcReplyPort<u64>),
    /// The running listeners.
    Listeners(RpcReplyPort<Vec<ActorRef<ListenerMsg>>>),
}

/// The edge supervisor's state.
pub struct EdgeSupervisorState {
    identity: Arc<EdgeIdentity>,
    ctx: Arc<EdgeContext>,
    children: HashMap<ActorId, (ListenerSpec, ActorRef<ListenerMsg>)>,
    restarts: u64,
}

/// Supervises the transport listeners.
pub struct EdgeSupervisor;

impl EdgeSupervisorState {
    async fn start(
        &mut self,
        myself: &ActorRef<EdgeSupervisorMsg>,
        spec: ListenerSpec,
    ) -> Result<SocketAddr, String> {
        let args = ListenerArgs {
            spec: spec.clone(),
            identity: self.identity.clone(),
            ctx: self.ctx.clone(),
        };
        let (child, _) = Actor::spawn_linked(None, ListenerActor, args, myself.get_cell())
            .await
            .map_err(|e| e.to_string())?;
        let local = crate::actors::ask(&child, ListenerMsg::Local)
            .await
            .map_err(|e| e.to_string())?;
        // A restart binds the address it had, so agents find it where they left it.
        let spec = ListenerSpec {
            addr: local,
            ..spec
        };
        self.children.insert(child.get_id(), (spec, child));
        Ok(local)
    }
}

impl Actor for EdgeSupervisor {
    type Msg = EdgeSupervisorMsg;
    type State = EdgeSupervisorState;
    type Arguments = (Arc<EdgeIdentity>, Arc<EdgeContext>);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (identity, ctx): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(EdgeSupervisorState {
            identity,
            ctx,
            children: HashMap::new(),
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
            EdgeSupervisorMsg::Listen(spec, reply) => {
                let _ = reply.send(st.start(&myself, spec).await);
            }
            EdgeSupervisorMsg::Restarts(reply) => {
                let _ = reply.send(st.restarts);
            }
            EdgeSupervisorMsg::Listeners(reply) => {
                let _ = reply.send(st.children.values().map(|(_, r)| r.clone()).collect());
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
            SupervisionEvent::ActorFailed(cell, error) => {
                if let Some((spec, _)) = st.children.remove(&cell.get_id()) {
                    tracing::warn!(%error, addr = %spec.addr, "listener failed; restarting it");
                    st.restarts += 1;
                    // The failed listener's socket is let go asynchronously; give it a moment.
                    let mut last = None;
                    for _ in 0..20 {
                        match st.start(&myself, spec.clone()).await {
                            Ok(_) => {
                                last = None;
                                break;
                            }
                            Err(e) => last = Some(e),
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    if let Some(e) = last {
                        tracing::error!(error = %e, "listener restart failed");
                    }
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                st.children.remove(&cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}
