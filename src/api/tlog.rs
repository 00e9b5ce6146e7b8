//! `/log/…`: the transparency log. The signed checkpoint and the verifier key
//! as text, inclusion proofs (a tenant's key gets them for its own events
//! only; another tenant's event is a 404), consistency proofs, and the tree's
//! tiles in the C2SP tlog-tiles layout. Every hash is standard base64.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use beamd_events::envelope::decode_record;
use beamd_events::merkle::{prove_consistency, prove_inclusion, TreeHash};
use beamd_events::tiles::TileId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue, StatusCode};
use warp::Filter;

use super::auth::Scope;
use super::error::{ApiError, ErrorBody};
use super::http::{error, query, raw_query, respond, Resp};
use super::ApiState;
use crate::tlog::Transparency;

/// `?seq=&size=`.
#[derive(Debug, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The event's seq (1 = the first event; its leaf index is seq - 1).
    #[param(minimum = 1)]
    pub seq: u64,
    /// The tree size to prove against (default: the latest checkpoint's).
    pub size: Option<u64>,
}

/// An event, the path from it to a tree head, and the signed checkpoint of
/// that size when there is one: everything `beamd verify-proof` needs offline.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProof {
    /// The event's seq.
    pub seq: u64,
    /// Its leaf index (seq - 1).
    pub leaf_index: u64,
    /// The tree size proved against.
    pub tree_size: u64,
    /// The event's stored bytes (the leaf is SHA-256(0x00 || record)).
    pub record: String,
    /// The RFC 6962 audit path, leaf to root.
    pub proof: Vec<String>,
    /// The signed checkpoint of `treeSize`, if one was signed at that size.
    pub checkpoint: Option<String>,
}

/// `?from=&to=`.
#[derive(Debug, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree size (at least 1).
    #[param(minimum = 1)]
    pub from: u64,
    /// The newer tree size (default: the latest checkpoint's).
    pub to: Option<u64>,
}

/// The proof that the tree of `from` events is a prefix of the tree of `to`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsistencyProof {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
    /// The RFC 6962 consistency proof.
    pub proof: Vec<String>,
}

fn b64(hashes: &[TreeHash]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h)).collect()
}

fn unavailable(why: &str) -> ApiError {
    ApiError::unavailable(format!("the transparency log is not available: {why}"))
}

fn tlog(state: &ApiState) -> Result<&Arc<Transparency>, ApiError> {
    state
        .tlog
        .as_ref()
        .ok_or_else(|| unavailable("this server keeps none"))
}

/// The size proofs default to: the latest checkpoint's.
fn latest_size(t: &Transparency) -> Result<u64, ApiError> {
    t.latest()
        .map(|c| c.checkpoint.size)
        .ok_or_else(|| unavailable("no checkpoint is signed yet"))
}

/// A size a proof may use: up to what the stored tree holds.
fn within_tree(t: &Transparency, size: u64) -> Result<u64, ApiError> {
    let tree = t.tiles().size().map_err(internal)?;
    if size > tree {
        return Err(no_such(format!("the tree holds {tree} events, not {size}")));
    }
    Ok(size)
}

/// 404 for a proof or tile the tree does not have: a size past it, a
/// consistency proof backwards, a tile path that names no tile.
fn no_such(message: String) -> ApiError {
    let mut e = ApiError::not_found("proof");
    e.body.message = message;
    e
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("cannot read the tree: {e}"))
}

fn text(body: String, cache: &'static str) -> Resp {
    let mut r = Resp::new(body.into());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// The latest signed checkpoint (C2SP tlog-checkpoint in a signed note).
#[utoipa::path(get, path = "/api/v1/log/checkpoint", tag = "log",
    responses((status = 200, content_type = "text/plain", body = String, description = "The signed note: origin, tree size, base64 root, a blank line, the log's signature, then each witness's cosignature (C2SP tlog-cosignature/v1) collected so far"),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn checkpoint(state: Arc<ApiState>, auth: Option<String>) -> Result<Resp, ApiError> {
    state.caller(auth, Scope::Read).await?;
    let t = tlog(&state)?;
    let latest = t
        .latest()
        .ok_or_else(|| unavailable("no checkpoint is signed yet"))?;
    // With every witness's cosignature collected for it (`--witness`).
    let note = t
        .cosigned_at(latest.checkpoint.size)
        .map_err(internal)?
        .unwrap_or(latest.note);
    Ok(text(note, "no-cache"))
}

/// The verifier key checkpoints are signed with (`<name>+<id>+<base64 key>`).
#[utoipa::path(get, path = "/api/v1/log/key", tag = "log",
    responses((status = 200, content_type = "text/plain", body = String, description = "`<name>+<hex key id>+<base64(0x01 || Ed25519 public key)>`"),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn key(state: Arc<ApiState>, auth: Option<String>) -> Result<Resp, ApiError> {
    state.caller(auth, Scope::Read).await?;
    let t = tlog(&state)?;
    Ok(text(format!("{}\n", t.verifier().encode()), "max-age=3600"))
}

/// The inclusion proof of one event; a tenant's key gets its own events only.
#[utoipa::path(get, path = "/api/v1/log/proof/inclusion", tag = "log", params(InclusionQuery),
    responses((status = 200, body = InclusionProof), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn inclusion(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<(StatusCode, InclusionProof), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let q: InclusionQuery = query(&raw)?;
    let t = tlog(&state)?;
    let size = within_tree(t, q.size.map_or_else(|| latest_size(t), Ok)?)?;
    let missing = || ApiError::not_found(&format!("event {} in the tree of {size}", q.seq));
    if q.seq == 0 || q.seq > size {
        return Err(missing());
    }
    let records = state
        .core
        .log()
        .read_records(q.seq, 1)
        .await
        .map_err(internal)?;
    let Some((_, record)) = records.into_iter().find(|(s, _)| *s == q.seq) else {
        return Err(missing());
    };
    if caller.key.scope() < Scope::Admin {
        let env = decode_record(q.seq, &record).map_err(internal)?;
        let owner = state.core.queries().owner_of(&env);
        if owner.as_deref() != Some(caller.tenant.id.as_str()) {
            return Err(missing());
        }
    }
    let proof = prove_inclusion(t.tiles(), size, q.seq - 1)
        .map_err(internal)?
        .ok_or_else(missing)?;
    let checkpoint = t.cosigned_at(size).map_err(internal)?;
    Ok((
        StatusCode::OK,
        InclusionProof {
            seq: q.seq,
            leaf_index: q.seq - 1,
            tree_size: size,
            record: B64.encode(&record),
            proof: b64(&proof),
            checkpoint,
        },
    ))
}

/// The consistency proof between two tree sizes.
#[utoipa::path(get, path = "/api/v1/log/proof/consistency", tag = "log", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProof), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn consistency(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<(StatusCode, ConsistencyProof), ApiError> {
    state.caller(auth, Scope::Read).await?;
    let q: ConsistencyQuery = query(&raw)?;
    let t = tlog(&state)?;
    let to = within_tree(t, q.to.map_or_else(|| latest_size(t), Ok)?)?;
    if q.from == 0 || q.from > to {
        return Err(no_such(format!(
            "no consistency proof from {} to {to}: from must be 1 to {to}",
            q.from
        )));
    }
    let proof = prove_consistency(t.tiles(), q.from, to)
        .map_err(internal)?
        .unwrap_or_default();
    Ok((
        StatusCode::OK,
        ConsistencyProof {
            from: q.from,
            to,
            proof: b64(&proof),
        },
    ))
}

/// A tile of the tree: `tile/<L>/<N>[.p/<W>]` (C2SP tlog-tiles). Entry
/// bundles are not served: events are read through the API, per tenant.
#[utoipa::path(get, path = "/api/v1/log/tile/{path}", tag = "log",
    params(("path" = String, Path, description = "`<L>/<N>[.p/<W>]`, N in 3-digit groups, all but the last prefixed x")),
    responses((status = 200, content_type = "application/octet-stream", body = String, description = "W (256 for a full tile) SHA-256 hashes, 32 bytes each, binary"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn tile(
    state: Arc<ApiState>,
    auth: Option<String>,
    path: String,
) -> Result<Resp, ApiError> {
    state.caller(auth, Scope::Read).await?;
    let t = tlog(&state)?;
    if path.starts_with("entries/") {
        return Err(ApiError::not_found(
            "entry bundles (events are read through /api/v1/events/stream and the inspector)",
        ));
    }
    let id = TileId::parse(&path).map_err(|e| no_such(format!("no tile {path:?}: {e}")))?;
    let width = usize::from(id.width) * 32;
    let bytes = t
        .tiles()
        .tile(id.level, id.index)
        .map_err(internal)?
        .filter(|b| b.len() >= width)
        .ok_or_else(|| ApiError::not_found(&format!("tile {id}")))?;
    let mut r = Resp::new(bytes[..width].to_vec().into());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // A tile's hashes never change; a partial tile's path names its width.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(r)
}

/// The `/api/v1/log/…` routes.
pub fn routes(s: BoxedFilter<(Arc<ApiState>,)>) -> BoxedFilter<(Resp,)> {
    let auth = || warp::header::optional::<String>("authorization");
    let log = || {
        warp::path("api")
            .and(warp::path("v1"))
            .and(warp::path("log"))
    };
    let checkpoint_route = log()
        .and(warp::path!("checkpoint"))
        .and(warp::get())
        .and(s.clone())
        .and(auth())
        .then(|st, a| async move { checkpoint(st, a).await.unwrap_or_else(error) });
    let key_route = log()
        .and(warp::path!("key"))
        .and(warp::get())
        .and(s.clone())
        .and(auth())
        .then(|st, a| async move { key(st, a).await.unwrap_or_else(error) });
    let inclusion_route = log()
        .and(warp::path!("proof" / "inclusion"))
        .and(warp::get())
        .and(s.clone())
        .and(auth())
        .and(raw_query())
        .then(|st, a, q| async move { respond(inclusion(st, a, q).await) });
    let consistency_route = log()
        .and(warp::path!("proof" / "consistency"))
        .and(warp::get())
        .and(s.clone())
        .and(auth())
        .and(raw_query())
        .then(|st, a, q| async move { respond(consistency(st, a, q).await) });
    let tile_route = log()
        .and(warp::path("tile"))
        .and(warp::path::tail())
        .and(warp::get())
        .and(s)
        .and(auth())
        .then(|tail: warp::path::Tail, st, a| async move {
            tile(st, a, tail.as_str().to_string())
                .await
                .unwrap_or_else(error)
        });
    checkpoint_route
        .or(key_route)
        .unify()
        .or(inclusion_route)
        .unify()
        .or(consistency_route)
        .unify()
        .or(tile_route)
        .unify()
        .boxed()
}
