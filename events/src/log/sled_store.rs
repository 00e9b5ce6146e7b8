//! The sled backend: one tree holding records, the stream index and the marker.
//!
//! Keys: `e` + seq (u64 BE) → record; `s` + stream + 0x00 + version (u64 BE)
//! → seq (u64 BE); `m` → marker (seq BE + hash). One tree so that a batch of
//! records, index entries and the marker is a single atomic sled batch.

use sled::{Batch, Tree};

use super::store::{EncodedRecord, Marker, Store};
use crate::envelope::StreamId;
use crate::error::LogError;

/// The name of the sled tree that holds the log.
pub const LOG_TREE: &str = "beamd.log";

const RECORD: u8 = b'e';
const INDEX: u8 = b's';
const MARKER_KEY: &[u8] = b"m";

/// Event records stored in a sled tree.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    tree: Tree,
}

impl SledStore {
    /// Uses the log tree of an open sled database.
    pub fn new(db: &sled::Db) -> Result<Self, LogError> {
        let tree = db
            .open_tree(LOG_TREE)
            .map_err(|e| LogError::storage("opening the log tree", e))?;
        Ok(Self {
            db: db.clone(),
            tree,
        })
    }

    /// The raw tree, for tools that inspect or repair stored bytes.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }
}

/// The sled key of the record at `seq`.
pub fn record_key(seq: u64) -> [u8; 9] {
    let mut key = [RECORD; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn index_prefix(stream: &StreamId) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.as_str().len() + 10);
    key.push(INDEX);
    key.extend_from_slice(stream.as_str().as_bytes());
    key.push(0);
    key
}

fn index_key(stream: &StreamId, version: u64) -> Vec<u8> {
    let mut key = index_prefix(stream);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn be_u64(bytes: &[u8], what: &'static str) -> Result<u64, LogError> {
    let arr: [u8; 8] = bytes
        .get(bytes.len().saturating_sub(8)..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| LogError::Corrupt {
            seq: 0,
            reason: format!("malformed {what}"),
        })?;
    Ok(u64::from_be_bytes(arr))
}

fn sled_err(context: &'static str) -> impl Fn(sled::Error) -> LogError {
    move |e| LogError::storage(context, e)
}

impl Store for SledStore {
    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self
            .tree
            .get(record_key(seq))
            .map_err(sled_err("reading a record"))?
            .map(|v| v.to_vec()))
    }

    fn last_seq(&self) -> Result<u64, LogError> {
        let last = self
            .tree
            .range(record_key(0)..=record_key(u64::MAX))
            .next_back()
            .transpose()
            .map_err(sled_err("finding the last record"))?;
        match last {
            Some((key, _)) => be_u64(&key, "record key"),
            None => Ok(0),
        }
    }

    fn scan(&self, from: u64, to: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        if from > to {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in self
            .tree
            .range(record_key(from)..=record_key(to))
            .take(limit)
        {
            let (key, value) = item.map_err(sled_err("scanning records"))?;
            out.push((be_u64(&key, "record key")?, value.to_vec()));
        }
        Ok(out)
    }

    fn stream_seqs(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<u64>, LogError> {
        let start = index_key(stream, from_version);
        let end = index_key(stream, u64::MAX);
        let mut out = Vec::new();
        for item in self.tree.range(start..=end).take(limit) {
            let (_, value) = item.map_err(sled_err("scanning a stream"))?;
            out.push(be_u64(&value, "index entry")?);
        }
        Ok(out)
    }

    fn stream_version(&self, stream: &StreamId, max_seq: u64) -> Result<u64, LogError> {
        // Newest first; entries past `max_seq` belong to a batch still in flight.
        for item in self.tree.scan_prefix(index_prefix(stream)).rev() {
            let (key, value) = item.map_err(sled_err("reading a stream's version"))?;
            if be_u64(&value, "index entry")? <= max_seq {
                return be_u64(&key, "index key");
            }
        }
        Ok(0)
    }

    fn write(&self, records: &[EncodedRecord], marker: Marker) -> Result<(), LogError> {
        let mut batch = Batch::default();
        for r in records {
            batch.insert(&record_key(r.seq), r.bytes.as_slice());
            batch.insert(index_key(&r.stream, r.version), &r.seq.to_be_bytes());
        }
        let mut m = Vec::with_capacity(40);
        m.extend_from_slice(&marker.seq.to_be_bytes());
        m.extend_from_slice(&marker.hash);
        batch.insert(MARKER_KEY, m);
        self.tree
            .apply_batch(batch)
            .map_err(sled_err("writing a batch"))
    }

    fn marker(&self) -> Result<Option<Marker>, LogError> {
        let Some(v) = self
            .tree
            .get(MARKER_KEY)
            .map_err(sled_err("reading the marker"))?
        else {
            return Ok(None);
        };
        if v.len() != 40 {
            return Err(LogError::Corrupt {
                seq: 0,
                reason: "malformed recovery marker".into(),
            });
        }
        let mut hash = [0; 32];
        hash.copy_from_slice(&v[8..]);
        Ok(Some(Marker {
            seq: be_u64(&v[..8], "marker")?,
            hash,
        }))
    }

    fn truncate_from(&self, from: u64) -> Result<u64, LogError> {
        let mut batch = Batch::default();
        let mut dropped = 0;
        for item in self.tree.range(record_key(from)..=record_key(u64::MAX)) {
            let (key, _) = item.map_err(sled_err("truncating records"))?;
            batch.remove(key);
            dropped += 1;
        }
        // Index entries of torn records may not be decodable from the record,
        // so the whole index is checked; this runs only after a crash.
        for item in self.tree.scan_prefix([INDEX]) {
            let (key, value) = item.map_err(sled_err("truncating the index"))?;
            if be_u64(&value, "index entry")? >= from {
                batch.remove(key);
            }
        }
        self.tree
            .apply_batch(batch)
            .map_err(sled_err("truncating the log"))?;
        Ok(dropped)
    }

    fn flush(&self) -> Result<(), LogError> {
        self.db.flush().map_err(sled_err("flushing"))?;
        Ok(())
    }
}
