//! The envelope around each event, its on-disk record format, and the hash chain.
//!
//! A stored record is `[format:1][prev_hash:32][hash:32][body]`, where `body`
//! is the rmp-serde (named fields) encoding of seq, at, stream, version,
//! schema and event, and `hash = blake3(prev_hash || body)`. The chain can be
//! checked without decoding a body; every field of the envelope is covered.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::LogError;
use crate::vocabulary::Event;

/// A blake3 digest.
pub type Hash = [u8; 32];

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: Hash = [0; 32];

/// The schema version written on new events. Older versions keep decoding.
pub const SCHEMA_VERSION: u16 = 1;

/// The record layout version (first byte of each stored record).
const RECORD_FORMAT: u8 = 1;
const HEADER_LEN: usize = 1 + 32 + 32;
const MAX_STREAM_LEN: usize = 128;

/// The id of one stream: the entity whose events it holds (`tun_…`, `ten_…`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    /// Validates and wraps a stream id: 1..=128 printable ASCII bytes, no spaces.
    pub fn new(id: impl Into<String>) -> Result<Self, LogError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= MAX_STREAM_LEN
            && id.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(StreamId(id))
        } else {
            Err(LogError::InvalidStream(id))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One committed event with its position in the log and in its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Global, gap-free sequence number, starting at 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch, from the log's injected clock.
    pub at: u64,
    /// The stream (entity) this event belongs to.
    pub stream: StreamId,
    /// The stream's version after this event (its first event is version 1).
    pub version: u64,
    /// The schema version the event was written with.
    pub schema: u16,
    /// The event itself.
    pub event: Event,
    /// The hash of the previous record (`GENESIS_HASH` for seq 1).
    pub prev_hash: Hash,
    /// `blake3(prev_hash || body)`.
    pub hash: Hash,
}

#[derive(Serialize)]
struct BodyRef<'a> {
    seq: u64,
    at: u64,
    stream: &'a StreamId,
    version: u64,
    schema: u16,
    event: &'a Event,
}

#[derive(Deserialize)]
struct Body {
    seq: u64,
    at: u64,
    stream: StreamId,
    version: u64,
    schema: u16,
    event: Event,
}

/// Encodes one event into a stored record, chained to `prev_hash`.
pub fn encode_record(
    seq: u64,
    at: u64,
    stream: &StreamId,
    version: u64,
    event: &Event,
    prev_hash: &Hash,
) -> Result<(Hash, Vec<u8>), LogError> {
    let body = BodyRef {
        seq,
        at,
        stream,
        version,
        schema: SCHEMA_VERSION,
        event,
    };
    let mut bytes = Vec::with_capacity(HEADER_LEN + 128);
    bytes.push(RECORD_FORMAT);
    bytes.extend_from_slice(prev_hash);
    bytes.extend_from_slice(&[0; 32]);
    rmp_serde::encode::write_named(&mut bytes, &body)
        .map_err(|e| LogError::Encode(e.to_string()))?;
    let hash = chain_hash(prev_hash, &bytes[HEADER_LEN..]);
    bytes[33..HEADER_LEN].copy_from_slice(&hash);
    Ok((hash, bytes))
}

/// `blake3(prev_hash || body)`.
pub fn chain_hash(prev_hash: &Hash, body: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev_hash);
    hasher.update(body);
    *hasher.finalize().as_bytes()
}

/// The chain links of a stored record, checked against its own body.
///
/// Returns `(prev_hash, hash)`; fails if the record is short, of an unknown
/// format, or its body does not hash to its stored hash.
pub fn verify_record(seq: u64, bytes: &[u8]) -> Result<(Hash, Hash), LogError> {
    let corrupt = |reason: &str| LogError::Corrupt {
        seq,
        reason: reason.to_string(),
    };
    if bytes.len() <= HEADER_LEN {
        return Err(corrupt("record is truncated"));
    }
    if bytes[0] != RECORD_FORMAT {
        return Err(corrupt(&format!("unknown record format {}", bytes[0])));
    }
    let mut prev = [0; 32];
    prev.copy_from_slice(&bytes[1..33]);
    let mut stored = [0; 32];
    stored.copy_from_slice(&bytes[33..HEADER_LEN]);
    if chain_hash(&prev, &bytes[HEADER_LEN..]) != stored {
        return Err(corrupt("hash does not match the record's contents"));
    }
    Ok((prev, stored))
}

/// Verifies and decodes a stored record that is expected at `seq`.
pub fn decode_record(seq: u64, bytes: &[u8]) -> Result<Envelope, LogError> {
    let (prev_hash, hash) = verify_record(seq, bytes)?;
    let body: Body =
        rmp_serde::from_slice(&bytes[HEADER_LEN..]).map_err(|e| LogError::Corrupt {
            seq,
            reason: format!("undecodable body: {e}"),
        })?;
    if body.schema > SCHEMA_VERSION {
        return Err(LogError::Corrupt {
            seq,
            reason: format!(
                "schema version {} is newer than this beamd ({SCHEMA_VERSION})",
                body.schema
            ),
        });
    }
    if body.seq != seq {
        return Err(LogError::Corrupt {
            seq,
            reason: format!("record claims seq {}", body.seq),
        });
    }
    Ok(Envelope {
        seq: body.seq,
        at: body.at,
        stream: body.stream,
        version: body.version,
        schema: body.schema,
        event: body.event,
        prev_hash,
        hash,
    })
}

#[derive(Deserialize)]
struct BodyHead {
    stream: StreamId,
    version: u64,
}

/// The stream and version a stored record names, without checking its hash
/// or decoding its event: for rebuilding an index over records whose chain
/// is checked elsewhere.
pub fn record_stream_version(seq: u64, bytes: &[u8]) -> Result<(StreamId, u64), LogError> {
    let body = bytes.get(HEADER_LEN..).ok_or_else(|| LogError::Corrupt {
        seq,
        reason: "record is truncated".into(),
    })?;
    let head: BodyHead = rmp_serde::from_slice(body).map_err(|e| LogError::Corrupt {
        seq,
        reason: format!("undecodable body: {e}"),
    })?;
    Ok((head.stream, head.version))
}

/// Lower-case hex of a hash, for display.
pub fn hex(hash: &Hash) -> String {
    blake3::Hash::from_bytes(*hash).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::{NodeLeft, TrafficRecorded};

    fn stream() -> StreamId {
        StreamId::new("tun_1").unwrap()
    }

    #[test]
    fn round_trips_every_field() {
        let event: Event = TrafficRecorded {
            bytes_in: 7,
            bytes_out: 9,
            ..Default::default()
        }
        .into();
        let (hash, bytes) = encode_record(3, 1_000, &stream(), 2, &event, &[5; 32]).unwrap();
        let env = decode_record(3, &bytes).unwrap();
        assert_eq!(env.seq, 3);
        assert_eq!(env.at, 1_000);
        assert_eq!(env.stream, stream());
        assert_eq!(env.version, 2);
        assert_eq!(env.schema, SCHEMA_VERSION);
        assert_eq!(env.event, event);
        assert_eq!(env.prev_hash, [5; 32]);
        assert_eq!(env.hash, hash);
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let event: Event = NodeLeft {
            reason: "shutdown".into(),
        }
        .into();
        let (_, bytes) = encode_record(1, 1, &stream(), 1, &event, &GENESIS_HASH).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(
                decode_record(1, &bad).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn a_record_at_the_wrong_seq_is_refused() {
        let event: Event = NodeLeft { reason: "x".into() }.into();
        let (_, bytes) = encode_record(4, 1, &stream(), 1, &event, &GENESIS_HASH).unwrap();
        let err = decode_record(5, &bytes).unwrap_err().to_string();
        assert!(err.contains("claims seq 4"), "{err}");
    }

    #[test]
    fn stream_ids_are_validated() {
        assert!(StreamId::new("").is_err());
        assert!(StreamId::new("a b").is_err());
        assert!(StreamId::new("x".repeat(129)).is_err());
        assert!(StreamId::new("ten_abc").is_ok());
    }
}
