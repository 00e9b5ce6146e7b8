//! The service aggregate: where a gateway route's requests are sent (one of
//! the tenant's tunnels, or an upstream URL), with health-check path and
//! timeout. Deleting keeps it, marked deleted.

use beamd_events::vocabulary::{
    ServiceConfig, ServiceCreated, ServiceDeleted, ServiceHealthChanged, ServiceUpdated,
};
use beamd_events::{Envelope, Event};
use beamd_snapshots::Fold;
use serde::{Deserialize, Serialize};

use super::super::validate::{http_url, label, text};
use super::super::{Aggregate, Ctx, DomainError};

/// The longest timeout a service may have, in ms.
pub const MAX_TIMEOUT_MS: u64 = 300_000;

/// A service's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// `svc_…` (its stream id).
    pub id: String,
    /// The owning tenant (empty: never created).
    pub tenant: String,
    /// Its configuration.
    pub config: Option<ServiceConfig>,
    /// When it was created.
    pub created_at: u64,
    /// When it last changed.
    pub updated_at: u64,
    /// When it was deleted.
    pub deleted_at: Option<u64>,
    /// The last health the edge's probe recorded.
    pub health: Option<Health>,
}

/// A recorded health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Whether the probe got a 2xx or 3xx answer in time.
    pub healthy: bool,
    /// The answer's status, if any.
    pub status: Option<u16>,
    /// What happened.
    pub detail: String,
    /// When this state began.
    pub since: u64,
}

/// Commands to a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceCommand {
    /// Create it.
    Create {
        /// Owner.
        tenant: String,
        /// Configuration.
        config: ServiceConfig,
    },
    /// Replace its configuration.
    Update(ServiceConfig),
    /// Delete it.
    Delete,
    /// Record what a health probe found (an event only when health flips).
    RecordHealth {
        /// 2xx/3xx in time.
        healthy: bool,
        /// The status, if any.
        status: Option<u16>,
        /// What happened.
        detail: String,
    },
}

/// Checks a service configuration.
pub fn validate(c: &ServiceConfig) -> Result<(), DomainError> {
    text("name", &c.name, 80)?;
    match (&c.tunnel, &c.target_url) {
        (Some(t), None) => label("tunnel", t)?,
        (None, Some(url)) => http_url("targetUrl", url)?,
        _ => {
            return Err(DomainError::InvalidRequest(
                "give exactly one of tunnel (a tunnel name) and targetUrl".into(),
            ))
        }
    }
    if let Some(p) = &c.health_check_path {
        if !p.starts_with('/') || p.chars().count() > 512 || p.chars().any(char::is_control) {
            return Err(DomainError::InvalidRequest(format!(
                "healthCheckPath {p:?} must start with '/' and be at most 512 characters"
            )));
        }
    }
    if !(1..=MAX_TIMEOUT_MS).contains(&c.timeout_ms) {
        return Err(DomainError::InvalidRequest(format!(
            "timeoutMs must be 1-{MAX_TIMEOUT_MS}"
        )));
    }
    Ok(())
}

impl Service {
    /// Whether it exists and is not deleted.
    pub fn live(&self) -> bool {
        self.config.is_some() && self.deleted_at.is_none()
    }
}

impl Fold for Service {
    const KIND: &'static str = "service";

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::ServiceCreated(e) => {
                self.id = envelope.stream.to_string();
                self.tenant = e.tenant.clone();
                self.config = Some(e.config.clone());
                self.created_at = envelope.at;
                self.updated_at = envelope.at;
            }
            Event::ServiceUpdated(e) => {
                self.config = Some(e.config.clone());
                self.updated_at = envelope.at;
            }
            Event::ServiceHealthChanged(e) => {
                self.health = Some(Health {
                    healthy: e.healthy,
                    status: e.status,
                    detail: e.detail.clone(),
                    since: envelope.at,
                });
            }
            Event::ServiceDeleted(_) => {
                self.deleted_at = Some(envelope.at);
                self.updated_at = envelope.at;
            }
            _ => {}
        }
    }
}

impl Aggregate for Service {
    type Command = ServiceCommand;
    const PREFIX: &'static str = "svc";

    fn decide(&self, command: &ServiceCommand, _ctx: &Ctx) -> Result<Vec<Event>, DomainError> {
        match command {
            ServiceCommand::Create { .. } if self.config.is_some() => {
                Err(DomainError::Conflict("the service exists".into()))
            }
            ServiceCommand::Create { tenant, config } => {
                validate(config)?;
                Ok(vec![ServiceCreated {
                    tenant: tenant.clone(),
                    config: config.clone(),
                }
                .into()])
            }
            _ if !self.live() => Err(DomainError::NotFound("service".into())),
            ServiceCommand::Update(config) => {
                validate(config)?;
                Ok(vec![ServiceUpdated {
                    config: config.clone(),
                }
                .into()])
            }
            ServiceCommand::Delete => Ok(vec![ServiceDeleted {}.into()]),
            ServiceCommand::RecordHealth {
                healthy,
                status,
                detail,
            } => {
                if self.health.as_ref().is_some_and(|h| h.healthy == *healthy) {
                    return Ok(vec![]);
                }
                Ok(vec![ServiceHealthChanged {
                    healthy: *healthy,
                    status: *status,
                    detail: detail.chars().take(300).collect(),
                }
                .into()])
            }
        }
    }
}
