//! Events of a key (token): issued, limited, reset, revoked.

use serde::{Deserialize, Serialize};

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyKind {
    /// Authenticates an agent that opens tunnels.
    Agent,
    /// Authenticates calls to the REST API.
    Api,
    /// An API-gateway consumer key.
    Consumer,
}

/// A key was issued. Only the hash of its secret is ever stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyIssued {
    /// The owning tenant's id.
    pub tenant: String,
    /// Human label, at most 80 characters.
    pub label: String,
    /// What the key is for.
    pub kind: KeyKind,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Hex blake3 hash of the secret.
    pub secret_hash: String,
    /// Byte limit (up + down) bound to this key; `None` = no limit.
    pub limit_bytes: Option<u64>,
}

/// A key's byte limit was set or cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyLimitSet {
    /// The new limit; `None` removes it.
    pub limit_bytes: Option<u64>,
}

/// A key's byte and connection counters were reset to zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct KeyCountersReset {}

/// A key was revoked; it opens nothing from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct KeyRevoked {}
