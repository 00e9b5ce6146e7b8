//! The inspector projection: the last N captured requests per tenant (N
//! configurable, default 1,000). History beyond N lives in `InspectorIndex`.

use std::collections::{BTreeMap, VecDeque};

use beamd_events::vocabulary::RequestCaptured;
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

/// How many recent requests per tenant are kept in memory by default.
pub const DEFAULT_RECENT: usize = 1_000;

/// One captured request as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapturedRequest {
    /// The event's seq (unique id).
    pub seq: u64,
    /// When it was captured.
    pub at: u64,
    /// Owning tenant.
    pub tenant: String,
    /// Tunnel that carried it.
    pub tunnel: String,
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// Duration.
    pub duration_ms: u64,
    /// Request bytes.
    pub bytes_in: u64,
    /// Response bytes.
    pub bytes_out: u64,
    /// Client IP.
    pub ip: String,
    /// User agent.
    pub user_agent: String,
    /// Protocol.
    pub proto: String,
    /// Host.
    pub host: String,
    /// The gateway route that took it.
    #[serde(default)]
    pub route: Option<String>,
    /// The gateway consumer that sent it.
    #[serde(default)]
    pub consumer: Option<String>,
    /// Its id (`req_…`); empty only in requests captured before every
    /// request had one (without full capture).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The seq of the request it replayed, in replays recorded before
    /// requests were named by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<u64>,
    /// The id of the request it replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of_id: Option<String>,
    /// Why the edge answered it itself, if it did (see `RequestCaptured::refused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The pool member that served it (pool tunnels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Who had signed in at the edge (tunnels behind OpenID Connect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// The inspector projection's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectorProjection {
    /// How many requests per tenant are kept.
    pub capacity: usize,
    /// Tenant → newest-last requests.
    pub recent: BTreeMap<String, VecDeque<CapturedRequest>>,
    /// Tunnel → tenant.
    tunnels: BTreeMap<String, String>,
}

impl Default for InspectorProjection {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_RECENT)
    }
}

impl InspectorProjection {
    /// An empty projection keeping `capacity` requests per tenant.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            recent: BTreeMap::new(),
            tunnels: BTreeMap::new(),
        }
    }

    /// The requests an event captured (a `RequestCaptured`, or a window's
    /// `RequestsCaptured`) for a known tunnel, in order; none for any other
    /// event.
    pub fn captured(&self, envelope: &Envelope) -> Vec<CapturedRequest> {
        let one = |r: &RequestCaptured, tenant: &String| CapturedRequest {
            seq: envelope.seq,
            at: if r.started_at > 0 {
                r.started_at
            } else {
                envelope.at
            },
            tenant: tenant.clone(),
            tunnel: envelope.stream.to_string(),
            method: r.method.clone(),
            path: r.path.clone(),
            status: r.status,
            duration_ms: r.duration_ms,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            ip: r.ip.clone(),
            user_agent: r.user_agent.clone(),
            route: r.route.clone(),
            consumer: r.consumer.clone(),
            proto: r.proto.clone(),
            host: r.host.clone(),
            id: r.id.clone(),
            replay_of: r.replay_of,
            replay_of_id: r.replay_of_id.clone(),
            refused: r.refused.clone(),
            member: r.member.clone(),
            user: r.user.clone(),
        };
        let requests: &[RequestCaptured] = match &envelope.event {
            Event::RequestCaptured(r) => std::slice::from_ref(r),
            Event::RequestsCaptured(w) => &w.requests,
            _ => return Vec::new(),
        };
        let Some(tenant) = self.tunnels.get(envelope.stream.as_str()) else {
            return Vec::new();
        };
        requests.iter().map(|r| one(r, tenant)).collect()
    }

    /// The tenant's recent request named `id` (`req_…`); older ones are
    /// found in the history (`InspectorIndex::by_id`).
    pub fn by_id(&self, tenant: &str, id: &str) -> Option<&CapturedRequest> {
        self.recent.get(tenant)?.iter().rev().find(|r| r.id == id)
    }

    /// The tenant's most recent requests, newest first.
    pub fn recent(&self, tenant: &str, limit: usize) -> Vec<CapturedRequest> {
        self.recent
            .get(tenant)
            .map(|q| q.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default()
    }
}

impl Fold for InspectorProjection {
    const KIND: &'static str = "inspector";

    fn apply(&mut self, envelope: &Envelope) {
        if let Event::TunnelOpened(e) = &envelope.event {
            self.tunnels
                .insert(envelope.stream.to_string(), e.tenant.clone());
        }
        for req in self.captured(envelope) {
            let queue = self.recent.entry(req.tenant.clone()).or_default();
            queue.push_back(req);
            while queue.len() > self.capacity {
                queue.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::{envelope, round_trip};
    use beamd_events::vocabulary::{RequestCaptured, TransportKind, TunnelOpened, TunnelProtocol};

    #[test]
    fn keeps_the_last_n_per_tenant() {
        let mut p = InspectorProjection::with_capacity(3);
        let open = TunnelOpened {
            tenant: "ten_1".into(),
            key: "tok_1".into(),
            protocol: TunnelProtocol::Http,
            name: Some("a".into()),
            port: None,
            transport: TransportKind::Quic,
            node: "n".into(),
            local_addr: "x".into(),
            pool: false,
        };
        p.apply(&envelope("tun_1", 1, 1, open.into()));
        for i in 0..5u16 {
            let req = RequestCaptured {
                method: "GET".into(),
                path: format!("/{i}"),
                status: 200 + i,
                ..Default::default()
            };
            p.apply(&envelope("tun_1", 2 + u64::from(i), 10, req.into()));
        }
        let recent = p.recent("ten_1", 10);
        assert_eq!(
            recent.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
            ["/4", "/3", "/2"]
        );
        assert_eq!(recent[0].tunnel, "tun_1");
        assert!(p.recent("ten_2", 10).is_empty());
        round_trip(&p);
    }
}
