//! `/events/stream`: the caller's tenant's committed events, live, as
//! server-sent events: what the dashboard listens to instead of polling.
//! Each event names its seq (the SSE id), time, stream and type; the client
//! fetches what changed. Events are filtered on the server: another tenant's
//! never leave it. A stream ends after `maxSeconds`; a client reconnects with
//! `after` set to the last id it saw and misses nothing.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use beamd_events::Envelope;
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};
use warp::Reply;

use super::auth::Scope;
use super::error::{ApiError, ErrorBody};
use super::http::{query, Resp};
use super::ApiState;
use crate::domain::KeyStatus;

/// How far back `after` may reach: older events are skipped, not replayed.
pub const MAX_BACKLOG: u64 = 1_000;
const READ_CHUNK: usize = 256;

/// `?after=&maxSeconds=`.
#[derive(Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Send events after this seq (default: only those committed from now
    /// on); at most the last 1,000 are sent again.
    pub after: Option<u64>,
    /// Seconds until the stream ends, 1–3600 (default 300).
    #[param(minimum = 1, maximum = 3600)]
    pub max_seconds: Option<u64>,
}

/// One committed event, as the `data` of a server-sent event whose `id` is
/// its seq and whose `event` is its type.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedEvent {
    /// Its position in the log.
    pub seq: u64,
    /// When it was committed (ms since the epoch).
    pub at: u64,
    /// The entity it belongs to (`tun_…`, `key_…`, `dom_…`, `ten_…`).
    pub stream: String,
    /// Its type (`TunnelOpened`, `RequestCaptured`, …).
    #[serde(rename = "type")]
    pub kind: String,
}

struct Cursor {
    state: Arc<ApiState>,
    tenant: String,
    /// What the stream was opened with: the stream ends once the log says
    /// it may no longer read.
    grant: Grant,
    next: u64,
    pending: VecDeque<Envelope>,
    deadline: Instant,
}

/// What a stream was opened with.
enum Grant {
    /// An API key, by id.
    Key(String),
    /// A sign-in token (the `Authorization` header that carried it).
    Session(String),
}

impl Cursor {
    /// Whether what the stream was opened with still holds: the key is
    /// active, or the sign-in token was neither signed out nor outlived by a
    /// password change.
    fn granted(&self) -> bool {
        match &self.grant {
            Grant::Key(id) => {
                (self.state.core.queries().key(id)).is_some_and(|k| k.status == KeyStatus::Active)
            }
            Grant::Session(header) => self.state.signed_in(Some(header)).is_ok(),
        }
    }

    /// The next event of the tenant, or `None` at the deadline or once the
    /// stream's grant ends (its revocation or sign-out is an event, which
    /// wakes it).
    async fn next_event(&mut self) -> Option<FeedEvent> {
        loop {
            if !self.granted() {
                return None;
            }
            while let Some(env) = self.pending.pop_front() {
                let owner = self.state.core.queries().owner_of(&env);
                if owner.as_deref() == Some(self.tenant.as_str()) {
                    return Some(FeedEvent {
                        seq: env.seq,
                        at: env.at,
                        stream: env.stream.to_string(),
                        kind: env.event.kind().to_string(),
                    });
                }
            }
            let projections = self.state.core.projections();
            tokio::time::timeout_at(self.deadline, projections.wait_for(self.next))
                .await
                .ok()?
                .ok()?;
            let events = self
                .state
                .core
                .log()
                .read_from(self.next, READ_CHUNK)
                .await
                .ok()?;
            let last = events.last()?.seq;
            self.next = last + 1;
            self.pending.extend(events);
        }
    }
}

fn sse_event(e: &FeedEvent) -> Result<warp::sse::Event, Infallible> {
    let event = warp::sse::Event::default()
        .id(e.seq.to_string())
        .event(e.kind.clone());
    // A plain struct of strings and numbers always serializes.
    Ok(event
        .json_data(e)
        .unwrap_or_else(|_| warp::sse::Event::default().comment("unencodable event")))
}

/// The cursor runs in its own task (its log reads are not `Sync`, which
/// warp's stream needs); it stops at the deadline or when the client goes.
fn events(mut cursor: Cursor) -> impl Stream<Item = Result<warp::sse::Event, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = cursor.next_event() => next,
                _ = tx.closed() => None,
            };
            let Some(e) = next else { break };
            if tx.send(sse_event(&e)).await.is_err() {
                break;
            }
        }
    });
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
}

#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", params(FeedQuery),
    responses(
        (status = 200, content_type = "text/event-stream", body = FeedEvent,
         description = "Server-sent events: `id` the seq, `event` the type, `data` a FeedEvent; a comment every 15 s keeps the connection open"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
/// The caller's tenant's committed events as they commit.
pub async fn stream(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<Resp, ApiError> {
    let session = auth
        .as_deref()
        .filter(|h| state.signed_in(Some(h)).is_ok())
        .map(str::to_string);
    let caller = state.caller(auth, Scope::Read).await?;
    let q = query::<FeedQuery>(&raw)?;
    let seconds = match q.max_seconds.unwrap_or(300) {
        s @ 1..=3600 => s,
        s => {
            return Err(ApiError::invalid(
                format!("maxSeconds must be 1 to 3600, not {s}"),
                serde_json::json!({ "maxSeconds": s }),
            ))
        }
    };
    let head = state.core.log().head().seq;
    let next = match q.after {
        Some(after) => after
            .max(head.saturating_sub(MAX_BACKLOG))
            .saturating_add(1),
        None => head + 1,
    };
    let grant = match session {
        Some(header) => Grant::Session(header),
        None => Grant::Key(caller.key.id.clone()),
    };
    let cursor = Cursor {
        grant,
        tenant: caller.tenant.id.clone(),
        state,
        next,
        pending: VecDeque::new(),
        deadline: Instant::now() + Duration::from_secs(seconds),
    };
    let keep_alive = warp::sse::keep_alive().interval(Duration::from_secs(15));
    Ok(warp::sse::reply(keep_alive.stream(events(cursor))).into_response())
}
