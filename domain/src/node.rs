//! The edge-node aggregate: joined, heartbeating, left.

use beamd_events::vocabulary::{NodeHeartbeat, NodeJoined, NodeLeft};
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use super::{Aggregate, Ctx, DomainError};

/// Whether a node is up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeStatus {
    /// Never joined.
    #[default]
    Missing,
    /// Joined and not left.
    Up,
    /// Left.
    Left,
}

/// An edge node's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// `node_…` (its stream id).
    pub id: String,
    /// beamd version.
    pub version: String,
    /// Public addresses.
    pub public_addrs: Vec<String>,
    /// Transports served.
    pub transports: Vec<String>,
    /// Up or left.
    pub status: NodeStatus,
    /// When it (last) joined.
    pub joined_at: Option<u64>,
    /// Its last event.
    pub last_heartbeat: Option<u64>,
}

/// Commands to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeCommand {
    /// The node started (again: a node that crashed joins without having left).
    Join {
        /// beamd version.
        version: String,
        /// Public addresses.
        public_addrs: Vec<String>,
        /// Transports.
        transports: Vec<String>,
    },
    /// The node is alive.
    Heartbeat,
    /// The node stops.
    Leave {
        /// Why.
        reason: String,
    },
}

impl Fold for Node {
    const KIND: &'static str = "node";

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::NodeJoined(e) => {
                self.id = envelope.stream.to_string();
                self.version = e.version.clone();
                self.public_addrs = e.public_addrs.clone();
                self.transports = e.transports.clone();
                self.status = NodeStatus::Up;
                self.joined_at = Some(envelope.at);
                self.last_heartbeat = Some(envelope.at);
            }
            Event::NodeHeartbeat(_) => self.last_heartbeat = Some(envelope.at),
            Event::NodeLeft(_) => self.status = NodeStatus::Left,
            _ => {}
        }
    }
}

impl Aggregate for Node {
    type Command = NodeCommand;
    const PREFIX: &'static str = "node";

    fn decide(&self, command: &NodeCommand, _ctx: &Ctx) -> Result<Vec<Event>, DomainError> {
        match command {
            NodeCommand::Join {
                version,
                public_addrs,
                transports,
            } => Ok(vec![NodeJoined {
                version: version.clone(),
                public_addrs: public_addrs.clone(),
                transports: transports.clone(),
            }
            .into()]),
            _ if self.status != NodeStatus::Up => Err(DomainError::InvalidRequest(
                "the node has not joined".into(),
            )),
            NodeCommand::Heartbeat => Ok(vec![NodeHeartbeat {}.into()]),
            NodeCommand::Leave { reason } => Ok(vec![NodeLeft {
                reason: reason.clone(),
            }
            .into()]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{envelope, round_trip};

    #[test]
    fn join_heartbeat_leave() {
        let ctx = Ctx::new(0, 0);
        let mut n = Node::default();
        assert!(n.decide(&NodeCommand::Heartbeat, &ctx).is_err());
        let join = NodeCommand::Join {
            version: "1".into(),
            public_addrs: vec![],
            transports: vec!["quic".into()],
        };
        let steps = [
            join,
            NodeCommand::Heartbeat,
            NodeCommand::Leave {
                reason: "bye".into(),
            },
        ];
        for (i, cmd) in steps.iter().enumerate() {
            for e in n.decide(cmd, &ctx).unwrap() {
                n.apply(&envelope("node_a", i as u64 + 1, 100 + i as u64, e));
            }
        }
        assert_eq!(
            (n.status, n.joined_at, n.last_heartbeat),
            (NodeStatus::Left, Some(100), Some(101))
        );
        assert!(n.decide(&NodeCommand::Heartbeat, &ctx).is_err());
        round_trip(&n);
    }
}
