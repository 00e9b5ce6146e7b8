//! What account sign-in rests on: argon2id password hashes (computed off the
//! async runtime, they are slow on purpose, and at most one per core at a
//! time: each takes 19 MiB) and HS256 JWTs signed with a secret kept in the
//! data dir, carrying the account's session version and a token id.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::super::error::ApiError;
use crate::domain::Account;
use crate::metric_catalog;

/// How long a sign-in token lasts, in seconds.
pub const JWT_LIFETIME_SECS: u64 = 24 * 3600;

/// How long a request waits for a turn to hash before it gets 429.
const HASH_WAIT: Duration = Duration::from_secs(10);
/// Requests waiting for a turn to hash past which the next gets 429 at once.
const MAX_WAITING: usize = 256;

/// A password's argon2id hash (PHC string), computed on the calling thread.
fn hash_now(password: &str) -> Result<String, ApiError> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&raw)
        .map_err(|e| ApiError::internal(format!("cannot encode the salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("cannot hash the password: {e}")))
}

/// Password hashing, bounded: at most `permits` hashes at once (one per
/// core), the rest wait their turn for a while and then get 429. Sign-in
/// with an unknown email verifies against a dummy hash of the same cost, so
/// the time of the answer does not tell who has an account.
pub struct Hashing {
    permits: Arc<tokio::sync::Semaphore>,
    waiting: AtomicUsize,
    dummy: String,
}

impl Hashing {
    /// Hashing with `permits` at once (at least one); computes the dummy hash now.
    pub fn new(permits: usize) -> Result<Self, ApiError> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
        let unguessable: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            permits: Arc::new(tokio::sync::Semaphore::new(permits.max(1))),
            waiting: AtomicUsize::new(0),
            dummy: hash_now(&unguessable)?,
        })
    }

    /// Hashing with one permit per core.
    pub fn per_core() -> Result<Self, ApiError> {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// Runs `work` on a blocking thread once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let busy = || ApiError::rate_limited("too many sign-ins at once; try again shortly", 1);
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(busy());
        }
        let permit = tokio::time::timeout(HASH_WAIT, self.permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let permit = match permit {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(ApiError::internal("password hashing stopped")),
            Err(_) => return Err(busy()),
        };
        metrics::counter!(metric_catalog::PASSWORD_HASHES.name).increment(1);
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// A password's argon2id hash (PHC string).
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `hash`; with no hash (an unknown email),
    /// the dummy one is verified instead, at the same cost, and never matches.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let matches = self
            .run(move || {
                PasswordHash::new(&hash)
                    .map(|h| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &h)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && matches)
    }
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
    /// The account's session version when issued (tokens issued before
    /// are older than the last password change).
    #[serde(default)]
    pub ver: u64,
    /// The token's id, for signing it out.
    #[serde(default)]
    pub jti: String,
}

impl Claims {
    /// The id a sign-out records: `jti`, or for tokens issued without one, a
    /// hash of the token itself.
    pub fn token_id(&self, jwt: &str) -> String {
        match self.jti.is_empty() {
            false => self.jti.clone(),
            true => blake3::hash(jwt.as_bytes()).to_hex().to_string(),
        }
    }
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

    /// A token for `account`, valid from `now_secs` until its next password change or sign-out.
    pub fn issue(&self, account: &Account, now_secs: u64) -> Result<String, ApiError> {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
        let claims = Claims {
            sub: account.id.clone(),
            tenant: account.tenant.clone(),
            exp: now_secs + JWT_LIFETIME_SECS,
            ver: account.session_version,
            jti: raw.iter().map(|b| format!("{b:02x}")).collect(),
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
