//! The group-commit writer: one thread owns the `LogCore`; every append that
//! arrives while a flush runs joins the next batch, and one flush covers it.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{oneshot, watch};

use super::committed::{read_committed, read_records_committed, read_stream_committed};
use super::core::{LogCore, RepairReport, Staged};
use super::recent::Recent;
use super::store::Store;
use super::{Append, Durability, EventLog, LogFuture, LogHead};
use crate::clock::Clock;
use crate::envelope::{Envelope, StreamId};
use crate::error::LogError;

/// The most events one group-commit batch takes before it is written.
const MAX_BATCH_EVENTS: usize = 16_384;
/// How often a writer over a shared log adopts what other writers appended
/// while it had nothing to write.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// How many times a batch is decided again after other writers got ahead.
const MAX_RETRIES: usize = 64;
/// How long a batch waits for the appenders the batch before it acknowledged.
const LINGER: std::time::Duration = std::time::Duration::from_micros(200);

type Reply = oneshot::Sender<Result<Vec<Envelope>, LogError>>;

struct Request {
    append: Append,
    reply: Reply,
}

/// An `EventLog` over any `Store`, with a group-commit writer thread.
pub struct GroupCommitLog<S: Store> {
    store: Arc<S>,
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    committed: watch::Receiver<LogHead>,
    recent: Arc<Mutex<Recent>>,
    poison: Arc<Mutex<Option<String>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl<S: Store> GroupCommitLog<S> {
    /// Opens the log over `store` (repairing a torn tail) and starts its writer.
    pub fn open(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        durability: Durability,
    ) -> Result<(Self, RepairReport), LogError> {
        let (core, report) = LogCore::open(store.clone(), clock)?;
        let (head_tx, committed) = watch::channel(core.head());
        let (sender, receiver) = mpsc::channel();
        let poison = Arc::new(Mutex::new(None));
        let recent = Arc::new(Mutex::new(Recent::default()));
        let writer = Writer {
            recent: recent.clone(),
            core,
            durability,
            receiver,
            head_tx,
            poison: poison.clone(),
            unflushed: Vec::new(),
            last_flush: Instant::now(),
            last_batch: 0,
        };
        let handle = std::thread::Builder::new()
            .name("beamd-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| LogError::storage("starting the log writer thread", e))?;
        let log = Self {
            store,
            sender: Mutex::new(Some(sender)),
            committed,
            recent,
            poison,
            writer: Mutex::new(Some(handle)),
        };
        Ok((log, report))
    }

    /// Stops accepting appends, flushes what was written, and waits for the writer.
    pub fn close(&self) {
        lock(&self.sender).take();
        if let Some(handle) = lock(&self.writer).take() {
            // A panicked writer has already failed every pending append.
            let _ = handle.join();
        }
    }

    /// Why the writer stopped, once a write or flush has failed.
    pub fn poisoned(&self) -> Option<String> {
        lock(&self.poison).clone()
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    fn stopped(&self) -> LogError {
        match lock(&self.poison).clone() {
            Some(why) => LogError::Poisoned(why),
            None => LogError::Closed,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are replaced whole, so a poisoned lock holds no torn state.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: Store> Drop for GroupCommitLog<S> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<S: Store> EventLog for GroupCommitLog<S> {
    fn append(&self, append: Append) -> LogFuture<'_, Vec<Envelope>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let sent = lock(&self.sender)
                .as_ref()
                .map(|s| s.send(Request { append, reply }).is_ok())
                .unwrap_or(false);
            if !sent {
                return Err(self.stopped());
            }
            match answer.await {
                Ok(result) => result,
                Err(_) => Err(self.stopped()),
            }
        })
    }

    fn read_from(&self, from_seq: u64, limit: usize) -> LogFuture<'_, Vec<Envelope>> {
        Box::pin(async move {
            let head = self.committed.borrow().seq;
            if let Some(events) = lock(&self.recent).read(from_seq.max(1), head, limit) {
                return Ok(events);
            }
            read_committed(self.store.as_ref(), head, from_seq, limit)
        })
    }

    fn read_records(&self, from_seq: u64, limit: usize) -> LogFuture<'_, Vec<(u64, Vec<u8>)>> {
        Box::pin(async move {
            let head = self.committed.borrow().seq;
            read_records_committed(self.store.as_ref(), head, from_seq, limit)
        })
    }

    fn read_stream<'a>(
        &'a self,
        stream: &'a StreamId,
        from_version: u64,
        limit: usize,
    ) -> LogFuture<'a, Vec<Envelope>> {
        Box::pin(async move {
            let head = self.committed.borrow().seq;
            read_stream_committed(self.store.as_ref(), head, stream, from_version, limit)
        })
    }

    fn stream_version<'a>(&'a self, stream: &'a StreamId) -> LogFuture<'a, u64> {
        Box::pin(async move {
            let head = self.committed.borrow().seq;
            self.store.stream_version(stream, head)
        })
    }

    fn head(&self) -> LogHead {
        *self.committed.borrow()
    }

    fn subscribe(&self) -> watch::Receiver<LogHead> {
        self.committed.clone()
    }

    fn shared(&self) -> bool {
        self.store.shared()
    }
}

struct Writer<S: Store> {
    recent: Arc<Mutex<Recent>>,
    core: LogCore<S>,
    durability: Durability,
    receiver: mpsc::Receiver<Request>,
    head_tx: watch::Sender<LogHead>,
    poison: Arc<Mutex<Option<String>>>,
    /// Written but not yet flushed: acknowledged at the next flush.
    unflushed: Vec<(Reply, Vec<Envelope>)>,
    last_flush: Instant,
    /// How many appends the last batch took.
    last_batch: usize,
}

impl<S: Store> Writer<S> {
    fn run(mut self) {
        loop {
            let first = match self.next_deadline() {
                None => match self.receiver.recv() {
                    Ok(r) => Some(r),
                    Err(_) => break,
                },
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match self.receiver.recv_timeout(wait) {
                        Ok(r) => Some(r),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            let mut batch = Vec::new();
            if let Some(first) = first {
                let mut events = first.append.events.len();
                batch.push(first);
                let linger_until = Instant::now() + LINGER;
                while events < MAX_BATCH_EVENTS {
                    match self.receiver.try_recv() {
                        Ok(r) => {
                            events += r.append.events.len();
                            batch.push(r);
                        }
                        // The appenders the last batch acknowledged are
                        // likely on their way back: wait a moment for them
                        // rather than flush for a few.
                        Err(_)
                            if batch.len() < self.last_batch && Instant::now() < linger_until =>
                        {
                            let left = linger_until.saturating_duration_since(Instant::now());
                            match self.receiver.recv_timeout(left) {
                                Ok(r) => {
                                    events += r.append.events.len();
                                    batch.push(r);
                                }
                                Err(_) => break,
                            }
                        }
                        Err(_) => break,
                    }
                }
                self.last_batch = batch.len();
            }
            if let Err(e) = self.commit(batch) {
                self.fail(e);
                return;
            }
        }
        // Closing: whatever was written is flushed before the writer ends,
        // in every durability mode.
        if let Err(e) = self.flush_and_ack().and_then(|_| self.core.store().flush()) {
            self.fail(e);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let flush = match self.durability {
            Durability::Interval(every) if !self.unflushed.is_empty() => {
                Some(self.last_flush + every)
            }
            _ => None,
        };
        let follow = self
            .core
            .store()
            .shared()
            .then(|| Instant::now() + FOLLOW_EVERY);
        match (flush, follow) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Adopts other writers' records (a shared log) and publishes the head:
    /// they are durable where they were written.
    fn adopt(&mut self) -> Result<(), LogError> {
        if self.core.store().shared() && self.core.adopt()? > 0 {
            self.head_tx.send_replace(self.core.head());
        }
        Ok(())
    }

    fn commit(&mut self, mut batch: Vec<Request>) -> Result<(), LogError> {
        self.adopt()?;
        while !batch.is_empty() {
            // Halve the batch until the store takes it in one write; an
            // append too large on its own is refused, nothing written.
            let mut take = batch.len();
            let staged = loop {
                let staged = self.core.stage(batch[..take].iter().map(|r| &r.append));
                if self.core.store().fits(&staged.records) {
                    break Some(staged);
                }
                if take == 1 {
                    break None;
                }
                take /= 2;
            };
            let rest = batch.split_off(take);
            match staged {
                Some(staged) => self.commit_chunk(batch, staged)?,
                None => {
                    for request in batch {
                        let events = request.append.events.len();
                        let _ = request.reply.send(Err(LogError::TooLarge { events }));
                    }
                }
            }
            batch = rest;
        }
        let due = match self.durability {
            Durability::Always | Durability::Off => true,
            Durability::Interval(every) => self.last_flush.elapsed() >= every,
        };
        if due {
            self.flush_and_ack()?;
        }
        Ok(())
    }

    /// Writes one staged batch, deciding it again on top of other writers'
    /// records each time one of them got ahead.
    fn commit_chunk(&mut self, batch: Vec<Request>, mut staged: Staged) -> Result<(), LogError> {
        let mut retries = 0;
        let written = loop {
            match self.core.write(&mut staged) {
                // Another writer got ahead: nothing was written; decide
                // the batch again on top of what it wrote.
                Err(LogError::Moved(_)) if retries < MAX_RETRIES => {
                    retries += 1;
                    self.core.store().catch_up()?;
                    self.adopt()?;
                    staged = self.core.stage(batch.iter().map(|r| &r.append));
                }
                written => break written,
            }
        };
        if let Err(LogError::Moved(at)) = written {
            for request in batch {
                let _ = request.reply.send(Err(LogError::Moved(at)));
            }
            return Ok(());
        }
        for (request, outcome) in batch.into_iter().zip(staged.outcomes) {
            match (outcome, &written) {
                (Ok(envs), Ok(())) => self.unflushed.push((request.reply, envs)),
                (Err(e), _) => {
                    let _ = request.reply.send(Err(e));
                }
                (Ok(_), Err(e)) => {
                    let _ = request.reply.send(Err(LogError::Poisoned(e.to_string())));
                }
            }
        }
        written
    }

    fn flush_and_ack(&mut self) -> Result<(), LogError> {
        if self.unflushed.is_empty() {
            return Ok(());
        }
        if self.durability != Durability::Off {
            self.core.store().flush()?;
        }
        self.last_flush = Instant::now();
        // Published before the head moves, so a reader that sees the new
        // head finds its events here or in the store.
        lock(&self.recent).publish(self.unflushed.iter().flat_map(|(_, envs)| envs));
        self.head_tx.send_replace(self.core.head());
        for (reply, envs) in self.unflushed.drain(..) {
            // A caller that gave up waiting still has its events committed.
            let _ = reply.send(Ok(envs));
        }
        Ok(())
    }

    /// A failed write or flush is fatal: nobody can know what reached the disk.
    fn fail(&mut self, error: LogError) {
        let why = error.to_string();
        tracing::error!(error = %why, "event log writer stopped");
        *lock(&self.poison) = Some(why.clone());
        for (reply, _) in self.unflushed.drain(..) {
            let _ = reply.send(Err(LogError::Poisoned(why.clone())));
        }
        while let Ok(request) = self.receiver.try_recv() {
            let _ = request.reply.send(Err(LogError::Poisoned(why.clone())));
        }
    }
}
