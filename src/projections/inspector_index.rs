//! The inspector's history: every captured request in a sled tree indexed by
//! (tenant, time), paged 50 at a time with filters for `/logs`, and found by
//! its id (`req_…`).
//!
//! Requests are stored in *groups*: the requests of one tenant that the
//! projector folds together (a window's captures), up to [`GROUP_BYTES`] of
//! them per sled entry, under (tenant, time of the group's last request, seq
//! of its first). An offset table finds one request of a group without
//! decoding the others; each request's id entry names its group and place.
//!
//! The index is derived: it records the last seq it holds (in the same
//! atomic batch as the entries) and catches up from the log after a restart.
//! A tree written in an older layout is emptied on open and rebuilt from the
//! log.

use serde::{Deserialize, Serialize};

use super::inspector::CapturedRequest;

/// The sled tree that holds the index.
pub const INSPECTOR_TREE: &str = "beamd.inspector";
/// Requests per page of `/logs`.
pub const PAGE_SIZE: usize = 50;
const WATERMARK: &[u8] = b"\xffwatermark";
/// The layout the tree is written in; any other (or none) is rebuilt.
const FORMAT: &[u8] = b"\xffformat";
/// 2: entries by (tenant, time, seq), and an id entry for each.
/// 3: groups by (tenant, last time, first seq), and an id entry for each request.
const FORMAT_VERSION: u64 = 3;
/// A group is closed before its encoded requests pass this many bytes (a
/// larger request is a group of its own): sled keeps 16 entries in a leaf
/// and rewrites the whole leaf, so entries stay small.
pub const GROUP_BYTES: usize = 8 * 1024;
/// Id entries (`\xfe` tenant `\0` id → the entry's key) sort after every
/// tenant (`ten_…`) and before the `\xff` marks.
const BY_ID: u8 = 0xfe;

/// What can go wrong with the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// sled failed.
    #[error("inspector index storage error: {0}")]
    Storage(#[from] sled::Error),
    /// An entry did not decode.
    #[error("inspector index entry is corrupt: {0}")]
    Corrupt(String),
}

/// Filters of a `/logs` query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Earliest time (ms), inclusive.
    pub from: Option<u64>,
    /// Latest time (ms), inclusive.
    pub to: Option<u64>,
    /// Path prefix.
    pub path: Option<String>,
    /// Exact status code.
    pub status_code: Option<u16>,
    /// Exact gateway consumer.
    pub consumer_id: Option<String>,
    /// 1-based page.
    pub page: usize,
}

/// One page of results, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    /// Matching requests in all pages.
    pub count: usize,
    /// This page.
    pub results: Vec<CapturedRequest>,
}

/// The sled-backed history of captured requests.
#[derive(Clone)]
pub struct InspectorIndex {
    tree: sled::Tree,
}

fn key(tenant: &str, at: u64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + 17);
    k.extend_from_slice(tenant.as_bytes());
    k.push(0);
    k.extend_from_slice(&at.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn id_key(tenant: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + id.len() + 2);
    k.push(BY_ID);
    k.extend_from_slice(tenant.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn decode(value: &[u8]) -> Result<CapturedRequest, IndexError> {
    rmp_serde::from_slice(value).map_err(|e| IndexError::Corrupt(e.to_string()))
}

/// A group's value: its first request's time (u64 BE), the count (u32 BE),
/// count + 1 offsets (u32 BE, from the start of the data), then each request
/// (rmp, named fields).
fn encode_group(first_at: u64, encoded: &[Vec<u8>]) -> Vec<u8> {
    let data: usize = encoded.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(12 + 4 * (encoded.len() + 1) + data);
    out.extend_from_slice(&first_at.to_be_bytes());
    out.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    let mut at = 0u32;
    out.extend_from_slice(&at.to_be_bytes());
    for e in encoded {
        at += e.len() as u32;
        out.extend_from_slice(&at.to_be_bytes());
    }
    for e in encoded {
        out.extend_from_slice(e);
    }
    out
}

/// A stored group, read lazily.
struct Group<'a> {
    first_at: u64,
    count: usize,
    value: &'a [u8],
}

impl<'a> Group<'a> {
    fn parse(value: &'a [u8]) -> Result<Self, IndexError> {
        let corrupt = || IndexError::Corrupt("malformed request group".into());
        let first_at = u64::from_be_bytes(
            value
                .get(..8)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?,
        );
        let count = u32::from_be_bytes(
            value
                .get(8..12)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?,
        ) as usize;
        let group = Self {
            first_at,
            count,
            value,
        };
        let data = 12 + 4 * (count + 1);
        if group.offset(count) != Some(value.len().saturating_sub(data)) || value.len() < data {
            return Err(corrupt());
        }
        Ok(group)
    }

    fn offset(&self, i: usize) -> Option<usize> {
        let at = 12 + 4 * i;
        let b: [u8; 4] = self.value.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_be_bytes(b) as usize)
    }

    fn get(&self, i: usize) -> Result<CapturedRequest, IndexError> {
        let data = 12 + 4 * (self.count + 1);
        match (self.offset(i), self.offset(i + 1)) {
            (Some(a), Some(b)) if a <= b && i < self.count => {
                decode(&self.value[data + a..data + b])
            }
            _ => Err(IndexError::Corrupt("malformed request group".into())),
        }
    }

    fn all(&self) -> Result<Vec<CapturedRequest>, IndexError> {
        (0..self.count).map(|i| self.get(i)).collect()
    }
}

impl InspectorIndex {
    /// Opens the index tree in `db`; one in an older layout is emptied, so
    /// that the projector rebuilds it from the log.
    pub fn open(db: &sled::Db) -> Result<Self, IndexError> {
        let tree = db.open_tree(INSPECTOR_TREE)?;
        let current = FORMAT_VERSION.to_be_bytes();
        if tree.get(FORMAT)?.as_deref() != Some(&current[..]) {
            if !tree.is_empty() {
                tracing::info!(
                    "the request history is in an older layout: rebuilding it from the log"
                );
                tree.clear()?;
            }
            tree.insert(FORMAT, &current)?;
        }
        Ok(Self { tree })
    }

    /// The last seq the index holds (0 = empty).
    pub fn watermark(&self) -> Result<u64, IndexError> {
        Ok(match self.tree.get(WATERMARK)? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| IndexError::Corrupt("watermark".into()))?,
            ),
            None => 0,
        })
    }

    /// Adds requests (in seq order) and moves the watermark to
    /// `through_seq`, atomically: each tenant's requests in groups, one id
    /// entry per request.
    pub fn record(&self, requests: &[CapturedRequest], through_seq: u64) -> Result<(), IndexError> {
        let mut batch = sled::Batch::default();
        let mut by_tenant: Vec<(&str, Vec<&CapturedRequest>)> = Vec::new();
        for r in requests {
            match by_tenant.iter_mut().find(|(t, _)| *t == r.tenant) {
                Some((_, rs)) => rs.push(r),
                None => by_tenant.push((&r.tenant, vec![r])),
            }
        }
        for (tenant, rs) in by_tenant {
            let mut group: Vec<(&CapturedRequest, Vec<u8>)> = Vec::new();
            let mut bytes = 0;
            for r in rs {
                let value =
                    rmp_serde::to_vec_named(r).map_err(|e| IndexError::Corrupt(e.to_string()))?;
                if !group.is_empty() && bytes + value.len() > GROUP_BYTES {
                    write_group(&mut batch, tenant, &std::mem::take(&mut group));
                    bytes = 0;
                }
                bytes += value.len();
                group.push((r, value));
            }
            write_group(&mut batch, tenant, &group);
        }
        batch.insert(WATERMARK, &through_seq.to_be_bytes());
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The request of `tenant` named `id` (`req_…`).
    pub fn by_id(&self, tenant: &str, id: &str) -> Result<Option<CapturedRequest>, IndexError> {
        let Some(place) = self.tree.get(id_key(tenant, id))? else {
            return Ok(None);
        };
        let (group_key, position) = place.split_at(place.len().saturating_sub(4));
        let position = u32::from_be_bytes(
            position
                .try_into()
                .map_err(|_| IndexError::Corrupt("id entry".into()))?,
        );
        let Some(value) = self.tree.get(group_key)? else {
            return Ok(None);
        };
        Group::parse(&value)?.get(position as usize).map(Some)
    }

    /// Every request of `tenant` that arrived in `from..=to` (ms), oldest first.
    pub fn scan(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
        mut each: impl FnMut(&CapturedRequest),
    ) -> Result<(), IndexError> {
        if from > to {
            return Ok(());
        }
        // Groups are keyed by their last request's time: the first group
        // that reaches `from` may have begun before it.
        for item in self
            .tree
            .range(key(tenant, from, 0)..=key(tenant, u64::MAX, u64::MAX))
        {
            let (_, value) = item?;
            let group = Group::parse(&value)?;
            if group.first_at > to {
                break;
            }
            for r in group.all()? {
                if (from..=to).contains(&r.at) {
                    each(&r);
                }
            }
        }
        Ok(())
    }

    /// One page of a tenant's requests matching `query`, newest first.
    pub fn query(&self, tenant: &str, query: &LogQuery) -> Result<LogPage, IndexError> {
        let (from, to) = (query.from.unwrap_or(0), query.to.unwrap_or(u64::MAX));
        let start = key(tenant, from, 0);
        let end = key(tenant, u64::MAX, u64::MAX);
        let skip = query
            .page
            .max(1)
            .saturating_sub(1)
            .saturating_mul(PAGE_SIZE);
        let mut page = LogPage::default();
        if query.from.unwrap_or(0) > query.to.unwrap_or(u64::MAX) {
            return Ok(page);
        }
        for item in self.tree.range(start..=end).rev() {
            let (_, value) = item?;
            let group = Group::parse(&value)?;
            if group.first_at > to {
                continue;
            }
            for r in group.all()?.into_iter().rev() {
                if !(from..=to).contains(&r.at) {
                    continue;
                }
                let wanted = query
                    .path
                    .as_ref()
                    .is_none_or(|p| r.path.starts_with(p.as_str()))
                    && query.status_code.is_none_or(|s| s == r.status)
                    && query
                        .consumer_id
                        .as_ref()
                        .is_none_or(|c| r.consumer.as_ref() == Some(c));
                if !wanted {
                    continue;
                }
                if page.count >= skip && page.results.len() < PAGE_SIZE {
                    page.results.push(r);
                }
                page.count += 1;
            }
        }
        Ok(page)
    }
}

/// Adds one group of a tenant's requests, and their id entries, to `batch`.
fn write_group(batch: &mut sled::Batch, tenant: &str, group: &[(&CapturedRequest, Vec<u8>)]) {
    let (Some((first, _)), Some((last, _))) = (group.first(), group.last()) else {
        return;
    };
    let at = key(tenant, last.at, first.seq);
    for (i, (r, _)) in group.iter().enumerate() {
        if !r.id.is_empty() {
            let mut place = at.clone();
            place.extend_from_slice(&(i as u32).to_be_bytes());
            batch.insert(id_key(tenant, &r.id), place);
        }
    }
    let encoded: Vec<Vec<u8>> = group.iter().map(|(_, v)| v.clone()).collect();
    batch.insert(at, encode_group(first.at, &encoded));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_filters_and_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let index = InspectorIndex::open(&db).unwrap();
        assert_eq!(index.watermark().unwrap(), 0);
        let reqs: Vec<CapturedRequest> = (0..120u64)
            .map(|i| CapturedRequest {
                seq: i + 1,
                at: 1_000 + i,
                tenant: if i % 10 == 0 {
                    "ten_b".into()
                } else {
                    "ten_a".into()
                },
                path: if i % 2 == 0 {
                    "/api/x".into()
                } else {
                    "/static".into()
                },
                status: if i % 3 == 0 { 500 } else { 200 },
                ..Default::default()
            })
            .collect();
        index.record(&reqs, 120).unwrap();
        assert_eq!(index.watermark().unwrap(), 120);
        // Each tenant's requests are a few groups, not an entry each.
        let groups = index
            .tree
            .iter()
            .keys()
            .filter(|k| k.as_ref().is_ok_and(|k| k.starts_with(b"ten_")))
            .count();
        assert!((2..=6).contains(&groups), "{groups} groups");
        let all = index
            .query(
                "ten_a",
                &LogQuery {
                    page: 1,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!((all.count, all.results.len()), (108, 50));
        assert_eq!(all.results[0].seq, 120, "newest first");
        let page3 = index
            .query(
                "ten_a",
                &LogQuery {
                    page: 3,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(page3.results.len(), 8);
        let q = LogQuery {
            from: Some(1_010),
            to: Some(1_059),
            path: Some("/api".into()),
            status_code: Some(500),
            consumer_id: None,
            page: 1,
        };
        let hits = index.query("ten_a", &q).unwrap();
        assert!(hits.results.iter().all(|r| r.status == 500
            && r.path.starts_with("/api")
            && (1_010..=1_059).contains(&r.at)));
        assert_eq!(hits.count, hits.results.len());
        assert_eq!(hits.count, 7);
        assert_eq!(
            index.query("ten_b", &LogQuery::default()).unwrap().count,
            12
        );
        // A page far past the end, and an empty time range, are empty pages.
        let far = LogQuery {
            page: usize::MAX,
            ..Default::default()
        };
        assert!(index.query("ten_a", &far).unwrap().results.is_empty());
        let backwards = LogQuery {
            from: Some(2_000),
            to: Some(1_000),
            page: 1,
            ..Default::default()
        };
        assert_eq!(index.query("ten_a", &backwards).unwrap().count, 0);
    }

    #[test]
    fn finds_requests_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let index = InspectorIndex::open(&db).unwrap();
        let req = |seq: u64, tenant: &str, id: &str| CapturedRequest {
            seq,
            at: 5_000 + seq,
            tenant: tenant.into(),
            id: id.into(),
            ..Default::default()
        };
        let reqs = [
            req(1, "ten_a", "req_000000000000000a"),
            req(2, "ten_b", "req_000000000000000b"),
            req(3, "ten_a", ""),
        ];
        index.record(&reqs, 3).unwrap();
        let found = index.by_id("ten_a", "req_000000000000000a").unwrap();
        assert_eq!(found.map(|r| r.seq), Some(1));
        assert_eq!(
            index.by_id("ten_a", "req_000000000000000b").unwrap(),
            None,
            "another tenant's id"
        );
        assert_eq!(index.by_id("ten_a", "").unwrap(), None);
        // Id entries are not requests: pages and scans never see them.
        assert_eq!(index.query("ten_a", &LogQuery::default()).unwrap().count, 2);
        let mut seen = 0;
        index.scan("ten_a", 0, u64::MAX, |_| seen += 1).unwrap();
        assert_eq!(seen, 2);
    }

    #[test]
    fn an_older_layout_is_emptied_for_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree(INSPECTOR_TREE).unwrap();
        // As the first layout left it: entries and a watermark, no format mark.
        let old = CapturedRequest {
            seq: 7,
            tenant: "ten_a".into(),
            id: "req_0000000000000007".into(),
            ..Default::default()
        };
        tree.insert(key("ten_a", 0, 7), rmp_serde::to_vec_named(&old).unwrap())
            .unwrap();
        tree.insert(WATERMARK, &7u64.to_be_bytes()).unwrap();
        let index = InspectorIndex::open(&db).unwrap();
        assert_eq!(
            index.watermark().unwrap(),
            0,
            "rebuilt from the log's start"
        );
        assert_eq!(index.query("ten_a", &LogQuery::default()).unwrap().count, 0);
        index.record(&[old], 7).unwrap();
        // Opened again in the current layout, it is kept.
        let index = InspectorIndex::open(&db).unwrap();
        assert_eq!(index.watermark().unwrap(), 7);
        let found = index.by_id("ten_a", "req_0000000000000007").unwrap();
        assert_eq!(found.map(|r| r.seq), Some(7));
    }
}
