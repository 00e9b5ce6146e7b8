//! `POST /requests/{id}/replay`: a request captured in full sent again
//! through its tunnel, as captured or edited; the service's answer comes
//! back and the replay is captured as a new request whose `replayOf` is the
//! original's id.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;

use super::auth::Scope;
use super::error::{ApiError, ErrorBody};
use super::http::parse_optional;
use super::request_detail::{find, Found};
use super::usage::{request_view, RequestView};
use super::ApiState;
use crate::inspector::replay::{ReplayError, Resend};

/// How long the answer waits for the replay's capture to show in `/requests`.
const CAPTURE_WAIT: Duration = Duration::from_secs(5);

/// What to change before sending the request again; all optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReplayEdit {
    /// Another method.
    pub method: Option<String>,
    /// Another path and query (starting with `/`).
    pub path: Option<String>,
    /// Headers to set, replacing those of the same name; `null` removes one.
    /// Masked credentials are not resent unless given here.
    pub headers: Option<BTreeMap<String, Option<String>>>,
    /// Another body, as text.
    pub body: Option<String>,
    /// Another body, base64 (binary).
    pub body_base64: Option<String>,
}

/// The service's answer's body.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayBody {
    /// Its content type.
    pub content_type: Option<String>,
    /// `utf8` when `data` is the text itself, `base64` otherwise.
    pub encoding: String,
    /// Its first bytes (the edge's body limit).
    pub data: String,
    /// Its whole length.
    pub len: u64,
    /// Whether `data` holds only the first bytes.
    pub truncated: bool,
}

/// What a replay got back.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResult {
    /// The id (`req_…`) of the request replayed.
    pub replay_of: String,
    /// The service's status.
    pub status: u16,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: ReplayBody,
    /// The replay as captured (`replayOf` set); null when the edge captures
    /// no requests now or its capture was not listed in time.
    pub request: Option<RequestView>,
}

/// The request to send: the stored one with `edit` applied.
fn resend(name: &str, found: Found, edit: ReplayEdit) -> Result<Resend, ApiError> {
    let Some(detail) = found.stored else {
        let why = if found.event.refused.is_some() {
            "the edge refused it, so its headers and body were not captured"
        } else if found.event.has_detail() {
            "its headers and body were pruned from the body store"
        } else {
            "its headers and body were not captured (the tunnel's inspect mode was not full)"
        };
        return Err(ApiError::conflict(format!(
            "request {name} cannot be replayed: {why}"
        )));
    };
    let body = match (edit.body, edit.body_base64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "give body or bodyBase64, not both",
                serde_json::json!({ "body": "both given" }),
            ))
        }
        (Some(text), None) => Bytes::from(text),
        (None, Some(b64)) => Bytes::from(B64.decode(b64.trim()).map_err(|e| {
            ApiError::invalid(
                format!("bodyBase64 is not base64: {e}"),
                serde_json::json!({ "bodyBase64": e.to_string() }),
            )
        })?),
        (None, None) => {
            if let Some(seen) = found.event.request_body.as_ref().filter(|s| s.truncated) {
                return Err(ApiError::conflict(format!(
                    "request {name}'s body was kept only to {} of {} bytes: give body or bodyBase64 to replay it",
                    detail.request_body.len(),
                    seen.len
                )));
            }
            Bytes::from(detail.request_body)
        }
    };
    let mut headers = detail.request_headers;
    for (name, value) in edit.headers.unwrap_or_default() {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
        if let Some(v) = value {
            headers.push((name, v));
        }
    }
    Ok(Resend {
        method: edit.method.unwrap_or(found.event.method),
        path: edit.path.unwrap_or(found.event.path),
        headers,
        body,
        // Stored detail is kept under the id: a replayable request has one.
        replay_of: found.event.id,
    })
}

/// Sends a request captured in full again through its tunnel.
#[utoipa::path(post, path = "/api/v1/requests/{id}/replay", tag = "inspector",
    params(("id" = String, Path, description = "The request's `req_…` id, or its seq")),
    request_body(content = Option<ReplayEdit>, description = "Changes; an empty body replays as captured"),
    responses((status = 200, body = ReplayResult), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not replayable: detail not stored, body truncated, or the tunnel not served here"),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay(
    state: Arc<ApiState>,
    auth: Option<String>,
    id: String,
    body: Result<Bytes, ApiError>,
) -> Result<(StatusCode, ReplayResult), ApiError> {
    let caller = state.caller(auth, Scope::Manage).await?;
    let edit: ReplayEdit = parse_optional(body)?;
    let found = find(&state, &caller.tenant.id, &id).await?;
    let tunnel = found.captured.tunnel.clone();
    let resend = resend(&id, found, edit)?;
    let replay_of = resend.replay_of.clone();
    let replayer =
        (state.replayer.as_ref()).ok_or_else(|| ApiError::unavailable("no edge here"))?;
    let answer = replayer
        .replay(&tunnel, resend)
        .await
        .map_err(|e| match e {
            ReplayError::NotHere(m) => ApiError::conflict(m),
            ReplayError::Invalid(m) => {
                ApiError::invalid(m, serde_json::json!({ "request": "edit" }))
            }
            ReplayError::Busy(m) => ApiError::unavailable(m),
            ReplayError::Failed(m) => ApiError::bad_gateway(m),
        })?;
    let request = match &answer.id {
        Some(id) => listed(&state, &caller.tenant.id, id).await,
        None => None,
    };
    let content_type = (answer.headers.iter())
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone());
    let (encoding, data) = match String::from_utf8(answer.body) {
        Ok(text) => ("utf8", text),
        Err(e) => ("base64", B64.encode(e.into_bytes())),
    };
    let result = ReplayResult {
        replay_of,
        status: answer.status,
        headers: answer.headers,
        body: ReplayBody {
            content_type,
            encoding: encoding.into(),
            data,
            len: answer.len,
            truncated: answer.truncated,
        },
        request,
    };
    Ok((StatusCode::OK, result))
}

/// The replay's capture once the projections list it.
async fn listed(state: &ApiState, tenant: &str, id: &str) -> Option<RequestView> {
    let deadline = tokio::time::Instant::now() + CAPTURE_WAIT;
    loop {
        if state.settle().await.is_err() {
            return None;
        }
        let found = state.core.queries().recent_request(tenant, id);
        if let Some(r) = found {
            return Some(request_view(r));
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
