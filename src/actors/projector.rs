//! The projector: folds committed events into the projections and the
//! inspector's history index, publishes the seq once every projection has
//! it, and snapshots them together by policy and on shutdown.

use std::sync::Arc;

use beamd_events::log::Follower;
use beamd_events::EventLog;
use beamd_snapshots::{SnapshotPolicy, SnapshotStore};
use tokio::sync::{broadcast, oneshot, watch};

use super::CoreError;
use crate::projections::{
    CapturedRequest, Hot, InspectorIndex, InspectorProjection, Projections, Queries,
};

pub use crate::projections::GLOBAL_ID;

const CHUNK: usize = 4096;
/// Grant changes a slow receiver may fall behind by (it then just checks).
const GRANT_CHANGES: usize = 16;
/// Events folded per hold of a projection's write lock, at most.
const FOLD_SLICE: usize = 128;

/// Rebuilds the projections: the newest snapshot of each, then the log's tail.
/// Returns them and how many events were folded on top of the snapshots.
async fn rebuild(
    log: &dyn EventLog,
    store: &dyn SnapshotStore,
    index: Option<&InspectorIndex>,
    inspector_capacity: usize,
) -> Result<(Projections, u64), CoreError> {
    let head = log.head().seq;
    let mut p = match Projections::load(store, head)? {
        Some(p) if p.inspector.capacity == inspector_capacity => p,
        _ => Projections {
            inspector: InspectorProjection::with_capacity(inspector_capacity),
            ..Projections::default()
        },
    };
    let watermark = match index {
        Some(i) => i
            .watermark()
            .map_err(|e| CoreError::Actor(e.to_string()))?
            .min(head),
        None => head,
    };
    // The index is written before the snapshots; if it lags them anyway (it was
    // lost or its tree is new), rebuild everything so that requests of tunnels
    // opened long ago still find their tenant.
    if watermark < p.seq {
        p = Projections {
            inspector: InspectorProjection::with_capacity(inspector_capacity),
            ..Projections::default()
        };
    }
    let mut next = p.seq.min(watermark) + 1;
    let mut replayed = 0;
    loop {
        let events = log.read_from(next, CHUNK).await?;
        let Some(last) = events.last() else { break };
        next = last.seq + 1;
        let mut captured: Vec<CapturedRequest> = Vec::new();
        for env in &events {
            if env.seq > p.seq {
                p.apply(env);
                replayed += 1;
            }
            if env.seq > watermark {
                captured.extend(p.inspector.captured(env));
            }
        }
        if let Some(i) = index {
            i.record(&captured, last.seq)
                .map_err(|e| CoreError::Actor(e.to_string()))?;
        }
    }
    Ok((p, replayed))
}

/// A running projector.
pub struct ProjectorHandle {
    replayed: u64,
    queries: Arc<Queries>,
    applied: watch::Receiver<u64>,
    grants: broadcast::Sender<()>,
    stop: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    task: tokio::sync::Mutex<Option<oneshot::Receiver<Result<(), CoreError>>>>,
}

impl ProjectorHandle {
    /// The projections' named queries.
    pub fn queries(&self) -> &Arc<Queries> {
        &self.queries
    }

    /// What the request path reads, without any projection's lock.
    pub fn hot(&self) -> Arc<Hot> {
        self.queries.hot()
    }

    /// Receives a message each time the projections folded an event that
    /// changes a grant (a key revoked or limited, a plan changed): live
    /// sessions wait on it and check their key again at once. (A broadcast,
    /// not a `watch`: it wakes its receivers in the order they subscribed,
    /// which keeps a simulated run deterministic.)
    pub fn grant_changes(&self) -> broadcast::Receiver<()> {
        self.grants.subscribe()
    }

    /// How many events were folded on top of the snapshots at start.
    pub fn replayed(&self) -> u64 {
        self.replayed
    }

    /// Waits until the projections include `seq`.
    pub async fn wait_for(&self, seq: u64) -> Result<(), CoreError> {
        let mut applied = self.applied.clone();
        applied
            .wait_for(|s| *s >= seq)
            .await
            .map(|_| ())
            .map_err(|_| CoreError::Actor("projector stopped".into()))
    }

    /// Stops following at once, without a final snapshot (a crash).
    pub fn abandon(&self) {
        drop(self.stop.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    /// Stops following, writes a final snapshot and waits for it.
    pub async fn stop(&self) -> Result<(), CoreError> {
        let stop = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let task = self.task.lock().await.take();
        match task {
            Some(task) => task
                .await
                .map_err(|_| CoreError::Actor("the projector thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

/// Runs the projector's loop on its own thread (with its own single-thread
/// runtime): folding, indexing and snapshotting bursts of events is CPU and
/// blocking sled work that must not stall the workers carrying traffic.
/// Without `own_thread` it is a task on the current runtime.
fn spawn<F>(
    own_thread: bool,
    work: F,
) -> Result<oneshot::Receiver<Result<(), CoreError>>, CoreError>
where
    F: std::future::Future<Output = Result<(), CoreError>> + Send + 'static,
{
    let (done_tx, done_rx) = oneshot::channel();
    if !own_thread {
        tokio::spawn(async move {
            let _ = done_tx.send(work.await);
        });
        return Ok(done_rx);
    }
    std::thread::Builder::new()
        .name("beamd-projector".into())
        .spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(work),
                Err(e) => Err(CoreError::Actor(format!("projector runtime: {e}"))),
            };
            let _ = done_tx.send(result);
        })
        .map_err(|e| CoreError::Actor(format!("cannot start the projector thread: {e}")))?;
    Ok(done_rx)
}

/// Rebuilds the projections and starts following the log.
pub async fn start_projector(
    log: Arc<dyn EventLog>,
    store: Arc<dyn SnapshotStore>,
    index: Option<InspectorIndex>,
    policy: SnapshotPolicy,
    inspector_capacity: usize,
    own_thread: bool,
) -> Result<ProjectorHandle, CoreError> {
    let started = std::time::Instant::now();
    let (rebuilt, replayed) = rebuild(
        log.as_ref(),
        store.as_ref(),
        index.as_ref(),
        inspector_capacity,
    )
    .await?;
    tracing::debug!(seq = rebuilt.seq, replayed, elapsed = ?started.elapsed(), "projections rebuilt");
    let rebuilt_from = rebuilt.seq - replayed;
    let (applied_tx, applied) = watch::channel(rebuilt.seq);
    let (grants, _) = broadcast::channel(GRANT_CHANGES);
    let grants_tx = grants.clone();
    let mut follower = Follower::new(log.clone(), rebuilt.seq + 1, CHUNK);
    let queries = Arc::new(Queries::new(rebuilt));
    let (stop_tx, mut stop_rx) = oneshot::channel();
    let writer = queries.clone();
    let task = spawn(own_thread, async move {
        // Counted from the snapshots the rebuild started from, so a start that
        // replayed a long tail snapshots it at the next chance.
        let mut snapshot_seq = rebuilt_from;
        loop {
            let events = tokio::select! {
                biased;
                stopped = &mut stop_rx => match stopped {
                    Ok(()) => break,
                    // The handle was dropped without `stop` (a crash, in
                    // tests): end without a final snapshot, as a crash would.
                    Err(_) => return Ok(()),
                },
                events = follower.next_batch() => events?,
            };
            let mut captured: Vec<CapturedRequest> = Vec::new();
            let mut grants_changed = false;
            // Folded a slice at a time: the API reads the projections on
            // every call, and must not wait for a whole batch of thousands
            // of events.
            for slice in events.chunks(FOLD_SLICE) {
                let folded = writer.fold(slice);
                captured.extend(folded.captured);
                grants_changed |= folded.grants_changed;
            }
            let seq = writer.seq();
            if grants_changed {
                // No receiver (no live session) is no error.
                let _ = grants_tx.send(());
            }
            if let Some(i) = &index {
                i.record(&captured, seq)
                    .map_err(|e| CoreError::Actor(e.to_string()))?;
            }
            if policy.due(seq - snapshot_seq) {
                writer.snapshot().save(store.as_ref())?;
                snapshot_seq = seq;
            }
            applied_tx.send_replace(seq);
        }
        if policy.on_shutdown {
            let copy = writer.snapshot();
            if copy.seq > snapshot_seq {
                copy.save(store.as_ref())?;
            }
        }
        Ok(())
    })?;
    Ok(ProjectorHandle {
        replayed,
        queries,
        applied,
        grants,
        stop: std::sync::Mutex::new(Some(stop_tx)),
        task: tokio::sync::Mutex::new(Some(task)),
    })
}
