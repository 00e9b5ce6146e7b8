//! `/errors`: the gateway's failures grouped by route and kind
//! (`unreachable`, `timeout`, `server_error`), newest failure first, 50 a
//! page, filtered by `resolved`; and resolving a group.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::http::StatusCode;

use super::super::auth::Scope;
use super::super::error::{ApiError, ErrorBody};
use super::super::http::{iso, iso_opt, ok, parse, query};
use super::super::ApiState;
use crate::domain::gateway::ErrorGroup;
use crate::projections::PAGE_SIZE;

/// One route's failures of one kind.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEvent {
    /// `gwe_…`.
    pub id: String,
    /// The owning tenant.
    pub tenant_id: String,
    /// The route.
    pub route_id: String,
    /// `unreachable`, `timeout` or `server_error`.
    pub kind: String,
    /// Failures so far.
    pub count: u64,
    /// The last failure's status.
    pub status_code: u16,
    /// The last failure.
    pub message: String,
    /// When the first was recorded.
    pub first_seen_at: String,
    /// When the last was recorded.
    pub last_seen_at: String,
    /// Whether it is marked resolved (a new failure opens it again).
    pub resolved: bool,
    /// When it was resolved.
    pub resolved_at: Option<String>,
}

fn event(e: &ErrorGroup) -> ErrorEvent {
    ErrorEvent {
        id: e.id.clone(),
        tenant_id: e.tenant.clone(),
        route_id: e.route.clone(),
        kind: e.kind.clone(),
        count: e.count,
        status_code: e.status,
        message: e.message.clone(),
        first_seen_at: iso(e.first_at),
        last_seen_at: iso(e.last_at),
        resolved: e.resolved_at.is_some(),
        resolved_at: iso_opt(e.resolved_at),
    }
}

/// Filters of `/errors`.
#[derive(Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ErrorsQuery {
    /// Only resolved (true) or open (false) groups; both when absent.
    pub resolved: Option<bool>,
    /// 1-based page of 50.
    #[param(minimum = 1)]
    pub page: Option<usize>,
}

/// One page of error groups.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorPage {
    /// Matching groups in all pages.
    pub count: usize,
    /// The next page number, if any.
    pub next: Option<usize>,
    /// The previous page number, if any.
    pub previous: Option<usize>,
    /// This page, the most recent failure first.
    pub results: Vec<ErrorEvent>,
}

/// The tenant's gateway errors.
#[utoipa::path(get, path = "/api/v1/errors", tag = "gateway", params(ErrorsQuery),
    responses((status = 200, body = ErrorPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<(StatusCode, ErrorPage), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let q: ErrorsQuery = query(&raw)?;
    let page = q.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::invalid(
            "page starts at 1",
            serde_json::json!({ "page": 0 }),
        ));
    }
    let all: Vec<ErrorGroup> = (state.core.queries())
        .error_groups_of(&caller.tenant.id)
        .into_iter()
        .filter(|e| q.resolved.is_none_or(|r| r == e.resolved_at.is_some()))
        .collect();
    let pages = all.len().div_ceil(PAGE_SIZE);
    let results = all
        .iter()
        .skip((page - 1).saturating_mul(PAGE_SIZE))
        .take(PAGE_SIZE)
        .map(event)
        .collect();
    ok(ErrorPage {
        count: all.len(),
        next: (page < pages).then(|| page + 1),
        previous: (page > 1).then(|| (page - 1).min(pages.max(1))),
        results,
    })
}

/// What `PATCH /errors/{id}` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorPatch {
    /// Must be true: a group opens again by itself when its route fails again.
    pub resolved: bool,
}

async fn resolve_own(state: &ApiState, tenant: &str, id: &str) -> Result<(), ApiError> {
    let mine = matches!(
        state.core.queries().error_group(id),
        Some(e) if e.tenant == tenant
    );
    if !mine {
        return Err(ApiError::not_found("error"));
    }
    state.core.resolve_gateway_error(id).await?;
    Ok(())
}

/// Mark an error group resolved (`{"resolved": true}`).
#[utoipa::path(patch, path = "/api/v1/errors/{id}", tag = "gateway", request_body = ErrorPatch,
    params(("id" = String, Path, description = "gwe_…")),
    responses((status = 204, description = "Resolved"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let req: ErrorPatch = parse(body)?;
    if !req.resolved {
        return Err(ApiError::invalid(
            "only {\"resolved\": true}: a group opens again by itself on a new failure",
            serde_json::json!({ "resolved": false }),
        ));
    }
    resolve_own(&state, &caller.tenant.id, &id).await
}

/// Mark an error group resolved.
#[utoipa::path(post, path = "/api/v1/errors/{id}/resolve", tag = "gateway",
    params(("id" = String, Path, description = "gwe_…")),
    responses((status = 204, description = "Resolved"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resolve(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
) -> Result<(), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    resolve_own(&state, &caller.tenant.id, &id).await
}
