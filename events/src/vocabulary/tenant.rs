//! Events of a tenant: the workspace that owns keys, tunnels and domains.

use serde::{Deserialize, Serialize};

/// The limits a tenant's plan grants. `None` means unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The plan's name as shown to users (`free`, `pro`, …).
    pub name: String,
    /// How many tunnels may be live at once.
    pub max_tunnels: Option<u32>,
    /// How many custom domains may be registered.
    pub max_domains: Option<u32>,
    /// Bytes (up + down) per UTC calendar month.
    pub bandwidth_bytes_per_month: Option<u64>,
    /// How many custom domains may wait for their TXT record at once. Unlike
    /// the other limits, `None` means the edge's default (20), not unlimited:
    /// pending claims hold host names that others may own.
    #[serde(default)]
    pub max_pending_domains: Option<u32>,
}

/// A tenant came into being.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantCreated {
    /// URL-safe short name, unique on the edge.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The plan and its limits.
    pub plan: Plan,
    /// The base host under which this tenant's HTTP tunnels get names.
    pub tunnel_base: String,
}

/// A tenant moved to another plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantPlanChanged {
    /// The new plan.
    pub plan: Plan,
}

/// A tenant was renamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRenamed {
    /// The new display name.
    pub name: String,
}
