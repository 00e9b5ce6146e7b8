//! The consumer aggregate: a caller of the tenant's gateway routes, with an
//! API key (only its hash is kept) and a rate-limit tier; revoking stops the
//! key at once.

use beamd_events::vocabulary::{ConsumerCreated, ConsumerRevoked};
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use super::super::validate::text;
use super::super::{Aggregate, Ctx, DomainError};

/// Rate-limit tiers and their requests per minute.
pub const TIERS: &[(&str, u32)] = &[("free", 60), ("standard", 600), ("premium", 6_000)];

/// Requests per minute of `tier`, if it is one.
pub fn tier_rate(tier: &str) -> Option<u32> {
    TIERS.iter().find(|(t, _)| *t == tier).map(|(_, r)| *r)
}

/// A consumer's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consumer {
    /// `con_…` (its stream id).
    pub id: String,
    /// The owning tenant (empty: never created).
    pub tenant: String,
    /// A name for people.
    pub name: String,
    /// Its tier.
    pub rate_limit_tier: String,
    /// blake3 of its key's secret.
    pub key_hash: String,
    /// When it was created.
    pub created_at: u64,
    /// When it was revoked.
    pub revoked_at: Option<u64>,
}

/// Commands to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerCommand {
    /// Create it.
    Create {
        /// Owner.
        tenant: String,
        /// Name.
        name: String,
        /// Tier.
        rate_limit_tier: String,
        /// Hash of the key's secret.
        key_hash: String,
    },
    /// Revoke it.
    Revoke,
}

impl Consumer {
    /// Whether it exists and is not revoked.
    pub fn live(&self) -> bool {
        !self.tenant.is_empty() && self.revoked_at.is_none()
    }
}

impl Fold for Consumer {
    const KIND: &'static str = "consumer";

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::ConsumerCreated(e) => {
                self.id = envelope.stream.to_string();
                self.tenant = e.tenant.clone();
                self.name = e.name.clone();
                self.rate_limit_tier = e.rate_limit_tier.clone();
                self.key_hash = e.key_hash.clone();
                self.created_at = envelope.at;
            }
            Event::ConsumerRevoked(_) => self.revoked_at = Some(envelope.at),
            _ => {}
        }
    }
}

impl Aggregate for Consumer {
    type Command = ConsumerCommand;
    const PREFIX: &'static str = "con";

    fn decide(&self, command: &ConsumerCommand, _ctx: &Ctx) -> Result<Vec<Event>, DomainError> {
        match command {
            ConsumerCommand::Create { .. } if !self.tenant.is_empty() => {
                Err(DomainError::Conflict("the consumer exists".into()))
            }
            ConsumerCommand::Create {
                tenant,
                name,
                rate_limit_tier,
                key_hash,
            } => {
                text("name", name, 80)?;
                if tier_rate(rate_limit_tier).is_none() {
                    let names: Vec<&str> = TIERS.iter().map(|(t, _)| *t).collect();
                    return Err(DomainError::InvalidRequest(format!(
                        "rateLimitTier must be one of {}",
                        names.join(", ")
                    )));
                }
                Ok(vec![ConsumerCreated {
                    tenant: tenant.clone(),
                    name: name.clone(),
                    rate_limit_tier: rate_limit_tier.clone(),
                    key_hash: key_hash.clone(),
                }
                .into()])
            }
            ConsumerCommand::Revoke if !self.live() => {
                Err(DomainError::NotFound("consumer".into()))
            }
            ConsumerCommand::Revoke => Ok(vec![ConsumerRevoked {}.into()]),
        }
    }
}
