//! Details are written off the data path: a request hands its detail to a
//! bounded queue and goes on; one thread gathers them for up to 20 ms and
//! writes them to the body store as one chunk. When the queue is full the
//! detail is dropped and counted, never waited for.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use super::body_store::{BodyStore, Detail};

/// Details waiting to be written, at most.
const QUEUE: usize = 8192;
/// Details written in one batch (one chunk of the store), at most.
const BATCH: usize = 4096;
/// How long the writer gathers details before it writes them.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

type Item = (String, u64, Detail);

/// Where captured details are handed over.
#[derive(Debug, Clone)]
pub struct BodySink {
    tx: SyncSender<Item>,
}

impl BodySink {
    /// Starts the writer thread of `store`; it ends when every sink is dropped.
    pub fn spawn(store: Arc<BodyStore>) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("beamd-bodies".into())
            .spawn(move || write(&store, &rx))?;
        Ok(Self { tx })
    }

    /// Hands a detail over; drops it (counted) when the writer is behind.
    pub fn send(&self, id: String, at_ms: u64, detail: Detail) {
        match self.tx.try_send((id, at_ms, detail)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                metrics::counter!("beamd_request_details_dropped_total").increment(1);
            }
        }
    }
}

fn write(store: &BodyStore, rx: &Receiver<Item>) {
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
    }
}
