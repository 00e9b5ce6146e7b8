//! Reading stored records in order while checking the sequence and the chain,
//! without repairing anything: what `beamd replay` and `beamd audit` use.

use std::collections::VecDeque;

use super::store::Store;
use crate::envelope::{decode_record, verify_record, Envelope, Hash, GENESIS_HASH};
use crate::error::LogError;

const CHUNK: usize = 4096;

/// An iterator over stored events `from..=to` that checks each record's hash,
/// its link to the one before, and that no seq is missing. It yields the
/// first problem as an error naming its seq, then stops.
pub struct ChainReader<'a, S: Store> {
    store: &'a S,
    next: u64,
    to: u64,
    prev_hash: Hash,
    buffer: VecDeque<(u64, Vec<u8>)>,
    done: bool,
    /// The stored bytes of the record read last.
    last: Vec<u8>,
}

impl<'a, S: Store> ChainReader<'a, S> {
    /// Reads `from..=to` (clamped to what is stored). For `from > 1` the
    /// record before `from` is read to anchor the chain.
    pub fn new(store: &'a S, from: u64, to: u64) -> Result<Self, LogError> {
        let from = from.max(1);
        let to = to.min(store.last_seq()?);
        let prev_hash = if from == 1 || from > to {
            GENESIS_HASH
        } else {
            let seq = from - 1;
            let bytes = store.get(seq)?.ok_or(LogError::Corrupt {
                seq,
                reason: "record is missing".into(),
            })?;
            verify_record(seq, &bytes)?.1
        };
        Ok(Self {
            store,
            next: from,
            to,
            prev_hash,
            buffer: VecDeque::new(),
            done: false,
            last: Vec::new(),
        })
    }

    /// The stored bytes of the record read last (a Merkle leaf).
    pub fn last_record(&self) -> &[u8] {
        &self.last
    }

    /// The seq the reader will read next.
    pub fn position(&self) -> u64 {
        self.next
    }

    fn read_one(&mut self) -> Result<Option<Envelope>, LogError> {
        if self.next > self.to {
            return Ok(None);
        }
        if self.buffer.is_empty() {
            self.buffer = self.store.scan(self.next, self.to, CHUNK)?.into();
        }
        let seq = self.next;
        let (stored_seq, bytes) = self.buffer.pop_front().ok_or(LogError::Corrupt {
            seq,
            reason: "record is missing".into(),
        })?;
        if stored_seq != seq {
            return Err(LogError::Corrupt {
                seq,
                reason: format!("record is missing (next stored is {stored_seq})"),
            });
        }
        let env = decode_record(seq, &bytes)?;
        if env.prev_hash != self.prev_hash {
            return Err(LogError::Corrupt {
                seq,
                reason: "prev_hash does not match the previous record's hash".into(),
            });
        }
        self.prev_hash = env.hash;
        self.next += 1;
        self.last = bytes;
        Ok(Some(env))
    }
}

impl<S: Store> Iterator for ChainReader<'_, S> {
    type Item = Result<Envelope, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_one() {
            Ok(Some(env)) => Some(Ok(env)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Checks every stored record `1..=to` without decoding it: the hash over its
/// contents, its link to the record before, and that no seq is missing. The
/// first problem is an error naming its seq. `progress` gets the last seq
/// checked after each chunk. Returns the hash of record `to` (the genesis
/// hash for an empty log).
pub fn verify_chain<S: Store>(
    store: &S,
    to: u64,
    mut progress: impl FnMut(u64),
) -> Result<Hash, LogError> {
    let mut prev_hash = GENESIS_HASH;
    let mut next = 1;
    while next <= to {
        let chunk = store.scan(next, to, CHUNK)?;
        if chunk.is_empty() {
            return Err(LogError::Corrupt {
                seq: next,
                reason: "record is missing".into(),
            });
        }
        for (seq, bytes) in chunk {
            if seq != next {
                return Err(LogError::Corrupt {
                    seq: next,
                    reason: format!("record is missing (next stored is {seq})"),
                });
            }
            let (prev, hash) = verify_record(seq, &bytes)?;
            if prev != prev_hash {
                return Err(LogError::Corrupt {
                    seq,
                    reason: "prev_hash does not match the previous record's hash".into(),
                });
            }
            prev_hash = hash;
            next += 1;
        }
        progress(next - 1);
    }
    Ok(prev_hash)
}
