//! `/routes`: which requests to a host (one of the tenant's tunnel hosts or
//! verified domains) go to which service, with key and rate-limit rules.
//! A change applies to the next request.

use std::sync::Arc;

use beamd_events::vocabulary::RouteConfig;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::super::auth::{Caller, Scope};
use super::super::error::{ApiError, ErrorBody};
use super::super::http::{iso, iso_opt, ok, parse};
use super::super::ApiState;
use super::nullable;
use super::services;
use crate::domain::gateway::{Route, RouteCommand};

/// A route.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteEntity {
    /// `rte_…`.
    pub id: String,
    /// The owning tenant.
    pub tenant_id: String,
    /// The public host it is bound to.
    pub host: String,
    /// An HTTP method, or `*`.
    pub method: String,
    /// `/literal/:param/*`.
    pub path_pattern: String,
    /// The service that answers.
    pub service_id: String,
    /// Whether callers need a consumer API key.
    pub auth_required: bool,
    /// Requests per minute per caller, instead of the caller's tier.
    pub rate_limit_override: Option<u32>,
    /// Whether it takes requests.
    pub enabled: bool,
    /// When created.
    pub created_at: String,
    /// When last changed.
    pub updated_at: String,
    /// When deleted (deleted routes are not listed).
    pub deleted_at: Option<String>,
}

fn entity(r: &Route) -> Result<RouteEntity, ApiError> {
    let c = r
        .config
        .clone()
        .ok_or_else(|| ApiError::not_found("route"))?;
    Ok(RouteEntity {
        id: r.id.clone(),
        tenant_id: r.tenant.clone(),
        host: c.host,
        method: c.method,
        path_pattern: c.path_pattern,
        service_id: c.service_id,
        auth_required: c.auth_required,
        rate_limit_override: c.rate_limit_override,
        enabled: c.enabled,
        created_at: iso(r.created_at),
        updated_at: iso(r.updated_at),
        deleted_at: iso_opt(r.deleted_at),
    })
}

/// What `POST /routes` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRoute {
    /// `NAME.<your tunnel base>` or one of your verified domains.
    pub host: String,
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE`, `OPTIONS` or `*`.
    pub method: String,
    /// `/literal/:param/*`.
    pub path_pattern: String,
    /// One of your services.
    pub service_id: String,
    /// Whether callers need a consumer API key.
    pub auth_required: bool,
    /// Requests per minute per caller, 1–1000000.
    #[schema(minimum = 1, maximum = 1000000)]
    pub rate_limit_override: Option<u32>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// What `PATCH /routes/{id}` takes: any of the fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutePatch {
    /// The host.
    pub host: Option<String>,
    /// The method.
    pub method: Option<String>,
    /// The pattern.
    pub path_pattern: Option<String>,
    /// The service.
    pub service_id: Option<String>,
    /// Key required.
    pub auth_required: Option<bool>,
    /// Per-minute rate (null: the caller's tier).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>, nullable, minimum = 1, maximum = 1000000)]
    pub rate_limit_override: Option<Option<u32>>,
    /// Enabled.
    pub enabled: Option<bool>,
}

/// Checks that the route's host and service are the caller's.
fn check(state: &ApiState, caller: &Caller, c: &RouteConfig) -> Result<(), ApiError> {
    let host = c.host.to_ascii_lowercase();
    let base = format!(".{}", caller.tenant.tunnel_base);
    let reaches = crate::domain::host_reaches(
        &host,
        &caller.tenant.id,
        &caller.tenant.tunnel_base,
        state.core.queries().domain_of_host(&host).as_ref(),
    );
    if !reaches {
        return Err(ApiError::forbidden(format!(
            "host {:?} is neither NAME{base} nor one of your verified domains",
            c.host
        )));
    }
    if c.service_id.starts_with("svc_") {
        services::own(state, &caller.tenant.id, &c.service_id).map_err(|_| {
            let mut e = ApiError::not_found("service");
            e.body.message = format!("serviceId {:?} names none of your services", c.service_id);
            e
        })?;
    }
    Ok(())
}

fn own(state: &ApiState, tenant: &str, id: &str) -> Result<Route, ApiError> {
    match state.core.queries().route(id) {
        Some(r) if r.tenant == tenant && r.live() => Ok(r.clone()),
        _ => Err(ApiError::not_found("route")),
    }
}

/// The tenant's routes (deleted ones are left out).
#[utoipa::path(get, path = "/api/v1/routes", tag = "gateway",
    responses((status = 200, body = [RouteEntity]), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: Arc<ApiState>,
    auth: Option<String>,
) -> Result<(StatusCode, Vec<RouteEntity>), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let routes = state.core.queries().routes_of(&caller.tenant.id);
    let all = routes.iter().map(entity);
    ok(all.collect::<Result<_, _>>()?)
}

/// Create a route.
#[utoipa::path(post, path = "/api/v1/routes", tag = "gateway", request_body = NewRoute,
    responses((status = 201, body = RouteEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: Arc<ApiState>,
    auth: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, RouteEntity), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let req: NewRoute = parse(body)?;
    let config = RouteConfig {
        host: req.host.to_ascii_lowercase(),
        method: req.method.to_ascii_uppercase(),
        path_pattern: req.path_pattern,
        service_id: req.service_id,
        auth_required: req.auth_required,
        rate_limit_override: req.rate_limit_override,
        enabled: req.enabled.unwrap_or(true),
    };
    check(&state, &caller, &config)?;
    let r = state.core.create_route(&caller.tenant.id, config).await?;
    Ok((StatusCode::CREATED, entity(&r)?))
}

/// Change some of a route's fields; the next request sees the change.
#[utoipa::path(patch, path = "/api/v1/routes/{id}", tag = "gateway", request_body = RoutePatch,
    params(("id" = String, Path, description = "rte_…")),
    responses((status = 200, body = RouteEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, RouteEntity), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let patch: RoutePatch = parse(body)?;
    let current = own(&state, &caller.tenant.id, &id)?;
    let mut c = current.config.ok_or_else(|| ApiError::not_found("route"))?;
    if let Some(v) = patch.host {
        c.host = v.to_ascii_lowercase();
    }
    if let Some(v) = patch.method {
        c.method = v.to_ascii_uppercase();
    }
    if let Some(v) = patch.path_pattern {
        c.path_pattern = v;
    }
    if let Some(v) = patch.service_id {
        c.service_id = v;
    }
    if let Some(v) = patch.auth_required {
        c.auth_required = v;
    }
    if let Some(v) = patch.rate_limit_override {
        c.rate_limit_override = v;
    }
    if let Some(v) = patch.enabled {
        c.enabled = v;
    }
    check(&state, &caller, &c)?;
    let r = state
        .core
        .route_command(&id, RouteCommand::Update(c))
        .await?;
    ok(entity(&r)?)
}

/// Delete a route.
#[utoipa::path(delete, path = "/api/v1/routes/{id}", tag = "gateway",
    params(("id" = String, Path, description = "rte_…")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
) -> Result<(), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    own(&state, &caller.tenant.id, &id)?;
    state.core.route_command(&id, RouteCommand::Delete).await?;
    Ok(())
}
