//! The edge node's lifecycle: recover the log, start the core, join,
//! heartbeat, and on a signal leave, snapshot and flush.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use beamd_events::log::SledLog;
use beamd_events::{Durability, EventLog, SystemClock};
use beamd_snapshots::SnapshotPolicy;

use crate::actors::{Core, CoreConfig, Timings};
use crate::cli::EdgeArgs;
use crate::data_dir::DataDir;
use crate::domain::NodeCommand;
use crate::projections::InspectorIndex;

async fn shutdown_signal() -> Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => { r?; Ok("interrupt") }
        _ = term.recv() => Ok("terminate"),
    }
}

/// Runs `beamd edge` until SIGINT or SIGTERM.
pub async fn run(args: EdgeArgs) -> Result<ExitCode> {
    if args.durability == Durability::Off {
        tracing::warn!("durability is OFF: acknowledged events can be lost on a crash. Use this for benchmarks only.");
    }
    let dir = DataDir::create(&args.data_dir)?;
    let node = dir.node_id()?;
    let (log, repair) = SledLog::open(dir.log_store()?, Arc::new(SystemClock), args.durability)
        .context("cannot open the event log")?;
    if let Some(from) = repair.truncated_from {
        eprintln!(
            "beamd: recovered a torn log tail: dropped {} unacknowledged record(s) from seq {from}",
            repair.dropped
        );
    }
    let log: Arc<dyn EventLog> = Arc::new(log);
    let mut config = CoreConfig::new(
        log.clone(),
        Arc::new(dir.snapshots()?),
        Arc::new(SystemClock),
    );
    config.index = Some(InspectorIndex::open(dir.db())?);
    config.policy = SnapshotPolicy {
        every_events: args.snapshot_every,
        on_shutdown: true,
    };
    config.timings = Timings {
        idle: Duration::from_secs(args.actor_idle_secs.max(1)),
        flush_window: Duration::from_millis(args.traffic_window_ms.max(10)),
    };
    config.inspector_capacity = args.inspector_recent.max(1);
    let core = Core::start(config).await.context("cannot start the core")?;
    let replayed = core.projections().replayed();
    let join = NodeCommand::Join {
        version: env!("CARGO_PKG_VERSION").to_string(),
        public_addrs: Vec::new(),
        transports: Vec::new(),
    };
    core.node_command(&node, join).await?;
    println!(
        "beamd edge: node {node} up; data dir {}; log head seq {}; {replayed} events replayed from the log",
        dir.path().display(),
        log.head().seq,
    );

    let mut heartbeat = tokio::time::interval(Duration::from_secs(args.heartbeat_secs.max(1)));
    heartbeat.tick().await;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let reason = loop {
        tokio::select! {
            reason = &mut stop => break reason?,
            _ = heartbeat.tick() => { core.node_command(&node, NodeCommand::Heartbeat).await?; }
        }
    };
    core.node_command(
        &node,
        NodeCommand::Leave {
            reason: reason.to_string(),
        },
    )
    .await?;
    core.shutdown().await?;
    println!(
        "beamd edge: node {node} stopped ({reason}); log head seq {}",
        log.head().seq
    );
    Ok(ExitCode::SUCCESS)
}
