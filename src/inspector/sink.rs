//! Details are written off the data path: a request hands its detail to a
//! bounded queue and goes on; one thread gathers them for up to 20 ms and
//! writes them to the body store as one chunk. When the queue is full the
//! detail is dropped and counted, never waited for. A detail handed over
//! is readable at once: until it is written, reads find it in the queue.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Result;

use super::body_store::{BodyStore, Detail};
use crate::metric_catalog;

/// Details waiting to be written, at most.
const QUEUE: usize = 8192;
/// Details written in one batch (one chunk of the store), at most.
const BATCH: usize = 4096;
/// How long the writer gathers details before it writes them.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

type Item = (String, u64, Arc<Detail>);
/// Details handed over and not yet written, by request id.
type Pending = Arc<Mutex<HashMap<String, Arc<Detail>>>>;

/// Where captured details are handed over, and read back.
#[derive(Debug, Clone)]
pub struct BodySink {
    tx: SyncSender<Item>,
    pending: Pending,
    store: Arc<BodyStore>,
}

fn lock(pending: &Pending) -> MutexGuard<'_, HashMap<String, Arc<Detail>>> {
    pending.lock().unwrap_or_else(|p| p.into_inner())
}

impl BodySink {
    /// Starts the writer thread of `store`; it ends when every sink is dropped.
    pub fn spawn(store: Arc<BodyStore>) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        let pending = Pending::default();
        let (writer, queued) = (store.clone(), pending.clone());
        std::thread::Builder::new()
            .name("beamd-bodies".into())
            .spawn(move || write(&writer, &rx, &queued))?;
        Ok(Self { tx, pending, store })
    }

    /// Hands a detail over; drops it (counted) when the writer is behind.
    pub fn send(&self, id: String, at_ms: u64, detail: Detail) {
        let detail = Arc::new(detail);
        lock(&self.pending).insert(id.clone(), detail.clone());
        if let Err(TrySendError::Full((id, ..)) | TrySendError::Disconnected((id, ..))) =
            self.tx.try_send((id, at_ms, detail))
        {
            lock(&self.pending).remove(&id);
            metrics::counter!(metric_catalog::REQUEST_DETAILS_DROPPED.name).increment(1);
        }
    }

    /// The detail of request `id`: still queued, or stored.
    pub fn get(&self, id: &str) -> Result<Option<Detail>> {
        if let Some(queued) = lock(&self.pending).get(id) {
            return Ok(Some(Detail::clone(queued)));
        }
        // Removed from the queue only once written: the store has it now.
        self.store.get(id)
    }

    /// On a clean stop: waits (up to `within`) for the queue to be written,
    /// then flushes the store, so that no detail handed over is lost.
    pub fn finish(&self, within: std::time::Duration) -> Result<()> {
        let until = std::time::Instant::now() + within;
        while !lock(&self.pending).is_empty() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let left = lock(&self.pending).len();
        self.store.flush()?;
        anyhow::ensure!(
            left == 0,
            "{left} request details not written in {within:?}"
        );
        Ok(())
    }
}

fn write(store: &BodyStore, rx: &Receiver<Item>, pending: &Pending) {
    while let Ok(first) = rx.recv() {
        // One wake-up per batch, not per detail.
        std::thread::sleep(GATHER);
        let mut items = vec![first];
        while items.len() < BATCH {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        if let Err(e) = store.put_many(&items) {
            tracing::warn!("{} request details not stored: {e:#}", items.len());
        }
        let mut queued = lock(pending);
        for (id, ..) in &items {
            queued.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::BodyLimits;

    #[test]
    fn a_detail_is_readable_from_the_moment_it_is_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let limits = BodyLimits {
            cap_bytes: 1 << 20,
            ttl: std::time::Duration::from_secs(3600),
        };
        let store = Arc::new(BodyStore::open_dir(dir.path(), limits).unwrap());
        let sink = BodySink::spawn(store.clone()).unwrap();
        let detail = Detail {
            request_headers: vec![("a".into(), "b".into())],
            response_headers: vec![],
            request_body: b"hello".to_vec(),
            response_body: vec![],
        };
        sink.send("req_1".into(), 1_000, detail.clone());
        // Before the writer's gathering time is over: read from the queue.
        assert_eq!(sink.get("req_1").unwrap().as_ref(), Some(&detail));
        // The writer stores the batch, then takes it off its queue: wait for
        // both (the store holding it first is the race this test once lost).
        for _ in 0..500 {
            if store.get("req_1").unwrap().is_some() && lock(&sink.pending).is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(store.get("req_1").unwrap().as_ref(), Some(&detail));
        assert!(
            lock(&sink.pending).is_empty(),
            "written, so no longer queued"
        );
        assert_eq!(sink.get("req_1").unwrap(), Some(detail));
        assert_eq!(sink.get("req_2").unwrap(), None);
    }
}
