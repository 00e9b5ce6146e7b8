//! A key's secret: generated from the operating system's CSPRNG (or given),
//! shown once, stored only as its blake3 hash, masked in `Debug`.

use std::fmt;

use super::CoreError;
use crate::domain::DomainError;

/// A key's secret, shown once. Its `Debug` is masked.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret given as text (at least 16 characters).
    pub fn from_text(text: &str) -> Result<Self, DomainError> {
        if text.len() < 16 || text.chars().any(|c| c.is_whitespace() || c == '.') {
            return Err(DomainError::InvalidRequest(
                "a secret needs at least 16 characters, no spaces or dots".into(),
            ));
        }
        Ok(Secret(text.to_string()))
    }

    /// 256 bits from the operating system's CSPRNG, as hex.
    pub fn generate() -> Result<Self, CoreError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| CoreError::Actor(format!("no randomness for a secret: {e}")))?;
        Ok(Secret(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The secret text, to show the user once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hex blake3 hash that is stored instead.
    pub fn hash(&self) -> String {
        blake3::hash(self.0.as_bytes()).to_hex().to_string()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(MASKED)")
    }
}
