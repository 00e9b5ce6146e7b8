//! An `EventLog` that writes in the caller's task: stage, write and flush
//! happen inside `append`, one append at a time. No thread, no timer: the
//! deterministic simulation runs beamd's core on it, single-threaded, so the
//! same seed gives the same log byte for byte. A failed write or flush
//! poisons it, like the group-commit log.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::committed::{read_committed, read_records_committed, read_stream_committed};
use super::core::{LogCore, RepairReport};
use super::store::Store;
use super::{Append, EventLog, LogFuture, LogHead};
use crate::clock::Clock;
use crate::envelope::{Envelope, StreamId};
use crate::error::LogError;

/// When an inline log acknowledges an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledge {
    /// After the flush that makes it durable (the contract).
    AfterFlush,
    /// After the write, flushing only every `n`th append: a planted bug, for
    /// the simulation test that proves lost acknowledged events are caught.
    BeforeFlush(u32),
}

struct Inner<S: Store> {
    core: LogCore<S>,
    poison: Option<String>,
    unflushed: u32,
}

/// A single-task `EventLog` over any `Store`.
pub struct InlineLog<S: Store> {
    store: Arc<S>,
    inner: Mutex<Inner<S>>,
    head_tx: watch::Sender<LogHead>,
    committed: watch::Receiver<LogHead>,
    acknowledge: Acknowledge,
}

impl<S: Store> InlineLog<S> {
    /// Opens the log over `store`, repairing a torn tail.
    pub fn open(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        acknowledge: Acknowledge,
    ) -> Result<(Self, RepairReport), LogError> {
        let (core, report) = LogCore::open(store.clone(), clock)?;
        let (head_tx, committed) = watch::channel(core.head());
        let log = Self {
            store,
            inner: Mutex::new(Inner {
                core,
                poison: None,
                unflushed: 0,
            }),
            head_tx,
            committed,
            acknowledge,
        };
        Ok((log, report))
    }

    /// Refuses every later append: a crashed process writes nothing more.
    pub fn close(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.poison.get_or_insert_with(|| "closed".into());
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    fn append_now(&self, append: &Append) -> Result<Vec<Envelope>, LogError> {
        // Whole values are replaced under the lock; a poisoned lock holds no torn state.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = &inner.poison {
            return Err(LogError::Poisoned(why.clone()));
        }
        let mut staged = inner.core.stage(std::iter::once(append));
        let outcome = staged
            .outcomes
            .pop()
            .unwrap_or_else(|| Err(LogError::Poisoned("nothing staged".into())));
        let envelopes = outcome?;
        let flush_now = match self.acknowledge {
            Acknowledge::AfterFlush => true,
            Acknowledge::BeforeFlush(every) => {
                inner.unflushed += 1;
                inner.unflushed >= every.max(1)
            }
        };
        let written = inner.core.write(&mut staged).and_then(|_| match flush_now {
            true => {
                inner.unflushed = 0;
                self.store.flush()
            }
            false => Ok(()),
        });
        if let Err(e) = written {
            inner.poison = Some(e.to_string());
            return Err(e);
        }
        self.head_tx.send_replace(inner.core.head());
        Ok(envelopes)
    }
}

impl<S: Store> EventLog for InlineLog<S> {
    fn append(&self, append: Append) -> LogFuture<'_, Vec<Envelope>> {
        Box::pin(async move { self.append_now(&append) })
    }

    fn read_from(&self, from_seq: u64, limit: usize) -> LogFuture<'_, Vec<Envelope>> {
        Box::pin(async move {
            read_committed(
                self.store.as_ref(),
                self.committed.borrow().seq,
                from_seq,
                limit,
            )
        })
    }

    fn read_records(&self, from_seq: u64, limit: usize) -> LogFuture<'_, Vec<(u64, Vec<u8>)>> {
        Box::pin(async move {
            read_records_committed(
                self.store.as_ref(),
                self.committed.borrow().seq,
                from_seq,
                limit,
            )
        })
    }

    fn read_stream<'a>(
        &'a self,
        stream: &'a StreamId,
        from_version: u64,
        limit: usize,
    ) -> LogFuture<'a, Vec<Envelope>> {
        Box::pin(async move {
            read_stream_committed(
                self.store.as_ref(),
                self.committed.borrow().seq,
                stream,
                from_version,
                limit,
            )
        })
    }

    fn stream_version<'a>(&'a self, stream: &'a StreamId) -> LogFuture<'a, u64> {
        Box::pin(async move {
            self.store
                .stream_version(stream, self.committed.borrow().seq)
        })
    }

    fn head(&self) -> LogHead {
        *self.committed.borrow()
    }

    fn subscribe(&self) -> watch::Receiver<LogHead> {
        self.committed.clone()
    }
}
