//! One snapshot: (kind, id, seq, version, state bytes, hash).

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::SnapshotError;
use beamd_events::Hash;

/// A fold's state after the event at `seq` (global), which left its stream at `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// What was folded (`log_summary`, `tenant`, …).
    pub kind: String,
    /// Which entity (`all` for global projections, else a stream id).
    pub id: String,
    /// The global seq of the last event folded in.
    pub seq: u64,
    /// The stream version of the last event folded in (0 for global folds).
    pub version: u64,
    /// The state, rmp-serde encoded with field names.
    pub state: Vec<u8>,
    /// blake3 over kind, id, seq, version and state.
    pub hash: Hash,
}

impl Snapshot {
    /// Encodes `state` into a snapshot.
    pub fn new<T: Serialize>(
        kind: &str,
        id: &str,
        seq: u64,
        version: u64,
        state: &T,
    ) -> Result<Self, SnapshotError> {
        let state = rmp_serde::to_vec_named(state).map_err(|e| SnapshotError::Encode {
            kind: kind.to_string(),
            reason: e.to_string(),
        })?;
        let hash = digest(kind, id, seq, version, &state);
        Ok(Self {
            kind: kind.to_string(),
            id: id.to_string(),
            seq,
            version,
            state,
            hash,
        })
    }

    /// Checks the hash.
    pub fn verify(&self) -> Result<(), SnapshotError> {
        if digest(&self.kind, &self.id, self.seq, self.version, &self.state) != self.hash {
            return Err(self.corrupt("hash does not match its contents".into()));
        }
        Ok(())
    }

    /// Checks the hash and decodes the state.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, SnapshotError> {
        self.verify()?;
        rmp_serde::from_slice(&self.state).map_err(|e| self.corrupt(format!("undecodable: {e}")))
    }

    pub(crate) fn corrupt(&self, reason: String) -> SnapshotError {
        SnapshotError::Corrupt {
            kind: self.kind.clone(),
            id: self.id.clone(),
            seq: self.seq,
            reason,
        }
    }
}

fn digest(kind: &str, id: &str, seq: u64, version: u64, state: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    for part in [kind.as_bytes(), id.as_bytes()] {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(&seq.to_be_bytes());
    h.update(&version.to_be_bytes());
    h.update(state);
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_tampering() {
        let snap = Snapshot::new("k", "id", 9, 2, &vec![1u64, 2, 3]).unwrap();
        assert_eq!(snap.decode::<Vec<u64>>().unwrap(), vec![1, 2, 3]);
        let mut bad = snap.clone();
        bad.state[1] ^= 1;
        assert!(bad.decode::<Vec<u64>>().is_err());
        let mut moved = snap;
        moved.seq = 10;
        assert!(moved.verify().is_err());
    }
}
