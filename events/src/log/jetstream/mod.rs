//! The log's records on NATS JetStream, behind the same `Store` trait as sled
//! and memory, so the same `LogCore` and group-commit writer run over it.
//!
//! One group-commit batch is one JetStream message: the batch's stored
//! records, each behind its length. It is published with
//! `Nats-Expected-Last-Sequence` set to the last message this store has
//! applied, so two writers can never both extend the same head: the second
//! publish is refused, and nothing forks. A follower task applies every
//! message of the stream, in order, to a local in-memory copy that serves
//! the reads; it checks each record's hash and chain link as it goes.
//!
//! A refused publish is `LogError::Moved`: the writer waits for the copy to
//! catch up, adopts the other writers' records and decides the batch again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod batch;
mod config;
mod follower;

pub use config::JetStreamConfig;

use super::memory_store::MemoryStore;
use super::store::{EncodedRecord, Marker, Store};
use crate::envelope::{decode_record, StreamId};
use crate::error::LogError;
use batch::encode_batch;
use follower::follow;

/// How long opening waits for the stream and the catch-up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one request setting up the stream or its consumer may take. Right
/// after a server is lost, the cluster may place a consumer on it and never
/// answer; another attempt is placed elsewhere.
const SETUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Room kept in a message for its headers.
const HEADER_ROOM: usize = 1024;
/// How long catching up waits for the follower before reading directly.
const FOLLOWER_GRACE: Duration = Duration::from_secs(1);
/// How long one publish may wait for its acknowledgement.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a publish is retried while servers fail over (a JetStream
/// leader election takes seconds).
const RETRY_FOR: Duration = Duration::from_secs(30);
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// How many times creating the stream is tried while a cluster forms (15 s).
const STREAM_ATTEMPTS: u32 = 60;

fn nats_error(context: &'static str) -> impl Fn(String) -> LogError {
    move |message| LogError::Storage {
        context,
        source: message.into(),
    }
}

#[derive(Debug, Default)]
struct Applied {
    /// The JetStream sequence of the last message in the local copy.
    message: u64,
    /// Why the follower stopped, if it did.
    broken: Option<String>,
}

/// Event records on a JetStream stream, with a local copy for reads.
pub struct JetStreamStore {
    copy: MemoryStore,
    applied: Mutex<Applied>,
    progress: watch::Sender<u64>,
    context: jetstream::Context,
    /// This store's id as a writer, in every message id it publishes.
    writer: String,
    stream: String,
    subject: String,
    runtime: tokio::runtime::Handle,
    follower: Mutex<Option<JoinHandle<()>>>,
    /// The message a writer that was not first must see before it decides
    /// again: the one after the head its refused publish expected.
    catch_up_to: AtomicU64,
    /// The largest message the servers take, less room for its headers.
    max_batch: usize,
}

impl JetStreamStore {
    /// Connects, creates the stream if it is missing, and reads all of it
    /// into the local copy before returning; then keeps following it.
    pub async fn open(config: &JetStreamConfig) -> Result<Arc<Self>, LogError> {
        tokio::time::timeout(OPEN_TIMEOUT, Self::connect(config))
            .await
            .map_err(|_| {
                nats_error("opening the JetStream log")(format!(
                    "no answer from {} within {OPEN_TIMEOUT:?}",
                    config.servers.join(",")
                ))
            })?
    }

    async fn connect(config: &JetStreamConfig) -> Result<Arc<Self>, LogError> {
        let servers = config
            .servers
            .iter()
            .map(|s| s.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| nats_error("reading the NATS server list")(e.to_string()))?;
        let client = async_nats::connect(servers)
            .await
            .map_err(|e| nats_error("connecting to NATS")(e.to_string()))?;
        // Headers (message id, expected sequence) count against the limit too.
        let max_batch = (client.server_info().max_payload as usize).saturating_sub(HEADER_ROOM);
        let context = jetstream::new(client);
        let subject = config.subject();
        // A cluster that is still forming (no JetStream leader yet) refuses
        // for a moment; the caller's timeout bounds the wait.
        let mut attempts = 0;
        let mut stream = loop {
            attempts += 1;
            let made = tokio::time::timeout(
                SETUP_TIMEOUT,
                context.get_or_create_stream(stream::Config {
                    name: config.stream.clone(),
                    subjects: vec![subject.clone()],
                    num_replicas: config.replicas,
                    storage: stream::StorageType::File,
                    allow_direct: true,
                    ..Default::default()
                }),
            )
            .await
            .unwrap_or_else(|_| {
                Err(async_nats::jetstream::context::CreateStreamErrorKind::TimedOut.into())
            });
            match made {
                Ok(stream) => break stream,
                Err(e) if attempts >= STREAM_ATTEMPTS => {
                    return Err(nats_error("creating the JetStream stream")(e.to_string()))
                }
                Err(e) => {
                    tracing::debug!("creating the JetStream stream, retrying: {e}");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        };
        let last = stream
            .info()
            .await
            .map_err(|e| nats_error("reading the JetStream stream's state")(e.to_string()))?
            .state
            .last_sequence;
        let (progress, mut seen) = watch::channel(0);
        let store = Arc::new(Self {
            copy: MemoryStore::new(),
            applied: Mutex::new(Applied::default()),
            progress,
            context,
            writer: batch::writer_id(),
            stream: config.stream.clone(),
            subject,
            runtime: tokio::runtime::Handle::current(),
            follower: Mutex::new(None),
            catch_up_to: AtomicU64::new(0),
            max_batch,
        });
        // Right after a server is lost the cluster may not place a consumer
        // for a few seconds: retried like the stream.
        let mut attempts = 0;
        let messages = loop {
            attempts += 1;
            let made = async {
                stream
                    .create_consumer(OrderedConfig {
                        deliver_policy: DeliverPolicy::All,
                        filter_subject: store.subject.clone(),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .messages()
                    .await
                    .map_err(|e| e.to_string())
            };
            let made = tokio::time::timeout(SETUP_TIMEOUT, made)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {SETUP_TIMEOUT:?}")));
            match made {
                Ok(messages) => break messages,
                Err(e) if attempts >= STREAM_ATTEMPTS => {
                    return Err(nats_error("following the JetStream stream")(e))
                }
                Err(e) => {
                    tracing::debug!("following the JetStream stream, retrying: {e}");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        };
        let follower = tokio::spawn(follow(Arc::downgrade(&store), messages));
        *lock(&store.follower) = Some(follower);
        while *seen.borrow_and_update() < last {
            if let Some(why) = &lock(&store.applied).broken {
                return Err(LogError::Corrupt {
                    seq: store.copy.last_seq()? + 1,
                    reason: why.clone(),
                });
            }
            if seen.changed().await.is_err() {
                break;
            }
        }
        Ok(store)
    }

    /// Applies message `message` (its records) to the local copy, once.
    fn apply(&self, message: u64, records: Vec<EncodedRecord>) -> Result<(), LogError> {
        let mut applied = lock(&self.applied);
        if message <= applied.message {
            return Ok(()); // this store's own write, applied when it was acknowledged
        }
        if let Some(last) = records.last() {
            let first = records[0].seq;
            let expected = self.copy.last_seq()? + 1;
            if first != expected {
                return Err(LogError::Corrupt {
                    seq: first,
                    reason: format!("message {message} starts at seq {first}, not {expected}"),
                });
            }
            let hash = decode_record(last.seq, &last.bytes)?.hash;
            self.copy.write(
                &records,
                Marker {
                    seq: last.seq,
                    hash,
                },
            )?;
        }
        applied.message = message;
        drop(applied);
        self.progress.send_replace(message);
        Ok(())
    }

    /// Publishes one batch after message `expected`. A failure that leaves
    /// the outcome open (a server gone, a leader being elected) is retried
    /// for a while under the same message id, so that a batch stored by the
    /// first attempt is acknowledged as a duplicate, never stored twice.
    fn publish(&self, payload: Vec<u8>, expected: u64) -> Result<u64, LogError> {
        // The writer's own id goes into the message id: two writers can
        // stage byte-identical batches (the same heartbeat, in the same
        // millisecond, on the same head), and the server must not take the
        // second for a retry of the first.
        let id = format!("{}-{}", self.writer, blake3::hash(&payload).to_hex());
        let payload = bytes::Bytes::from(payload);
        let deadline = std::time::Instant::now() + RETRY_FOR;
        loop {
            let publish = PublishMessage::build()
                .payload(payload.clone())
                .message_id(&id)
                .expected_last_sequence(expected);
            let acked = self.runtime.block_on(async {
                tokio::time::timeout(ATTEMPT_TIMEOUT, async {
                    self.context
                        .send_publish(self.subject.clone(), publish)
                        .await?
                        .await
                })
                .await
            });
            let error = match acked {
                Ok(Ok(ack)) => return Ok(ack.sequence),
                Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    self.catch_up_to.store(expected + 1, Ordering::Relaxed);
                    return Err(LogError::Moved(expected));
                }
                Ok(Err(e)) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    return Err(nats_error("appending to the JetStream log")(e.to_string()))
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no acknowledgement within {ATTEMPT_TIMEOUT:?}"),
            };
            if std::time::Instant::now() >= deadline {
                return Err(nats_error("appending to the JetStream log")(format!(
                    "{error} (retried for {RETRY_FOR:?})"
                )));
            }
            tracing::warn!("appending to the JetStream log failed, retrying: {error}");
            std::thread::sleep(RETRY_PAUSE);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Values are replaced whole under the lock; a poisoned one is consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for JetStreamStore {
    fn drop(&mut self) {
        if let Some(follower) = lock(&self.follower).take() {
            follower.abort();
        }
    }
}

impl Store for JetStreamStore {
    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, LogError> {
        self.copy.get(seq)
    }

    fn last_seq(&self) -> Result<u64, LogError> {
        self.copy.last_seq()
    }

    fn scan(&self, from: u64, to: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        self.copy.scan(from, to, limit)
    }

    fn stream_seqs(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<u64>, LogError> {
        self.copy.stream_seqs(stream, from_version, limit)
    }

    fn stream_version(&self, stream: &StreamId, max_seq: u64) -> Result<u64, LogError> {
        self.copy.stream_version(stream, max_seq)
    }

    fn write(&self, records: &[EncodedRecord], _marker: Marker) -> Result<(), LogError> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let expected = {
            let applied = lock(&self.applied);
            if let Some(why) = &applied.broken {
                return Err(nats_error("appending to the JetStream log")(why.clone()));
            }
            if first.seq != self.copy.last_seq()? + 1 {
                self.catch_up_to.store(applied.message, Ordering::Relaxed);
                return Err(LogError::Moved(applied.message));
            }
            applied.message
        };
        let message = self.publish(encode_batch(records), expected)?;
        self.apply(message, records.to_vec())
    }

    fn marker(&self) -> Result<Option<Marker>, LogError> {
        self.copy.marker()
    }

    fn truncate_from(&self, from: u64) -> Result<u64, LogError> {
        if from > self.copy.last_seq()? {
            return Ok(0);
        }
        Err(LogError::Corrupt {
            seq: from,
            reason: "records on JetStream are never truncated".into(),
        })
    }

    /// A JetStream acknowledgement means the stream's replicas hold the
    /// message: there is nothing more to flush.
    fn flush(&self) -> Result<(), LogError> {
        Ok(())
    }

    fn shared(&self) -> bool {
        true
    }

    fn fits(&self, records: &[EncodedRecord]) -> bool {
        batch::batch_len(records) <= self.max_batch
    }

    fn catch_up(&self) -> Result<(), LogError> {
        self.runtime.block_on(follower::catch_up(self))?;
        match &lock(&self.applied).broken {
            Some(why) => Err(nats_error("catching up with the JetStream log")(
                why.clone(),
            )),
            None => Ok(()),
        }
    }
}
