//! How often a caller may try to sign in, sign up or ask for a reset: the
//! domain's attempt limits (`crate::domain::account`) applied to in-memory
//! buckets, charged before any password is hashed, and the addresses that
//! signed in to an email before (they are not held to its global limit).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use super::super::error::ApiError;
use crate::domain::AttemptLimit;
use crate::rate_limit::RateLimiter;

/// Remembered (email, address) sign-ins past which the memory starts afresh.
const MAX_KNOWN: usize = 100_000;

/// The attempt buckets of the accounts routes.
#[derive(Debug, Default)]
pub struct Throttle {
    buckets: RateLimiter,
    known: Mutex<HashSet<(String, String)>>,
}

/// Attempts charged; `refund` when the attempt turned out not to count.
#[must_use]
pub struct Charged<'a> {
    throttle: &'a Throttle,
    charges: Vec<(AttemptLimit, String)>,
}

impl Charged<'_> {
    /// Gives every charged attempt back (a successful sign-in).
    pub fn refund(self) {
        for (limit, who) in &self.charges {
            let per = Duration::from_secs(limit.per_secs);
            self.throttle
                .buckets
                .give_back(limit.scope, who, limit.burst, per);
        }
    }
}

impl Throttle {
    /// Charges one attempt to each bucket, or none of them and 429 when any
    /// is empty.
    pub fn charge(
        &self,
        charges: Vec<(AttemptLimit, String)>,
        refusal: &str,
    ) -> Result<Charged<'_>, ApiError> {
        let mut taken = Charged {
            throttle: self,
            charges: Vec::with_capacity(charges.len()),
        };
        for (limit, who) in charges {
            let per = Duration::from_secs(limit.per_secs);
            match self.buckets.take_burst(limit.scope, &who, limit.burst, per) {
                Ok(()) => taken.charges.push((limit, who)),
                Err(wait) => {
                    taken.refund();
                    return Err(ApiError::rate_limited(
                        refusal,
                        wait.as_secs_f64().ceil().max(1.0) as u64,
                    ));
                }
            }
        }
        Ok(taken)
    }

    /// Whether `address` signed in to `email` before.
    pub fn known(&self, email: &str, address: &str) -> bool {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.contains(&(email.to_string(), address.to_string()))
    }

    /// Remembers that `address` signed in to `email`.
    pub fn remember(&self, email: &str, address: &str) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= MAX_KNOWN {
            known.clear();
        }
        known.insert((email.to_string(), address.to_string()));
    }
}
