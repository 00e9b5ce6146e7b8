//! The edge node's lifecycle: recover, join, heartbeat, project, snapshot, leave.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use beamd_events::log::{Follower, SledLog};
use beamd_events::vocabulary::{NodeHeartbeat, NodeJoined, NodeLeft};
use beamd_events::{Append, Durability, Event, EventLog, ExpectedVersion, StreamId, SystemClock};
use beamd_snapshots::{
    load_global, Fold, SledSnapshotStore, Snapshot, SnapshotPolicy, SnapshotStore,
};

use crate::cli::EdgeArgs;
use crate::data_dir::DataDir;
use crate::projections::LogSummary;

/// The snapshot id of projections over the whole log.
const GLOBAL_ID: &str = "all";

/// The live projection and when it was last snapshotted.
struct Projection {
    summary: LogSummary,
    snapshot_seq: u64,
}

impl Projection {
    fn snapshot(&mut self, store: &SledSnapshotStore) -> Result<()> {
        if self.summary.last_seq == self.snapshot_seq {
            return Ok(());
        }
        let snap = Snapshot::new(
            LogSummary::KIND,
            GLOBAL_ID,
            self.summary.last_seq,
            0,
            &self.summary,
        )?;
        store.save(&snap)?;
        store.flush()?;
        self.snapshot_seq = self.summary.last_seq;
        Ok(())
    }
}

async fn record(log: &dyn EventLog, stream: &StreamId, event: Event) -> Result<u64> {
    let envs = log
        .append(Append::new(
            stream.clone(),
            ExpectedVersion::Any,
            vec![event],
        ))
        .await?;
    Ok(envs.last().map(|e| e.seq).unwrap_or(0))
}

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
    let node = StreamId::new(dir.node_id()?)?;
    let (log, repair) = SledLog::open(dir.log_store()?, Arc::new(SystemClock), args.durability)
        .context("cannot open the event log")?;
    if let Some(from) = repair.truncated_from {
        eprintln!(
            "beamd: recovered a torn log tail: dropped {} unacknowledged record(s) from seq {from}",
            repair.dropped
        );
    }
    let log: Arc<dyn EventLog> = Arc::new(log);
    let snapshots = dir.snapshots()?;
    let policy = SnapshotPolicy {
        every_events: args.snapshot_every,
        on_shutdown: true,
    };
    let loaded = load_global::<LogSummary>(log.as_ref(), &snapshots, GLOBAL_ID).await?;
    let mut projection = Projection {
        snapshot_seq: if loaded.from_snapshot {
            loaded.seq - loaded.replayed
        } else {
            0
        },
        summary: loaded.state,
    };
    let joined = NodeJoined {
        version: env!("CARGO_PKG_VERSION").to_string(),
        public_addrs: Vec::new(),
        transports: Vec::new(),
    };
    let seq = record(log.as_ref(), &node, joined.into()).await?;
    println!(
        "beamd edge: node {node} up; data dir {}; log head seq {seq}; {} events replayed from the log ({} from a snapshot)",
        dir.path().display(),
        loaded.replayed,
        if loaded.from_snapshot { "rest" } else { "none" },
    );

    let mut follower = Follower::new(log.clone(), projection.summary.last_seq + 1, 4096);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(args.heartbeat_secs.max(1)));
    heartbeat.tick().await;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let reason = loop {
        tokio::select! {
            reason = &mut stop => break reason?,
            _ = heartbeat.tick() => { record(log.as_ref(), &node, NodeHeartbeat {}.into()).await?; }
            events = follower.next_batch() => {
                for env in events? {
                    projection.summary.apply(&env);
                }
                if policy.due(projection.summary.last_seq - projection.snapshot_seq) {
                    projection.snapshot(&snapshots)?;
                }
            }
        }
    };
    let left = record(
        log.as_ref(),
        &node,
        NodeLeft {
            reason: reason.to_string(),
        }
        .into(),
    )
    .await?;
    while projection.summary.last_seq < left {
        for env in follower.next_batch().await? {
            projection.summary.apply(&env);
        }
    }
    if policy.on_shutdown {
        projection.snapshot(&snapshots)?;
    }
    println!("beamd edge: node {node} stopped ({reason}); log head seq {left}");
    Ok(ExitCode::SUCCESS)
}
