//! beamd's simulated world: the real core (aggregates, actors, projections,
//! snapshot policy) over an `InlineLog` on a fault-injecting `MemoryStore`,
//! driven by a seeded workload with crashes, torn tails, failing flushes and
//! snapshots at random points.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use beamd_events::log::{Acknowledge, InlineLog, MemoryStore};
use beamd_events::{Clock, EventLog, LogHead, ManualClock};
use beamd_simulations::{Faults, Violation, World};
use beamd_snapshots::{MemorySnapshotStore, SnapshotPolicy};

use beamd_transports::{Connection, Faulty, LinkFaults, MemoryTransport};
use tokio_util::sync::CancellationToken;

use super::agents::{self, SimAgent, SimTransport, NODE};
use super::invariants::{self, Observed};
use super::ledger::{self, Ledger};
use crate::actors::{Core, CoreConfig, CoreError, Timings};
use crate::edge::{EdgeContext, EdgeSettings};
use crate::node::take_offline_after_restart;

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
    pub(super) planted: Option<Planted>,
    pub(super) store: Arc<MemoryStore>,
    pub(super) snapshots: Arc<MemorySnapshotStore>,
    pub(super) clock: Arc<ManualClock>,
    pub(super) log: Arc<InlineLog<MemoryStore>>,
    pub(super) core: Arc<Core>,
    pub(super) transport: SimTransport,
    pub(super) ctx: Arc<EdgeContext>,
    pub(super) stop: CancellationToken,
    pub(super) agents: Vec<SimAgent>,
    pub(super) secrets: BTreeMap<String, String>,
    pub(super) every: u64,
    pub(super) tenants: Vec<String>,
    pub(super) keys: Vec<String>,
    pub(super) revoked: BTreeSet<String>,
    pub(super) tunnels: Vec<String>,
    pub(super) domains: Vec<String>,
    /// What each tunnel carried, to check its traffic events against.
    pub(super) ledger: Ledger,
    /// The highest head acknowledged to a caller.
    pub(super) acked: LogHead,
    /// Set after a restart: the next check is a full one.
    pub(super) restarted: bool,
}

fn err(e: impl std::fmt::Display) -> Violation {
    Violation::new("harness", e.to_string())
}

/// A started process: the log, the core, and an edge serving agents.
struct Process {
    log: Arc<InlineLog<MemoryStore>>,
    core: Arc<Core>,
    transport: SimTransport,
    ctx: Arc<EdgeContext>,
    stop: CancellationToken,
}

async fn start(
    store: &Arc<MemoryStore>,
    snapshots: &Arc<MemorySnapshotStore>,
    clock: &Arc<ManualClock>,
    every: u64,
    planted: Option<Planted>,
    link: (LinkFaults, u64),
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
    // Idle stops and traffic windows in virtual seconds: long enough that
    // timers do not dominate the run, short enough that time steps cross them.
    config.timings = Timings {
        idle: Duration::from_secs(20),
    };
    let core = Arc::new(Core::start(config).await.map_err(err)?);
    take_offline_after_restart(&core, NODE).await.map_err(err)?;
    let mut settings = EdgeSettings::new("127.0.0.1".parse().map_err(err)?, "edge.sim");
    settings.http_port = Some(80);
    settings.window = Duration::from_secs(5);
    // The simulated clients are never slow on purpose; a timer on virtual
    // time would only close idle connections the workload means to reuse.
    settings.header_timeout = crate::live::Live::new(None);
    let stop = CancellationToken::new();
    let ctx = Arc::new(EdgeContext::new(
        core.clone(),
        NODE.into(),
        settings,
        stop.clone(),
    ));
    let transport = Faulty::new(MemoryTransport::new(), link.0, link.1);
    agents::listen(&transport, ctx.clone()).await?;
    Ok(Process {
        log,
        core,
        transport,
        ctx,
        stop,
    })
}

/// The agents' link faults, and the seed they are drawn from.
fn link(rng: &mut fastrand::Rng, faults: Faults) -> (LinkFaults, u64) {
    let link = match faults.link {
        true => LinkFaults {
            delay_per_mille: 300,
            max_delay: Duration::from_secs(2),
            drop_per_mille: 100,
            drop_within: Duration::from_secs(300),
        },
        false => LinkFaults::default(),
    };
    (link, rng.u64(..))
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
        } = start(
            &store,
            &snapshots,
            &clock,
            every,
            planted,
            link(&mut rng, faults),
        )
        .await?;
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
            ledger: Ledger::default(),
            acked: LogHead {
                seq: 0,
                hash: beamd_events::GENESIS_HASH,
            },
            restarted: false,
        })
    }

    pub(super) fn pick(&mut self, of: &[String]) -> Option<String> {
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
        // The traffic of the window not recorded yet is gone with the process.
        let events = invariants::all_events(self.log.as_ref()).await?;
        self.ledger.restart_from(&ledger::recorded(&events));
        Ok(format!(
            "crash (torn: {torn}); head {}",
            self.log.head().seq
        ))
    }

    /// What the invariants read of the world now.
    fn observed(&self) -> Observed<'_> {
        Observed {
            log: self.log.as_ref(),
            store: &self.store,
            core: &self.core,
            ctx: &self.ctx,
            ledger: &self.ledger,
            acked: self.acked,
            keys: &self.keys,
            tunnels: &self.tunnels,
        }
    }

    async fn restart(&mut self) -> Result<(), Violation> {
        let p = start(
            &self.store,
            &self.snapshots,
            &self.clock,
            self.every,
            self.planted,
            link(&mut self.rng, self.faults),
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
            // The edge stops first: sessions drain, record their last traffic and leave.
            self.stop.cancel();
            tokio::time::sleep(Duration::from_secs(15)).await;
            for agent in self.agents.drain(..) {
                agent.conn.close();
            }
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
        let restarted = std::mem::take(&mut self.restarted);
        invariants::check(&self.observed(), step, restarted).await
    }

    async fn finish(self) -> Result<String, Violation> {
        invariants::check_full(&self.observed()).await?;
        let head = self.log.head();
        self.core.shutdown().await.map_err(err)?;
        Ok(format!(
            "{}:{}",
            head.seq,
            beamd_events::envelope::hex(&head.hash)
        ))
    }
}
