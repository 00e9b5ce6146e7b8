//! What account sign-in rests on: argon2id password hashes (computed off the
//! async runtime, they are slow on purpose) and HS256 JWTs signed with a
//! secret kept in the data dir.

use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::super::error::ApiError;

/// How long a sign-in token lasts, in seconds.
pub const JWT_LIFETIME_SECS: u64 = 24 * 3600;

/// A password's argon2id hash (PHC string).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
        let salt = SaltString::encode_b64(&raw)
            .map_err(|e| ApiError::internal(format!("cannot encode the salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(format!("cannot hash the password: {e}")))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}

/// Whether `password` matches `hash`.
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// What a sign-in token says.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The account.
    pub sub: String,
    /// Its tenant.
    pub tenant: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// The key JWTs are signed with.
#[derive(Clone)]
pub struct JwtKey(Vec<u8>);

impl JwtKey {
    /// Reads the key at `path`, or makes one (0600) when there is none.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        if let Ok(text) = std::fs::read_to_string(path) {
            let bytes = text.trim().as_bytes().to_vec();
            anyhow::ensure!(
                bytes.len() >= 32,
                "{} is too short to be a JWT key",
                path.display()
            );
            return Ok(Self(bytes));
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        crate::data_dir::write_private(path, &hex)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self(hex.into_bytes()))
    }

    /// A key given directly (benchmarks, tests).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// A token for `account` of `tenant`, valid from `now_secs`.
    pub fn issue(&self, account: &str, tenant: &str, now_secs: u64) -> Result<String, ApiError> {
        let claims = Claims {
            sub: account.to_string(),
            tenant: tenant.to_string(),
            exp: now_secs + JWT_LIFETIME_SECS,
        };
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.0),
        )
        .map_err(|e| ApiError::internal(format!("cannot sign the token: {e}")))
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims = ["exp", "sub"].into_iter().map(String::from).collect();
        decode::<Claims>(token, &DecodingKey::from_secret(&self.0), &validation)
            .map(|d| d.claims)
            .map_err(|e| ApiError::unauthorized(format!("the sign-in token is not valid: {e}")))
    }
}
