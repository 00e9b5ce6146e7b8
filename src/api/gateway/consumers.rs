//! `/consumers`: callers of the tenant's gateway routes. Creating one
//! returns its API key once; revoking stops the key at once.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::super::auth::Scope;
use super::super::error::{ApiError, ErrorBody};
use super::super::http::{iso, iso_opt, ok, parse};
use super::super::ApiState;
use crate::domain::gateway::{Consumer, ConsumerCommand};

/// A consumer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerEntity {
    /// `con_…`.
    pub id: String,
    /// The owning tenant.
    pub tenant_id: String,
    /// A name for people.
    pub name: String,
    /// `free` (60 requests a minute), `standard` (600) or `premium` (6000).
    pub rate_limit_tier: String,
    /// When created.
    pub created_at: String,
    /// When revoked (revoked consumers are not listed).
    pub revoked_at: Option<String>,
}

fn entity(c: &Consumer) -> ConsumerEntity {
    ConsumerEntity {
        id: c.id.clone(),
        tenant_id: c.tenant.clone(),
        name: c.name.clone(),
        rate_limit_tier: c.rate_limit_tier.clone(),
        created_at: iso(c.created_at),
        revoked_at: iso_opt(c.revoked_at),
    }
}

/// A new consumer with its API key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedConsumer {
    /// The consumer.
    #[serde(flatten)]
    pub consumer: ConsumerEntity,
    /// `con_<id>.<secret>`: sent as `x-api-key` or `Authorization: Bearer`.
    pub api_key: String,
}

/// What `POST /consumers` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewConsumer {
    /// 1–80 characters.
    pub name: String,
    /// `free` (default), `standard` or `premium`.
    pub rate_limit_tier: Option<String>,
}

/// The tenant's consumers (revoked ones are left out).
#[utoipa::path(get, path = "/api/v1/consumers", tag = "gateway",
    responses((status = 200, body = [ConsumerEntity]), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: Arc<ApiState>,
    auth: Option<String>,
) -> Result<(StatusCode, Vec<ConsumerEntity>), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    ok((state.core.queries().consumers_of(&caller.tenant.id))
        .iter()
        .map(entity)
        .collect())
}

/// Create a consumer; its API key is in this answer only.
#[utoipa::path(post, path = "/api/v1/consumers", tag = "gateway", request_body = NewConsumer,
    responses((status = 201, body = CreatedConsumer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: Arc<ApiState>,
    auth: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, CreatedConsumer), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let req: NewConsumer = parse(body)?;
    let tier = req.rate_limit_tier.unwrap_or_else(|| "free".into());
    let (c, secret) = state
        .core
        .create_consumer(&caller.tenant.id, &req.name, &tier)
        .await?;
    let api_key = format!("{}.{}", c.id, secret.expose());
    Ok((
        StatusCode::CREATED,
        CreatedConsumer {
            consumer: entity(&c),
            api_key,
        },
    ))
}

/// Revoke a consumer; its key stops working at once.
#[utoipa::path(delete, path = "/api/v1/consumers/{id}", tag = "gateway",
    params(("id" = String, Path, description = "con_…")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
) -> Result<(), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let live = matches!(
        state.core.queries().consumer(&id),
        Some(c) if c.tenant == caller.tenant.id && c.live()
    );
    if !live {
        return Err(ApiError::not_found("consumer"));
    }
    state
        .core
        .consumer_command(&id, ConsumerCommand::Revoke)
        .await?;
    Ok(())
}
