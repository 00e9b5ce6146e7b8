//! `/health` (the latest health per service, as the edge's probe recorded
//! it) and `/gateway-status` (whether an edge node is up to serve the
//! tenant's gateway).

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::super::auth::Scope;
use super::super::error::{ApiError, ErrorBody};
use super::super::http::{iso, ok};
use super::super::ApiState;
use crate::domain::NodeStatus;

/// A node that has not been heard from for this long is not counted as up.
const HEARTBEAT_STALE_MS: u64 = 60_000;

/// The latest health of one service.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthSnapshot {
    /// `svc_…`.
    pub service_id: String,
    /// The service's name.
    pub name: String,
    /// Whether the probe got a 2xx or 3xx answer in time.
    pub healthy: bool,
    /// The answer's status, if any.
    pub status_code: Option<u16>,
    /// What happened.
    pub detail: String,
    /// Since when it has been so.
    pub since: String,
}

/// The latest health of each of the tenant's services that has been probed.
#[utoipa::path(get, path = "/api/v1/health", tag = "gateway",
    responses((status = 200, body = [HealthSnapshot]), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn health(
    state: Arc<ApiState>,
    auth: Option<String>,
) -> Result<(StatusCode, Vec<HealthSnapshot>), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    ok((state.core.queries().services_of(&caller.tenant.id))
        .into_iter()
        .filter_map(|s| {
            let h = s.health.as_ref()?;
            Some(HealthSnapshot {
                service_id: s.id.clone(),
                name: s
                    .config
                    .as_ref()
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                healthy: h.healthy,
                status_code: h.status,
                detail: h.detail.clone(),
                since: iso(h.since),
            })
        })
        .collect())
}

/// Whether the tenant's gateway is being served.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// The tenant.
    pub tenant_id: String,
    /// Whether an edge node is up and heard from within the last minute.
    pub online: bool,
    /// The nodes that are.
    pub nodes: Vec<String>,
}

/// Whether an edge node is up to serve the tenant's gateway.
#[utoipa::path(get, path = "/api/v1/gateway-status", tag = "gateway",
    responses((status = 200, body = GatewayStatus), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn gateway_status(
    state: Arc<ApiState>,
    auth: Option<String>,
) -> Result<(StatusCode, GatewayStatus), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let now = state.core.now_ms();
    let nodes: Vec<String> = (state.core.queries().nodes())
        .into_iter()
        .filter(|(_, n)| {
            n.status == NodeStatus::Up
                && n.last_heartbeat
                    .is_some_and(|at| now.saturating_sub(at) <= HEARTBEAT_STALE_MS)
        })
        .map(|(id, _)| id.clone())
        .collect();
    ok(GatewayStatus {
        tenant_id: caller.tenant.id,
        online: !nodes.is_empty(),
        nodes,
    })
}
