//! The in-memory backend, with crash and torn-write injection for simulations.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::store::{EncodedRecord, Marker, Store};
use crate::envelope::StreamId;
use crate::error::LogError;

#[derive(Debug, Default)]
struct Contents {
    records: BTreeMap<u64, Vec<u8>>,
    index: BTreeMap<(StreamId, u64), u64>,
    marker: Option<Marker>,
}

#[derive(Debug, Default)]
struct State {
    live: Contents,
    /// The last seq made durable by a flush; a crash drops what follows.
    durable_seq: u64,
    /// The marker as of the last flush.
    durable_marker: Option<Marker>,
}

/// Event records in memory. `crash` forgets everything not flushed.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    fail_flushes: AtomicBool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated:
        // every mutation below is a single assignment or insert.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Simulates a crash: everything written since the last flush is lost. With
    /// `torn`, the first lost record survives as a truncated half, as a torn
    /// write would leave it.
    pub fn crash(&self, torn: bool) {
        let mut state = self.lock();
        let durable_seq = state.durable_seq;
        let lost = state.live.records.split_off(&(durable_seq + 1));
        let first_lost = lost
            .into_iter()
            .next()
            .map(|(seq, bytes)| (seq, bytes[..bytes.len() / 2].to_vec()));
        state.live.index.retain(|_, seq| *seq <= durable_seq);
        state.live.marker = state.durable_marker;
        if let (true, Some((seq, half))) = (torn, first_lost) {
            state.live.records.insert(seq, half);
        }
    }

    /// Makes every later flush fail (as a full or failing disk would), or stops that.
    pub fn fail_flushes(&self, fail: bool) {
        self.fail_flushes.store(fail, Ordering::SeqCst);
    }

    /// Overwrites one byte of a stored record (tamper injection).
    pub fn flip_byte(&self, seq: u64, offset: usize) -> bool {
        let mut state = self.lock();
        match state
            .live
            .records
            .get_mut(&seq)
            .and_then(|r| r.get_mut(offset))
        {
            Some(byte) => {
                *byte ^= 0xff;
                true
            }
            None => false,
        }
    }
}

impl Store for MemoryStore {
    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.lock().live.records.get(&seq).cloned())
    }

    fn last_seq(&self) -> Result<u64, LogError> {
        Ok(self
            .lock()
            .live
            .records
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0))
    }

    fn scan(&self, from: u64, to: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        if from > to {
            return Ok(Vec::new());
        }
        Ok(self
            .lock()
            .live
            .records
            .range(from..=to)
            .take(limit)
            .map(|(s, b)| (*s, b.clone()))
            .collect())
    }

    fn stream_seqs(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<u64>, LogError> {
        let state = self.lock();
        Ok(state
            .live
            .index
            .range((stream.clone(), from_version)..=(stream.clone(), u64::MAX))
            .take(limit)
            .map(|(_, seq)| *seq)
            .collect())
    }

    fn stream_version(&self, stream: &StreamId, max_seq: u64) -> Result<u64, LogError> {
        let state = self.lock();
        Ok(state
            .live
            .index
            .range((stream.clone(), 0)..=(stream.clone(), u64::MAX))
            .rev()
            .find(|(_, seq)| **seq <= max_seq)
            .map(|((_, v), _)| *v)
            .unwrap_or(0))
    }

    fn write(&self, records: &[EncodedRecord], marker: Marker) -> Result<(), LogError> {
        let mut state = self.lock();
        for r in records {
            state.live.records.insert(r.seq, r.bytes.clone());
            state
                .live
                .index
                .insert((r.stream.clone(), r.version), r.seq);
        }
        state.live.marker = Some(marker);
        Ok(())
    }

    fn marker(&self) -> Result<Option<Marker>, LogError> {
        Ok(self.lock().live.marker)
    }

    fn truncate_from(&self, from: u64) -> Result<u64, LogError> {
        let mut state = self.lock();
        let dropped = state.live.records.split_off(&from).len() as u64;
        state.live.index.retain(|_, seq| *seq < from);
        Ok(dropped)
    }

    fn flush(&self) -> Result<(), LogError> {
        if self.fail_flushes.load(Ordering::SeqCst) {
            let error = std::io::Error::other("injected flush failure");
            return Err(LogError::storage("flushing", error));
        }
        let mut state = self.lock();
        state.durable_seq = state.live.records.keys().next_back().copied().unwrap_or(0);
        state.durable_marker = state.live.marker;
        Ok(())
    }
}
