//! Folds over events and loading them: newest snapshot, then the log's tail.

use serde::{de::DeserializeOwned, Serialize};

use crate::error::SnapshotError;
use crate::SnapshotStore;
use beamd_events::{Envelope, EventLog, StreamId};

const READ_CHUNK: usize = 4096;

/// A pure fold over events, whose state can be snapshotted.
pub trait Fold: Default + Serialize + DeserializeOwned + Send {
    /// The snapshot kind this fold is stored under.
    const KIND: &'static str;
    /// Folds one event in. Never fails; events it does not care about are ignored.
    fn apply(&mut self, envelope: &Envelope);
}

/// A loaded fold and where it stands.
#[derive(Debug)]
pub struct Loaded<F> {
    /// The state.
    pub state: F,
    /// The global seq of the last event folded in (0 if none).
    pub seq: u64,
    /// The stream version of the last event folded in (stream folds only).
    pub version: u64,
    /// How many events were replayed on top of the snapshot.
    pub replayed: u64,
    /// Whether a snapshot was used.
    pub from_snapshot: bool,
}

fn usable<F: Fold>(
    log: &dyn EventLog,
    store: &dyn SnapshotStore,
    id: &str,
) -> Result<Option<(F, u64, u64)>, SnapshotError> {
    let Some(snap) = store.latest(F::KIND, id)? else {
        return Ok(None);
    };
    // A snapshot is only ever taken of committed events; one beyond the head
    // means the log lost its tail after all, so it cannot be trusted.
    if snap.seq > log.head().seq {
        tracing::warn!(
            kind = F::KIND,
            id,
            seq = snap.seq,
            "snapshot is ahead of the log; replaying in full"
        );
        return Ok(None);
    }
    Ok(Some((snap.decode()?, snap.seq, snap.version)))
}

/// Loads a fold over the whole log (`id` names the snapshot, e.g. `all`).
pub async fn load_global<F: Fold>(
    log: &dyn EventLog,
    store: &dyn SnapshotStore,
    id: &str,
) -> Result<Loaded<F>, SnapshotError> {
    let (mut state, mut seq, from_snapshot) = match usable::<F>(log, store, id)? {
        Some((state, seq, _)) => (state, seq, true),
        None => (F::default(), 0, false),
    };
    let mut replayed = 0;
    loop {
        let events = log.read_from(seq + 1, READ_CHUNK).await?;
        let Some(last) = events.last() else { break };
        seq = last.seq;
        replayed += events.len() as u64;
        events.iter().for_each(|e| state.apply(e));
    }
    Ok(Loaded {
        state,
        seq,
        version: 0,
        replayed,
        from_snapshot,
    })
}

/// Loads a fold over one stream (the snapshot id is the stream id).
pub async fn load_stream<F: Fold>(
    log: &dyn EventLog,
    store: &dyn SnapshotStore,
    stream: &StreamId,
) -> Result<Loaded<F>, SnapshotError> {
    let (mut state, mut seq, mut version, from_snapshot) =
        match usable::<F>(log, store, stream.as_str())? {
            Some((state, seq, version)) => (state, seq, version, true),
            None => (F::default(), 0, 0, false),
        };
    let mut replayed = 0;
    loop {
        let events = log.read_stream(stream, version + 1, READ_CHUNK).await?;
        let Some(last) = events.last() else { break };
        (seq, version) = (last.seq, last.version);
        replayed += events.len() as u64;
        events.iter().for_each(|e| state.apply(e));
    }
    Ok(Loaded {
        state,
        seq,
        version,
        replayed,
        from_snapshot,
    })
}
