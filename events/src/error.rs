//! The event log's error type.

use crate::envelope::StreamId;

/// Everything that can go wrong reading or writing the event log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The stream's version was not what the append expected (optimistic concurrency).
    #[error("version conflict on stream {stream}: expected {expected}, found {actual}")]
    Conflict {
        /// The stream appended to.
        stream: StreamId,
        /// What the caller expected.
        expected: String,
        /// The stream's actual version.
        actual: u64,
    },
    /// A stream id that cannot be stored.
    #[error("invalid stream id {0:?}: must be 1..=128 printable ASCII characters")]
    InvalidStream(String),
    /// An append with no events.
    #[error("an append must carry at least one event")]
    EmptyAppend,
    /// A stored record failed its checksum, chain or decoding.
    #[error("corrupt record at seq {seq}: {reason}")]
    Corrupt {
        /// The first bad sequence number.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A guarded append's decision is out of date: an event it depended on
    /// was committed after the seq it was made at. Nothing was written.
    #[error("a {kind} event was committed at seq {seq}, after the decision made at seq {after}")]
    Stale {
        /// The kind of the newer event.
        kind: &'static str,
        /// Its seq.
        seq: u64,
        /// The seq the decision was made at.
        after: u64,
    },
    /// One append is larger than the log can store in one batch. Nothing was written.
    #[error("the append's {events} events are too large for one batch of the log")]
    TooLarge {
        /// How many events the append carried.
        events: usize,
    },
    /// The storage backend failed.
    #[error("storage error while {context}: {source}")]
    Storage {
        /// What the log was doing.
        context: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A write or flush failed earlier; the log cannot know what is durable and refuses all further work.
    #[error("the log is stopped after a failed write or flush: {0}")]
    Poisoned(String),
    /// Another writer appended to a shared log first: nothing of the batch
    /// was written, and the writer catches up and decides it again.
    #[error("another writer appended to the shared log first (after its message {0})")]
    Moved(u64),
    /// The log's writer has shut down.
    #[error("the log is closed")]
    Closed,
    /// An event could not be encoded.
    #[error("cannot encode event: {0}")]
    Encode(String),
}

impl LogError {
    /// Wraps a backend error with what the log was doing.
    pub fn storage(
        context: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        LogError::Storage {
            context,
            source: Box::new(source),
        }
    }
}
