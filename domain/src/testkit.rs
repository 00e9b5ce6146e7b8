//! given / when / then helpers for aggregate tests.

use beamd_events::{Envelope, Event, StreamId};
use beamd_snapshots::Fold;

/// The state after folding `events` into stream `stream`, one per ms from `at`.
pub fn given<F: Fold>(stream: &str, at: u64, events: Vec<Event>) -> F {
    let mut state = F::default();
    for (i, event) in events.into_iter().enumerate() {
        state.apply(&envelope(stream, i as u64 + 1, at + i as u64, event));
    }
    state
}

/// An envelope for tests (hashes are not checked here).
pub fn envelope(stream: &str, version: u64, at: u64, event: Event) -> Envelope {
    Envelope {
        seq: version,
        at,
        stream: StreamId::new(stream).expect("test stream ids are valid"),
        version,
        schema: beamd_events::SCHEMA_VERSION,
        event,
        prev_hash: [0; 32],
        hash: [0; 32],
    }
}

/// Round-trips a state through the snapshot codec.
pub fn round_trip<F: Fold + PartialEq + std::fmt::Debug>(state: &F) {
    let bytes = rmp_serde::to_vec_named(state).expect("encodes");
    let back: F = rmp_serde::from_slice(&bytes).expect("decodes");
    assert_eq!(&back, state);
}
