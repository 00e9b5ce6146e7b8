//! Events of an edge node: joined, heartbeat, left.

use serde::{Deserialize, Serialize};

/// An edge node started and announced itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeJoined {
    /// beamd version the node runs.
    pub version: String,
    /// Public addresses it listens on.
    pub public_addrs: Vec<String>,
    /// Transports it accepts agents on.
    pub transports: Vec<String>,
}

/// The node is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeHeartbeat {}

/// The node stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLeft {
    /// Why it stopped (shutdown, lost).
    pub reason: String,
}
