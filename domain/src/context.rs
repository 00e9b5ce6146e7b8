//! What a decision may know of the world: the time and a fresh id, handed in by the actor.

/// The context of one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx {
    /// Milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// A fresh random number for ids and tokens.
    pub fresh: u64,
}

impl Ctx {
    /// A context at `now_ms` with the fresh value `fresh`.
    pub fn new(now_ms: u64, fresh: u64) -> Self {
        Self { now_ms, fresh }
    }

    /// A new id with the given prefix, e.g. `tun_00000000000000ff`.
    pub fn id(&self, prefix: &str) -> String {
        format!("{prefix}_{:016x}", self.fresh)
    }

    /// A hard-to-guess token derived from the fresh value (e.g. a DNS TXT challenge).
    pub fn token(&self, purpose: &str) -> String {
        let mut h = blake3::Hasher::new();
        h.update(purpose.as_bytes());
        h.update(&self.fresh.to_be_bytes());
        h.update(&self.now_ms.to_be_bytes());
        h.finalize().to_hex()[..32].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tokens_come_from_the_fresh_value() {
        let a = Ctx::new(1, 255);
        assert_eq!(a.id("tun"), "tun_00000000000000ff");
        assert_eq!(a.token("txt"), Ctx::new(1, 255).token("txt"));
        assert_ne!(a.token("txt"), Ctx::new(1, 256).token("txt"));
    }
}
