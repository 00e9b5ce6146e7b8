//! The storage a log backend provides: records by seq, a stream index, and a marker.

use crate::envelope::{Hash, StreamId};
use crate::error::LogError;

/// One encoded event ready to be stored.
#[derive(Debug, Clone)]
pub struct EncodedRecord {
    /// Its global sequence number.
    pub seq: u64,
    /// Its stream.
    pub stream: StreamId,
    /// Its version within the stream.
    pub version: u64,
    /// The stored record bytes (see `envelope`).
    pub bytes: Vec<u8>,
}

/// A point in the log known to be whole: recovery re-checks only what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// The seq of a record written by an earlier batch.
    pub seq: u64,
    /// That record's hash.
    pub hash: Hash,
}

/// Storage primitives under a log. All methods take `&self`: readers run
/// concurrently with the single writer.
pub trait Store: Send + Sync + 'static {
    /// The record stored at `seq`, if any.
    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, LogError>;
    /// The highest stored seq (0 when empty).
    fn last_seq(&self) -> Result<u64, LogError>;
    /// Up to `limit` records with `from <= seq <= to`, in order.
    fn scan(&self, from: u64, to: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, LogError>;
    /// Up to `limit` seqs of a stream's events with version `>= from_version`, in order.
    fn stream_seqs(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<u64>, LogError>;
    /// The stream's highest stored version among events with seq `<= max_seq`
    /// (0 when it has none).
    fn stream_version(&self, stream: &StreamId, max_seq: u64) -> Result<u64, LogError>;
    /// Stores records, their index entries and the marker, atomically.
    fn write(&self, records: &[EncodedRecord], marker: Marker) -> Result<(), LogError>;
    /// The marker stored with the last write, if any.
    fn marker(&self) -> Result<Option<Marker>, LogError>;
    /// Removes every record with seq `>= from` and its index entries; returns how many records.
    fn truncate_from(&self, from: u64) -> Result<u64, LogError>;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<(), LogError>;
    /// Whether other writers append to the same log (JetStream): the writer
    /// then adopts their records as they arrive, and a batch they got ahead
    /// of (`LogError::Moved`) is decided again on top of them.
    fn shared(&self) -> bool {
        false
    }
    /// Waits until this store holds everything the shared log has committed.
    fn catch_up(&self) -> Result<(), LogError> {
        Ok(())
    }
    /// Whether these records can be written as one batch (JetStream: one
    /// message within the server's max payload). A batch that does not fit
    /// is split by the writer between appends, never inside one.
    fn fits(&self, _records: &[EncodedRecord]) -> bool {
        true
    }
}
