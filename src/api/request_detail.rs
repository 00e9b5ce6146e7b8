//! `GET /requests/{id}` (a `req_…` id, or a seq): one captured request, its
//! metadata from the log and, with full capture, its headers and body
//! prefixes from the body store (or why they are not there). Another
//! tenant's request is a 404.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use beamd_events::vocabulary::{BodySeen, RequestCaptured};
use beamd_events::Event;
use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::auth::Scope;
use super::error::{ApiError, ErrorBody};
use super::usage::{request_view, RequestView};
use super::ApiState;
use crate::inspector::Detail;
use crate::projections::CapturedRequest;

/// A captured body.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BodyView {
    /// The body's content type, from its headers.
    pub content_type: Option<String>,
    /// `utf8` when `data` is the text itself, `base64` otherwise.
    pub encoding: String,
    /// The kept bytes.
    pub data: String,
    /// SHA-256 of the whole body, hex (as in the log).
    pub sha256: String,
    /// The whole body's length.
    pub len: u64,
    /// Whether only the first bytes were kept.
    pub truncated: bool,
}

/// One captured request in detail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestDetail {
    /// Its metadata, as `/requests` lists it.
    pub request: RequestView,
    /// `stored` (headers and bodies below), `pruned` (captured, since
    /// removed by the store's cap or time to live) or `notCaptured`.
    pub detail: String,
    /// Request headers, credentials masked.
    pub request_headers: Option<Vec<(String, String)>>,
    /// Response headers, credentials masked.
    pub response_headers: Option<Vec<(String, String)>>,
    /// The request body.
    pub request_body: Option<BodyView>,
    /// The response body.
    pub response_body: Option<BodyView>,
}

pub(super) fn body(headers: &[(String, String)], kept: Vec<u8>, seen: &BodySeen) -> BodyView {
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone());
    let (encoding, data) = match String::from_utf8(kept) {
        Ok(text) => ("utf8", text),
        Err(e) => ("base64", B64.encode(e.into_bytes())),
    };
    BodyView {
        content_type,
        encoding: encoding.into(),
        data,
        sha256: seen.sha256.clone(),
        len: seen.len,
        truncated: seen.truncated,
    }
}

/// A captured request as found for its tenant.
pub(super) struct Found {
    /// Its event.
    pub event: RequestCaptured,
    /// Its metadata as listed.
    pub captured: CapturedRequest,
    /// Its headers and bodies, while stored.
    pub stored: Option<Detail>,
}

/// The seq of the caller's request `id` (`req_…`): a recent one from the
/// inspector, any other from the history.
fn seq_of(state: &ApiState, tenant: &str, id: &str) -> Result<Option<u64>, ApiError> {
    let recent = (state.core.queries())
        .recent_request(tenant, id)
        .map(|r| r.seq);
    if recent.is_some() {
        return Ok(recent);
    }
    let Some(index) = state.core.inspector_index() else {
        return Ok(None);
    };
    let found = index
        .by_id(tenant, id)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(found.map(|r| r.seq))
}

/// The caller's request `name`: its `req_…` id, or its seq; another
/// tenant's is not found.
pub(super) async fn find(state: &ApiState, tenant: &str, name: &str) -> Result<Found, ApiError> {
    let missing = || ApiError::not_found(&format!("request {name}"));
    let n: u64 = match name.strip_prefix("req_") {
        Some(_) => seq_of(state, tenant, name)?.ok_or_else(missing)?,
        // A name that is neither an id nor a seq names no request.
        None => name.parse().map_err(|_| missing())?,
    };
    let env = state
        .core
        .log()
        .read_from(n, 1)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .into_iter()
        .find(|e| e.seq == n)
        .ok_or_else(missing)?;
    // A window's event holds several requests: an id picks its own, a seq
    // names a request only when its event holds that one alone.
    let by_id = name.starts_with("req_");
    let all = state.core.queries().captured(&env);
    let position = match by_id {
        true => all.iter().position(|c| c.id == name),
        false => (all.len() == 1).then_some(0),
    };
    let captured = position
        .and_then(|i| all.into_iter().nth(i))
        .filter(|c| c.tenant == tenant)
        .ok_or_else(missing)?;
    let event = match env.event {
        Event::RequestCaptured(event) => event,
        Event::RequestsCaptured(window) => position
            .and_then(|i| window.requests.into_iter().nth(i))
            .ok_or_else(missing)?,
        _ => return Err(missing()),
    };
    let stored = match &state.bodies {
        Some(store) if event.has_detail() => store
            .get(&event.id)
            .map_err(|e| ApiError::internal(format!("{e:#}")))?,
        _ => None,
    };
    Ok(Found {
        event,
        captured,
        stored,
    })
}

/// One captured request with its headers and bodies.
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "inspector",
    params(("id" = String, Path, description = "The request's `req_…` id, or its seq as `/requests` lists it (a seq names a request only when its event captured that one alone)")),
    responses((status = 200, body = RequestDetail), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn detail(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
) -> Result<(StatusCode, RequestDetail), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let Found {
        event: r,
        captured,
        stored,
    } = find(&state, &caller.tenant.id, &id).await?;
    let (kind, detail) = match (stored, r.has_detail()) {
        (Some(d), _) => ("stored", Some(d)),
        (None, true) => ("pruned", None),
        (None, false) => ("notCaptured", None),
    };
    let mut out = RequestDetail {
        request: request_view(captured),
        detail: kind.into(),
        request_headers: None,
        response_headers: None,
        request_body: None,
        response_body: None,
    };
    if let Some(d) = detail {
        out.request_body = r
            .request_body
            .as_ref()
            .map(|s| body(&d.request_headers, d.request_body, s));
        out.response_body = r
            .response_body
            .as_ref()
            .map(|s| body(&d.response_headers, d.response_body, s));
        out.request_headers = Some(d.request_headers);
        out.response_headers = Some(d.response_headers);
    }
    Ok((StatusCode::OK, out))
}
