//! The append-only event log: the `EventLog` trait, appends with expected
//! versions, durability modes, and the backends behind it.

mod committed;
mod core;
mod follow;
mod group_commit;
mod inline;
mod jetstream;
mod memory_store;
mod reader;
mod recent;
mod sled_store;
mod store;

pub use self::core::{LogCore, RepairReport, Staged};
pub use follow::Follower;
pub use group_commit::GroupCommitLog;
pub use inline::{Acknowledge, InlineLog};
pub use jetstream::{JetStreamConfig, JetStreamStore};
pub use memory_store::MemoryStore;
pub use reader::{verify_chain, ChainReader};
pub use sled_store::{
    legacy_index_key, record_key, SledStore, BLOCK_BYTES, BLOCK_RECORDS, INDEX_EVERY, LOG_TREE,
};
pub use store::{EncodedRecord, Marker, Store};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use tokio::sync::watch;

use crate::envelope::{Envelope, Hash, StreamId, GENESIS_HASH};
use crate::error::LogError;
use crate::vocabulary::Event;

/// The event log on sled: the embedded default.
pub type SledLog = GroupCommitLog<SledStore>;
/// The event log on NATS JetStream: several edges, one log.
pub type JetStreamLog = GroupCommitLog<JetStreamStore>;

/// The event log in memory: for tests and simulations.
pub type MemoryLog = GroupCommitLog<MemoryStore>;

/// A boxed future returned by the object-safe `EventLog` methods.
pub type LogFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LogError>> + Send + 'a>>;

/// What the stream's version must be for an append to be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version (0 = empty).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `actual` satisfies this expectation.
    pub fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => v == actual,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// Events to append to one stream, atomically.
#[derive(Debug, Clone)]
pub struct Append {
    /// The stream appended to.
    pub stream: StreamId,
    /// The version the caller decided against.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<Event>,
    /// A condition on the rest of the log, for decisions that span streams.
    pub guard: Option<Guard>,
}

impl Append {
    /// An append of `events` to `stream` expecting `expected`.
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<Event>) -> Self {
        Self {
            stream,
            expected,
            events,
            guard: None,
        }
    }

    /// The same append, accepted only while `guard` holds.
    pub fn guarded(mut self, guard: Guard) -> Self {
        self.guard = Some(guard);
        self
    }
}

/// Optimistic concurrency across streams: the append is refused with
/// `LogError::Stale` when an event of one of `kinds` was committed after seq
/// `after` (by this node or, on a shared log, by any other). A decision that
/// depends on many streams (a unique name, a plan limit) is made at a seq and
/// recorded only if nothing it depended on changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// The seq the decision was made at.
    pub after: u64,
    /// The event kinds (`Event::kind`) the decision depended on.
    pub kinds: &'static [&'static str],
}

/// When appended events are flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Flush every group-commit batch before acknowledging it (the default).
    #[default]
    Always,
    /// Flush at most this often; appends are acknowledged after the flush that covers them.
    Interval(Duration),
    /// Never flush explicitly; acknowledge after the write. Acknowledged events
    /// can be lost on a crash: for benchmarks only.
    Off,
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Durability::Always),
            "off" => Ok(Durability::Off),
            other => match other.strip_prefix("interval:") {
                Some(ms) => ms
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(|ms| Durability::Interval(Duration::from_millis(ms)))
                    .ok_or_else(|| format!("bad interval {ms:?}: expected milliseconds > 0")),
                None => Err(format!(
                    "unknown durability {other:?}: expected always, interval:<ms> or off"
                )),
            },
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Always => f.write_str("always"),
            Durability::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            Durability::Off => f.write_str("off"),
        }
    }
}

/// The last committed event: its seq (0 for an empty log) and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHead {
    /// Sequence number of the last committed event.
    pub seq: u64,
    /// Its hash (`GENESIS_HASH` when empty).
    pub hash: Hash,
}

impl LogHead {
    /// The head of an empty log.
    pub const EMPTY: LogHead = LogHead {
        seq: 0,
        hash: GENESIS_HASH,
    };
}

/// The event log as the rest of beamd sees it. Object safe.
pub trait EventLog: Send + Sync {
    /// Appends atomically to one stream; resolves once the events are durable
    /// (per the log's durability mode) with their envelopes.
    fn append(&self, append: Append) -> LogFuture<'_, Vec<Envelope>>;

    /// Up to `limit` committed events from `from_seq` on, chain-checked.
    fn read_from(&self, from_seq: u64, limit: usize) -> LogFuture<'_, Vec<Envelope>>;

    /// Up to `limit` committed records from `from_seq` on, as stored (the
    /// Merkle tree's leaves), checksum-verified and chained.
    fn read_records(&self, from_seq: u64, limit: usize) -> LogFuture<'_, Vec<(u64, Vec<u8>)>>;

    /// Up to `limit` committed events of one stream from `from_version` on.
    fn read_stream<'a>(
        &'a self,
        stream: &'a StreamId,
        from_version: u64,
        limit: usize,
    ) -> LogFuture<'a, Vec<Envelope>>;

    /// The stream's committed version (0 when it has no events).
    fn stream_version<'a>(&'a self, stream: &'a StreamId) -> LogFuture<'a, u64>;

    /// The last committed event.
    fn head(&self) -> LogHead;

    /// Watches the committed head: changes only after events are durable.
    fn subscribe(&self) -> watch::Receiver<LogHead>;

    /// Whether other processes append to this log too (JetStream): state
    /// held in memory must then catch up with the log before it is trusted.
    fn shared(&self) -> bool {
        false
    }
}
