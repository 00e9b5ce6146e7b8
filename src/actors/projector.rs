//! The projector: folds committed events into the projections (usage,
//! inspector, status, log summary) and the inspector's history index, and
//! snapshots them together by policy and on shutdown.

use std::sync::{Arc, RwLock, RwLockReadGuard};

use super::hot::{Hot, HotView};

use beamd_events::log::Follower;
use beamd_events::EventLog;
use beamd_snapshots::{Fold, Snapshot, SnapshotPolicy, SnapshotStore};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, oneshot, watch};

use super::CoreError;
use crate::projections::{
    AccountsProjection, CapturedRequest, CatalogProjection, DomainsProjection, GatewayProjection,
    InspectorIndex, InspectorProjection, LogSummary, Projections, StatusProjection,
    UsageProjection,
};

/// The id under which projections over the whole log are snapshotted.
pub const GLOBAL_ID: &str = "all";
const CHUNK: usize = 4096;
/// Grant changes a slow receiver may fall behind by (it then just checks).
const GRANT_CHANGES: usize = 16;
/// Events folded per hold of the projections' write lock, at most.
const FOLD_SLICE: usize = 128;

/// Snapshots every projection at their seq, then flushes the store.
fn snapshot(p: &Projections, store: &dyn SnapshotStore) -> Result<(), CoreError> {
    save(store, p.seq, &p.summary)?;
    save(store, p.seq, &p.usage)?;
    save(store, p.seq, &p.inspector)?;
    save(store, p.seq, &p.status)?;
    save(store, p.seq, &p.domains)?;
    save(store, p.seq, &p.catalog)?;
    save(store, p.seq, &p.gateway)?;
    save(store, p.seq, &p.accounts)?;
    store.flush()?;
    Ok(())
}

/// Saves one projection's snapshot at `seq`.
fn save<F: Fold + serde::Serialize>(
    store: &dyn SnapshotStore,
    seq: u64,
    fold: &F,
) -> Result<(), CoreError> {
    store.save(&Snapshot::new(F::KIND, GLOBAL_ID, seq, 0, fold)?)?;
    Ok(())
}

fn latest<F: Fold + DeserializeOwned>(
    store: &dyn SnapshotStore,
    head: u64,
) -> Result<Option<(F, u64)>, CoreError> {
    match store.latest(F::KIND, GLOBAL_ID)? {
        Some(s) if s.seq <= head => Ok(Some((s.decode()?, s.seq))),
        _ => Ok(None),
    }
}

/// Rebuilds the projections: the newest snapshot of each, then the log's tail.
/// Returns them and how many events were folded on top of the snapshots.
async fn rebuild(
    log: &dyn EventLog,
    store: &dyn SnapshotStore,
    index: Option<&InspectorIndex>,
    inspector_capacity: usize,
) -> Result<(Projections, u64), CoreError> {
    let head = log.head().seq;
    let summary = latest::<LogSummary>(store, head)?;
    let usage = latest::<UsageProjection>(store, head)?;
    let inspector = latest::<InspectorProjection>(store, head)?
        .filter(|(p, _)| p.capacity == inspector_capacity);
    let status = latest::<StatusProjection>(store, head)?;
    let domains = latest::<DomainsProjection>(store, head)?;
    let catalog = latest::<CatalogProjection>(store, head)?;
    let gateway = latest::<GatewayProjection>(store, head)?;
    let accounts = latest::<AccountsProjection>(store, head)?;
    // They are snapshotted together; if any is missing or they differ, start them all from one point.
    let seqs = [
        summary.as_ref().map(|s| s.1),
        usage.as_ref().map(|s| s.1),
        inspector.as_ref().map(|s| s.1),
        status.as_ref().map(|s| s.1),
        domains.as_ref().map(|s| s.1),
        catalog.as_ref().map(|s| s.1),
        gateway.as_ref().map(|s| s.1),
        accounts.as_ref().map(|s| s.1),
    ];
    let all = (
        summary, usage, inspector, status, domains, catalog, gateway, accounts,
    );
    let mut p = match all {
        (Some(a), Some(b), Some(c), Some(d), Some(e), Some(f), Some(g), Some(h))
            if seqs.iter().all(|s| *s == Some(a.1)) =>
        {
            Projections {
                seq: a.1,
                summary: a.0,
                usage: b.0,
                inspector: c.0,
                status: d.0,
                domains: e.0,
                catalog: f.0,
                gateway: g.0,
                accounts: h.0,
            }
        }
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
    shared: Arc<RwLock<Projections>>,
    hot: Arc<HotView>,
    applied: watch::Receiver<u64>,
    grants: broadcast::Sender<()>,
    stop: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    task: tokio::sync::Mutex<Option<oneshot::Receiver<Result<(), CoreError>>>>,
}

impl ProjectorHandle {
    /// Read access to the projections.
    pub fn read(&self) -> RwLockReadGuard<'_, Projections> {
        // Writers replace values whole under the lock; a poisoned lock still holds a consistent fold.
        self.shared.read().unwrap_or_else(|p| p.into_inner())
    }

    /// What the request path reads, without the projections' lock.
    pub fn hot(&self) -> Arc<Hot> {
        self.hot.get()
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

    /// The shared projections, for actors that read them.
    pub fn shared(&self) -> Arc<RwLock<Projections>> {
        self.shared.clone()
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
    let hot = Arc::new(HotView::new(&rebuilt));
    let shared = Arc::new(RwLock::new(rebuilt));
    let hot_writer = hot.clone();
    let (stop_tx, mut stop_rx) = oneshot::channel();
    let writer = shared.clone();
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
            let mut captured = Vec::new();
            let mut seq = 0;
            let mut grants_changed = false;
            // Folded a slice at a time: the data path reads the projections
            // (a tunnel's inspect mode, a domain's state) on every request,
            // and must not wait for a whole batch of thousands of events.
            for slice in events.chunks(FOLD_SLICE) {
                let mut p = writer.write().unwrap_or_else(|e| e.into_inner());
                for env in slice {
                    p.apply(env);
                    captured.extend(p.inspector.captured(env));
                }
                if slice.iter().any(super::hot::touches) {
                    hot_writer.refresh(&p);
                }
                grants_changed |= slice.iter().any(super::hot::changes_grants);
                seq = p.seq;
            }
            if grants_changed {
                // No receiver (no live session) is no error.
                let _ = grants_tx.send(());
            }
            if let Some(i) = &index {
                i.record(&captured, seq)
                    .map_err(|e| CoreError::Actor(e.to_string()))?;
            }
            if policy.due(seq - snapshot_seq) {
                let copy = writer.read().unwrap_or_else(|e| e.into_inner()).clone();
                snapshot(&copy, store.as_ref())?;
                snapshot_seq = seq;
            }
            applied_tx.send_replace(seq);
        }
        if policy.on_shutdown {
            let copy = writer.read().unwrap_or_else(|e| e.into_inner()).clone();
            if copy.seq > snapshot_seq {
                snapshot(&copy, store.as_ref())?;
            }
        }
        Ok(())
    })?;
    Ok(ProjectorHandle {
        replayed,
        shared,
        hot,
        applied,
        grants,
        stop: std::sync::Mutex::new(Some(stop_tx)),
        task: tokio::sync::Mutex::new(Some(task)),
    })
}
