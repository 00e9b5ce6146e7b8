//! The log's sans-IO heart: recovery of a torn tail, version checks, sequence
//! numbers and the hash chain. The group-commit writer and the simulations
//! both drive it; it never spawns, sleeps or reads the OS clock.

use std::collections::HashMap;
use std::sync::Arc;

use super::store::{EncodedRecord, Marker, Store};
use super::{Append, LogHead};
use crate::clock::Clock;
use crate::envelope::{decode_record, encode_record, verify_record, Envelope, StreamId};
use crate::error::LogError;
use crate::vocabulary::Event;

/// What recovery found when the log was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// The first seq that was dropped, when a torn tail was truncated.
    pub truncated_from: Option<u64>,
    /// How many stored records were dropped.
    pub dropped: u64,
}

/// A batch of appends checked and encoded, not yet written.
#[derive(Debug)]
pub struct Staged {
    /// One outcome per append, in order: its envelopes, or why it was refused.
    pub outcomes: Vec<Result<Vec<Envelope>, LogError>>,
    /// The records to write for the accepted appends.
    pub records: Vec<EncodedRecord>,
    head: LogHead,
    last_at: u64,
    versions: HashMap<StreamId, u64>,
    /// (kind ordinal, seq) of each accepted event, for guards and `write`.
    kinds: Vec<(usize, u64)>,
}

/// Sequence, chain and stream versions of a log over a `Store`.
pub struct LogCore<S: Store> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    head: LogHead,
    last_at: u64,
    versions: HashMap<StreamId, u64>,
    /// The seq of the last event of each kind (by ordinal) since the log was
    /// opened; kinds not seen since count as at `opened_at`.
    last_of_kind: Vec<u64>,
    opened_at: u64,
}

impl<S: Store> LogCore<S> {
    /// Opens the log, truncating a torn tail back to the last whole, chained event.
    pub fn open(store: Arc<S>, clock: Arc<dyn Clock>) -> Result<(Self, RepairReport), LogError> {
        let last = store.last_seq()?;
        let marker = store.marker()?.unwrap_or(Marker {
            seq: 0,
            hash: LogHead::EMPTY.hash,
        });
        let mut head = LogHead::EMPTY;
        let mut last_at = 0;
        if marker.seq > 0 {
            let bytes = store.get(marker.seq)?.ok_or_else(|| LogError::Corrupt {
                seq: marker.seq,
                reason: "a record written before the last batch is missing".into(),
            })?;
            let env = decode_record(marker.seq, &bytes)?;
            if env.hash != marker.hash {
                return Err(LogError::Corrupt {
                    seq: marker.seq,
                    reason: "record does not match the recovery marker".into(),
                });
            }
            head = LogHead {
                seq: env.seq,
                hash: env.hash,
            };
            last_at = env.at;
        }
        let mut broken_at = None;
        for seq in head.seq + 1..=last {
            let whole = match store.get(seq)? {
                Some(bytes) => match verify_record(seq, &bytes) {
                    Ok((prev, _)) if prev == head.hash => decode_record(seq, &bytes).ok(),
                    _ => None,
                },
                None => None,
            };
            match whole {
                Some(env) => {
                    head = LogHead {
                        seq,
                        hash: env.hash,
                    };
                    last_at = env.at;
                }
                None => {
                    broken_at = Some(seq);
                    break;
                }
            }
        }
        let mut report = RepairReport::default();
        if let Some(from) = broken_at {
            report.dropped = store.truncate_from(from)?;
            report.truncated_from = Some(from);
            store.flush()?;
            tracing::warn!(
                from,
                dropped = report.dropped,
                "event log had a torn tail: truncated to seq {}",
                from - 1
            );
        }
        let core = Self {
            store,
            clock,
            head,
            last_at,
            versions: HashMap::new(),
            last_of_kind: vec![0; Event::KINDS.len()],
            opened_at: head.seq,
        };
        Ok((core, report))
    }

    /// The last event written by this core.
    pub fn head(&self) -> LogHead {
        self.head
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    fn version_of(
        &self,
        staged: &HashMap<StreamId, u64>,
        stream: &StreamId,
    ) -> Result<u64, LogError> {
        if let Some(v) = staged.get(stream).or_else(|| self.versions.get(stream)) {
            return Ok(*v);
        }
        self.store.stream_version(stream, u64::MAX)
    }

    /// Checks each append's expected version, assigns seqs and versions, and
    /// encodes the accepted ones into one chained batch. Changes nothing until
    /// `write`. All events of a batch share one `at`.
    pub fn stage<'a>(&self, appends: impl IntoIterator<Item = &'a Append>) -> Staged {
        let at = self.clock.now_ms().max(self.last_at);
        let mut head = self.head;
        let mut versions: HashMap<StreamId, u64> = HashMap::new();
        let mut records = Vec::new();
        let mut outcomes = Vec::new();
        let mut kinds = Vec::new();
        for append in appends {
            let outcome = self
                .check_guard(append, &kinds)
                .and_then(|()| self.stage_one(append, at, &mut head, &mut versions, &mut records));
            if let Ok(envelopes) = &outcome {
                kinds.extend(envelopes.iter().map(|e| (e.event.ordinal(), e.seq)));
            }
            outcomes.push(outcome);
        }
        Staged {
            outcomes,
            records,
            head,
            last_at: at,
            versions,
            kinds,
        }
    }

    /// The seq of the last committed event of kind `ordinal` (at least the
    /// head the log was opened at: older history is not indexed).
    fn last_of(&self, ordinal: usize) -> u64 {
        let seen = self.last_of_kind.get(ordinal).copied().unwrap_or(0);
        seen.max(self.opened_at)
    }

    fn check_guard(&self, append: &Append, staged: &[(usize, u64)]) -> Result<(), LogError> {
        let Some(guard) = &append.guard else {
            return Ok(());
        };
        for kind in guard.kinds {
            let Some(ordinal) = Event::KINDS.iter().position(|k| k == kind) else {
                continue;
            };
            let in_batch = staged.iter().rev().find(|(o, _)| *o == ordinal);
            let seq = in_batch.map_or_else(|| self.last_of(ordinal), |(_, seq)| *seq);
            if seq > guard.after {
                return Err(LogError::Stale {
                    kind,
                    seq,
                    after: guard.after,
                });
            }
        }
        Ok(())
    }

    fn stage_one(
        &self,
        append: &Append,
        at: u64,
        head: &mut LogHead,
        versions: &mut HashMap<StreamId, u64>,
        records: &mut Vec<EncodedRecord>,
    ) -> Result<Vec<Envelope>, LogError> {
        if append.events.is_empty() {
            return Err(LogError::EmptyAppend);
        }
        let current = self.version_of(versions, &append.stream)?;
        if !append.expected.admits(current) {
            return Err(LogError::Conflict {
                stream: append.stream.clone(),
                expected: append.expected.to_string(),
                actual: current,
            });
        }
        let mut envelopes = Vec::with_capacity(append.events.len());
        let (mut seq, mut prev, mut version) = (head.seq, head.hash, current);
        let mut encoded = Vec::with_capacity(append.events.len());
        for event in &append.events {
            seq += 1;
            version += 1;
            let (hash, bytes) = encode_record(seq, at, &append.stream, version, event, &prev)?;
            envelopes.push(Envelope {
                seq,
                at,
                stream: append.stream.clone(),
                version,
                schema: crate::envelope::SCHEMA_VERSION,
                event: event.clone(),
                prev_hash: prev,
                hash,
            });
            encoded.push(EncodedRecord {
                seq,
                stream: append.stream.clone(),
                version,
                bytes,
            });
            prev = hash;
        }
        // Only an append that encoded whole moves the staged head.
        *head = LogHead { seq, hash: prev };
        versions.insert(append.stream.clone(), version);
        records.extend(encoded);
        Ok(envelopes)
    }

    /// Adopts what other writers appended to a shared store since this core's
    /// head, checking each record's hash and chain link; returns how many.
    pub fn adopt(&mut self) -> Result<u64, LogError> {
        let last = self.store.last_seq()?;
        let mut adopted = 0;
        for seq in self.head.seq + 1..=last {
            let bytes = self.store.get(seq)?.ok_or_else(|| LogError::Corrupt {
                seq,
                reason: "missing from the shared log's copy".into(),
            })?;
            let env = decode_record(seq, &bytes)?;
            if env.prev_hash != self.head.hash {
                return Err(LogError::Corrupt {
                    seq,
                    reason: "does not chain to the record before it".into(),
                });
            }
            self.head = LogHead {
                seq,
                hash: env.hash,
            };
            self.last_at = self.last_at.max(env.at);
            if let Some(last) = self.last_of_kind.get_mut(env.event.ordinal()) {
                *last = seq;
            }
            self.versions.insert(env.stream, env.version);
            adopted += 1;
        }
        Ok(adopted)
    }

    /// Writes a staged batch (atomically) and adopts its head. The caller
    /// flushes per its durability mode. On error the core must not be used
    /// again: what reached storage is unknown until the log is reopened.
    pub fn write(&mut self, staged: &mut Staged) -> Result<(), LogError> {
        if staged.records.is_empty() {
            return Ok(());
        }
        let marker = Marker {
            seq: self.head.seq,
            hash: self.head.hash,
        };
        self.store.write(&staged.records, marker)?;
        self.head = staged.head;
        self.last_at = staged.last_at;
        self.versions.extend(staged.versions.drain());
        for (ordinal, seq) in staged.kinds.drain(..) {
            if let Some(last) = self.last_of_kind.get_mut(ordinal) {
                *last = seq;
            }
        }
        Ok(())
    }
}
