//! Events of a custom domain: added with a TXT challenge, verified, failed,
//! removed, or its pending claim expired.

use serde::{Deserialize, Serialize};

/// A custom host name was registered; the TXT token must be published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainAdded {
    /// The owning tenant's id.
    pub tenant: String,
    /// The host name.
    pub host: String,
    /// The value of the DNS TXT record that proves ownership.
    pub txt_token: String,
}

/// The TXT record was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DomainVerified {}

/// A verification attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainVerificationFailed {
    /// What the lookup found instead.
    pub reason: String,
}

/// The domain was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DomainRemoved {}

/// The domain stayed pending past the edge's claim lifetime: the claim
/// lapsed and its host is free for anyone to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DomainClaimExpired {}
