//! `/tokens`: a tenant's keys (never their secrets), minting (the secret
//! shown once), revoking, byte limits and counter resets; and
//! `/subscribe/{key}`, an agent's ready-made configuration.

use std::sync::Arc;

use beamd_events::vocabulary::KeyKind;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::auth::Scope;
use super::error::{ApiError, ErrorBody};
use super::http::{iso, iso_opt, ok, parse, query, Deleted, PageQuery};
use super::ApiState;
use crate::domain::{Key, KeyCommand, KeyStatus, Scopes};
use crate::protocol::ShareLink;
use crate::protocol::Token;

/// A key as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    /// `tok_…`.
    pub id: String,
    /// Label (≤ 80 characters).
    pub label: String,
    /// `agent` (opens tunnels, reads the API) or `api` (API only).
    pub kind: String,
    /// `read`, `manage`, `admin`.
    pub scopes: Vec<String>,
    /// Byte limit (up + down since the last reset); null = none.
    pub limit_bytes: Option<u64>,
    /// Bytes from public clients toward the agent since the last reset.
    pub bytes_up: u64,
    /// Bytes back to public clients since the last reset.
    pub bytes_down: u64,
    /// Public connections since the last reset.
    pub connections: u64,
    /// When minted.
    pub created_at: Option<String>,
    /// When its traffic was last recorded.
    pub last_used_at: Option<String>,
    /// When the counters were last reset.
    pub counters_reset_at: Option<String>,
    /// When revoked.
    pub revoked_at: Option<String>,
}

/// A page of keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Keys, by id.
    pub tokens: Vec<TokenView>,
    /// The cursor of the next page; null on the last.
    pub next: Option<String>,
}

fn kind_name(kind: Option<KeyKind>) -> String {
    match kind {
        Some(KeyKind::Api) => "api",
        Some(KeyKind::Consumer) => "consumer",
        _ => "agent",
    }
    .into()
}

fn view(state: &ApiState, key: &Key) -> TokenView {
    let counters = state.core.queries().key_counters(&key.id);
    TokenView {
        id: key.id.clone(),
        label: key.label.clone(),
        kind: kind_name(key.kind),
        scopes: key.scopes.names(),
        limit_bytes: key.limit_bytes,
        bytes_up: counters.bytes_up,
        bytes_down: counters.bytes_down,
        connections: counters.connections,
        created_at: iso_opt(key.created_at),
        last_used_at: iso_opt(counters.last_used_at),
        counters_reset_at: iso_opt(key.counters_reset_at),
        revoked_at: iso_opt(key.revoked_at),
    }
}

/// List the tenant's keys.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(PageQuery),
    responses((status = 200, body = TokenList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<(StatusCode, TokenList), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let q: PageQuery = query(&raw)?;
    let size = q.size()?;
    let (keys, next) =
        (state.core.queries()).keys_page(&caller.tenant.id, q.cursor.as_deref(), size);
    ok(TokenList {
        tokens: keys.iter().map(|k| view(&state, k)).collect(),
        next,
    })
}

/// What `POST /tokens` takes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    /// Label, 1–80 characters (default `token`).
    pub label: Option<String>,
    /// `agent` (default) or `api`.
    pub kind: Option<String>,
    /// Scopes (default `["read"]`): `read`, `manage`, `admin`; no more than the caller's own.
    pub scopes: Option<Vec<String>>,
    /// Byte limit; null or absent = none.
    pub limit_bytes: Option<u64>,
}

/// A new key with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    /// `tok_…`.
    pub id: String,
    /// The raw key, `tok_<id>.<secret>`: shown once, store it now.
    pub token: String,
    /// Label.
    pub label: String,
    /// `agent` or `api`.
    pub kind: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Byte limit.
    pub limit_bytes: Option<u64>,
    /// When minted.
    pub created_at: Option<String>,
}

/// Mint a key.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: Arc<ApiState>,
    auth: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, CreatedToken), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let req: CreateToken = parse(body)?;
    let kind = match req.kind.as_deref() {
        None | Some("agent") => KeyKind::Agent,
        Some("api") => KeyKind::Api,
        Some(other) => {
            return Err(ApiError::invalid(
                format!("kind must be agent or api, not {other:?}"),
                serde_json::json!({ "kind": other }),
            ))
        }
    };
    let names = req
        .scopes
        .unwrap_or_else(|| vec![Scope::Read.name().to_string()]);
    let scopes = Scopes::parse(&names)?;
    let label = req.label.unwrap_or_else(|| "token".into());
    let (key, secret) = state
        .core
        .issue_key(
            &caller.tenant.id,
            &label,
            kind,
            scopes,
            req.limit_bytes,
            caller.key.scope(),
        )
        .await?;
    state.settle().await?;
    Ok((
        StatusCode::CREATED,
        CreatedToken {
            token: format!("{}.{}", key.id, secret.expose()),
            id: key.id,
            label: key.label,
            kind: kind_name(key.kind),
            scopes: key.scopes.names(),
            limit_bytes: key.limit_bytes,
            created_at: key.created_at.map(iso),
        },
    ))
}

/// A key of the caller's tenant that is not revoked, or 404; and the
/// caller's scope, which the key aggregate holds the key's scopes against.
async fn own_key(
    state: &ApiState,
    auth: Option<String>,
    id: &str,
    need: Scope,
) -> Result<(Key, Scope), ApiError> {
    let caller = state.caller(auth, need).await?;
    let key = state.core.queries().key(id);
    match key {
        Some(k) if caller.owns(&k.tenant) && k.status == KeyStatus::Active => {
            Ok((k, caller.key.scope()))
        }
        _ => Err(ApiError::not_found("token")),
    }
}

/// Revoke a key.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path, description = "tok_…")),
    responses((status = 200, body = Deleted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
) -> Result<(StatusCode, Deleted), ApiError> {
    let (key, by) = own_key(&state, auth, &id, Scope::Manage).await?;
    state
        .core
        .key_command(&key.id, KeyCommand::Revoke { by })
        .await?;
    state.settle().await?;
    ok(Deleted {
        id: key.id,
        revoked: Some(true),
        released: None,
        removed: None,
    })
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

/// What `PUT /tokens/{id}/limit` takes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetLimit {
    /// The byte limit; null removes it. Required.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, required = true)]
    pub limit_bytes: Option<Option<u64>>,
}

/// Set or remove a key's byte limit.
#[utoipa::path(put, path = "/api/v1/tokens/{id}/limit", tag = "tokens", params(("id" = String, Path, description = "tok_…")), request_body = SetLimit,
    responses((status = 200, body = TokenView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_limit(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<(StatusCode, TokenView), ApiError> {
    let (key, by) = own_key(&state, auth, &id, Scope::Manage).await?;
    let req: SetLimit = parse(body)?;
    let limit_bytes = req.limit_bytes.ok_or_else(|| {
        ApiError::invalid(
            "limitBytes is required (a number, or null to remove the limit)",
            serde_json::json!({ "limitBytes": "missing" }),
        )
    })?;
    let key = state
        .core
        .key_command(&key.id, KeyCommand::SetLimit { limit_bytes, by })
        .await?;
    state.settle().await?;
    ok(view(&state, &key))
}

/// Reset a key's counters to zero.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/reset", tag = "tokens", params(("id" = String, Path, description = "tok_…")),
    responses((status = 200, body = TokenView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reset(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
) -> Result<(StatusCode, TokenView), ApiError> {
    let (key, by) = own_key(&state, auth, &id, Scope::Manage).await?;
    let key = state
        .core
        .key_command(&key.id, KeyCommand::ResetCounters { by })
        .await?;
    state.settle().await?;
    ok(view(&state, &key))
}

/// An agent's configuration.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfig {
    /// The edge's agent address for the first transport.
    pub edge: String,
    /// That transport (`quic`, `ws`, `tcp`).
    pub transport: String,
    /// Every transport the edge serves, with its address.
    pub endpoints: Vec<Endpoint>,
    /// The SHA-256 fingerprint of the edge's certificate, to pin.
    pub fingerprint: String,
    /// Whether ws and tcp use TLS.
    pub tls: bool,
    /// The key.
    pub token: String,
    /// The same as a share link.
    pub link: String,
}

/// One transport the edge serves agents on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Endpoint {
    /// `quic`, `ws` or `tcp`.
    pub transport: String,
    /// HOST:PORT.
    pub address: String,
}

/// An agent's configuration (JSON), or a `beamd://` share link for `Accept: text/plain`; the key authenticates itself.
#[utoipa::path(get, path = "/api/v1/subscribe/{key}", tag = "tokens", params(("key" = String, Path, description = "the full key, tok_<id>.<secret>")),
    responses((status = 200, body = AgentConfig, content_type = "application/json"), (status = 200, body = String, content_type = "text/plain"), (status = 401, body = ErrorBody)))]
pub async fn subscribe(
    state: Arc<ApiState>,
    key: String,
) -> Result<(StatusCode, AgentConfig), ApiError> {
    let token = Token(key);
    let found = state.key_for(&token).await?;
    if found.kind != Some(KeyKind::Agent) {
        return Err(ApiError::unauthorized(
            "only agent keys have an agent configuration",
        ));
    }
    let first = state
        .agents
        .first()
        .cloned()
        .ok_or_else(|| ApiError::not_found("agent endpoint"))?;
    let link = ShareLink {
        token: token.0.clone(),
        edge: first.address.clone(),
        transport: Some(first.transport.clone()),
        fingerprint: Some(state.fingerprint.clone()),
        tls: state.agent_tls,
    };
    ok(AgentConfig {
        edge: first.address,
        transport: first.transport,
        endpoints: state.agents.clone(),
        fingerprint: state.fingerprint.clone(),
        tls: state.agent_tls,
        token: token.0,
        link: link.to_string(),
    })
}
