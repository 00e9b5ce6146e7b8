//! The status projection: counts of live things and the edge nodes.

use std::collections::BTreeMap;

use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use crate::domain::{Node, NodeStatus};

/// Counts shown by `GET /status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Tenants.
    pub tenants: u64,
    /// Keys not revoked.
    pub active_keys: u64,
    /// Tunnels an agent serves now.
    pub online_tunnels: u64,
    /// Tunnels whose agent went away (name or port kept).
    pub offline_tunnels: u64,
    /// Custom domains not removed.
    pub domains: u64,
    /// Nodes up.
    pub nodes_up: u64,
}

/// The status projection's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusProjection {
    /// The counts.
    pub counts: Counts,
    /// Node id → node.
    pub nodes: BTreeMap<String, Node>,
    /// Tunnel id → online?
    tunnels: BTreeMap<String, bool>,
}

impl Fold for StatusProjection {
    const KIND: &'static str = "status";

    fn apply(&mut self, envelope: &Envelope) {
        let id = envelope.stream.as_str();
        let c = &mut self.counts;
        match &envelope.event {
            Event::TenantCreated(_) => c.tenants += 1,
            Event::KeyIssued(_) => c.active_keys += 1,
            Event::KeyRevoked(_) => c.active_keys = c.active_keys.saturating_sub(1),
            Event::DomainAdded(_) => c.domains += 1,
            Event::DomainRemoved(_) | Event::DomainClaimExpired(_) => {
                c.domains = c.domains.saturating_sub(1)
            }
            Event::TunnelOpened(_)
            | Event::TunnelResumed(_)
            | Event::TunnelMemberJoined(_)
            | Event::TunnelWentOffline(_) => {
                let online = !matches!(envelope.event, Event::TunnelWentOffline(_));
                match self.tunnels.insert(id.to_string(), online) {
                    Some(true) => c.online_tunnels -= 1,
                    Some(false) => c.offline_tunnels -= 1,
                    None => {}
                }
                if online {
                    c.online_tunnels += 1;
                } else {
                    c.offline_tunnels += 1;
                }
            }
            Event::TunnelReleased(_) => match self.tunnels.remove(id) {
                Some(true) => c.online_tunnels -= 1,
                Some(false) => c.offline_tunnels -= 1,
                None => {}
            },
            Event::NodeJoined(_) | Event::NodeHeartbeat(_) | Event::NodeLeft(_) => {
                let node = self.nodes.entry(id.to_string()).or_default();
                let was_up = node.status == NodeStatus::Up;
                node.apply(envelope);
                let is_up = node.status == NodeStatus::Up;
                match (was_up, is_up) {
                    (false, true) => c.nodes_up += 1,
                    (true, false) => c.nodes_up -= 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testkit::{envelope, round_trip};
    use beamd_events::vocabulary::*;

    #[test]
    fn counts_follow_lifecycles() {
        let mut s = StatusProjection::default();
        let open: Event = TunnelOpened {
            tenant: "t".into(),
            key: "k".into(),
            protocol: TunnelProtocol::Tcp,
            name: None,
            port: Some(1),
            transport: TransportKind::Tcp,
            node: "n".into(),
            local_addr: "x".into(),
            pool: false,
        }
        .into();
        let steps: Vec<(&str, Event)> = vec![
            ("tun_1", open.clone()),
            ("tun_2", open),
            ("tun_1", TunnelWentOffline { reason: "x".into() }.into()),
            ("tun_2", TunnelReleased {}.into()),
            (
                "node_a",
                NodeJoined {
                    version: "1".into(),
                    public_addrs: vec![],
                    transports: vec![],
                }
                .into(),
            ),
            (
                "node_b",
                NodeJoined {
                    version: "1".into(),
                    public_addrs: vec![],
                    transports: vec![],
                }
                .into(),
            ),
            (
                "node_b",
                NodeLeft {
                    reason: "bye".into(),
                }
                .into(),
            ),
        ];
        for (i, (stream, e)) in steps.into_iter().enumerate() {
            s.apply(&envelope(stream, i as u64 + 1, 5, e));
        }
        assert_eq!(
            (
                s.counts.online_tunnels,
                s.counts.offline_tunnels,
                s.counts.nodes_up
            ),
            (0, 1, 1)
        );
        assert_eq!(s.nodes["node_b"].status, NodeStatus::Left);
        round_trip(&s);
    }
}
