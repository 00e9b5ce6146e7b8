//! The bounded body store: each fully captured request's headers and body
//! prefixes in their own sled tree, under a size cap and a time to live,
//! oldest pruned first. The log keeps only each body's SHA-256 and a
//! truncated flag, so it proves what was seen while bodies can go.
//!
//! Keys: `t` + stored-at (ms, u64 BE) + request id → the detail (msgpack);
//! `r` + request id → the `t` key, so a request is found by its id and the
//! oldest entries come first in a scan.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sled::{Batch, Tree};

/// The sled tree of captured bodies.
pub const BODIES_TREE: &str = "beamd.bodies";

const BY_TIME: u8 = b't';
const BY_ID: u8 = b'r';

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

/// Captured details in sled, bounded by `BodyLimits`.
#[derive(Debug)]
pub struct BodyStore {
    tree: Tree,
    limits: BodyLimits,
    /// Bytes of stored details; writes and pruning hold the lock.
    used: Mutex<u64>,
}

fn time_key(at_ms: u64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + id.len());
    k.push(BY_TIME);
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn id_key(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(BY_ID);
    k.extend_from_slice(id.as_bytes());
    k
}

fn at_of(time_key: &[u8]) -> u64 {
    time_key
        .get(1..9)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

impl BodyStore {
    /// Opens the store in `db`, counting what it holds.
    pub fn open(db: &sled::Db, limits: BodyLimits) -> Result<Self> {
        let tree = db
            .open_tree(BODIES_TREE)
            .context("cannot open the body store")?;
        let mut used = 0u64;
        for item in tree.scan_prefix([BY_TIME]) {
            let (_, v) = item.context("cannot read the body store")?;
            used += v.len() as u64;
        }
        Ok(Self {
            tree,
            limits,
            used: Mutex::new(used),
        })
    }

    /// Bytes of stored details.
    pub fn used(&self) -> u64 {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `detail` for request `id` captured at `at_ms`, then prunes what
    /// is expired at `at_ms` and the oldest beyond the cap. A detail larger
    /// than the whole cap is not stored; returns whether it was.
    pub fn put(&self, id: &str, at_ms: u64, detail: &Detail) -> Result<bool> {
        Ok(self.put_many(&[(id.to_string(), at_ms, detail.clone())])? == 1)
    }

    /// Stores many details in one batch, room made first (the expired and the
    /// oldest go), so the store never holds more than its cap; returns how
    /// many were stored. When the batch alone exceeds the cap, its oldest
    /// details are the ones left out.
    pub fn put_many(&self, items: &[(String, u64, Detail)]) -> Result<usize> {
        let mut encoded = Vec::with_capacity(items.len());
        for (id, at_ms, detail) in items {
            let bytes = rmp_serde::to_vec_named(detail).context("cannot encode a detail")?;
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
        let latest = encoded.last().map_or(0, |(_, at, _)| *at);
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let expired_before = latest.saturating_sub(self.limits.ttl.as_millis() as u64);
        self.prune(&mut used, expired_before, added)?;
        let mut batch = Batch::default();
        for (id, at_ms, bytes) in encoded {
            let key = time_key(*at_ms, id);
            batch.insert(id_key(id), key.clone());
            batch.insert(key, bytes.as_slice());
        }
        self.tree
            .apply_batch(batch)
            .context("cannot store details")?;
        *used += added;
        metrics::gauge!("beamd_body_store_bytes").set(*used as f64);
        Ok(encoded.len())
    }

    /// Drops what was stored before `now_ms - ttl`.
    pub fn expire(&self, now_ms: u64) -> Result<()> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let before = now_ms.saturating_sub(self.limits.ttl.as_millis() as u64);
        self.prune(&mut used, before, 0)?;
        metrics::gauge!("beamd_body_store_bytes").set(*used as f64);
        Ok(())
    }

    /// Removes entries, oldest first, while they are older than `before` or
    /// `room` more bytes would put the store over its cap.
    fn prune(&self, used: &mut u64, before: u64, room: u64) -> Result<()> {
        loop {
            let Some((key, value)) = self
                .tree
                .scan_prefix([BY_TIME])
                .next()
                .transpose()
                .context("cannot read the body store")?
            else {
                return Ok(());
            };
            if at_of(&key) >= before && *used + room <= self.limits.cap_bytes {
                return Ok(());
            }
            let mut batch = Batch::default();
            batch.remove(id_key(&String::from_utf8_lossy(&key[9..])));
            batch.remove(key);
            self.tree
                .apply_batch(batch)
                .context("cannot prune the body store")?;
            *used = used.saturating_sub(value.len() as u64);
        }
    }

    /// The detail of request `id`, if it is still stored.
    pub fn get(&self, id: &str) -> Result<Option<Detail>> {
        let Some(key) = self
            .tree
            .get(id_key(id))
            .context("cannot read the body store")?
        else {
            return Ok(None);
        };
        let Some(bytes) = self.tree.get(key).context("cannot read the body store")? else {
            return Ok(None);
        };
        Ok(Some(
            rmp_serde::from_slice(&bytes).context("a stored detail does not decode")?,
        ))
    }
}

#[cfg(test)]
mod tests {
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
        let db = sled::Config::new().path(dir).open().unwrap();
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
