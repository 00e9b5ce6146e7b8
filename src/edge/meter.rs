//! Per-tunnel byte and connection counters, summed on the hot path with
//! atomics: traffic's one window. The session records each window as one
//! `TrafficRecorded` at once; what fails to be recorded stays in the meter
//! for the next window.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use beamd_events::vocabulary::{RequestCaptured, TrafficRecorded};
// tokio's clock: virtual (and deterministic) under the simulation's paused runtime.
use tokio::time::Instant;

use crate::actors::{Core, CoreError};

/// Captured requests are recorded at the latest when this many are waiting.
pub const CAPTURE_BATCH: usize = 4096;

/// What a meter counted since its last window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficDelta {
    /// Bytes from public clients.
    pub bytes_in: u64,
    /// Bytes to public clients.
    pub bytes_out: u64,
    /// Connections opened.
    pub connections: u64,
    /// Requests completed.
    pub requests: u64,
    /// Datagrams carried either way (UDP).
    pub datagrams: u64,
}

impl TrafficDelta {
    /// Whether it carries anything.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Counters of one tunnel since the last window.
#[derive(Debug)]
pub struct Meter {
    /// Bytes from public clients toward the agent.
    pub bytes_in: AtomicU64,
    /// Bytes from the agent back to public clients.
    pub bytes_out: AtomicU64,
    /// Public connections accepted.
    pub connections: AtomicU64,
    /// HTTP requests proxied.
    pub requests: AtomicU64,
    /// UDP datagrams carried either way.
    pub datagrams: AtomicU64,
    /// Public connections open right now (not reset by `take`).
    pub active: AtomicU64,
    /// Requests captured since the last report.
    captured: Mutex<Vec<RequestCaptured>>,
    /// Set when the session made its last report: captures are recorded at once.
    closed: AtomicBool,
    /// When the open window began: at the last window recorded (or found
    /// empty), else when the meter was made. A window that failed to be
    /// recorded goes on from where it began.
    window_started: Mutex<Instant>,
    /// A pool member's meter: (member, the key it presented), named in each
    /// window it records.
    member: Option<(String, String)>,
}

impl Default for Meter {
    fn default() -> Self {
        Self {
            bytes_in: AtomicU64::default(),
            bytes_out: AtomicU64::default(),
            connections: AtomicU64::default(),
            requests: AtomicU64::default(),
            datagrams: AtomicU64::default(),
            active: AtomicU64::default(),
            captured: Mutex::default(),
            closed: AtomicBool::default(),
            window_started: Mutex::new(Instant::now()),
            member: None,
        }
    }
}

impl Meter {
    /// The meter of a pool member, which presented `key`.
    pub fn for_member(member: &str, key: &str) -> Self {
        Self {
            member: Some((member.to_string(), key.to_string())),
            ..Self::default()
        }
    }

    /// Takes what was counted since the last call.
    pub fn take(&self) -> TrafficDelta {
        TrafficDelta {
            bytes_in: self.bytes_in.swap(0, Ordering::Relaxed),
            bytes_out: self.bytes_out.swap(0, Ordering::Relaxed),
            connections: self.connections.swap(0, Ordering::Relaxed),
            requests: self.requests.swap(0, Ordering::Relaxed),
            datagrams: self.datagrams.swap(0, Ordering::Relaxed),
        }
    }

    /// Adds back counts that were taken but not recorded.
    fn give_back(&self, d: &TrafficDelta) {
        self.bytes_in.fetch_add(d.bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(d.bytes_out, Ordering::Relaxed);
        self.connections.fetch_add(d.connections, Ordering::Relaxed);
        self.requests.fetch_add(d.requests, Ordering::Relaxed);
        self.datagrams.fetch_add(d.datagrams, Ordering::Relaxed);
    }

    /// Closes the window: what it counted becomes one `TrafficRecorded` of
    /// `tunnel` (its `window_ms` measured since the window began), decided
    /// and appended at once; an empty window records nothing. Returns what
    /// was recorded. When the record fails, the counts go back into the
    /// meter and the window goes on, so that the next record carries them;
    /// unless the failure leaves open whether the window was appended
    /// (`CoreError::may_have_happened`): sending it again could count it twice.
    pub async fn record(&self, core: &Core, tunnel: &str) -> Result<TrafficDelta, CoreError> {
        let now = Instant::now();
        let delta = self.take();
        let started = std::mem::replace(&mut *self.window_start(), now);
        if delta.is_empty() {
            return Ok(delta);
        }
        let window = TrafficRecorded {
            bytes_in: delta.bytes_in,
            bytes_out: delta.bytes_out,
            connections: delta.connections,
            requests: delta.requests,
            window_ms: now.duration_since(started).as_millis() as u64,
            datagrams: delta.datagrams,
            member: self.member.as_ref().map(|(m, _)| m.clone()),
            key: self.member.as_ref().map(|(_, k)| k.clone()),
        };
        match core.record_traffic(tunnel, window).await {
            Ok(_) => Ok(delta),
            Err(e) if e.may_have_happened() => Err(e),
            Err(e) => {
                self.give_back(&delta);
                let mut start = self.window_start();
                *start = (*start).min(started);
                Err(e)
            }
        }
    }

    fn window_start(&self) -> std::sync::MutexGuard<'_, Instant> {
        // An instant is written whole; a poisoned lock still holds a valid one.
        self.window_started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a captured request; returns what to record now: a full batch,
    /// or everything once the session made its last report.
    pub fn capture(&self, request: RequestCaptured) -> Option<Vec<RequestCaptured>> {
        let mut captured = self.captured.lock().unwrap_or_else(|p| p.into_inner());
        captured.push(request);
        let now = captured.len() >= CAPTURE_BATCH || self.closed.load(Ordering::Acquire);
        now.then(|| std::mem::take(&mut *captured))
    }

    /// From now on, captures are handed back for recording at once.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Records, in the background, what a stream counted after the session's
    /// last report: a response or connection that was still streaming when
    /// the agent left or was cut off. Called by each stream when it ends.
    pub fn record_late(self: &Arc<Self>, core: &Arc<Core>, tunnel: &str) {
        if !self.closed.load(Ordering::Acquire) || self.counted().is_empty() {
            return;
        }
        let (meter, core, tunnel) = (self.clone(), core.clone(), tunnel.to_string());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = meter.record(&core, &tunnel).await {
                    let kept = !e.may_have_happened();
                    tracing::warn!(%tunnel, kept, "late traffic not recorded: {e}");
                }
            });
        }
    }

    /// What was counted since the last window, left in place.
    fn counted(&self) -> TrafficDelta {
        TrafficDelta {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            datagrams: self.datagrams.load(Ordering::Relaxed),
        }
    }

    /// Takes the requests captured since the last call.
    pub fn take_captured(&self) -> Vec<RequestCaptured> {
        // Only whole requests are pushed; a poisoned buffer is still consistent.
        std::mem::take(&mut *self.captured.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use beamd_events::log::{GroupCommitLog, MemoryStore};
    use beamd_events::vocabulary::{KeyKind, Plan, TransportKind, TunnelProtocol};
    use beamd_events::{Durability, Event, SystemClock};
    use beamd_snapshots::MemorySnapshotStore;

    use super::*;
    use crate::actors::CoreConfig;
    use crate::domain::{CreateTenant, OpenTunnel, PortRequest, Scope, Scopes};

    /// A core on an in-memory log, with one open tunnel.
    async fn core_with_tunnel() -> (Core, String) {
        let clock = Arc::new(SystemClock);
        let store = Arc::new(MemoryStore::new());
        let (log, _) = GroupCommitLog::open(store, clock.clone(), Durability::Always)
            .expect("an in-memory log");
        let config = CoreConfig::new(Arc::new(log), Arc::new(MemorySnapshotStore::new()), clock);
        let core = Core::start(config).await.expect("a core");
        let tenant = CreateTenant {
            slug: "acme".into(),
            name: "Acme".into(),
            plan: Plan {
                name: "free".into(),
                ..Plan::default()
            },
            tunnel_base: "acme.test".into(),
        };
        let tenant = core.create_tenant(tenant).await.expect("a tenant").id;
        let (key, _) = core
            .issue_key(
                &tenant,
                "k",
                KeyKind::Agent,
                Scopes::default(),
                None,
                Scope::Admin,
            )
            .await
            .expect("a key");
        let open = OpenTunnel {
            protocol: TunnelProtocol::Tcp,
            name: None,
            port: PortRequest::Any {
                from: 20_000,
                to: 20_010,
            },
            transport: TransportKind::Tcp,
            node: "node_t".into(),
            local_addr: "127.0.0.1:1".into(),
            pool: None,
        };
        let tunnel = core.open_tunnel(&key.id, open).await.expect("a tunnel").id;
        (core, tunnel)
    }

    /// Counts `n` requests of 3 bytes in and 4 out.
    fn count(meter: &Meter, n: u64) {
        for _ in 0..n {
            meter.bytes_in.fetch_add(3, Ordering::Relaxed);
            meter.bytes_out.fetch_add(4, Ordering::Relaxed);
            meter.requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn windows(core: &Core) -> Vec<TrafficRecorded> {
        let events = core.log().read_from(1, usize::MAX).await.expect("the log");
        events
            .into_iter()
            .filter_map(|e| match e.event {
                Event::TrafficRecorded(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_window_is_one_event_and_one_that_failed_is_carried_into_the_next() {
        let (core, tunnel) = core_with_tunnel().await;
        let meter = Meter::default();
        count(&meter, 500);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let recorded = meter.record(&core, &tunnel).await.expect("recorded");
        assert_eq!((recorded.bytes_in, recorded.requests), (1_500, 500));
        let first = windows(&core).await;
        assert_eq!(first.len(), 1, "500 requests, one event");
        assert_eq!(
            (first[0].bytes_in, first[0].bytes_out, first[0].requests),
            (1_500, 2_000, 500)
        );
        assert!(first[0].window_ms >= 20, "{}", first[0].window_ms);

        let empty = meter
            .record(&core, &tunnel)
            .await
            .expect("nothing to record");
        assert!(empty.is_empty());
        assert_eq!(
            windows(&core).await.len(),
            1,
            "an empty window records nothing"
        );

        count(&meter, 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(meter.record(&core, "tun_0000000000000000").await.is_err());
        assert_eq!(
            meter.counted().requests,
            2,
            "the failed window's counts stay"
        );
        count(&meter, 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        meter.record(&core, &tunnel).await.expect("recorded");
        let all = windows(&core).await;
        assert_eq!(all.len(), 2);
        assert_eq!((all[1].bytes_in, all[1].requests), (9, 3));
        assert!(
            all[1].window_ms >= 40,
            "the window went on from where the failed one began: {}",
            all[1].window_ms
        );
        core.shutdown().await.expect("a clean stop");
    }
}
