//! The route aggregate: which requests to a host (method and path pattern)
//! go to which service, whether they need a consumer key, and their rate
//! limit. Deleting keeps it, marked deleted; so does retiring it, when its
//! host stops being a verified domain of its tenant.

use beamd_events::vocabulary::{
    RouteConfig, RouteCreated, RouteDeleted, RouteRetired, RouteUpdated,
};
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use super::super::validate::host;
use super::super::{Aggregate, Ctx, DomainError};
use super::pattern::PathPattern;

/// Methods a route may name (`*`: any).
pub const METHODS: &[&str] = &[
    "*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
];

/// The highest per-minute rate a route may override with.
pub const MAX_RATE_PER_MINUTE: u32 = 1_000_000;

/// A route's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// `rte_…` (its stream id).
    pub id: String,
    /// The owning tenant (empty: never created).
    pub tenant: String,
    /// Its configuration.
    pub config: Option<RouteConfig>,
    /// When it was created.
    pub created_at: u64,
    /// When it last changed.
    pub updated_at: u64,
    /// When it was deleted.
    pub deleted_at: Option<u64>,
}

/// Commands to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteCommand {
    /// Create it.
    Create {
        /// Owner.
        tenant: String,
        /// Configuration.
        config: RouteConfig,
    },
    /// Replace its configuration.
    Update(RouteConfig),
    /// Delete it.
    Delete,
    /// Retire it: its host's domain `domain` was removed (nothing if it is
    /// gone already).
    Retire {
        /// The removed domain (`dom_…`).
        domain: String,
    },
}

/// Checks a route configuration.
pub fn validate(c: &RouteConfig) -> Result<(), DomainError> {
    host("host", &c.host)?;
    if !METHODS.contains(&c.method.as_str()) {
        return Err(DomainError::InvalidRequest(format!(
            "method must be one of {}",
            METHODS.join(", ")
        )));
    }
    PathPattern::parse(&c.path_pattern)?;
    if !c.service_id.starts_with("svc_") {
        return Err(DomainError::InvalidRequest(
            "serviceId must name a service (svc_…)".into(),
        ));
    }
    if c.rate_limit_override
        .is_some_and(|r| r == 0 || r > MAX_RATE_PER_MINUTE)
    {
        return Err(DomainError::InvalidRequest(format!(
            "rateLimitOverride is requests per minute, 1-{MAX_RATE_PER_MINUTE}"
        )));
    }
    Ok(())
}

impl Route {
    /// Whether it exists and is not deleted.
    pub fn live(&self) -> bool {
        self.config.is_some() && self.deleted_at.is_none()
    }
}

impl Fold for Route {
    const KIND: &'static str = "route";

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::RouteCreated(e) => {
                self.id = envelope.stream.to_string();
                self.tenant = e.tenant.clone();
                self.config = Some(e.config.clone());
                self.created_at = envelope.at;
                self.updated_at = envelope.at;
            }
            Event::RouteUpdated(e) => {
                self.config = Some(e.config.clone());
                self.updated_at = envelope.at;
            }
            Event::RouteDeleted(_) | Event::RouteRetired(_) => {
                self.deleted_at = Some(envelope.at);
                self.updated_at = envelope.at;
            }
            _ => {}
        }
    }
}

impl Aggregate for Route {
    type Command = RouteCommand;
    const PREFIX: &'static str = "rte";

    fn decide(&self, command: &RouteCommand, _ctx: &Ctx) -> Result<Vec<Event>, DomainError> {
        match command {
            RouteCommand::Create { .. } if self.config.is_some() => {
                Err(DomainError::Conflict("the route exists".into()))
            }
            RouteCommand::Create { tenant, config } => {
                validate(config)?;
                Ok(vec![RouteCreated {
                    tenant: tenant.clone(),
                    config: config.clone(),
                }
                .into()])
            }
            RouteCommand::Retire { .. } if !self.live() => Ok(vec![]),
            RouteCommand::Retire { domain } => Ok(vec![RouteRetired {
                domain: domain.clone(),
            }
            .into()]),
            _ if !self.live() => Err(DomainError::NotFound("route".into())),
            RouteCommand::Update(config) => {
                validate(config)?;
                Ok(vec![RouteUpdated {
                    config: config.clone(),
                }
                .into()])
            }
            RouteCommand::Delete => Ok(vec![RouteDeleted {}.into()]),
        }
    }
}
