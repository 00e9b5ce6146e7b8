//! `/workspace`, `/me`, `/status` and `/nodes`: who the caller is, and how the edge is.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::auth::Scope;
use super::error::{ApiError, ErrorBody};
use super::http::{iso_opt, ok};
use super::ApiState;
use crate::domain::NodeStatus;

/// The caller's tenant.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// Tenant id (`ten_…`).
    pub id: String,
    /// URL-safe short name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Always true on a self-hosted edge.
    pub provisioned: bool,
    /// Base host of its HTTP tunnels.
    pub tunnel_base: String,
    /// Plan name.
    pub plan: String,
}

/// The caller's tenant.
#[utoipa::path(get, path = "/api/v1/workspace", tag = "account",
    responses((status = 200, body = Workspace), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn workspace(
    state: Arc<ApiState>,
    auth: Option<String>,
) -> Result<(StatusCode, Workspace), ApiError> {
    let t = state.caller(auth, Scope::Read).await?.tenant;
    ok(Workspace {
        id: t.id,
        slug: t.slug,
        name: t.name,
        provisioned: true,
        tunnel_base: t.tunnel_base,
        plan: t.plan.name,
    })
}

/// The calling key.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The key id.
    pub id: String,
    /// Its label.
    pub name: String,
    /// `agent` or `api`.
    pub kind: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its tenant's id.
    pub tenant: String,
    /// The tenant's plan name.
    pub plan: String,
    /// When the key was minted.
    pub created_at: Option<String>,
}

/// The calling key and its tenant's plan.
#[utoipa::path(get, path = "/api/v1/me", tag = "account",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn me(state: Arc<ApiState>, auth: Option<String>) -> Result<(StatusCode, Me), ApiError> {
    let c = state.caller(auth, Scope::Read).await?;
    ok(Me {
        id: c.key.id,
        name: c.key.label,
        kind: match c.key.kind {
            Some(beamd_events::vocabulary::KeyKind::Api) => "api".into(),
            _ => "agent".into(),
        },
        scopes: c.key.scopes.names(),
        tenant: c.tenant.id,
        plan: c.tenant.plan.name,
        created_at: iso_opt(c.key.created_at),
    })
}

/// Live counts on the edge.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Tenants.
    pub tenants: u64,
    /// Keys not revoked.
    pub active_keys: u64,
    /// Tunnels an agent serves now.
    pub online_tunnels: u64,
    /// Tunnels waiting for their agent.
    pub offline_tunnels: u64,
    /// Custom domains.
    pub domains: u64,
    /// Edge nodes up.
    pub nodes_up: u64,
}

/// The server's state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// `running`.
    pub status: String,
    /// beamd's version.
    pub version: String,
    /// Seconds since this API server started.
    pub uptime_seconds: u64,
    /// This node.
    pub node: String,
    /// The log's head seq.
    pub log_seq: u64,
    /// Counts.
    pub counts: Counts,
    /// The public HTTPS port's ACME client (admin keys only, with
    /// `--acme-directory`): certificates held, and hosts whose last order
    /// failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme: Option<crate::acme::AcmeReport>,
    /// The witnesses the log's checkpoints go to (with `--witness`): the
    /// largest size each cosigned, failures, the last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<Vec<crate::tlog::WitnessReport>>,
}

/// Version, uptime and counts.
#[utoipa::path(get, path = "/api/v1/status", tag = "server",
    responses((status = 200, body = Status), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn status(
    state: Arc<ApiState>,
    auth: Option<String>,
) -> Result<(StatusCode, Status), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let c = state.core.queries().counts();
    // Which hosts have certificates is the operator's business.
    let operator = caller.key.scope() == Scope::Admin;
    let acme = (state.acme.as_ref())
        .filter(|_| operator)
        .map(|a| a.report());
    ok(Status {
        status: "running".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: state.started.elapsed().as_secs(),
        node: state.node.clone(),
        log_seq: state.core.log().head().seq,
        counts: Counts {
            tenants: c.tenants,
            active_keys: c.active_keys,
            online_tunnels: c.online_tunnels,
            offline_tunnels: c.offline_tunnels,
            domains: c.domains,
            nodes_up: c.nodes_up,
        },
        acme,
        witnesses: state.witnesses.as_ref().map(|w| w.reports()),
    })
}

/// An edge node.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// `node_…`.
    pub id: String,
    /// `up` or `down`.
    pub status: String,
    /// beamd's version on it.
    pub version: String,
    /// Its listening addresses (`quic=…`, `http=…`; `api=…` for admin keys only).
    pub public_addrs: Vec<String>,
    /// Transports it serves agents on.
    pub transports: Vec<String>,
    /// When it joined last.
    pub joined_at: Option<String>,
    /// Its last heartbeat.
    pub last_heartbeat: Option<String>,
}

/// The edge nodes.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeList {
    /// Nodes, by id.
    pub nodes: Vec<NodeView>,
}

/// The edge nodes and their state.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "server",
    responses((status = 200, body = NodeList), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn nodes(
    state: Arc<ApiState>,
    auth: Option<String>,
) -> Result<(StatusCode, NodeList), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    // Where the control plane listens is the operator's business.
    let operator = caller.key.scope() == Scope::Admin;
    ok(NodeList {
        nodes: (state.core.queries().nodes())
            .iter()
            .map(|(id, n)| NodeView {
                id: id.clone(),
                status: if n.status == NodeStatus::Up {
                    "up"
                } else {
                    "down"
                }
                .into(),
                version: n.version.clone(),
                public_addrs: n
                    .public_addrs
                    .iter()
                    .filter(|a| operator || !a.starts_with("api="))
                    .cloned()
                    .collect(),
                transports: n.transports.clone(),
                joined_at: iso_opt(n.joined_at),
                last_heartbeat: iso_opt(n.last_heartbeat),
            })
            .collect(),
    })
}
