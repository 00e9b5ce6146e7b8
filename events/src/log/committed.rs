//! Reads bounded by the committed head, shared by the log implementations.

use super::store::Store;
use crate::envelope::{decode_record, verify_record, Envelope, StreamId};
use crate::error::LogError;

/// Up to `limit` committed records from `from_seq` (up to `head`), decoded and chain-checked.
pub(crate) fn read_committed<S: Store>(
    store: &S,
    head: u64,
    from_seq: u64,
    limit: usize,
) -> Result<Vec<Envelope>, LogError> {
    let raw = store.scan(from_seq.max(1), head, limit)?;
    let mut out: Vec<Envelope> = Vec::with_capacity(raw.len());
    for (seq, bytes) in raw {
        let env = decode_record(seq, &bytes)?;
        if let Some(prev) = out.last() {
            if prev.seq + 1 != seq || prev.hash != env.prev_hash {
                return Err(LogError::Corrupt {
                    seq,
                    reason: "does not chain to the record before it".into(),
                });
            }
        }
        out.push(env);
    }
    Ok(out)
}

/// Up to `limit` committed events of one stream from `from_version` (up to `head`).
pub(crate) fn read_stream_committed<S: Store>(
    store: &S,
    head: u64,
    stream: &StreamId,
    from_version: u64,
    limit: usize,
) -> Result<Vec<Envelope>, LogError> {
    let mut out = Vec::new();
    for seq in store.stream_seqs(stream, from_version, limit)? {
        if seq > head {
            break;
        }
        let bytes = store.get(seq)?.ok_or_else(|| LogError::Corrupt {
            seq,
            reason: format!("indexed in stream {stream} but missing"),
        })?;
        out.push(decode_record(seq, &bytes)?);
    }
    Ok(out)
}

/// Up to `limit` committed records from `from_seq` (up to `head`) as stored,
/// each checksum-verified and chained to the one before it in the batch.
pub(crate) fn read_records_committed<S: Store>(
    store: &S,
    head: u64,
    from_seq: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
    let raw = store.scan(from_seq.max(1), head, limit)?;
    let mut prev: Option<(u64, crate::envelope::Hash)> = None;
    for (seq, bytes) in &raw {
        let (prev_hash, hash) = verify_record(*seq, bytes)?;
        if let Some((p, h)) = prev {
            if p + 1 != *seq || h != prev_hash {
                return Err(LogError::Corrupt {
                    seq: *seq,
                    reason: "does not chain to the record before it".into(),
                });
            }
        }
        prev = Some((*seq, hash));
    }
    Ok(raw)
}
