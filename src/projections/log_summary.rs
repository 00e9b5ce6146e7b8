//! The log summary: how many events of each type, how many streams, and the time they span.

use std::collections::BTreeMap;

use beamd_events::Envelope;
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

/// A summary of everything in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogSummary {
    /// Events folded.
    pub events: u64,
    /// The last seq folded.
    pub last_seq: u64,
    /// Streams that have at least one event.
    pub streams: u64,
    /// `at` of the first event.
    pub first_at: Option<u64>,
    /// `at` of the last event.
    pub last_at: Option<u64>,
    /// Events per type name.
    pub by_kind: BTreeMap<String, u64>,
}

impl Fold for LogSummary {
    const KIND: &'static str = "log_summary";

    fn apply(&mut self, envelope: &Envelope) {
        self.events += 1;
        self.last_seq = envelope.seq;
        if envelope.version == 1 {
            self.streams += 1;
        }
        self.first_at.get_or_insert(envelope.at);
        self.last_at = Some(envelope.at);
        *self
            .by_kind
            .entry(envelope.event.kind().to_string())
            .or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beamd_events::vocabulary::{NodeHeartbeat, NodeJoined};
    use beamd_events::{Event, StreamId};

    fn env(seq: u64, version: u64, at: u64, event: Event) -> Envelope {
        Envelope {
            seq,
            at,
            stream: StreamId::new(format!("s{}", seq % 2)).unwrap(),
            version,
            schema: 1,
            event,
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }

    #[test]
    fn counts_events_streams_and_kinds() {
        let joined: Event = NodeJoined {
            version: "0".into(),
            public_addrs: vec![],
            transports: vec![],
        }
        .into();
        let mut s = LogSummary::default();
        s.apply(&env(1, 1, 10, joined.clone()));
        s.apply(&env(2, 1, 11, joined));
        s.apply(&env(3, 2, 12, NodeHeartbeat {}.into()));
        assert_eq!(s.events, 3);
        assert_eq!(s.streams, 2);
        assert_eq!((s.first_at, s.last_at, s.last_seq), (Some(10), Some(12), 3));
        assert_eq!(s.by_kind["NodeJoined"], 2);
        assert_eq!(s.by_kind["NodeHeartbeat"], 1);
    }
}
