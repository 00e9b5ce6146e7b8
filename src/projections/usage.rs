//! The usage projection: per tenant per UTC day bytes, connections, requests,
//! peak concurrent tunnels and event counts; totals; per-key counters;
//! per-tunnel totals. It is the one owner of byte totals: the catalog and
//! the tunnel aggregate keep none, the API and the byte limits read them
//! here. A query for N days reads N entries, whatever the history's length.

use std::collections::BTreeMap;

use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use crate::domain::calendar::{day_of, month_bounds, DAY_MS};

/// One tenant's usage on one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayUsage {
    /// Bytes from public clients into tunnels.
    pub bytes_in: u64,
    /// Bytes from tunnels out to public clients.
    pub bytes_out: u64,
    /// Public connections.
    pub connections: u64,
    /// HTTP requests.
    pub requests: u64,
    /// Most tunnels online at once.
    pub peak_tunnels: u64,
    /// Events recorded for the tenant.
    pub events: u64,
}

impl DayUsage {
    /// Bytes in both directions.
    pub fn bytes(&self) -> u64 {
        self.bytes_in + self.bytes_out
    }
}

/// A tenant's all-time figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantTotals {
    /// Sum of all days.
    pub total: DayUsage,
    /// Tunnels online now.
    pub online_tunnels: u64,
    /// Time of the tenant's last event.
    pub last_seen: Option<u64>,
}

/// A key's counters since its last reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyCounters {
    /// Bytes from public clients toward the agent's service.
    pub bytes_up: u64,
    /// Bytes from the agent's service back to public clients.
    pub bytes_down: u64,
    /// Public connections.
    pub connections: u64,
    /// Last time a tunnel of this key opened, resumed or carried traffic.
    pub last_used_at: Option<u64>,
}

impl KeyCounters {
    /// Bytes both ways, as key limits count them.
    pub fn bytes(&self) -> u64 {
        self.bytes_up + self.bytes_down
    }
}

/// A tunnel's traffic since it opened, while it is not released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelTotals {
    /// Bytes from public clients toward the agent.
    pub bytes_in: u64,
    /// Bytes from the agent back to public clients.
    pub bytes_out: u64,
    /// Public connections.
    pub connections: u64,
    /// HTTP requests.
    pub requests: u64,
    /// UDP datagrams, either way.
    #[serde(default)]
    pub datagrams: u64,
}

/// The usage projection's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageProjection {
    /// (tenant, day number) → usage.
    pub days: BTreeMap<(String, u64), DayUsage>,
    /// Tenant → totals.
    pub tenants: BTreeMap<String, TenantTotals>,
    /// Key → counters.
    pub keys: BTreeMap<String, KeyCounters>,
    /// Tunnel (until released) → totals.
    tunnels: BTreeMap<String, TunnelTotals>,
    /// (pool tunnel, member) → the member's share of the tunnel's totals,
    /// until the tunnel is released (members that left included).
    #[serde(default)]
    members: BTreeMap<(String, String), TunnelTotals>,
    /// Stream (tunnel, key, domain) → (tenant, key) it belongs to.
    owners: BTreeMap<String, (String, Option<String>)>,
    /// Tunnels online now.
    online: BTreeMap<String, bool>,
}

impl UsageProjection {
    /// The tenant's usage for the `days` UTC days ending with the day of `now_ms`, oldest first.
    pub fn series(&self, tenant: &str, now_ms: u64, days: u64) -> Vec<(u64, DayUsage)> {
        let last = day_of(now_ms);
        let first = (last + 1).saturating_sub(days);
        let range = (tenant.to_string(), first)..=(tenant.to_string(), last);
        let stored: BTreeMap<u64, DayUsage> =
            self.days.range(range).map(|((_, d), u)| (*d, *u)).collect();
        (first..=last)
            .map(|d| (d, stored.get(&d).copied().unwrap_or_default()))
            .collect()
    }

    /// Bytes the tenant used in the calendar month containing `now_ms`.
    pub fn month_bytes(&self, tenant: &str, now_ms: u64) -> u64 {
        let (start, end) = month_bounds(now_ms);
        let range = (tenant.to_string(), start / DAY_MS)..(tenant.to_string(), end / DAY_MS);
        self.days.range(range).map(|(_, u)| u.bytes()).sum()
    }

    /// A key's counters.
    pub fn key(&self, key: &str) -> KeyCounters {
        self.keys.get(key).copied().unwrap_or_default()
    }

    /// A tunnel's totals (zero once it is released).
    pub fn tunnel(&self, tunnel: &str) -> TunnelTotals {
        self.tunnels.get(tunnel).copied().unwrap_or_default()
    }

    /// Each member's share of a pool tunnel's totals, members that left included.
    pub fn members(&self, tunnel: &str) -> Vec<(String, TunnelTotals)> {
        let range = (tunnel.to_string(), String::new())..;
        (self.members.range(range))
            .take_while(|((t, _), _)| t == tunnel)
            .map(|((_, m), totals)| (m.clone(), *totals))
            .collect()
    }

    /// A tenant's totals.
    pub fn tenant(&self, tenant: &str) -> TenantTotals {
        self.tenants.get(tenant).copied().unwrap_or_default()
    }

    /// The tenant an event belongs to, if it belongs to one (node events do
    /// not). Valid once the projection has folded the event in.
    pub fn tenant_of(&self, envelope: &Envelope) -> Option<String> {
        self.owner_of(envelope).map(|(tenant, _)| tenant)
    }

    fn owner_of(&self, envelope: &Envelope) -> Option<(String, Option<String>)> {
        let stream = envelope.stream.as_str();
        match &envelope.event {
            Event::TenantCreated(_) | Event::TenantPlanChanged(_) | Event::TenantRenamed(_) => {
                Some((stream.to_string(), None))
            }
            Event::TunnelOpened(e) => Some((e.tenant.clone(), Some(e.key.clone()))),
            Event::KeyIssued(e) => Some((e.tenant.clone(), Some(stream.to_string()))),
            Event::DomainAdded(e) => Some((e.tenant.clone(), None)),
            _ => self.owners.get(stream).cloned(),
        }
    }
}

impl Fold for UsageProjection {
    /// The kind carries the state's shape: snapshots of the earlier shape
    /// (kind `usage`, without per-tunnel totals, now in `RETIRED_KINDS`) are
    /// never decoded as this one. A store holding only those has no usage
    /// snapshot, so the projections are rebuilt from the log once.
    const KIND: &'static str = "usage.2";

    fn apply(&mut self, envelope: &Envelope) {
        let Some((tenant, key)) = self.owner_of(envelope) else {
            return; // node events belong to no tenant
        };
        let stream = envelope.stream.as_str();
        if matches!(
            envelope.event,
            Event::TunnelOpened(_) | Event::KeyIssued(_) | Event::DomainAdded(_)
        ) {
            self.owners
                .insert(stream.to_string(), (tenant.clone(), key.clone()));
        }
        let was_online = self.online.get(stream).copied().unwrap_or(false);
        let online_now = match &envelope.event {
            Event::TunnelOpened(_) | Event::TunnelResumed(_) | Event::TunnelMemberJoined(_) => {
                Some(true)
            }
            Event::TunnelWentOffline(_) | Event::TunnelReleased(_) => Some(false),
            _ => None,
        };
        let totals = self.tenants.entry(tenant.clone()).or_default();
        if let Some(now) = online_now {
            if now != was_online {
                if now {
                    totals.online_tunnels += 1;
                } else {
                    totals.online_tunnels = totals.online_tunnels.saturating_sub(1);
                }
            }
            if envelope.event.kind() == "TunnelReleased" {
                self.online.remove(stream);
            } else {
                self.online.insert(stream.to_string(), now);
            }
        }
        totals.last_seen = Some(envelope.at);
        let online = totals.online_tunnels;
        let day = self.days.entry((tenant, day_of(envelope.at))).or_default();
        day.events += 1;
        day.peak_tunnels = day.peak_tunnels.max(online);
        totals.total.events += 1;
        totals.total.peak_tunnels = totals.total.peak_tunnels.max(online);
        // A pool member's traffic and joining count for the key it presented.
        let key = match &envelope.event {
            Event::TrafficRecorded(t) => t.key.clone().or(key),
            Event::TunnelMemberJoined(j) => Some(j.key.clone()),
            _ => key,
        };
        let counters = key.map(|k| self.keys.entry(k).or_default());
        match &envelope.event {
            Event::TunnelOpened(_) => {
                self.tunnels
                    .insert(stream.to_string(), TunnelTotals::default());
            }
            Event::TunnelReleased(_) => {
                self.tunnels.remove(stream);
                let members: Vec<_> = (self.members.range((stream.to_string(), String::new())..))
                    .take_while(|((t, _), _)| t == stream)
                    .map(|(k, _)| k.clone())
                    .collect();
                members.iter().for_each(|k| {
                    self.members.remove(k);
                });
            }
            _ => {}
        }
        match &envelope.event {
            Event::TrafficRecorded(t) => {
                day.bytes_in += t.bytes_in;
                day.bytes_out += t.bytes_out;
                day.connections += t.connections;
                day.requests += t.requests;
                totals.total.bytes_in += t.bytes_in;
                totals.total.bytes_out += t.bytes_out;
                totals.total.connections += t.connections;
                totals.total.requests += t.requests;
                // A released tunnel's last window counts for its tenant and key only.
                if let Some(tunnel) = self.tunnels.get_mut(stream) {
                    tunnel.bytes_in += t.bytes_in;
                    tunnel.bytes_out += t.bytes_out;
                    tunnel.connections += t.connections;
                    tunnel.requests += t.requests;
                    tunnel.datagrams += t.datagrams;
                    if let Some(m) = &t.member {
                        let member = (self.members)
                            .entry((stream.to_string(), m.clone()))
                            .or_default();
                        member.bytes_in += t.bytes_in;
                        member.bytes_out += t.bytes_out;
                        member.connections += t.connections;
                        member.requests += t.requests;
                    }
                }
                if let Some(c) = counters {
                    c.bytes_up += t.bytes_in;
                    c.bytes_down += t.bytes_out;
                    c.connections += t.connections;
                    c.last_used_at = Some(envelope.at);
                }
            }
            Event::TunnelOpened(_) | Event::TunnelResumed(_) | Event::TunnelMemberJoined(_) => {
                if let Some(c) = counters {
                    c.last_used_at = Some(envelope.at);
                }
            }
            Event::KeyCountersReset(_) => {
                if let Some(c) = counters {
                    *c = KeyCounters {
                        last_used_at: c.last_used_at,
                        ..KeyCounters::default()
                    };
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    // Usage projection tests.
    use super::*;
    use crate::domain::calendar::days_from_civil;
    use crate::domain::testkit::envelope;
    use beamd_events::vocabulary::{
        KeyCountersReset, KeyIssued, KeyKind, Plan, TenantCreated, TrafficRecorded, TransportKind,
        TunnelOpened, TunnelProtocol, TunnelReleased, TunnelWentOffline,
    };

    fn day_ms(y: i64, m: u32, d: u32) -> u64 {
        days_from_civil(y, m, d) as u64 * DAY_MS
    }

    fn opened(key: &str) -> Event {
        TunnelOpened {
            tenant: "ten_1".into(),
            key: key.into(),
            protocol: TunnelProtocol::Tcp,
            name: None,
            port: Some(1),
            transport: TransportKind::Tcp,
            node: "n".into(),
            local_addr: "x".into(),
            pool: false,
        }
        .into()
    }

    fn traffic(bytes_in: u64, bytes_out: u64) -> Event {
        TrafficRecorded {
            bytes_in,
            bytes_out,
            connections: 1,
            requests: 2,
            window_ms: 1_000,
            member: None,
            key: None,
            datagrams: 0,
        }
        .into()
    }

    fn world() -> (UsageProjection, u64) {
        let mut u = UsageProjection::default();
        let t0 = day_ms(2026, 1, 31) + 1_000;
        let mut v = 0;
        let mut push = |u: &mut UsageProjection, stream: &str, at: u64, e: Event| {
            v += 1;
            u.apply(&envelope(stream, v, at, e));
        };
        let tenant = TenantCreated {
            slug: "a".into(),
            name: "A".into(),
            plan: Plan::default(),
            tunnel_base: "a.example".into(),
        };
        push(&mut u, "ten_1", t0, tenant.into());
        let key = KeyIssued {
            tenant: "ten_1".into(),
            label: "k".into(),
            kind: KeyKind::Agent,
            scopes: vec![],
            secret_hash: String::new(),
            limit_bytes: None,
        };
        push(&mut u, "tok_1", t0, key.into());
        push(&mut u, "tun_1", t0, opened("tok_1"));
        push(&mut u, "tun_2", t0, opened("tok_1"));
        push(&mut u, "tun_1", t0 + 5, traffic(10, 20));
        push(&mut u, "tun_2", t0 + DAY_MS, traffic(100, 200)); // Feb 1
        push(
            &mut u,
            "tun_2",
            t0 + DAY_MS,
            TunnelWentOffline { reason: "x".into() }.into(),
        );
        push(&mut u, "tun_1", t0 + 3 * DAY_MS, traffic(1, 2)); // Feb 3
        push(&mut u, "tun_1", t0 + 3 * DAY_MS, TunnelReleased {}.into());
        (u, t0)
    }

    #[test]
    fn days_sum_traffic_and_peaks() {
        let (u, t0) = world();
        let series = u.series("ten_1", t0 + 3 * DAY_MS, 30);
        assert_eq!(series.len(), 30);
        let jan31 = series[26].1;
        assert_eq!(
            (jan31.bytes_in, jan31.bytes_out, jan31.requests),
            (10, 20, 2)
        );
        assert_eq!(jan31.peak_tunnels, 2);
        assert_eq!(jan31.events, 5);
        assert_eq!(series[27].1.bytes(), 300);
        assert_eq!(
            series[27].1.peak_tunnels, 2,
            "the peak counts tunnels online when the day began"
        );
        assert_eq!(
            series[28].1,
            DayUsage::default(),
            "days without events are zero"
        );
        assert_eq!(series[29].1.bytes(), 3);
        let totals = u.tenant("ten_1");
        assert_eq!((totals.total.bytes(), totals.online_tunnels), (333, 0));
        assert_eq!(totals.last_seen, Some(t0 + 3 * DAY_MS));
    }

    #[test]
    fn month_bytes_stay_inside_the_calendar_month() {
        let (u, t0) = world();
        assert_eq!(u.month_bytes("ten_1", t0), 30);
        assert_eq!(u.month_bytes("ten_1", t0 + 3 * DAY_MS), 303);
        assert_eq!(u.month_bytes("ten_other", t0), 0);
    }

    #[test]
    fn tunnel_totals_last_until_the_tunnel_is_released() {
        let (mut u, t0) = world();
        let tun_2 = u.tunnel("tun_2");
        assert_eq!(
            (
                tun_2.bytes_in,
                tun_2.bytes_out,
                tun_2.connections,
                tun_2.requests
            ),
            (100, 200, 1, 2),
            "an offline tunnel keeps its totals"
        );
        assert_eq!(u.tunnel("tun_1"), TunnelTotals::default(), "released");
        // A window counted before release and recorded after it counts for
        // the tenant and the key, and brings no released tunnel back.
        u.apply(&envelope("tun_1", 99, t0 + 3 * DAY_MS, traffic(5, 5)));
        assert_eq!(u.tunnel("tun_1"), TunnelTotals::default());
        assert_eq!(u.tenant("ten_1").total.bytes(), 343);
        assert_eq!(u.key("tok_1").bytes(), 343);
        crate::domain::testkit::round_trip(&u);
    }

    #[test]
    fn key_counters_count_since_reset() {
        let (mut u, t0) = world();
        let k = u.key("tok_1");
        assert_eq!((k.bytes_up, k.bytes_down, k.connections), (111, 222, 3));
        assert_eq!(k.last_used_at, Some(t0 + 3 * DAY_MS));
        u.apply(&envelope(
            "tok_1",
            99,
            t0 + 4 * DAY_MS,
            KeyCountersReset {}.into(),
        ));
        let k = u.key("tok_1");
        assert_eq!((k.bytes(), k.connections), (0, 0));
        assert_eq!(k.last_used_at, Some(t0 + 3 * DAY_MS));
        crate::domain::testkit::round_trip(&u);
    }
}
