//! Token buckets for the gateway's rate limits (and the accounts' attempt
//! limits), kept in memory on the edge: one per (route override or tier,
//! caller), holding a minute's worth of requests (or a burst refilled over
//! a longer period) and refilled continuously. Rate limiting is hot-path
//! state, not history, so it is not an event.

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

/// A bucket's rate: capacity (a minute's worth) and refill per second.
#[derive(Clone, Copy)]
struct Rate {
    capacity: f64,
    per_sec: f64,
}

impl Rate {
    fn per_minute(n: u32) -> Self {
        Self::burst(n, Duration::from_secs(60))
    }

    fn burst(n: u32, per: Duration) -> Self {
        let capacity = f64::from(n.max(1));
        Self {
            capacity,
            per_sec: capacity / per.as_secs_f64().max(0.001),
        }
    }

    /// The tokens `b` holds at `now`.
    fn refilled(self, b: &Bucket, now: Instant) -> f64 {
        (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.capacity)
    }

    /// How long until `tokens` reach one.
    fn wait(self, tokens: f64) -> Duration {
        Duration::from_secs_f64((1.0 - tokens) / self.per_sec)
    }
}

impl RateLimiter {
    /// Whether `caller` could take a request now, without taking it.
    pub fn peek(&self, scope: &str, caller: &str, per_minute: u32) -> Result<(), Duration> {
        let rate = Rate::per_minute(per_minute);
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(b) = buckets.get(&(scope.to_string(), caller.to_string())) else {
            return Ok(());
        };
        let tokens = rate.refilled(b, Instant::now());
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(rate.wait(tokens))
        }
    }

    /// Takes one request from `caller`'s bucket in `scope`, which holds
    /// `per_minute` and refills at that rate; `Err(wait)` when it is empty.
    pub fn take(&self, scope: &str, caller: &str, per_minute: u32) -> Result<(), Duration> {
        self.take_at(scope, caller, Rate::per_minute(per_minute))
    }

    /// Takes one attempt from `caller`'s bucket in `scope`, which holds
    /// `burst` and refills them over `per`; `Err(wait)` when it is empty.
    pub fn take_burst(
        &self,
        scope: &str,
        caller: &str,
        burst: u32,
        per: Duration,
    ) -> Result<(), Duration> {
        self.take_at(scope, caller, Rate::burst(burst, per))
    }

    /// Gives back one attempt taken with `take_burst` (it did not count).
    pub fn give_back(&self, scope: &str, caller: &str, burst: u32, per: Duration) {
        let rate = Rate::burst(burst, per);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = buckets.get_mut(&(scope.to_string(), caller.to_string())) {
            let now = Instant::now();
            b.tokens = (rate.refilled(b, now) + 1.0).min(rate.capacity);
            b.at = now;
        }
    }

    fn take_at(&self, scope: &str, caller: &str, rate: Rate) -> Result<(), Duration> {
        let now = Instant::now();
        // Buckets are replaced whole; a poisoned map is still consistent.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_AT {
            buckets.retain(|_, b| rate.refilled(b, now) < rate.capacity);
        }
        let b = buckets
            .entry((scope.to_string(), caller.to_string()))
            .or_insert(Bucket {
                tokens: rate.capacity,
                at: now,
            });
        let tokens = rate.refilled(b, now);
        b.at = now;
        if tokens >= 1.0 {
            b.tokens = tokens - 1.0;
            Ok(())
        } else {
            b.tokens = tokens;
            Err(rate.wait(tokens))
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

    #[tokio::test(start_paused = true)]
    async fn a_burst_refills_over_its_period_and_takes_can_be_given_back() {
        let l = RateLimiter::default();
        let hour = Duration::from_secs(3600);
        for _ in 0..2 {
            assert!(l.take_burst("s", "me", 2, hour).is_ok());
        }
        let wait = l.take_burst("s", "me", 2, hour).unwrap_err();
        assert!(wait > Duration::from_secs(1790), "{wait:?}");
        l.give_back("s", "me", 2, hour);
        assert!(l.take_burst("s", "me", 2, hour).is_ok());
        assert!(l.take_burst("s", "me", 2, hour).is_err());
    }
}
