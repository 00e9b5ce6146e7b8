//! Snapshots in memory: for tests and simulations.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::SnapshotError;
use crate::snapshot::Snapshot;
use crate::{SnapshotStore, KEEP_PER_ENTITY};

/// Snapshots kept in a map, newest few per (kind, id).
#[derive(Debug, Default)]
pub struct MemorySnapshotStore {
    map: Mutex<BTreeMap<(String, String, u64), Snapshot>>,
}

impl MemorySnapshotStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String, u64), Snapshot>> {
        // Inserts and removes are whole; a poisoned lock holds a consistent map.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SnapshotStore for MemorySnapshotStore {
    fn save(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        let mut map = self.lock();
        let (kind, id) = (snapshot.kind.clone(), snapshot.id.clone());
        map.insert((kind.clone(), id.clone(), snapshot.seq), snapshot.clone());
        let keys: Vec<_> = map
            .range((kind.clone(), id.clone(), 0)..=(kind, id, u64::MAX))
            .map(|(k, _)| k.clone())
            .collect();
        for old in keys.iter().rev().skip(KEEP_PER_ENTITY) {
            map.remove(old);
        }
        Ok(())
    }

    fn latest(&self, kind: &str, id: &str) -> Result<Option<Snapshot>, SnapshotError> {
        let map = self.lock();
        let (k, i) = (kind.to_string(), id.to_string());
        let found = map
            .range((k.clone(), i.clone(), 0)..=(k, i, u64::MAX))
            .next_back()
            .map(|(_, s)| s.clone());
        if let Some(s) = &found {
            s.verify()?;
        }
        Ok(found)
    }

    fn all(&self) -> Result<Vec<Snapshot>, SnapshotError> {
        Ok(self.lock().values().cloned().collect())
    }

    fn flush(&self) -> Result<(), SnapshotError> {
        Ok(())
    }
}
