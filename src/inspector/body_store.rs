//! The bounded body store: each fully captured request's headers and body
//! prefixes under a size cap and a time to live, oldest pruned first. The
//! log keeps each body's SHA-256 and a truncated flag: bodies can go. The
//! store is its own sled database (`<data dir>/bodies`), not a tree of the
//! log's: the log flushes before every acknowledgement, and details
//! (prunable, never flushed on purpose) must not ride on those flushes.
//!
//! Details are written in chunks, one per batch the writer hands over (a
//! sled insert per detail would cost the data path a quarter of its
//! throughput): `d` + chunk number (u64 BE) → the details' msgpack, end to
//! end; `c` + chunk number → the chunk's index (each detail's id, time,
//! offset and length). The indexes are read into memory on open, so a
//! detail is found by its id with one read; the oldest chunks go first.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sled::{Batch, Tree};

use crate::metric_catalog;

/// The sled tree of captured bodies.
pub const BODIES_TREE: &str = "beamd.bodies";

/// The body store's own sled database, under the data dir.
pub const BODIES_DIR: &str = "bodies";

const INDEX: u8 = b'c';
const DATA: u8 = b'd';

/// A chunk holds at most this share of the cap, so that pruning one frees
/// little more than needed.
const CHUNK_SHARE: u64 = 16;
/// And at most this many bytes (one detail may still be larger), so that
/// chunks stay inline in sled's segments (larger values become a file
/// each) and reading one detail reads little else.
const CHUNK_MAX: u64 = 64 << 10;

/// How much the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// The most bytes of stored details; the oldest go first beyond it.
    pub cap_bytes: u64,
    /// How long a detail is kept.
    pub ttl: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            cap_bytes: 256 << 20,
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// What full capture keeps of one request, credentials already masked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    /// Request headers, in order.
    pub request_headers: Vec<(String, String)>,
    /// Response headers, in order.
    pub response_headers: Vec<(String, String)>,
    /// The first bytes of the request body.
    pub request_body: Vec<u8>,
    /// The first bytes of the response body.
    pub response_body: Vec<u8>,
}

/// One detail's place in its chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    id: String,
    at: u64,
    offset: u64,
    len: u64,
}

/// A chunk's index.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Chunk {
    entries: Vec<Entry>,
    /// Bytes of its details.
    bytes: u64,
    /// Its newest detail's time: the chunk expires with it.
    newest: u64,
}

/// What the store holds, in memory; writes and pruning hold the lock.
#[derive(Debug, Default)]
struct State {
    used: u64,
    next: u64,
    chunks: BTreeMap<u64, Chunk>,
    by_id: HashMap<String, (u64, u64, u64)>,
}

impl State {
    fn add(&mut self, no: u64, chunk: Chunk) {
        for e in &chunk.entries {
            self.by_id.insert(e.id.clone(), (no, e.offset, e.len));
        }
        self.used += chunk.bytes;
        self.next = self.next.max(no + 1);
        self.chunks.insert(no, chunk);
    }
}

/// Captured details in sled, bounded by `BodyLimits`.
#[derive(Debug)]
pub struct BodyStore {
    tree: Tree,
    limits: BodyLimits,
    state: Mutex<State>,
}

fn key(prefix: u8, no: u64) -> [u8; 9] {
    let mut k = [prefix; 9];
    k[1..].copy_from_slice(&no.to_be_bytes());
    k
}

impl BodyStore {
    /// Opens the store in `db`, reading the chunks' indexes. Entries of
    /// another layout (an earlier version's) are dropped: details are
    /// prunable by nature, and the log keeps their digests.
    pub fn open(db: &sled::Db, limits: BodyLimits) -> Result<Self> {
        let tree = db
            .open_tree(BODIES_TREE)
            .context("cannot open the body store")?;
        let mut state = State::default();
        let mut foreign = Batch::default();
        let mut dropped = 0usize;
        for item in tree.iter() {
            let (k, v) = item.context("cannot read the body store")?;
            match (k.first(), k.len()) {
                (Some(&INDEX), 9) => {
                    let no = u64::from_be_bytes(k[1..9].try_into().unwrap_or_default());
                    let chunk: Chunk =
                        rmp_serde::from_slice(&v).context("a body store index does not decode")?;
                    state.add(no, chunk);
                }
                (Some(&DATA), 9) => {}
                _ => {
                    foreign.remove(k);
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            tree.apply_batch(foreign)
                .context("cannot clear the body store")?;
            tracing::info!("body store: {dropped} entries of an earlier layout dropped");
        }
        metrics::gauge!(metric_catalog::BODY_STORE_BYTES.name).set(state.used as f64);
        Ok(Self {
            tree,
            limits,
            state: Mutex::new(state),
        })
    }

    /// Opens the store in its own sled database at `path` (created when
    /// missing), so that its writes never ride on the event log's flushes:
    /// details are prunable and never flushed on purpose; sled writes them
    /// out in the background.
    pub fn open_dir(path: &std::path::Path, limits: BodyLimits) -> Result<Self> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(32 << 20)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(Some(1_000))
            .open()
            .with_context(|| format!("cannot open the body store at {}", path.display()))?;
        Self::open(&db, limits)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Only whole values are stored under the lock; a poisoned one is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes what sled holds in memory out to disk (on a clean stop).
    pub fn flush(&self) -> Result<()> {
        self.tree.flush().context("cannot flush the body store")?;
        Ok(())
    }

    /// Bytes of stored details.
    pub fn used(&self) -> u64 {
        self.state().used
    }

    /// Stores `detail` for request `id` captured at `at_ms`, then prunes what
    /// is expired at `at_ms` and the oldest beyond the cap. A detail larger
    /// than the whole cap is not stored; returns whether it was.
    pub fn put(&self, id: &str, at_ms: u64, detail: &Detail) -> Result<bool> {
        Ok(self.put_many(&[(id.to_string(), at_ms, detail.clone())])? == 1)
    }

    /// Stores many details, room made first (the expired and the oldest
    /// go), so the store never holds more than its cap; returns how many
    /// were stored. When the batch alone exceeds the cap, its oldest
    /// details are the ones left out.
    pub fn put_many<D: Borrow<Detail>>(&self, items: &[(String, u64, D)]) -> Result<usize> {
        let mut encoded = Vec::with_capacity(items.len());
        for (id, at_ms, detail) in items {
            let bytes =
                rmp_serde::to_vec_named(detail.borrow()).context("cannot encode a detail")?;
            encoded.push((id, *at_ms, bytes));
        }
        encoded.sort_by_key(|(_, at, _)| *at);
        let mut added: u64 = encoded.iter().map(|(_, _, b)| b.len() as u64).sum();
        let mut skip = 0;
        while added > self.limits.cap_bytes && skip < encoded.len() {
            added -= encoded[skip].2.len() as u64;
            skip += 1;
        }
        let encoded = &encoded[skip..];
        let Some(latest) = encoded.last().map(|(_, at, _)| *at) else {
            return Ok(0);
        };
        let mut state = self.state();
        let expired_before = latest.saturating_sub(self.limits.ttl.as_millis() as u64);
        self.prune(&mut state, expired_before, added)?;
        let limit = (self.limits.cap_bytes / CHUNK_SHARE).clamp(1, CHUNK_MAX);
        let mut batch = Batch::default();
        let mut made = Vec::new();
        let mut data = Vec::with_capacity(added.min(limit) as usize + 1024);
        let mut chunk = Chunk::default();
        for (i, (id, at, bytes)) in encoded.iter().enumerate() {
            chunk.entries.push(Entry {
                id: id.to_string(),
                at: *at,
                offset: data.len() as u64,
                len: bytes.len() as u64,
            });
            data.extend_from_slice(bytes);
            chunk.newest = chunk.newest.max(*at);
            let full = data.len() as u64 >= limit || i + 1 == encoded.len();
            if full {
                let no = state.next + made.len() as u64;
                chunk.bytes = data.len() as u64;
                let index = rmp_serde::to_vec(&chunk).context("cannot encode an index")?;
                batch.insert(&key(DATA, no), std::mem::take(&mut data));
                batch.insert(&key(INDEX, no), index);
                made.push((no, std::mem::take(&mut chunk)));
            }
        }
        self.tree
            .apply_batch(batch)
            .context("cannot store details")?;
        for (no, chunk) in made {
            state.add(no, chunk);
        }
        metrics::gauge!(metric_catalog::BODY_STORE_BYTES.name).set(state.used as f64);
        Ok(encoded.len())
    }

    /// Drops what was stored before `now_ms - ttl`.
    pub fn expire(&self, now_ms: u64) -> Result<()> {
        let mut state = self.state();
        let before = now_ms.saturating_sub(self.limits.ttl.as_millis() as u64);
        self.prune(&mut state, before, 0)?;
        metrics::gauge!(metric_catalog::BODY_STORE_BYTES.name).set(state.used as f64);
        Ok(())
    }

    /// Removes chunks, oldest first, while they expired (their newest
    /// detail is older than `before`) or `room` more bytes would put the
    /// store over its cap.
    fn prune(&self, state: &mut State, before: u64, room: u64) -> Result<()> {
        while let Some((&no, chunk)) = state.chunks.first_key_value() {
            if chunk.newest >= before && state.used + room <= self.limits.cap_bytes {
                return Ok(());
            }
            let mut batch = Batch::default();
            batch.remove(&key(INDEX, no));
            batch.remove(&key(DATA, no));
            self.tree
                .apply_batch(batch)
                .context("cannot prune the body store")?;
            if let Some(chunk) = state.chunks.remove(&no) {
                state.used = state.used.saturating_sub(chunk.bytes);
                for e in chunk.entries {
                    state.by_id.remove(&e.id);
                }
            }
        }
        Ok(())
    }

    /// The detail of request `id`, if it is still stored.
    pub fn get(&self, id: &str) -> Result<Option<Detail>> {
        let Some((no, offset, len)) = self.state().by_id.get(id).copied() else {
            return Ok(None);
        };
        let Some(data) = self
            .tree
            .get(key(DATA, no))
            .context("cannot read the body store")?
        else {
            return Ok(None);
        };
        let bytes = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(offset + len).ok())
            .and_then(|(start, end)| data.get(start..end))
            .context("a stored detail lies outside its chunk")?;
        Ok(Some(
            rmp_serde::from_slice(bytes).context("a stored detail does not decode")?,
        ))
    }
}

#[cfg(test)]
mod tests {
    // Unit tests of the body store: its cap, its chunks, its time to live.
    use super::*;

    fn detail(body: usize) -> Detail {
        Detail {
            request_headers: vec![("content-type".into(), "application/json".into())],
            response_headers: vec![],
            request_body: vec![b'x'; body],
            response_body: b"ok".to_vec(),
        }
    }

    fn store(dir: &std::path::Path, cap: u64, ttl: u64) -> (sled::Db, BodyStore) {
        // sled's background flusher may hold the previous handle's lock a moment longer.
        let mut db = sled::Config::new().path(dir).open();
        for _ in 0..100 {
            if db.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            db = sled::Config::new().path(dir).open();
        }
        let db = db.unwrap();
        let limits = BodyLimits {
            cap_bytes: cap,
            ttl: Duration::from_millis(ttl),
        };
        let s = BodyStore::open(&db, limits).unwrap();
        (db, s)
    }

    #[test]
    fn stays_under_its_cap_dropping_the_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, s) = store(dir.path(), 100_000, 3_600_000);
        for i in 0..500u64 {
            assert!(s
                .put(&format!("req_{i:04}"), 1_000 + i, &detail(1_000))
                .unwrap());
            assert!(s.used() <= 100_000, "{} after {i}", s.used());
        }
        assert!(s.get("req_0000").unwrap().is_none(), "the oldest went");
        assert_eq!(s.get("req_0499").unwrap(), Some(detail(1_000)));
        assert!(!s.put("huge", 5_000, &detail(200_000)).unwrap());
        assert!(s.get("huge").unwrap().is_none());
    }

    #[test]
    fn a_batch_is_stored_in_chunks_found_by_id_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let items: Vec<_> = (0..300u64)
            .map(|i| (format!("req_{i:04}"), 1_000 + i, detail(i as usize)))
            .collect();
        {
            let (_db, s) = store(dir.path(), 1 << 20, 3_600_000);
            assert_eq!(s.put_many(&items).unwrap(), 300);
            assert_eq!(s.get("req_0123").unwrap(), Some(detail(123)));
        }
        let (_db, s) = store(dir.path(), 60_000, 3_600_000);
        for (id, _, d) in items.iter().rev().take(10) {
            assert_eq!(s.get(id).unwrap().as_ref(), Some(d), "{id}");
        }
        // A smaller cap on reopen prunes whole chunks, oldest first, at the next write.
        s.put("req_new", 5_000, &detail(10)).unwrap();
        assert!(s.used() <= 60_000, "{}", s.used());
        assert!(s.get("req_0000").unwrap().is_none());
        assert_eq!(s.get("req_new").unwrap(), Some(detail(10)));
    }

    #[test]
    fn expires_after_its_time_to_live_and_counts_again_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let used = {
            let (_db, s) = store(dir.path(), 1 << 20, 1_000);
            s.put("req_a", 10_000, &detail(10)).unwrap();
            s.put("req_b", 10_500, &detail(10)).unwrap();
            s.put("req_c", 11_200, &detail(10)).unwrap();
            assert!(s.get("req_a").unwrap().is_none(), "expired at 11,200");
            assert!(s.get("req_b").unwrap().is_some());
            s.used()
        };
        let (_db, s) = store(dir.path(), 1 << 20, 1_000);
        assert_eq!(s.used(), used);
        s.expire(12_000).unwrap();
        assert!(s.get("req_b").unwrap().is_none());
        assert!(s.get("req_c").unwrap().is_some());
    }
}
