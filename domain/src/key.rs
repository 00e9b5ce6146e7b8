//! The key (token) aggregate: issued with a secret hash and scopes, limited,
//! reset, revoked; and its grant, the one rule of whether it may carry more
//! bytes, checked at every open and in every window of a live session.
//!
//! Byte and connection counters are folded from tunnel traffic by the usage
//! projection; the key itself records when they were last reset.

use beamd_events::vocabulary::{
    KeyCountersReset, KeyIssued, KeyKind, KeyLimitSet, KeyRevoked, Plan,
};
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use super::scope::{Scope, Scopes};
use super::{validate, Aggregate, Ctx, DomainError, OpenUsage};

/// The longest label a key may have.
pub const MAX_LABEL: usize = 80;

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyStatus {
    /// Not issued.
    #[default]
    Missing,
    /// Usable.
    Active,
    /// Revoked: opens nothing.
    Revoked,
}

/// A key's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Key {
    /// `tok_…` (its stream id).
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Label.
    pub label: String,
    /// What it is for.
    pub kind: Option<KeyKind>,
    /// Scopes.
    pub scopes: Scopes,
    /// Hex blake3 of the secret.
    pub secret_hash: String,
    /// Byte limit, `None` = unlimited.
    pub limit_bytes: Option<u64>,
    /// Lifecycle.
    pub status: KeyStatus,
    /// When issued.
    pub created_at: Option<u64>,
    /// When revoked.
    pub revoked_at: Option<u64>,
    /// When the counters were last reset (counters count traffic after this).
    pub counters_reset_at: Option<u64>,
}

impl Key {
    /// The highest scope the key holds.
    pub fn scope(&self) -> Scope {
        self.scopes.highest()
    }

    /// Whether the key may serve tunnels (open one, join a pool): only agent
    /// keys do.
    pub fn may_serve(&self) -> Result<(), DomainError> {
        match self.kind {
            Some(beamd_events::vocabulary::KeyKind::Agent) => Ok(()),
            _ => Err(DomainError::Unauthorized(
                "only agent keys open tunnels".into(),
            )),
        }
    }

    /// Whether the key may carry more bytes: it is active, and neither its
    /// tenant's monthly bandwidth nor its own byte limit is used up. The one
    /// rule for opening a tunnel, resuming one, and every traffic window
    /// (and every grant change) of a live session.
    pub fn may_carry(&self, plan: &Plan, usage: &OpenUsage) -> Result<(), DomainError> {
        match self.status {
            KeyStatus::Missing => return Err(DomainError::Unauthorized("unknown key".into())),
            KeyStatus::Revoked => {
                return Err(DomainError::Unauthorized("the key is revoked".into()))
            }
            KeyStatus::Active => {}
        }
        let used_up = |limit: &'static str, max: Option<u64>, used: u64| match max {
            Some(max) if used >= max => Err(DomainError::LimitExceeded { limit, max }),
            _ => Ok(()),
        };
        used_up(
            "bandwidthBytes",
            plan.bandwidth_bytes_per_month,
            usage.tenant_month_bytes,
        )?;
        used_up("limitBytes", self.limit_bytes, usage.key_bytes)
    }
}

/// Commands to a key. Each names the scope of whoever gives it (`by`): a
/// key never mints, limits, resets or revokes a key holding a scope it lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCommand {
    /// Issue a new key; the secret was generated and hashed by the caller.
    Issue {
        /// Owning tenant (checked to exist by the caller).
        tenant: String,
        /// Label, at most 80 characters.
        label: String,
        /// What it is for.
        kind: KeyKind,
        /// Scopes.
        scopes: Scopes,
        /// Hex blake3 of the secret.
        secret_hash: String,
        /// Byte limit.
        limit_bytes: Option<u64>,
        /// The scope of whoever mints it.
        by: Scope,
    },
    /// Set or clear the byte limit.
    SetLimit {
        /// The new limit.
        limit_bytes: Option<u64>,
        /// The scope of whoever sets it.
        by: Scope,
    },
    /// Reset the counters to zero.
    ResetCounters {
        /// The scope of whoever resets them.
        by: Scope,
    },
    /// Revoke the key.
    Revoke {
        /// The scope of whoever revokes it.
        by: Scope,
    },
}

impl Fold for Key {
    const KIND: &'static str = "key";

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::KeyIssued(e) => {
                *self = Key {
                    id: envelope.stream.to_string(),
                    tenant: e.tenant.clone(),
                    label: e.label.clone(),
                    kind: Some(e.kind),
                    scopes: Scopes::from(e.scopes.clone()),
                    secret_hash: e.secret_hash.clone(),
                    limit_bytes: e.limit_bytes,
                    status: KeyStatus::Active,
                    created_at: Some(envelope.at),
                    revoked_at: None,
                    counters_reset_at: None,
                }
            }
            Event::KeyLimitSet(e) => self.limit_bytes = e.limit_bytes,
            Event::KeyCountersReset(_) => self.counters_reset_at = Some(envelope.at),
            Event::KeyRevoked(_) => {
                self.status = KeyStatus::Revoked;
                self.revoked_at = Some(envelope.at);
            }
            _ => {}
        }
    }
}

impl Aggregate for Key {
    type Command = KeyCommand;
    const PREFIX: &'static str = "tok";

    fn decide(&self, command: &KeyCommand, _ctx: &Ctx) -> Result<Vec<Event>, DomainError> {
        if let KeyCommand::Issue {
            tenant,
            label,
            kind,
            scopes,
            secret_hash,
            limit_bytes,
            by,
        } = command
        {
            if self.status != KeyStatus::Missing {
                return Err(DomainError::Conflict("key already issued".into()));
            }
            validate::text("label", label, MAX_LABEL)?;
            scopes.within(*by)?;
            if secret_hash.len() != 64 || !secret_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DomainError::InvalidRequest(
                    "secret hash must be 64 hex digits".into(),
                ));
            }
            return Ok(vec![KeyIssued {
                tenant: tenant.clone(),
                label: label.clone(),
                kind: *kind,
                scopes: scopes.names(),
                secret_hash: secret_hash.clone(),
                limit_bytes: *limit_bytes,
            }
            .into()]);
        }
        // A revoked key answers like a missing one: it is gone for every purpose.
        if self.status != KeyStatus::Active {
            return Err(DomainError::NotFound("key".into()));
        }
        match command {
            KeyCommand::Issue { .. } => Ok(vec![]),
            KeyCommand::SetLimit { limit_bytes, by } => {
                self.scopes.within(*by)?;
                Ok(vec![KeyLimitSet {
                    limit_bytes: *limit_bytes,
                }
                .into()])
            }
            KeyCommand::ResetCounters { by } => {
                self.scopes.within(*by)?;
                Ok(vec![KeyCountersReset {}.into()])
            }
            KeyCommand::Revoke { by } => {
                self.scopes.within(*by)?;
                Ok(vec![KeyRevoked {}.into()])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{given, round_trip};

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn issue(label: &str) -> KeyCommand {
        KeyCommand::Issue {
            tenant: "ten_1".into(),
            label: label.into(),
            kind: KeyKind::Agent,
            scopes: Scopes::of(&[Scope::Manage]),
            secret_hash: HASH.into(),
            limit_bytes: Some(10),
            by: Scope::Admin,
        }
    }

    fn issued() -> Key {
        let events = Key::default()
            .decide(&issue("laptop"), &Ctx::new(0, 0))
            .unwrap();
        given("tok_1", 100, events)
    }

    #[test]
    fn issue_records_everything_but_the_secret() {
        let k = issued();
        assert_eq!(k.status, KeyStatus::Active);
        assert_eq!(
            (k.label.as_str(), k.limit_bytes, k.created_at),
            ("laptop", Some(10), Some(100))
        );
        round_trip(&k);
    }

    #[test]
    fn labels_are_at_most_80_characters() {
        let ctx = Ctx::new(0, 0);
        assert!(Key::default().decide(&issue(&"é".repeat(80)), &ctx).is_ok());
        let err = Key::default()
            .decide(&issue(&"x".repeat(81)), &ctx)
            .unwrap_err();
        assert_eq!(err.code(), "invalid_request");
    }

    #[test]
    fn limits_and_resets() {
        let k = issued();
        let ctx = Ctx::new(0, 0);
        let ev = k
            .decide(
                &KeyCommand::SetLimit {
                    limit_bytes: None,
                    by: Scope::Manage,
                },
                &ctx,
            )
            .unwrap();
        assert_eq!(ev, vec![KeyLimitSet { limit_bytes: None }.into()]);
        let mut k2 = k.clone();
        k2.apply(&crate::testkit::envelope("tok_1", 2, 500, ev[0].clone()));
        assert_eq!(k2.limit_bytes, None);
        let ev = k
            .decide(&KeyCommand::ResetCounters { by: Scope::Manage }, &ctx)
            .unwrap();
        k2.apply(&crate::testkit::envelope("tok_1", 3, 600, ev[0].clone()));
        assert_eq!(k2.counters_reset_at, Some(600));
    }

    #[test]
    fn a_revoked_key_is_gone_for_every_command() {
        let mut k = issued();
        let ctx = Ctx::new(0, 0);
        let ev = k
            .decide(&KeyCommand::Revoke { by: Scope::Admin }, &ctx)
            .unwrap();
        k.apply(&crate::testkit::envelope("tok_1", 2, 700, ev[0].clone()));
        assert_eq!((k.status, k.revoked_at), (KeyStatus::Revoked, Some(700)));
        for cmd in [
            KeyCommand::Revoke { by: Scope::Admin },
            KeyCommand::ResetCounters { by: Scope::Admin },
            KeyCommand::SetLimit {
                limit_bytes: Some(1),
                by: Scope::Admin,
            },
        ] {
            assert_eq!(
                k.decide(&cmd, &ctx).unwrap_err(),
                DomainError::NotFound("key".into())
            );
        }
        assert_eq!(
            k.decide(&issue("again"), &ctx).unwrap_err().code(),
            "conflict"
        );
    }

    #[test]
    fn a_key_touches_no_key_holding_a_scope_it_lacks() {
        let k = issued();
        let ctx = Ctx::new(0, 0);
        for cmd in [
            KeyCommand::Revoke { by: Scope::Read },
            KeyCommand::ResetCounters { by: Scope::Read },
            KeyCommand::SetLimit {
                limit_bytes: Some(1),
                by: Scope::Read,
            },
        ] {
            assert_eq!(k.decide(&cmd, &ctx).unwrap_err().code(), "unauthorized");
        }
        let mint = |scopes: &[Scope], by| match issue("x") {
            KeyCommand::Issue {
                tenant,
                label,
                kind,
                secret_hash,
                limit_bytes,
                ..
            } => KeyCommand::Issue {
                tenant,
                label,
                kind,
                scopes: Scopes::of(scopes),
                secret_hash,
                limit_bytes,
                by,
            },
            other => other,
        };
        let err = Key::default()
            .decide(&mint(&[Scope::Admin], Scope::Manage), &ctx)
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");
        assert!(Key::default()
            .decide(&mint(&[Scope::Read, Scope::Manage], Scope::Manage), &ctx)
            .is_ok());
    }

    #[test]
    fn may_carry_is_one_rule_for_status_key_limit_and_plan_bandwidth() {
        let mut k = issued();
        let plan = |bandwidth| Plan {
            bandwidth_bytes_per_month: bandwidth,
            ..Plan::default()
        };
        let used = |key_bytes, tenant_month_bytes| OpenUsage {
            key_bytes,
            tenant_month_bytes,
        };
        assert!(k.may_carry(&plan(None), &used(9, 0)).is_ok());
        assert_eq!(
            k.may_carry(&plan(None), &used(10, 0)).unwrap_err(),
            DomainError::LimitExceeded {
                limit: "limitBytes",
                max: 10
            }
        );
        assert_eq!(
            k.may_carry(&plan(Some(100)), &used(0, 100)).unwrap_err(),
            DomainError::LimitExceeded {
                limit: "bandwidthBytes",
                max: 100
            }
        );
        k.status = KeyStatus::Revoked;
        assert_eq!(
            k.may_carry(&plan(None), &used(0, 0)).unwrap_err(),
            DomainError::Unauthorized("the key is revoked".into())
        );
    }
}
