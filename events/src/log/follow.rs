//! Tail-following committed events: read what is there, then wait for the head to move.

use std::sync::Arc;

use tokio::sync::watch;

use super::{EventLog, LogHead};
use crate::envelope::Envelope;
use crate::error::LogError;

/// Follows a log from a seq on, yielding committed events in batches.
pub struct Follower {
    log: Arc<dyn EventLog>,
    next: u64,
    head: watch::Receiver<LogHead>,
    batch: usize,
}

impl Follower {
    /// Follows `log` starting at `from_seq`, up to `batch` events per call.
    pub fn new(log: Arc<dyn EventLog>, from_seq: u64, batch: usize) -> Self {
        let head = log.subscribe();
        Self {
            log,
            next: from_seq.max(1),
            head,
            batch: batch.max(1),
        }
    }

    /// The next committed events; waits while there are none.
    ///
    /// Cancel safe: events are taken and `next` advanced within one poll; the
    /// only point where it waits is the head watch.
    pub async fn next_batch(&mut self) -> Result<Vec<Envelope>, LogError> {
        loop {
            // Mark the head seen before reading, so a commit that lands after
            // the read still wakes the wait below.
            self.head.borrow_and_update();
            let events = self.log.read_from(self.next, self.batch).await?;
            if let Some(last) = events.last() {
                self.next = last.seq + 1;
                return Ok(events);
            }
            self.head.changed().await.map_err(|_| LogError::Closed)?;
        }
    }
}
