//! One actor per tenant, key, tunnel, domain or node: rehydrated from the
//! newest snapshot plus its stream's tail, it decides, appends (awaiting the
//! durable ack), applies and replies. Idle actors snapshot and stop.

use std::marker::PhantomData;
use std::time::Duration;

// tokio's clock: virtual (and deterministic) under the simulation's paused runtime.
use tokio::time::Instant;

use beamd_events::{Append, ExpectedVersion, LogError, StreamId};
use beamd_snapshots::{load_stream, Snapshot};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::log_writer::append;
use super::{CoreError, Shell};
use crate::domain::{Aggregate, Ctx};

/// How many times a command is re-decided after a version conflict.
const CONFLICT_RETRIES: u32 = 3;

/// An aggregate an entity actor can host: any whose commands can be sent
/// between tasks. The actor holds nothing but the aggregate and its place
/// in the log; traffic is windowed by the data plane's meters, and a window
/// reaches a tunnel as one command like any other.
pub trait Hosted: Aggregate<Command: Clone + Send + Sync + 'static> + Sync + 'static {}

impl<A: Aggregate<Command: Clone + Send + Sync + 'static> + Sync + 'static> Hosted for A {}

/// Messages to an entity actor.
pub enum EntityMsg<A: Hosted> {
    /// Decide and record a command; replies with the new state.
    Command(A::Command, RpcReplyPort<Result<A, CoreError>>),
    /// The current state.
    Get(RpcReplyPort<A>),
    /// Snapshot now (on shutdown); replies with the state.
    Snapshot(RpcReplyPort<Result<A, CoreError>>),
    /// Timer: stop when idle.
    Tick,
    /// Fail on purpose, to exercise supervision.
    Crash,
}

/// The state an entity actor holds.
pub struct EntityState<A: Hosted> {
    stream: StreamId,
    shell: Shell,
    state: A,
    version: u64,
    seq: u64,
    snapshot_version: u64,
    last_active: Instant,
    ticker: Option<JoinHandle<()>>,
}

/// The entity actor for aggregate `A`.
pub struct EntityActor<A>(PhantomData<fn() -> A>);

impl<A> Default for EntityActor<A> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// What an entity actor starts from.
pub struct EntityArgs {
    /// The entity's stream.
    pub stream: StreamId,
    /// Shared handles.
    pub shell: Shell,
}

impl<A: Hosted> EntityState<A> {
    async fn catch_up(&mut self) -> Result<(), CoreError> {
        loop {
            let events = self
                .shell
                .log
                .read_stream(&self.stream, self.version + 1, 1024)
                .await?;
            let Some(last) = events.last() else {
                return Ok(());
            };
            (self.version, self.seq) = (last.version, last.seq);
            events.iter().for_each(|e| self.state.apply(e));
        }
    }

    async fn execute(&mut self, command: &A::Command) -> Result<A, CoreError> {
        for _ in 0..CONFLICT_RETRIES {
            let ctx = Ctx::new(self.shell.clock.now_ms(), fastrand::u64(..));
            let events = self.state.decide(command, &ctx)?;
            if events.is_empty() {
                return Ok(self.state.clone());
            }
            let request = Append::new(
                self.stream.clone(),
                ExpectedVersion::Exact(self.version),
                events,
            );
            match append(&self.shell.writer, request).await {
                Ok(envelopes) => {
                    for env in &envelopes {
                        self.state.apply(env);
                        (self.version, self.seq) = (env.version, env.seq);
                    }
                    if self.shell.policy.due(self.version - self.snapshot_version) {
                        self.snapshot()?;
                    }
                    return Ok(self.state.clone());
                }
                // Someone else wrote to this stream: take their events in and decide again.
                Err(CoreError::Log(LogError::Conflict { .. })) => self.catch_up().await?,
                Err(e) => return Err(e),
            }
        }
        Err(CoreError::Log(LogError::Conflict {
            stream: self.stream.clone(),
            expected: format!("version {}", self.version),
            actual: self.version,
        }))
    }

    fn snapshot(&mut self) -> Result<(), CoreError> {
        if self.version == self.snapshot_version {
            return Ok(());
        }
        let snap = Snapshot::new(
            A::KIND,
            self.stream.as_str(),
            self.seq,
            self.version,
            &self.state,
        )?;
        self.shell.snapshots.save(&snap)?;
        self.snapshot_version = self.version;
        Ok(())
    }
}

/// The command failed in a way that leaves the actor unable to know the
/// truth (storage failure): it must stop and be rehydrated.
fn fatal(e: &CoreError) -> bool {
    matches!(
        e,
        CoreError::Log(LogError::Storage { .. } | LogError::Poisoned(_) | LogError::Closed)
            | CoreError::Actor(_)
    )
}

impl<A: Hosted> Actor for EntityActor<A> {
    type Msg = EntityMsg<A>;
    type State = EntityState<A>;
    type Arguments = EntityArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: EntityArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let loaded = load_stream::<A>(
            args.shell.log.as_ref(),
            args.shell.snapshots.as_ref(),
            &args.stream,
        )
        .await?;
        let tick = (args.shell.timings.idle / 2).max(Duration::from_millis(10));
        let ticker = myself.send_interval(tick, || EntityMsg::Tick);
        Ok(EntityState {
            stream: args.stream,
            shell: args.shell,
            state: loaded.state,
            version: loaded.version,
            seq: loaded.seq,
            snapshot_version: if loaded.from_snapshot {
                loaded.version - loaded.replayed
            } else {
                0
            },
            last_active: Instant::now(),
            ticker: Some(ticker),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(t) = state.ticker.take() {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if !matches!(message, EntityMsg::Tick) {
            st.last_active = Instant::now();
        }
        match message {
            EntityMsg::Command(command, reply) => {
                let result = st.execute(&command).await;
                let failed = result
                    .as_ref()
                    .err()
                    .filter(|e| fatal(e))
                    .map(|e| e.to_string());
                let _ = reply.send(result);
                if let Some(why) = failed {
                    return Err(why.into());
                }
            }
            EntityMsg::Get(reply) => {
                // On a shared log other nodes write to this stream too.
                if st.shell.log.shared() {
                    st.catch_up().await?;
                }
                let _ = reply.send(st.state.clone());
            }
            EntityMsg::Snapshot(reply) => {
                let _ = reply.send(st.snapshot().map(|_| st.state.clone()));
            }
            EntityMsg::Tick => {
                if st.last_active.elapsed() >= st.shell.timings.idle {
                    st.snapshot()?;
                    myself.stop(Some("idle".into()));
                }
            }
            EntityMsg::Crash => return Err("crash requested".into()),
        }
        Ok(())
    }
}
