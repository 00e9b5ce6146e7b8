//! `/tunnels`: a tenant's tunnels (until released) with their state, public
//! address and bytes; releasing one frees its name or port.

use std::sync::Arc;

use beamd_events::vocabulary::{InspectMode, TunnelProtocol};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::auth::Scope;
use super::error::{ApiError, ErrorBody};
use super::http::{iso_opt, ok, parse, query, Deleted, PageQuery};
use super::ApiState;
use crate::domain::{Tunnel, TunnelCommand, TunnelStatus};
use crate::projections::TunnelTotals;

/// A tunnel as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TunnelView {
    /// `tun_…`.
    pub id: String,
    /// `http` or `tcp`.
    pub protocol: String,
    /// `online` (an agent serves it) or `offline` (name or port kept for its agent).
    pub status: String,
    /// Its name (HTTP).
    pub name: Option<String>,
    /// Its public port (TCP).
    pub port: Option<u16>,
    /// Where the public reaches it.
    pub public_url: Option<String>,
    /// The agent's transport.
    pub transport: Option<String>,
    /// The node serving it.
    pub node: String,
    /// The key that opened it.
    pub key: String,
    /// Where the agent forwards to.
    pub local_addr: String,
    /// Bytes from the public toward the agent.
    pub bytes_in: u64,
    /// Bytes back to the public.
    pub bytes_out: u64,
    /// Public connections.
    pub connections: u64,
    /// HTTP requests.
    pub requests: u64,
    /// UDP datagrams, either way (UDP tunnels).
    pub datagrams: u64,
    /// When opened.
    pub opened_at: Option<String>,
    /// Last recorded activity.
    pub last_seen: Option<String>,
    /// What the inspector keeps of its requests: `off`, `meta` or `full`.
    pub inspect: String,
    /// Whether it is a pool: agents join it (`--pool`) and share its traffic.
    pub pool: bool,
    /// A pool's members: those serving it now, then those that left (with
    /// their share of its traffic); empty for a tunnel that is not a pool.
    pub members: Vec<MemberView>,
}

/// One agent connection of a pool, and its share of the pool's traffic.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// The member's id (the edge's id of the agent connection, `ses_…`);
    /// inspector entries name the member that served them by it.
    pub id: String,
    /// `serving`, or `left` (its agent went away; its traffic stays counted).
    pub status: String,
    /// The node it is connected to (while serving).
    pub node: Option<String>,
    /// Its transport (while serving).
    pub transport: Option<String>,
    /// The key it presented (while serving).
    pub key: Option<String>,
    /// The agent's address as the edge saw it (while serving).
    pub peer: Option<String>,
    /// When it joined (while serving).
    pub joined_at: Option<String>,
    /// Bytes from the public toward this member.
    pub bytes_in: u64,
    /// Bytes from this member back to the public.
    pub bytes_out: u64,
    /// Public connections it took.
    pub connections: u64,
    /// HTTP requests it served.
    pub requests: u64,
}

/// A pool's members, serving first, with their traffic.
fn members(state: &ApiState, t: &Tunnel) -> Vec<MemberView> {
    if !t.pool {
        return Vec::new();
    }
    let mut traffic: std::collections::BTreeMap<String, TunnelTotals> = state
        .core
        .queries()
        .member_totals(&t.id)
        .into_iter()
        .collect();
    let mut views: Vec<MemberView> = (t.members.iter())
        .map(|(id, m)| {
            let totals = traffic.remove(id).unwrap_or_default();
            MemberView {
                id: id.clone(),
                status: "serving".into(),
                node: Some(m.node.clone()),
                transport: m.transport.map(|k| k.as_str().to_string()),
                key: Some(m.key.clone()),
                peer: Some(m.peer.clone()),
                joined_at: iso_opt(Some(m.joined_at)),
                bytes_in: totals.bytes_in,
                bytes_out: totals.bytes_out,
                connections: totals.connections,
                requests: totals.requests,
            }
        })
        .collect();
    views.extend(traffic.into_iter().map(|(id, totals)| MemberView {
        id,
        status: "left".into(),
        node: None,
        transport: None,
        key: None,
        peer: None,
        joined_at: None,
        bytes_in: totals.bytes_in,
        bytes_out: totals.bytes_out,
        connections: totals.connections,
        requests: totals.requests,
    }));
    views
}

/// A change to a tunnel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TunnelPatch {
    /// `off` (no request captured), `meta` (metadata) or `full` (also headers
    /// and the first bytes of each body, for details and replay).
    pub inspect: String,
}

/// A page of tunnels.
#[derive(Debug, Serialize, ToSchema)]
pub struct TunnelList {
    /// Tunnels, by id.
    pub tunnels: Vec<TunnelView>,
    /// The cursor of the next page; null on the last.
    pub next: Option<String>,
}

/// `traffic`: the tunnel's totals, from the usage projection.
fn view(state: &ApiState, t: &Tunnel, traffic: TunnelTotals, tunnel_base: &str) -> TunnelView {
    let public_url = match (t.protocol, &t.name, t.port) {
        (Some(TunnelProtocol::Http), Some(name), _) => {
            (state.public.http_port).map(|_| state.public.url(&format!("{name}.{tunnel_base}")))
        }
        (Some(TunnelProtocol::Tcp), _, Some(port)) => Some(state.public.tcp(port)),
        (Some(TunnelProtocol::Udp), _, Some(port)) => Some(state.public.udp(port)),
        _ => None,
    };
    TunnelView {
        id: t.id.clone(),
        protocol: match t.protocol {
            Some(TunnelProtocol::Http) => "http",
            Some(TunnelProtocol::Udp) => "udp",
            _ => "tcp",
        }
        .into(),
        status: match t.status {
            TunnelStatus::Online => "online",
            _ => "offline",
        }
        .into(),
        name: t.name.clone(),
        port: t.port,
        public_url,
        transport: t.transport.map(|k| format!("{k:?}").to_ascii_lowercase()),
        node: t.node.clone(),
        key: t.key.clone(),
        local_addr: t.local_addr.clone(),
        bytes_in: traffic.bytes_in,
        bytes_out: traffic.bytes_out,
        connections: traffic.connections,
        requests: traffic.requests,
        datagrams: traffic.datagrams,
        opened_at: iso_opt(t.opened_at),
        last_seen: iso_opt(t.last_seen),
        inspect: t.inspect.as_str().into(),
        pool: t.pool,
        members: members(state, t),
    }
}

/// The tenant's tunnels (released ones are gone).
#[utoipa::path(get, path = "/api/v1/tunnels", tag = "tunnels", params(PageQuery),
    responses((status = 200, body = TunnelList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<(StatusCode, TunnelList), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let q: PageQuery = query(&raw)?;
    let size = q.size()?;
    let (tunnels, next) =
        (state.core.queries()).tunnels_page(&caller.tenant.id, q.cursor.as_deref(), size);
    let queries = state.core.queries();
    ok(TunnelList {
        tunnels: tunnels
            .iter()
            .map(|t| {
                view(
                    &state,
                    t,
                    queries.tunnel_totals(&t.id),
                    &caller.tenant.tunnel_base,
                )
            })
            .collect(),
        next,
    })
}

fn own(state: &ApiState, tenant: &str, id: &str) -> Result<Tunnel, ApiError> {
    match state.core.queries().tunnel(id) {
        Some(t) if t.tenant == tenant => Ok(t),
        _ => Err(ApiError::not_found("tunnel")),
    }
}

/// One tunnel.
#[utoipa::path(get, path = "/api/v1/tunnels/{id}", tag = "tunnels", params(("id" = String, Path, description = "tun_…")),
    responses((status = 200, body = TunnelView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
) -> Result<(StatusCode, TunnelView), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let t = own(&state, &caller.tenant.id, &id)?;
    let traffic = state.core.queries().tunnel_totals(&t.id);
    ok(view(&state, &t, traffic, &caller.tenant.tunnel_base))
}

/// Release a tunnel: its name or port is free again. An agent still serving it loses it at its next reconnect.
#[utoipa::path(delete, path = "/api/v1/tunnels/{id}", tag = "tunnels", params(("id" = String, Path, description = "tun_…")),
    responses((status = 200, body = Deleted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn release(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
) -> Result<(StatusCode, Deleted), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let t = own(&state, &caller.tenant.id, &id)?;
    state
        .core
        .tunnel_command(&t.id, TunnelCommand::Release)
        .await?;
    state.settle().await?;
    ok(Deleted {
        id: t.id,
        revoked: None,
        released: Some(true),
        removed: None,
    })
}

/// Change a tunnel: how much of its requests the inspector keeps. In force
/// for the next request; an agent that gives `--inspect` sets it again when
/// it reconnects.
#[utoipa::path(patch, path = "/api/v1/tunnels/{id}", tag = "tunnels", params(("id" = String, Path, description = "tun_…")),
    request_body = TunnelPatch,
    responses((status = 200, body = TunnelView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, TunnelView), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let t = own(&state, &caller.tenant.id, &id)?;
    let patch: TunnelPatch = parse(body)?;
    let mode = InspectMode::parse(&patch.inspect).ok_or_else(|| {
        ApiError::invalid(
            format!("inspect {:?} is not one of off, meta, full", patch.inspect),
            serde_json::json!({ "inspect": patch.inspect }),
        )
    })?;
    let t = state
        .core
        .tunnel_command(&t.id, TunnelCommand::SetInspect(mode))
        .await?;
    state.settle().await?;
    let traffic = state.core.queries().tunnel_totals(&t.id);
    ok(view(&state, &t, traffic, &caller.tenant.tunnel_base))
}
