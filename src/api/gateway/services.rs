//! `/services`: where gateway routes send requests — one of the tenant's
//! HTTP tunnels (by name) or an `http://` upstream URL.

use std::sync::Arc;

use beamd_events::vocabulary::ServiceConfig;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::super::auth::Scope;
use super::super::error::{ApiError, ErrorBody};
use super::super::http::{iso, iso_opt, ok, parse};
use super::super::ApiState;
use super::nullable;
use crate::domain::gateway::{Service, ServiceCommand};

/// The timeout a service gets when none is given, in ms.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// A service.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntity {
    /// `svc_…`.
    pub id: String,
    /// The owning tenant.
    pub tenant_id: String,
    /// A name for people.
    pub name: String,
    /// The tenant's HTTP tunnel (by name) that serves it.
    pub tunnel: Option<String>,
    /// The `http://` upstream that serves it.
    pub target_url: Option<String>,
    /// The path probed for health.
    pub health_check_path: Option<String>,
    /// How long the service has to start answering, in ms.
    pub timeout_ms: u64,
    /// When created.
    pub created_at: String,
    /// When last changed.
    pub updated_at: String,
    /// When deleted (deleted services are not listed).
    pub deleted_at: Option<String>,
}

pub(super) fn entity(s: &Service) -> Result<ServiceEntity, ApiError> {
    let c = s
        .config
        .clone()
        .ok_or_else(|| ApiError::not_found("service"))?;
    Ok(ServiceEntity {
        id: s.id.clone(),
        tenant_id: s.tenant.clone(),
        name: c.name,
        tunnel: c.tunnel,
        target_url: c.target_url,
        health_check_path: c.health_check_path,
        timeout_ms: c.timeout_ms,
        created_at: iso(s.created_at),
        updated_at: iso(s.updated_at),
        deleted_at: iso_opt(s.deleted_at),
    })
}

/// What `POST /services` takes: exactly one of `tunnel` and `targetUrl`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewService {
    /// 1–80 characters.
    pub name: String,
    /// The name of one of your HTTP tunnels.
    pub tunnel: Option<String>,
    /// An `http://` URL the edge reaches directly.
    pub target_url: Option<String>,
    /// A path starting with `/`, probed for health.
    pub health_check_path: Option<String>,
    /// 1–300000 ms (default 30000).
    #[schema(minimum = 1, maximum = 300000)]
    pub timeout_ms: Option<u64>,
}

/// What `PATCH /services/{id}` takes: any of the fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePatch {
    /// 1–80 characters.
    pub name: Option<String>,
    /// A tunnel name (null: none).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub tunnel: Option<Option<String>>,
    /// An `http://` URL (null: none).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub target_url: Option<Option<String>>,
    /// A path (null: not probed).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub health_check_path: Option<Option<String>>,
    /// 1–300000 ms.
    #[schema(minimum = 1, maximum = 300000)]
    pub timeout_ms: Option<u64>,
}

/// Refuses a `targetUrl` whose host is, or resolves to, an address the
/// edge's egress policy refuses. A name that does not resolve yet is
/// accepted: every connection is judged again when it is made.
async fn egress_allows(state: &ApiState, c: &ServiceConfig) -> Result<(), ApiError> {
    let Some(url) = &c.target_url else {
        return Ok(());
    };
    let Some(authority) = url
        .parse::<hyper::Uri>()
        .ok()
        .and_then(|u| u.authority().cloned())
    else {
        // The domain's validation names what is wrong with it.
        return Ok(());
    };
    let port = authority.port_u16().unwrap_or(80);
    match state.egress.resolve(authority.host(), port).await {
        Err(e @ crate::egress::EgressError::Refused { .. }) => {
            Err(ApiError::forbidden(format!("targetUrl {url:?}: {e}")))
        }
        _ => Ok(()),
    }
}

/// A live service of the caller's tenant.
pub(crate) fn own(state: &ApiState, tenant: &str, id: &str) -> Result<Service, ApiError> {
    match state.core.queries().service(id) {
        Some(s) if s.tenant == tenant && s.live() => Ok(s.clone()),
        _ => Err(ApiError::not_found("service")),
    }
}

/// The tenant's services (deleted ones are left out).
#[utoipa::path(get, path = "/api/v1/services", tag = "gateway",
    responses((status = 200, body = [ServiceEntity]), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: Arc<ApiState>,
    auth: Option<String>,
) -> Result<(StatusCode, Vec<ServiceEntity>), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let services = state.core.queries().services_of(&caller.tenant.id);
    let all = services.iter().map(entity);
    ok(all.collect::<Result<_, _>>()?)
}

/// Create a service.
#[utoipa::path(post, path = "/api/v1/services", tag = "gateway", request_body = NewService,
    responses((status = 201, body = ServiceEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: Arc<ApiState>,
    auth: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, ServiceEntity), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let req: NewService = parse(body)?;
    let config = ServiceConfig {
        name: req.name,
        tunnel: req.tunnel,
        target_url: req.target_url,
        health_check_path: req.health_check_path,
        timeout_ms: req.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
    };
    egress_allows(&state, &config).await?;
    let s = state.core.create_service(&caller.tenant.id, config).await?;
    Ok((StatusCode::CREATED, entity(&s)?))
}

/// Change some of a service's fields.
#[utoipa::path(patch, path = "/api/v1/services/{id}", tag = "gateway", request_body = ServicePatch,
    params(("id" = String, Path, description = "svc_…")),
    responses((status = 200, body = ServiceEntity), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The patch would leave the service neither a tunnel nor a URL")),
    security(("bearer" = [])))]
pub async fn update(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, ServiceEntity), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let patch: ServicePatch = parse(body)?;
    let current = own(&state, &caller.tenant.id, &id)?;
    let mut c = current
        .config
        .ok_or_else(|| ApiError::not_found("service"))?;
    if let Some(name) = patch.name {
        c.name = name;
    }
    // A service reaches a tunnel or a URL: naming one drops the other.
    if let (Some(Some(_)), Some(Some(_))) = (&patch.tunnel, &patch.target_url) {
        return Err(ApiError::invalid(
            "give at most one of tunnel and targetUrl",
            serde_json::json!({ "fields": ["tunnel", "targetUrl"] }),
        ));
    }
    if let Some(tunnel) = patch.tunnel {
        if tunnel.is_some() {
            c.target_url = None;
        }
        c.tunnel = tunnel;
    }
    if let Some(url) = patch.target_url {
        if url.is_some() {
            c.tunnel = None;
        }
        c.target_url = url;
    }
    if c.tunnel.is_none() && c.target_url.is_none() {
        return Err(ApiError::conflict(
            "the service would reach neither a tunnel nor a URL: name the other in the same patch",
        ));
    }
    if let Some(path) = patch.health_check_path {
        c.health_check_path = path;
    }
    if let Some(t) = patch.timeout_ms {
        c.timeout_ms = t;
    }
    egress_allows(&state, &c).await?;
    let s = state
        .core
        .service_command(&id, ServiceCommand::Update(c))
        .await?;
    ok(entity(&s)?)
}

/// Delete a service; routes to it answer 502 until they are pointed elsewhere.
#[utoipa::path(delete, path = "/api/v1/services/{id}", tag = "gateway",
    params(("id" = String, Path, description = "svc_…")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
) -> Result<(), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    own(&state, &caller.tenant.id, &id)?;
    state
        .core
        .service_command(&id, ServiceCommand::Delete)
        .await?;
    Ok(())
}
