//! `/tenants` (admin keys only): the edge's tenants, creating one (with its
//! first key), and changing a plan.

use std::sync::Arc;

use beamd_events::vocabulary::{KeyKind, Plan};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::auth::Scope;
use super::error::{ApiError, ErrorBody};
use super::http::{iso_opt, ok, parse, query, PageQuery};
use super::ApiState;
use crate::domain::{CreateTenant, Scopes, Tenant, TenantCommand};

/// A plan: its name and limits (null = none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanView {
    /// `free`, `pro`, … (lowercase letters, digits, `-`)
    pub name: String,
    /// Tunnels live at once.
    #[serde(default)]
    #[schema(maximum = 2147483647)]
    pub max_tunnels: Option<u32>,
    /// Custom domains.
    #[serde(default)]
    #[schema(maximum = 2147483647)]
    pub max_domains: Option<u32>,
    /// Bytes per calendar month (UTC).
    #[serde(default)]
    pub bandwidth_bytes: Option<u64>,
    /// Custom domains waiting for their TXT record at once (null: the
    /// edge's default, 20).
    #[serde(default)]
    #[schema(maximum = 2147483647)]
    pub max_pending_domains: Option<u32>,
}

impl From<&Plan> for PlanView {
    fn from(p: &Plan) -> Self {
        Self {
            name: p.name.clone(),
            max_tunnels: p.max_tunnels,
            max_domains: p.max_domains,
            bandwidth_bytes: p.bandwidth_bytes_per_month,
            max_pending_domains: p.max_pending_domains,
        }
    }
}

impl PlanView {
    /// The plan, its counts within the documented `int32`.
    pub fn into_plan(self) -> Result<Plan, ApiError> {
        for (name, v) in [
            ("maxTunnels", self.max_tunnels),
            ("maxDomains", self.max_domains),
            ("maxPendingDomains", self.max_pending_domains),
        ] {
            if let Some(v) = v.filter(|v| *v > i32::MAX as u32) {
                return Err(ApiError::invalid(
                    format!("{name} must be at most {}, not {v}", i32::MAX),
                    serde_json::json!({ "field": name, "maximum": i32::MAX }),
                ));
            }
        }
        Ok(Plan {
            name: self.name,
            max_tunnels: self.max_tunnels,
            max_domains: self.max_domains,
            bandwidth_bytes_per_month: self.bandwidth_bytes,
            max_pending_domains: self.max_pending_domains,
        })
    }
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    /// `ten_…`.
    pub id: String,
    /// URL-safe short name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Its plan.
    pub plan: PlanView,
    /// Base host of its HTTP tunnels.
    pub tunnel_base: String,
    /// When created.
    pub created_at: Option<String>,
}

fn view(t: &Tenant) -> TenantView {
    TenantView {
        id: t.id.clone(),
        slug: t.slug.clone(),
        name: t.name.clone(),
        plan: PlanView::from(&t.plan),
        tunnel_base: t.tunnel_base.clone(),
        created_at: iso_opt(t.created_at),
    }
}

/// A page of tenants.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    /// Tenants, by id.
    pub tenants: Vec<TenantView>,
    /// The cursor of the next page; null on the last.
    pub next: Option<String>,
}

/// Every tenant on the edge.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(PageQuery),
    responses((status = 200, body = TenantList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<(StatusCode, TenantList), ApiError> {
    state.caller(auth, Scope::Admin).await?;
    let q: PageQuery = query(&raw)?;
    let size = q.size()?;
    let after = q.cursor.unwrap_or_default();
    let (tenants, next) = state.core.queries().tenants_page(Some(&after), size);
    ok(TenantList {
        tenants: tenants.iter().map(view).collect(),
        next,
    })
}

/// What `POST /tenants` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTenant {
    /// URL-safe short name, unique on the edge.
    pub slug: String,
    /// Display name (default: the slug).
    pub name: Option<String>,
    /// Plan (default: `free` without limits).
    pub plan: Option<PlanView>,
    /// Base host of its HTTP tunnels (default: SLUG.<the edge's tunnel base>).
    pub tunnel_base: Option<String>,
}

/// A new tenant and its first key (with `manage` scope), shown once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTenant {
    /// The tenant.
    pub tenant: TenantView,
    /// Its first key, `tok_<id>.<secret>`: shown once.
    pub token: String,
}

/// Create a tenant with its first key.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = NewTenant,
    responses((status = 201, body = CreatedTenant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: Arc<ApiState>,
    auth: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, CreatedTenant), ApiError> {
    let caller = state.caller(auth, Scope::Admin).await?;
    let req: NewTenant = parse(body)?;
    let cmd = CreateTenant {
        name: req.name.unwrap_or_else(|| req.slug.clone()),
        tunnel_base: req
            .tunnel_base
            .unwrap_or_else(|| format!("{}.{}", req.slug, caller.tenant.tunnel_base)),
        plan: match req.plan {
            Some(plan) => plan.into_plan()?,
            None => Plan {
                name: "free".into(),
                ..Plan::default()
            },
        },
        slug: req.slug,
    };
    let tenant = state.core.create_tenant(cmd).await?;
    let scopes = Scopes::of(&[Scope::Manage]);
    let (key, secret) = state
        .core
        .issue_key(
            &tenant.id,
            "first key",
            KeyKind::Agent,
            scopes,
            None,
            caller.key.scope(),
        )
        .await?;
    state.settle().await?;
    Ok((
        StatusCode::CREATED,
        CreatedTenant {
            tenant: view(&tenant),
            token: format!("{}.{}", key.id, secret.expose()),
        },
    ))
}

/// Move a tenant to another plan.
#[utoipa::path(put, path = "/api/v1/tenants/{id}/plan", tag = "tenants", params(("id" = String, Path, description = "ten_…")), request_body = PlanView,
    responses((status = 200, body = TenantView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_plan(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, TenantView), ApiError> {
    state.caller(auth, Scope::Admin).await?;
    let plan: PlanView = parse(body)?;
    if state.core.queries().tenant(&id).is_none() {
        return Err(ApiError::not_found("tenant"));
    }
    let t = state
        .core
        .tenant_command(
            &id,
            TenantCommand::ChangePlan {
                plan: plan.into_plan()?,
            },
        )
        .await?;
    state.settle().await?;
    ok(view(&t))
}
