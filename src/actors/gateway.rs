//! The API gateway's actors: one supervisor each for services, routes and
//! consumers, and the core's commands for them. Every command returns once
//! the projections show its events, so the data path applies a change at once.

use beamd_events::vocabulary::{RouteConfig, ServiceConfig};

use super::core::Core;
use super::directory::entity;
use super::secret::Secret;
use super::supervisor::command;
use super::CoreError;
use beamd_events::vocabulary::GatewayErrorsRecorded;

use crate::domain::gateway::{
    error_group_id, Consumer, ConsumerCommand, ErrorGroup, ErrorGroupCommand, Route, RouteCommand,
    Service, ServiceCommand,
};

fn fresh(prefix: &str) -> String {
    format!("{prefix}_{:016x}", fastrand::u64(..))
}

impl Core {
    pub(super) async fn settled<T>(&self, outcome: Result<T, CoreError>) -> Result<T, CoreError> {
        let value = outcome?;
        self.projections().wait_for(self.log().head().seq).await?;
        Ok(value)
    }

    /// Creates a service for `tenant`.
    pub async fn create_service(
        &self,
        tenant: &str,
        config: ServiceConfig,
    ) -> Result<Service, CoreError> {
        let cmd = ServiceCommand::Create {
            tenant: tenant.to_string(),
            config,
        };
        self.settled(command(&self.gateway.services, &fresh("svc"), cmd).await)
            .await
    }

    /// Updates or deletes a service.
    pub async fn service_command(
        &self,
        id: &str,
        cmd: ServiceCommand,
    ) -> Result<Service, CoreError> {
        self.settled(command(&self.gateway.services, id, cmd).await)
            .await
    }

    /// A service's state.
    pub async fn service(&self, id: &str) -> Result<Service, CoreError> {
        entity(&self.gateway.services, id).await
    }

    /// Creates a route for `tenant`.
    pub async fn create_route(
        &self,
        tenant: &str,
        config: RouteConfig,
    ) -> Result<Route, CoreError> {
        let cmd = RouteCommand::Create {
            tenant: tenant.to_string(),
            config,
        };
        self.settled(command(&self.gateway.routes, &fresh("rte"), cmd).await)
            .await
    }

    /// Updates or deletes a route.
    pub async fn route_command(&self, id: &str, cmd: RouteCommand) -> Result<Route, CoreError> {
        self.settled(command(&self.gateway.routes, id, cmd).await)
            .await
    }

    /// A route's state.
    pub async fn route(&self, id: &str) -> Result<Route, CoreError> {
        entity(&self.gateway.routes, id).await
    }

    /// Creates a consumer for `tenant`; returns it with its API key's secret (shown once).
    pub async fn create_consumer(
        &self,
        tenant: &str,
        name: &str,
        rate_limit_tier: &str,
    ) -> Result<(Consumer, Secret), CoreError> {
        let secret = Secret::generate()?;
        let cmd = ConsumerCommand::Create {
            tenant: tenant.to_string(),
            name: name.to_string(),
            rate_limit_tier: rate_limit_tier.to_string(),
            key_hash: secret.hash(),
        };
        let consumer = self
            .settled(command(&self.gateway.consumers, &fresh("con"), cmd).await)
            .await?;
        Ok((consumer, secret))
    }

    /// Revokes a consumer.
    pub async fn consumer_command(
        &self,
        id: &str,
        cmd: ConsumerCommand,
    ) -> Result<Consumer, CoreError> {
        self.settled(command(&self.gateway.consumers, id, cmd).await)
            .await
    }

    /// Counts failures of a route (one group per route and kind).
    pub async fn record_gateway_errors(
        &self,
        errors: GatewayErrorsRecorded,
    ) -> Result<ErrorGroup, CoreError> {
        let id = error_group_id(&errors.route, &errors.kind);
        self.settled(command(&self.gateway.errors, &id, ErrorGroupCommand::Record(errors)).await)
            .await
    }

    /// Marks an error group resolved.
    pub async fn resolve_gateway_error(&self, id: &str) -> Result<ErrorGroup, CoreError> {
        self.settled(command(&self.gateway.errors, id, ErrorGroupCommand::Resolve).await)
            .await
    }
}
