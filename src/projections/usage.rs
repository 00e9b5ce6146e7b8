//! The usage projection: per tenant per UTC day bytes, connections, requests,
//! peak concurrent tunnels and event counts; totals; per-key counters. A
//! query for N days reads N entries, whatever the history's length.

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
    const KIND: &'static str = "usage";

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
            Event::TunnelOpened(_) | Event::TunnelResumed(_) => Some(true),
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
        let counters = key.map(|k| self.keys.entry(k).or_default());
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
                if let Some(c) = counters {
                    c.bytes_up += t.bytes_in;
                    c.bytes_down += t.bytes_out;
                    c.connections += t.connections;
                    c.last_used_at = Some(envelope.at);
                }
            }
            Event::TunnelOpened(_) | Event::TunnelResumed(_) => {
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
#[path = "usage_tests.rs"]
mod tests;
