//! The tenant aggregate: a workspace with a plan and a tunnel base host; and
//! the plans themselves (the one a sign-up gets, written `KEY=VALUE,…`).

use beamd_events::vocabulary::{Plan, TenantPlanChanged, TenantRenamed};
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use super::{validate, Aggregate, Ctx, DomainError};

/// A tenant's state. `created_at == None` means it does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// The tenant id (its stream id).
    pub id: String,
    /// URL-safe short name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Plan and limits.
    pub plan: Plan,
    /// Base host of its HTTP tunnels.
    pub tunnel_base: String,
    /// When it was created.
    pub created_at: Option<u64>,
}

impl Tenant {
    /// Whether the tenant exists.
    pub fn exists(&self) -> bool {
        self.created_at.is_some()
    }
}

/// Commands to an existing tenant (creation goes through the `Directory`, which keeps slugs unique).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantCommand {
    /// Move to another plan.
    ChangePlan {
        /// The new plan.
        plan: Plan,
    },
    /// Change the display name.
    Rename {
        /// The new name.
        name: String,
    },
}

impl Fold for Tenant {
    const KIND: &'static str = "tenant";

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::TenantCreated(e) => {
                *self = Tenant {
                    id: envelope.stream.to_string(),
                    slug: e.slug.clone(),
                    name: e.name.clone(),
                    plan: e.plan.clone(),
                    tunnel_base: e.tunnel_base.clone(),
                    created_at: Some(envelope.at),
                }
            }
            Event::TenantPlanChanged(e) => self.plan = e.plan.clone(),
            Event::TenantRenamed(e) => self.name = e.name.clone(),
            _ => {}
        }
    }
}

/// Pending custom domains a plan allows when it names no number.
pub const DEFAULT_MAX_PENDING_DOMAINS: u32 = 20;

/// The plan a sign-up gets unless the operator gives `--signup-plan`.
pub const DEFAULT_SIGNUP_PLAN: &str =
    "name=free,tunnels=5,domains=5,pending-domains=20,bandwidth-gib=10";

/// How many pending domains `plan` allows at once.
pub fn max_pending_domains(plan: &Plan) -> u32 {
    plan.max_pending_domains
        .unwrap_or(DEFAULT_MAX_PENDING_DOMAINS)
}

/// A plan written `KEY=VALUE,…` with the keys `name`, `tunnels`, `domains`,
/// `pending-domains`, `bandwidth-gib` and `bandwidth-bytes` (a number, or
/// `unlimited`); keys left out keep `DEFAULT_SIGNUP_PLAN`'s values.
pub fn parse_plan(spec: &str) -> Result<Plan, DomainError> {
    let mut plan = Plan::default();
    for part in DEFAULT_SIGNUP_PLAN.split(',').chain(spec.split(',')) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let bad = |why: &str| DomainError::InvalidRequest(format!("plan {part:?}: {why}"));
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE"))?;
        let number = |max: u64| -> Result<Option<u64>, DomainError> {
            match value.trim() {
                "unlimited" => Ok(None),
                v => match v.parse::<u64>() {
                    Ok(n) if n <= max => Ok(Some(n)),
                    _ => Err(bad(&format!("expected 0-{max} or unlimited"))),
                },
            }
        };
        let count = || number(u64::from(u32::MAX)).map(|n| n.map(|n| n as u32));
        match key.trim() {
            "name" => plan.name = value.trim().to_string(),
            "tunnels" => plan.max_tunnels = count()?,
            "domains" => plan.max_domains = count()?,
            "pending-domains" => plan.max_pending_domains = count()?,
            "bandwidth-gib" => plan.bandwidth_bytes_per_month = number(u64::MAX >> 30)?.map(|g| g << 30),
            "bandwidth-bytes" => plan.bandwidth_bytes_per_month = number(u64::MAX)?,
            _ => return Err(bad("unknown key (name, tunnels, domains, pending-domains, bandwidth-gib, bandwidth-bytes)")),
        }
    }
    validate_plan(&plan)?;
    Ok(plan)
}

/// Checks a plan's name.
pub(crate) fn validate_plan(plan: &Plan) -> Result<(), DomainError> {
    validate::label("plan name", &plan.name)
}

impl Aggregate for Tenant {
    type Command = TenantCommand;
    const PREFIX: &'static str = "ten";

    fn decide(&self, command: &TenantCommand, _ctx: &Ctx) -> Result<Vec<Event>, DomainError> {
        if !self.exists() {
            return Err(DomainError::NotFound("tenant".into()));
        }
        match command {
            TenantCommand::ChangePlan { plan } => {
                validate_plan(plan)?;
                if *plan == self.plan {
                    return Ok(vec![]);
                }
                Ok(vec![TenantPlanChanged { plan: plan.clone() }.into()])
            }
            TenantCommand::Rename { name } => {
                validate::text("tenant name", name, 100)?;
                if *name == self.name {
                    return Ok(vec![]);
                }
                Ok(vec![TenantRenamed { name: name.clone() }.into()])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{given, round_trip};
    use beamd_events::vocabulary::TenantCreated;

    fn created() -> Tenant {
        given(
            "ten_1",
            1_000,
            vec![TenantCreated {
                slug: "acme".into(),
                name: "Acme".into(),
                plan: Plan {
                    name: "free".into(),
                    max_tunnels: Some(1),
                    ..Default::default()
                },
                tunnel_base: "acme.localhost".into(),
            }
            .into()],
        )
    }

    #[test]
    fn created_tenant_holds_its_fields() {
        let t = created();
        assert_eq!(
            (t.id.as_str(), t.slug.as_str(), t.created_at),
            ("ten_1", "acme", Some(1_000))
        );
        round_trip(&t);
    }

    #[test]
    fn plan_changes_and_renames() {
        let t = created();
        let ctx = Ctx::new(0, 0);
        let pro = Plan {
            name: "pro".into(),
            ..Default::default()
        };
        let events = t
            .decide(&TenantCommand::ChangePlan { plan: pro.clone() }, &ctx)
            .unwrap();
        assert_eq!(events, vec![TenantPlanChanged { plan: pro }.into()]);
        let same = t
            .decide(
                &TenantCommand::Rename {
                    name: "Acme".into(),
                },
                &ctx,
            )
            .unwrap();
        assert!(same.is_empty(), "renaming to the same name records nothing");
        let err = t
            .decide(&TenantCommand::Rename { name: "".into() }, &ctx)
            .unwrap_err();
        assert_eq!(err.code(), "invalid_request");
    }

    #[test]
    fn plans_are_read_over_the_finite_sign_up_default() {
        let default = parse_plan("").unwrap();
        assert_eq!(
            (
                default.max_tunnels,
                default.max_domains,
                default.max_pending_domains
            ),
            (Some(5), Some(5), Some(20))
        );
        assert_eq!(default.bandwidth_bytes_per_month, Some(10 << 30));
        let p = parse_plan("name=trial, tunnels=2,bandwidth-gib=unlimited").unwrap();
        assert_eq!((p.name.as_str(), p.max_tunnels), ("trial", Some(2)));
        assert_eq!(
            (p.bandwidth_bytes_per_month, p.max_domains),
            (None, Some(5))
        );
        assert!(parse_plan("tunnels=-1").is_err());
        assert!(parse_plan("seats=3").is_err());
        assert!(parse_plan("name=Not A Label").is_err());
        assert_eq!(
            max_pending_domains(&Plan::default()),
            DEFAULT_MAX_PENDING_DOMAINS
        );
    }

    #[test]
    fn a_missing_tenant_is_not_found() {
        let err = Tenant::default()
            .decide(&TenantCommand::Rename { name: "x".into() }, &Ctx::new(0, 0))
            .unwrap_err();
        assert_eq!(err, DomainError::NotFound("tenant".into()));
    }
}
