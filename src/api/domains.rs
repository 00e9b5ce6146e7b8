//! `/domains`: custom domains, the TXT record each must publish, a real DNS
//! check on verify, and removal (which stops routing at once).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::auth::Scope;
use super::error::{ApiError, ErrorBody};
use super::http::{iso_opt, ok, parse, query, Deleted, PageQuery};
use super::ApiState;
use crate::domain::{AddDomain, DomainCommand, DomainName, DomainStatus};

/// The DNS record that proves a domain is yours.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TxtRecord {
    /// Always `TXT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `_beamd-challenge.HOST`.
    pub name: String,
    /// The value to publish.
    pub value: String,
}

/// A custom domain.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainView {
    /// `dom_…`.
    pub id: String,
    /// The host name.
    pub host: String,
    /// `pending`, `verified`, or `expired` (pending past the edge's claim
    /// lifetime: the host is free again; add it anew).
    pub status: String,
    /// What to publish.
    pub txt: TxtRecord,
    /// Why the last check missed (what was expected and what was found).
    pub failure: Option<String>,
    /// When added.
    pub created_at: Option<String>,
    /// When verified.
    pub verified_at: Option<String>,
}

fn view(d: &DomainName) -> DomainView {
    DomainView {
        id: d.id.clone(),
        host: d.host.clone(),
        status: match d.status {
            DomainStatus::Verified => "verified",
            DomainStatus::Expired => "expired",
            _ => "pending",
        }
        .into(),
        txt: TxtRecord {
            kind: "TXT".into(),
            name: d.txt_name(),
            value: d.txt_token.clone(),
        },
        failure: d.failure.clone(),
        created_at: iso_opt(d.created_at),
        verified_at: iso_opt(d.verified_at),
    }
}

/// A page of domains.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainList {
    /// Domains, by host.
    pub domains: Vec<DomainView>,
    /// The cursor of the next page; null on the last.
    pub next: Option<String>,
}

/// The tenant's custom domains.
#[utoipa::path(get, path = "/api/v1/domains", tag = "domains", params(PageQuery),
    responses((status = 200, body = DomainList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<(StatusCode, DomainList), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let q: PageQuery = query(&raw)?;
    let size = q.size()?;
    let after = q.cursor.unwrap_or_default();
    let (domains, next) = (state.core.queries()).domains_page(&caller.tenant.id, &after, size);
    ok(DomainList {
        domains: domains.iter().map(view).collect(),
        next,
    })
}

/// What `POST /domains` takes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    /// The host name, e.g. `app.example.com`.
    #[schema(
        max_length = 253,
        pattern = "^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\\.?$"
    )]
    pub host: String,
}

/// Add a domain; the answer names the TXT record to publish.
#[utoipa::path(post, path = "/api/v1/domains", tag = "domains", request_body = NewDomain,
    responses((status = 201, body = DomainView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add(
    state: Arc<ApiState>,
    auth: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, DomainView), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let req: NewDomain = parse(body)?;
    let d = state
        .core
        .add_domain(
            &caller.tenant.id,
            AddDomain {
                host: req.host,
                claim_ttl_ms: state.dns.claim_ttl_ms(),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, view(&d)))
}

fn own(state: &ApiState, tenant: &str, id: &str) -> Result<DomainName, ApiError> {
    match state.core.queries().domain(id) {
        Some(d) if d.tenant == tenant => Ok(d.clone()),
        _ => Err(ApiError::not_found("domain")),
    }
}

/// Look up the domain's TXT record now; verified when it holds the value.
#[utoipa::path(post, path = "/api/v1/domains/{id}/verify", tag = "domains", params(("id" = String, Path, description = "dom_…")),
    responses((status = 200, body = DomainView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn verify(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
) -> Result<(StatusCode, DomainView), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let d = own(&state, &caller.tenant.id, &id)?;
    let d = state.dns.verify(&state.core, &d).await?;
    ok(view(&d))
}

/// Remove a domain; requests for it stop routing at once, and its gateway routes are retired.
#[utoipa::path(delete, path = "/api/v1/domains/{id}", tag = "domains", params(("id" = String, Path, description = "dom_…")),
    responses((status = 200, body = Deleted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
) -> Result<(StatusCode, Deleted), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let d = own(&state, &caller.tenant.id, &id)?;
    state
        .core
        .domain_command(&d.id, DomainCommand::Remove)
        .await?;
    ok(Deleted {
        id: d.id,
        revoked: None,
        released: None,
        removed: Some(true),
    })
}
