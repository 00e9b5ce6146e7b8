//! Token buckets for the gateway's rate limits, kept in memory on the edge:
//! one per (route override or tier, caller), holding a minute's worth of
//! requests and refilled continuously. Rate limiting is hot-path state, not
//! history, so it is not an event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Buckets above this many are pruned of the full ones.
const PRUNE_AT: usize = 100_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Every caller's bucket.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

impl RateLimiter {
    /// Whether `caller` could take a request now, without taking it.
    pub fn peek(&self, scope: &str, caller: &str, per_minute: u32) -> Result<(), Duration> {
        let capacity = f64::from(per_minute.max(1));
        let per_sec = capacity / 60.0;
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(b) = buckets.get(&(scope.to_string(), caller.to_string())) else {
            return Ok(());
        };
        let refilled = (b.tokens + b.at.elapsed().as_secs_f64() * per_sec).min(capacity);
        if refilled >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - refilled) / per_sec))
        }
    }

    /// Takes one request from `caller`'s bucket in `scope`, which holds
    /// `per_minute` and refills at that rate; `Err(wait)` when it is empty.
    pub fn take(&self, scope: &str, caller: &str, per_minute: u32) -> Result<(), Duration> {
        let capacity = f64::from(per_minute.max(1));
        let per_sec = capacity / 60.0;
        let now = Instant::now();
        // Buckets are replaced whole; a poisoned map is still consistent.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_AT {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < capacity
            });
        }
        let b = buckets
            .entry((scope.to_string(), caller.to_string()))
            .or_insert(Bucket {
                tokens: capacity,
                at: now,
            });
        let refilled = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec).min(capacity);
        b.at = now;
        if refilled >= 1.0 {
            b.tokens = refilled - 1.0;
            Ok(())
        } else {
            b.tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_minutes_burst_then_waits() {
        let l = RateLimiter::default();
        for _ in 0..3 {
            assert!(l.take("r", "me", 3).is_ok());
        }
        let wait = l.take("r", "me", 3).unwrap_err();
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(
            l.take("r", "you", 3).is_ok(),
            "callers have their own buckets"
        );
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(l.take("r", "me", 3).is_ok());
        assert!(l.take("r", "me", 3).is_err());
    }
}
