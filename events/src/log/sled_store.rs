//! The sled backend: one tree holding records, the stream index and the marker.
//!
//! Since layout 2, a group-commit batch is stored as a few sled entries, not
//! two per event:
//! - `b` + last seq (u64 BE) → a *block*: the records of up to
//!   [`BLOCK_RECORDS`] consecutive seqs (at most about [`BLOCK_BYTES`]), with
//!   an offset table so that one record is found without decoding the others;
//! - `r` + stream + 0x00 + last version (u64 BE) → a *run* of the stream
//!   index: the first version (u64 BE), then the seq of each version from it
//!   to the last, as LEB128 deltas (consecutive seqs take a byte each);
//! - `x` → the seq (u64 BE) up to which every event is in a run;
//! - `m` → the marker (seq BE + hash).
//!
//! The stream index is written lazily: the events after `x` are indexed in
//! memory (the *tail*), and once it holds [`INDEX_EVERY`] events, each of its
//! streams becomes one run, written with the batch that filled it. A stream
//! that gets an event in every batch thus costs one index entry per
//! [`INDEX_EVERY`] events, not one per batch. The tail is rebuilt from the
//! blocks after `x` when the store is opened (and whenever another handle
//! on the same tree has moved `x`), so nothing depends on it surviving.
//!
//! Layout 1 stored `e` + seq → record and `s` + stream + 0x00 + version →
//! seq, one pair per event. Logs written that way are read as they are (a
//! record or index entry is looked up in both layouts) and new batches are
//! appended in layout 2, so a data dir never needs converting. The record
//! bytes are the same in both layouts: hashes, the chain, the Merkle tree and
//! proofs do not depend on how records are grouped.
//!
//! One tree, so that a batch's blocks, runs and the marker are a single
//! atomic sled batch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sled::{Batch, IVec, Tree};

use super::store::{EncodedRecord, Marker, Store};
use crate::envelope::{record_stream_version, StreamId};
use crate::error::LogError;

/// The name of the sled tree that holds the log.
pub const LOG_TREE: &str = "beamd.log";

/// The most records one block holds.
pub const BLOCK_RECORDS: usize = 1024;
/// A block is closed before its records pass this many bytes (a larger
/// record is a block of its own). sled splits a leaf at 16 entries whatever
/// their size, rewrites a whole leaf when it consolidates one, and writes a
/// leaf over 128 KiB (a quarter of its segment) to a file of its own:
/// blocks this small keep a leaf of blocks under that.
pub const BLOCK_BYTES: usize = 8 * 1024;

/// The stream index is written once this many events are indexed only in memory.
pub const INDEX_EVERY: usize = 4096;

const BLOCK: u8 = b'b';
const RUN: u8 = b'r';
const MARKER_KEY: &[u8] = b"m";
const INDEXED_KEY: &[u8] = b"x";
/// Layout 1: one entry per record.
const RECORD: u8 = b'e';
/// Layout 1: one index entry per event.
const INDEX: u8 = b's';
/// The first byte of a block's value: its format.
const BLOCK_FORMAT: u8 = 1;
/// Format byte, first seq (8), record count (4).
const BLOCK_HEADER: usize = 13;

/// Event records stored in a sled tree.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    tree: Tree,
    tail: Arc<Mutex<Tail>>,
}

/// The stream index of the events after the last written run.
#[derive(Debug, Default)]
struct Tail {
    /// Every event with seq `<= indexed` is in a run.
    indexed: u64,
    /// Events `indexed + 1 ..= seen` are in `streams`.
    seen: u64,
    /// (version, seq) of each, by stream, in order.
    streams: HashMap<StreamId, Vec<(u64, u64)>>,
    events: usize,
}

impl Tail {
    fn starting_at(indexed: u64) -> Self {
        Self {
            indexed,
            seen: indexed,
            ..Self::default()
        }
    }

    fn add(&mut self, stream: &StreamId, version: u64, seq: u64) {
        match self.streams.get_mut(stream) {
            Some(v) => v.push((version, seq)),
            None => {
                self.streams.insert(stream.clone(), vec![(version, seq)]);
            }
        }
        self.events += 1;
        self.seen = self.seen.max(seq);
    }
}

impl SledStore {
    /// Uses the log tree of an open sled database.
    pub fn new(db: &sled::Db) -> Result<Self, LogError> {
        let tree = db
            .open_tree(LOG_TREE)
            .map_err(|e| LogError::storage("opening the log tree", e))?;
        let store = Self {
            db: db.clone(),
            tree,
            tail: Arc::default(),
        };
        drop(store.current_tail()?);
        Ok(store)
    }

    /// The raw tree, for tools that inspect stored bytes.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Replaces the stored bytes of the record at `seq`, in whichever layout
    /// holds it (a record not stored is written in a block of its own), and
    /// touches nothing else: no index entry, no marker. For repair tools and
    /// for tests that forge damage; the log itself never rewrites a record.
    pub fn overwrite_record(&self, seq: u64, bytes: &[u8]) -> Result<(), LogError> {
        if let Some((key, block)) = self.block_holding(seq)? {
            let mut records = block.records()?;
            let i = (seq - block.first) as usize;
            records[i] = bytes.to_vec();
            let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            self.tree
                .insert(key, encode_block(block.first, &refs))
                .map_err(sled_err("overwriting a record"))?;
            return Ok(());
        }
        if self
            .tree
            .contains_key(record_key(seq))
            .map_err(sled_err("overwriting a record"))?
        {
            self.tree
                .insert(record_key(seq), bytes)
                .map_err(sled_err("overwriting a record"))?;
            return Ok(());
        }
        self.tree
            .insert(block_key(seq), encode_block(seq, &[bytes]))
            .map_err(sled_err("overwriting a record"))?;
        Ok(())
    }

    /// Removes the record at `seq` and nothing else, leaving a gap (a block
    /// holding it is cut in two). For repair tools and tests that forge
    /// damage.
    pub fn remove_record(&self, seq: u64) -> Result<(), LogError> {
        if let Some((key, block)) = self.block_holding(seq)? {
            let records = block.records()?;
            let cut = (seq - block.first) as usize;
            let mut batch = Batch::default();
            batch.remove(key);
            if cut > 0 {
                let before: Vec<&[u8]> = records[..cut].iter().map(Vec::as_slice).collect();
                batch.insert(&block_key(seq - 1), encode_block(block.first, &before));
            }
            if cut + 1 < records.len() {
                let after: Vec<&[u8]> = records[cut + 1..].iter().map(Vec::as_slice).collect();
                batch.insert(&block_key(block.last()), encode_block(seq + 1, &after));
            }
            return self
                .tree
                .apply_batch(batch)
                .map_err(sled_err("removing a record"));
        }
        self.tree
            .remove(record_key(seq))
            .map_err(sled_err("removing a record"))?;
        Ok(())
    }

    /// How many sled entries hold records and stream index entries, in each
    /// layout: (layout 1 records, layout 1 index entries, blocks, runs).
    pub fn entry_counts(&self) -> Result<(u64, u64, u64, u64), LogError> {
        let count = |prefix: u8| -> Result<u64, LogError> {
            let mut n = 0;
            for item in self.tree.scan_prefix([prefix]) {
                item.map_err(sled_err("counting entries"))?;
                n += 1;
            }
            Ok(n)
        };
        Ok((count(RECORD)?, count(INDEX)?, count(BLOCK)?, count(RUN)?))
    }

    /// The block holding `seq`, with its key.
    fn block_holding(&self, seq: u64) -> Result<Option<(IVec, Block)>, LogError> {
        let found = self
            .tree
            .range(block_key(seq)..=block_key(u64::MAX))
            .next()
            .transpose()
            .map_err(sled_err("reading a block"))?;
        let Some((key, value)) = found else {
            return Ok(None);
        };
        let block = Block::parse(be_u64(&key, "block key")?, value)?;
        Ok((block.first <= seq).then_some((key, block)))
    }
}

/// The sled key of a record stored in layout 1 (one entry per record): for
/// tools and tests that read or forge logs written in that layout.
pub fn record_key(seq: u64) -> [u8; 9] {
    prefixed_seq(RECORD, seq)
}

/// The sled key of a stream index entry in layout 1 (value: the seq, u64 BE).
pub fn legacy_index_key(stream: &StreamId, version: u64) -> Vec<u8> {
    stream_key(INDEX, stream, version)
}

fn block_key(last_seq: u64) -> [u8; 9] {
    prefixed_seq(BLOCK, last_seq)
}

fn prefixed_seq(prefix: u8, seq: u64) -> [u8; 9] {
    let mut key = [prefix; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn stream_prefix(kind: u8, stream: &StreamId) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.as_str().len() + 10);
    key.push(kind);
    key.extend_from_slice(stream.as_str().as_bytes());
    key.push(0);
    key
}

fn stream_key(kind: u8, stream: &StreamId, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(kind, stream);
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

/// Encodes consecutive records from `first`: format, first seq, count, an
/// offset table of count + 1 u32 (BE, from the start of the data), the data.
fn encode_block(first: u64, records: &[&[u8]]) -> Vec<u8> {
    let data: usize = records.iter().map(|r| r.len()).sum();
    let mut out = Vec::with_capacity(BLOCK_HEADER + 4 * (records.len() + 1) + data);
    out.push(BLOCK_FORMAT);
    out.extend_from_slice(&first.to_be_bytes());
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    let mut at = 0u32;
    out.extend_from_slice(&at.to_be_bytes());
    for r in records {
        at += r.len() as u32;
        out.extend_from_slice(&at.to_be_bytes());
    }
    for r in records {
        out.extend_from_slice(r);
    }
    out
}

/// A stored block, parsed lazily: its header and offset table are checked,
/// its records are sliced out on demand.
struct Block {
    first: u64,
    count: usize,
    value: IVec,
}

impl Block {
    fn parse(last: u64, value: IVec) -> Result<Self, LogError> {
        let corrupt = |reason: &str| LogError::Corrupt {
            seq: last,
            reason: format!("the block ending at this seq is malformed: {reason}"),
        };
        if value.len() < BLOCK_HEADER || value[0] != BLOCK_FORMAT {
            return Err(corrupt("unknown format or short header"));
        }
        let first = be_u64(&value[1..9], "block header")?;
        let count = u32::from_be_bytes(value[9..13].try_into().unwrap_or_default()) as usize;
        let table = BLOCK_HEADER + 4 * (count + 1);
        if count == 0 || first.checked_add(count as u64 - 1) != Some(last) || value.len() < table {
            return Err(corrupt("its header does not match its key"));
        }
        let len = value.len();
        let block = Self {
            first,
            count,
            value,
        };
        if block.offset(count) != Some(len - table) {
            return Err(corrupt("its offsets do not match its length"));
        }
        Ok(block)
    }

    fn last(&self) -> u64 {
        self.first + self.count as u64 - 1
    }

    fn offset(&self, i: usize) -> Option<usize> {
        let at = BLOCK_HEADER + 4 * i;
        let b: [u8; 4] = self.value.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_be_bytes(b) as usize)
    }

    /// The bytes of the record at `seq` (which the block holds).
    fn record(&self, seq: u64) -> Result<&[u8], LogError> {
        let i = (seq - self.first) as usize;
        let data = BLOCK_HEADER + 4 * (self.count + 1);
        match (self.offset(i), self.offset(i + 1)) {
            (Some(a), Some(b)) if a <= b => Ok(&self.value[data + a..data + b]),
            _ => Err(LogError::Corrupt {
                seq,
                reason: "the offset table of its block is malformed".into(),
            }),
        }
    }

    fn records(&self) -> Result<Vec<Vec<u8>>, LogError> {
        (self.first..=self.last())
            .map(|seq| self.record(seq).map(<[u8]>::to_vec))
            .collect()
    }
}

/// A run of the stream index: the seqs of versions `first_version..` of one
/// stream, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    first_version: u64,
    seqs: Vec<u64>,
}

impl Run {
    fn decode(key: &[u8], value: &[u8]) -> Result<Self, LogError> {
        let corrupt = || LogError::Corrupt {
            seq: 0,
            reason: "malformed stream index run".into(),
        };
        let last_version = be_u64(key, "index run key")?;
        let first_version = be_u64(value.get(..8).ok_or_else(corrupt)?, "index run")?;
        let mut seqs =
            Vec::with_capacity((last_version.saturating_sub(first_version) + 1) as usize);
        let (mut at, mut seq) = (8, 0u64);
        while at < value.len() {
            let (delta, used) = leb128(&value[at..]).ok_or_else(corrupt)?;
            seq = seq.checked_add(delta).ok_or_else(corrupt)?;
            seqs.push(seq);
            at += used;
        }
        if seqs.is_empty() || first_version + seqs.len() as u64 - 1 != last_version {
            return Err(corrupt());
        }
        Ok(Self {
            first_version,
            seqs,
        })
    }

    fn last_version(&self) -> u64 {
        self.first_version + self.seqs.len() as u64 - 1
    }

    fn key(&self, stream: &StreamId) -> Vec<u8> {
        stream_key(RUN, stream, self.last_version())
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(8 + self.seqs.len() + 8);
        v.extend_from_slice(&self.first_version.to_be_bytes());
        let mut prev = 0;
        for &seq in &self.seqs {
            let mut delta = seq - prev;
            loop {
                let byte = (delta & 0x7f) as u8;
                delta >>= 7;
                if delta == 0 {
                    v.push(byte);
                    break;
                }
                v.push(byte | 0x80);
            }
            prev = seq;
        }
        v
    }

    /// The version of the newest event with seq `<= max_seq`, if any.
    fn version_at(&self, max_seq: u64) -> Option<u64> {
        let n = self.seqs.partition_point(|&s| s <= max_seq);
        (n > 0).then(|| self.first_version + n as u64 - 1)
    }
}

/// An unsigned LEB128 number and how many bytes it took.
fn leb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The runs a tail's events make: one per stream (consecutive versions).
fn runs_of(tail: &Tail) -> impl Iterator<Item = (&StreamId, Run)> {
    tail.streams.iter().map(|(stream, events)| {
        let run = Run {
            first_version: events[0].0,
            seqs: events.iter().map(|(_, seq)| *seq).collect(),
        };
        (stream, run)
    })
}

impl SledStore {
    fn indexed_through(&self) -> Result<u64, LogError> {
        match self
            .tree
            .get(INDEXED_KEY)
            .map_err(sled_err("reading the index watermark"))?
        {
            Some(v) => be_u64(&v, "index watermark"),
            None => Ok(0),
        }
    }

    fn lock_tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        // The tail is replaced or extended whole under the lock.
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tail, brought up to date with what is stored: rebuilt when the
    /// written index moved (another handle wrote it), extended with blocks
    /// written by another handle. A record that does not decode ends the
    /// tail: recovery truncates the log there.
    fn current_tail(&self) -> Result<std::sync::MutexGuard<'_, Tail>, LogError> {
        let mut tail = self.lock_tail();
        let indexed = self.indexed_through()?;
        if indexed != tail.indexed || tail.seen < indexed {
            *tail = Tail::starting_at(indexed);
        }
        let from = tail.seen + 1;
        'blocks: for item in self.tree.range(block_key(from)..=block_key(u64::MAX)) {
            let (key, value) = item.map_err(sled_err("reading blocks"))?;
            let Ok(block) = Block::parse(be_u64(&key, "block key")?, value) else {
                break;
            };
            for seq in block.first.max(from)..=block.last() {
                let Ok((stream, version)) = block
                    .record(seq)
                    .and_then(|bytes| record_stream_version(seq, bytes))
                else {
                    break 'blocks;
                };
                tail.add(&stream, version, seq);
            }
        }
        Ok(tail)
    }

    fn layout1_last(&self) -> Result<u64, LogError> {
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

    fn layout1_stream_seqs(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, LogError> {
        let start = stream_key(INDEX, stream, from_version);
        let end = stream_key(INDEX, stream, u64::MAX);
        let mut out = Vec::new();
        for item in self.tree.range(start..=end).take(limit) {
            let (key, value) = item.map_err(sled_err("scanning a stream"))?;
            out.push((be_u64(&key, "index key")?, be_u64(&value, "index entry")?));
        }
        Ok(out)
    }
}

impl Store for SledStore {
    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, LogError> {
        if let Some((_, block)) = self.block_holding(seq)? {
            return Ok(Some(block.record(seq)?.to_vec()));
        }
        Ok(self
            .tree
            .get(record_key(seq))
            .map_err(sled_err("reading a record"))?
            .map(|v| v.to_vec()))
    }

    fn last_seq(&self) -> Result<u64, LogError> {
        let last_block = self
            .tree
            .range(block_key(0)..=block_key(u64::MAX))
            .next_back()
            .transpose()
            .map_err(sled_err("finding the last block"))?;
        let blocks = match last_block {
            Some((key, _)) => be_u64(&key, "block key")?,
            None => 0,
        };
        Ok(blocks.max(self.layout1_last()?))
    }

    fn scan(&self, from: u64, to: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(limit.min(4096));
        // Layout 1 first: a log written in it is older than any block.
        for item in self
            .tree
            .range(record_key(from)..=record_key(to))
            .take(limit)
        {
            let (key, value) = item.map_err(sled_err("scanning records"))?;
            out.push((be_u64(&key, "record key")?, value.to_vec()));
        }
        let mut blocks = Vec::new();
        'blocks: for item in self.tree.range(block_key(from)..=block_key(u64::MAX)) {
            let (key, value) = item.map_err(sled_err("scanning blocks"))?;
            let block = Block::parse(be_u64(&key, "block key")?, value)?;
            if block.first > to {
                break;
            }
            for seq in block.first.max(from)..=block.last().min(to) {
                if blocks.len() >= limit {
                    break 'blocks;
                }
                blocks.push((seq, block.record(seq)?.to_vec()));
            }
        }
        if out.is_empty() {
            return Ok(blocks);
        }
        // Both layouts in range (only after an upgrade): merged by seq.
        out.extend(blocks);
        out.sort_by_key(|(seq, _)| *seq);
        out.dedup_by_key(|(seq, _)| *seq);
        out.truncate(limit);
        Ok(out)
    }

    fn stream_seqs(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<u64>, LogError> {
        let mut out: Vec<u64> = self
            .layout1_stream_seqs(stream, from_version, limit)?
            .into_iter()
            .map(|(_, seq)| seq)
            .collect();
        let start = stream_key(RUN, stream, from_version);
        let end = stream_key(RUN, stream, u64::MAX);
        'runs: for item in self.tree.range(start..=end) {
            let (key, value) = item.map_err(sled_err("scanning a stream"))?;
            let run = Run::decode(&key, &value)?;
            for (i, seq) in run.seqs.iter().enumerate() {
                if out.len() >= limit {
                    break 'runs;
                }
                if run.first_version + i as u64 >= from_version {
                    out.push(*seq);
                }
            }
        }
        if out.len() < limit {
            let tail = self.current_tail()?;
            let events = tail.streams.get(stream).map_or(&[][..], Vec::as_slice);
            out.extend(
                events
                    .iter()
                    .filter(|(version, _)| *version >= from_version)
                    .map(|(_, seq)| *seq)
                    .take(limit - out.len()),
            );
        }
        Ok(out)
    }

    fn stream_version(&self, stream: &StreamId, max_seq: u64) -> Result<u64, LogError> {
        // Newest first; entries past `max_seq` belong to a batch still in flight.
        {
            let tail = self.current_tail()?;
            let events = tail.streams.get(stream).map_or(&[][..], Vec::as_slice);
            if let Some((version, _)) = events.iter().rev().find(|(_, seq)| *seq <= max_seq) {
                return Ok(*version);
            }
        }
        for item in self.tree.scan_prefix(stream_prefix(RUN, stream)).rev() {
            let (key, value) = item.map_err(sled_err("reading a stream's version"))?;
            if let Some(version) = Run::decode(&key, &value)?.version_at(max_seq) {
                return Ok(version);
            }
        }
        for item in self.tree.scan_prefix(stream_prefix(INDEX, stream)).rev() {
            let (key, value) = item.map_err(sled_err("reading a stream's version"))?;
            if be_u64(&value, "index entry")? <= max_seq {
                return be_u64(&key, "index key");
            }
        }
        Ok(0)
    }

    fn write(&self, records: &[EncodedRecord], marker: Marker) -> Result<(), LogError> {
        let mut batch = Batch::default();
        let mut start = 0;
        while start < records.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < records.len()
                && end - start < BLOCK_RECORDS
                && (end == start || bytes + records[end].bytes.len() <= BLOCK_BYTES)
            {
                bytes += records[end].bytes.len();
                end += 1;
            }
            let chunk = &records[start..end];
            let refs: Vec<&[u8]> = chunk.iter().map(|r| r.bytes.as_slice()).collect();
            batch.insert(
                &block_key(chunk[end - start - 1].seq),
                encode_block(chunk[0].seq, &refs),
            );
            start = end;
        }
        let mut m = Vec::with_capacity(40);
        m.extend_from_slice(&marker.seq.to_be_bytes());
        m.extend_from_slice(&marker.hash);
        batch.insert(MARKER_KEY, m);
        // The tail is extended only once the batch is stored; a failed write
        // poisons the log, which reopens the store (and rebuilds the tail).
        let mut tail = self.current_tail()?;
        let last = records.last().map_or(tail.seen, |r| r.seq);
        let mut next = Tail::starting_at(tail.indexed);
        let write_index = tail.events + records.len() >= INDEX_EVERY;
        if write_index {
            for (stream, events) in &tail.streams {
                next.streams.insert(stream.clone(), events.clone());
            }
            next.events = tail.events;
            for r in records {
                next.add(&r.stream, r.version, r.seq);
            }
            for (stream, run) in runs_of(&next) {
                batch.insert(run.key(stream), run.encode());
            }
            batch.insert(INDEXED_KEY, &last.to_be_bytes()[..]);
        }
        self.tree
            .apply_batch(batch)
            .map_err(sled_err("writing a batch"))?;
        if write_index {
            *tail = Tail::starting_at(last);
        } else {
            for r in records {
                tail.add(&r.stream, r.version, r.seq);
            }
        }
        Ok(())
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
        for item in self.tree.range(block_key(from)..=block_key(u64::MAX)) {
            let (key, value) = item.map_err(sled_err("truncating blocks"))?;
            let last = be_u64(&key, "block key")?;
            batch.remove(key);
            // A block that does not parse is dropped whole: nothing in it
            // can be trusted.
            match Block::parse(last, value) {
                Ok(block) if block.first < from => {
                    let kept = block.records()?;
                    let keep = (from - block.first) as usize;
                    let refs: Vec<&[u8]> = kept[..keep].iter().map(Vec::as_slice).collect();
                    batch.insert(&block_key(from - 1), encode_block(block.first, &refs));
                    dropped += (block.count - keep) as u64;
                }
                Ok(block) => dropped += block.count as u64,
                Err(_) => dropped += 1,
            }
        }
        // Index entries of torn records may not be decodable from the record,
        // so the whole index is checked; this runs only after a crash.
        for item in self.tree.scan_prefix([INDEX]) {
            let (key, value) = item.map_err(sled_err("truncating the index"))?;
            if be_u64(&value, "index entry")? >= from {
                batch.remove(key);
            }
        }
        for item in self.tree.scan_prefix([RUN]) {
            let (key, value) = item.map_err(sled_err("truncating the index"))?;
            let mut run = Run::decode(&key, &value)?;
            if run.seqs.last().is_some_and(|&last| last < from) {
                continue;
            }
            batch.remove(key.clone());
            run.seqs.retain(|&seq| seq < from);
            if !run.seqs.is_empty() {
                let mut k = key[..key.len() - 8].to_vec();
                k.extend_from_slice(&run.last_version().to_be_bytes());
                batch.insert(k, run.encode());
            }
        }
        let mut tail = self.lock_tail();
        let indexed = self.indexed_through()?;
        if indexed >= from {
            batch.insert(INDEXED_KEY, &(from - 1).to_be_bytes()[..]);
        }
        self.tree
            .apply_batch(batch)
            .map_err(sled_err("truncating the log"))?;
        // Rebuilt from what is left at the next use.
        *tail = Tail::starting_at(u64::MAX);
        Ok(dropped)
    }

    fn flush(&self) -> Result<(), LogError> {
        self.db.flush().map_err(sled_err("flushing"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_round_trips_and_answers_versions_by_seq() {
        let run = Run {
            first_version: 7,
            seqs: vec![3, 4, 5, 300, 70_000, u64::MAX / 2],
        };
        let stream = StreamId::new("tun_a").expect("stream");
        let back = Run::decode(&run.key(&stream), &run.encode()).expect("decodes");
        assert_eq!(back, run);
        assert_eq!(run.version_at(2), None);
        assert_eq!(run.version_at(5), Some(9));
        assert_eq!(run.version_at(299), Some(9));
        assert_eq!(run.version_at(u64::MAX), Some(12));
        let mut short = run.encode();
        short.pop();
        assert!(Run::decode(&run.key(&stream), &short).is_err());
    }

    #[test]
    fn a_block_gives_back_each_record_and_refuses_a_bad_header() {
        let records: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8; i * 3]).collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let bytes = encode_block(10, &refs);
        let block = Block::parse(14, IVec::from(bytes.clone())).expect("parses");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(block.record(10 + i as u64).expect("record"), r.as_slice());
        }
        assert!(
            Block::parse(15, IVec::from(bytes.clone())).is_err(),
            "key mismatch"
        );
        assert!(
            Block::parse(14, IVec::from(&bytes[..bytes.len() - 1])).is_err(),
            "short"
        );
    }
}
