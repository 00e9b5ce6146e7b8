//! The newest committed events, kept by the log writer for readers that
//! follow the head (the projector, takeover): the events it just made
//! durable are handed over from memory instead of read back from the store.

use crate::envelope::Envelope;

/// Committed events kept, at most.
const RECENT: usize = 16_384;

/// The newest committed events, gap-free, oldest first: what readers at the
/// head ask for, as the writer published it (the store holds the same).
#[derive(Default)]
pub(super) struct Recent {
    events: std::collections::VecDeque<Envelope>,
}

impl Recent {
    /// Adds events just made durable; a gap (records adopted from other
    /// writers) starts the window again.
    pub(super) fn publish<'a>(&mut self, events: impl Iterator<Item = &'a Envelope>) {
        for env in events {
            if self
                .events
                .back()
                .is_some_and(|last| last.seq + 1 != env.seq)
            {
                self.events.clear();
            }
            if self.events.len() == RECENT {
                self.events.pop_front();
            }
            self.events.push_back(env.clone());
        }
    }

    /// Up to `limit` events from `from`, none past `head`, when the window
    /// holds `from`.
    pub(super) fn read(&self, from: u64, head: u64, limit: usize) -> Option<Vec<Envelope>> {
        let first = self.events.front()?.seq;
        let last = self.events.back()?.seq;
        if from < first || from > last || from > head {
            return None;
        }
        let start = (from - first) as usize;
        let end = (head.min(last) - first) as usize + 1;
        let end = end.min(start + limit.max(1));
        Some(self.events.range(start..end).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::StreamId;
    use crate::Event;

    fn env(seq: u64) -> Envelope {
        Envelope {
            seq,
            at: seq,
            stream: StreamId::new("node_a").expect("id"),
            version: seq,
            schema: 1,
            event: Event::NodeHeartbeat(Default::default()),
            prev_hash: [0; 32],
            hash: [seq as u8; 32],
        }
    }

    fn seqs(events: Option<Vec<Envelope>>) -> Option<Vec<u64>> {
        events.map(|e| e.iter().map(|e| e.seq).collect())
    }

    #[test]
    fn serves_what_it_holds_up_to_the_head_and_nothing_else() {
        let mut r = Recent::default();
        assert_eq!(seqs(r.read(1, 10, 10)), None, "empty");
        let batch: Vec<_> = (5..=9).map(env).collect();
        r.publish(batch.iter());
        assert_eq!(seqs(r.read(5, 9, 100)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(seqs(r.read(6, 9, 2)), Some(vec![6, 7]));
        assert_eq!(
            seqs(r.read(6, 7, 100)),
            Some(vec![6, 7]),
            "not past the head"
        );
        assert_eq!(seqs(r.read(4, 9, 100)), None, "older: the store");
        assert_eq!(seqs(r.read(10, 12, 100)), None, "newer: the store");
        // A gap (records adopted from another writer) starts again.
        let later: Vec<_> = (12..=13).map(env).collect();
        r.publish(later.iter());
        assert_eq!(seqs(r.read(9, 13, 100)), None);
        assert_eq!(seqs(r.read(12, 13, 100)), Some(vec![12, 13]));
    }

    #[test]
    fn keeps_only_the_newest() {
        let mut r = Recent::default();
        let all: Vec<_> = (1..=(RECENT as u64 + 10)).map(env).collect();
        r.publish(all.iter());
        assert_eq!(seqs(r.read(10, u64::MAX, 1)), None);
        assert_eq!(seqs(r.read(11, u64::MAX, 1)), Some(vec![11]));
    }
}
