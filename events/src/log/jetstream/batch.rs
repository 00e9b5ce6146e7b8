//! One JetStream message of the log: a group-commit batch's stored records,
//! each behind its length, after a format byte (each record is checked
//! against its own hash when read); and the writer id in its message id.

use super::super::store::EncodedRecord;
use crate::envelope::decode_record;
use crate::error::LogError;

/// The first byte of every message: the batch layout's version.
const BATCH_FORMAT: u8 = 1;

/// The size of `records` as one message.
pub(super) fn batch_len(records: &[EncodedRecord]) -> usize {
    1 + records.iter().map(|r| r.bytes.len() + 4).sum::<usize>()
}

pub(super) fn encode_batch(records: &[EncodedRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch_len(records));
    out.push(BATCH_FORMAT);
    for r in records {
        out.extend_from_slice(&(r.bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&r.bytes);
    }
    out
}

/// The records of one message, each checked against its own hash.
pub(super) fn decode_batch(payload: &[u8]) -> Result<Vec<EncodedRecord>, LogError> {
    let corrupt = |reason: String| LogError::Corrupt { seq: 0, reason };
    let (&format, mut rest) = payload
        .split_first()
        .ok_or_else(|| corrupt("an empty JetStream message".into()))?;
    if format != BATCH_FORMAT {
        return Err(corrupt(format!("unknown batch format {format}")));
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("a record length cut short".into()))?;
        let len = u32::from_be_bytes(*len) as usize;
        let bytes = tail
            .get(..len)
            .ok_or_else(|| corrupt("a record cut short".into()))?;
        rest = &tail[len..];
        let seq = peek_seq(bytes)?;
        let env = decode_record(seq, bytes)?;
        out.push(EncodedRecord {
            seq,
            stream: env.stream,
            version: env.version,
            bytes: bytes.to_vec(),
        });
    }
    Ok(out)
}

/// The seq a stored record claims (decoding it checks the claim).
fn peek_seq(bytes: &[u8]) -> Result<u64, LogError> {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    let body = bytes.get(65..).unwrap_or_default();
    rmp_serde::from_slice::<Seq>(body)
        .map(|s| s.seq)
        .map_err(|e| LogError::Corrupt {
            seq: 0,
            reason: format!("a record without a seq: {e}"),
        })
}

/// An id no other store opened anywhere shares: process, time and a count.
pub(super) fn writer_id() -> String {
    static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{}:{nanos}:{n}", std::process::id());
    blake3::hash(seed.as_bytes()).to_hex()[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_refuses_damage() {
        assert!(decode_batch(&[]).is_err());
        assert!(decode_batch(&[9]).is_err());
        assert!(decode_batch(&[BATCH_FORMAT, 0, 0, 0, 9, 1]).is_err());
        assert!(decode_batch(&[BATCH_FORMAT]).unwrap().is_empty());
    }
}
