//! What full capture takes from a body as it streams past: the SHA-256 of
//! all of it (for the event), and its first bytes up to a limit (for the
//! body store). Fed chunk by chunk, without I/O.

use sha2::{Digest, Sha256};

/// The default number of body bytes kept.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// A body being captured.
#[derive(Debug, Clone)]
pub struct BodyTee {
    hasher: Sha256,
    kept: Vec<u8>,
    limit: usize,
    len: u64,
}

/// A captured body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDigest {
    /// SHA-256 of every byte that passed.
    pub sha256: [u8; 32],
    /// How many bytes passed.
    pub len: u64,
    /// The first bytes, up to the limit.
    pub kept: Vec<u8>,
    /// Whether bytes beyond the limit were not kept.
    pub truncated: bool,
}

impl BodyTee {
    /// Keeps up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            hasher: Sha256::new(),
            kept: Vec::new(),
            limit,
            len: 0,
        }
    }

    /// One chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        let room = self.limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }

    /// The digest of what passed.
    pub fn finish(self) -> BodyDigest {
        BodyDigest {
            sha256: self.hasher.finalize().into(),
            truncated: self.len > self.kept.len() as u64,
            len: self.len,
            kept: self.kept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_everything_and_keeps_the_first_bytes() {
        let body: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
        let mut tee = BodyTee::new(DEFAULT_BODY_LIMIT);
        for chunk in body.chunks(7_919) {
            tee.feed(chunk);
        }
        let d = tee.finish();
        assert_eq!(d.sha256, <[u8; 32]>::from(Sha256::digest(&body)));
        assert_eq!(d.len, body.len() as u64);
        assert_eq!(d.kept, body[..DEFAULT_BODY_LIMIT]);
        assert!(d.truncated);
        let mut small = BodyTee::new(DEFAULT_BODY_LIMIT);
        small.feed(b"{\"ok\":true}");
        let d = small.finish();
        assert!(!d.truncated);
        assert_eq!(d.kept, b"{\"ok\":true}");
    }
}
