//! Snapshots in their own sled tree, keyed by kind, id and seq.

use crate::error::SnapshotError;
use crate::snapshot::Snapshot;
use crate::{SnapshotStore, KEEP_PER_ENTITY};

/// The name of the sled tree that holds snapshots.
pub const SNAPSHOT_TREE: &str = "beamd.snapshots";

/// Snapshots stored in a sled tree of the edge's database.
#[derive(Clone)]
pub struct SledSnapshotStore {
    db: sled::Db,
    tree: sled::Tree,
}

impl SledSnapshotStore {
    /// Uses the snapshot tree of an open sled database.
    pub fn new(db: &sled::Db) -> Result<Self, SnapshotError> {
        let tree = db
            .open_tree(SNAPSHOT_TREE)
            .map_err(err("opening the snapshot tree"))?;
        Ok(Self {
            db: db.clone(),
            tree,
        })
    }

    /// The raw tree, for tools that inspect stored bytes.
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }
}

fn err(context: &'static str) -> impl Fn(sled::Error) -> SnapshotError {
    move |source| SnapshotError::Storage { context, source }
}

fn prefix(kind: &str, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(kind.len() + id.len() + 10);
    key.extend_from_slice(kind.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key
}

fn key(snapshot: &Snapshot) -> Vec<u8> {
    let mut key = prefix(&snapshot.kind, &snapshot.id);
    key.extend_from_slice(&snapshot.seq.to_be_bytes());
    key
}

fn decode(value: &[u8]) -> Result<Snapshot, SnapshotError> {
    rmp_serde::from_slice(value).map_err(|e| SnapshotError::Corrupt {
        kind: "?".into(),
        id: "?".into(),
        seq: 0,
        reason: format!("undecodable snapshot record: {e}"),
    })
}

impl SnapshotStore for SledSnapshotStore {
    fn save(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        let value = rmp_serde::to_vec(snapshot).map_err(|e| SnapshotError::Encode {
            kind: snapshot.kind.clone(),
            reason: e.to_string(),
        })?;
        self.tree
            .insert(key(snapshot), value)
            .map_err(err("saving a snapshot"))?;
        let keys: Vec<_> = self
            .tree
            .scan_prefix(prefix(&snapshot.kind, &snapshot.id))
            .keys()
            .collect::<Result<_, _>>()
            .map_err(err("listing snapshots"))?;
        for old in keys.iter().rev().skip(KEEP_PER_ENTITY) {
            self.tree.remove(old).map_err(err("pruning snapshots"))?;
        }
        Ok(())
    }

    fn latest(&self, kind: &str, id: &str) -> Result<Option<Snapshot>, SnapshotError> {
        let newest = self
            .tree
            .scan_prefix(prefix(kind, id))
            .values()
            .next_back()
            .transpose()
            .map_err(err("reading a snapshot"))?;
        let Some(value) = newest else { return Ok(None) };
        let snapshot = decode(&value)?;
        snapshot.verify()?;
        Ok(Some(snapshot))
    }

    fn all(&self) -> Result<Vec<Snapshot>, SnapshotError> {
        self.tree
            .iter()
            .values()
            .map(|v| decode(&v.map_err(err("listing snapshots"))?))
            .collect()
    }

    fn flush(&self) -> Result<(), SnapshotError> {
        self.db.flush().map_err(err("flushing snapshots"))?;
        Ok(())
    }
}
