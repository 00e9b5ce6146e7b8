//! `/usage`, `/usage/history`, `/requests` and `/logs`: what a tenant used,
//! day by day, and the requests its HTTP tunnels served.

use std::sync::Arc;

use beamd_events::{Clock, SystemClock};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::http::StatusCode;

use super::auth::Scope;
use super::error::{ApiError, ErrorBody};
use super::http::{iso, iso_opt, ok, query};
use super::ApiState;
use crate::domain::calendar::DAY_MS;
use crate::projections::{CapturedRequest, LogQuery, PAGE_SIZE};

/// `?days=`.
#[derive(Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// Days to cover, 1–365 (default 30), ending today (UTC).
    #[param(minimum = 1, maximum = 365)]
    pub days: Option<u64>,
}

impl DaysQuery {
    fn days(&self) -> Result<u64, ApiError> {
        match self.days.unwrap_or(30) {
            d @ 1..=365 => Ok(d),
            d => Err(ApiError::invalid(
                format!("days must be 1 to 365, not {d}"),
                serde_json::json!({ "days": d }),
            )),
        }
    }
}

/// Plan limits (null = none) or what is used of them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// Custom domains.
    pub domains: Option<u64>,
    /// Tunnels live at once.
    pub tunnels: Option<u64>,
    /// Bytes per calendar month (UTC).
    pub bandwidth_bytes: Option<u64>,
    /// Custom domains waiting for their TXT record.
    pub pending_domains: Option<u64>,
}

/// One day of usage.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageDay {
    /// The day's start (UTC midnight).
    pub day: String,
    /// Bytes both ways.
    pub bytes: u64,
    /// Most tunnels online at once.
    pub peak_tunnels: u64,
}

/// Usage against the plan, with a per-day series.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Plan name.
    pub plan: String,
    /// The plan's limits.
    pub limits: Quota,
    /// What is used now (bandwidth: this calendar month).
    pub used: Quota,
    /// Bytes in the covered days.
    pub total_bytes: u64,
    /// Most tunnels online at once in the covered days.
    pub peak_tunnels: u64,
    /// Events recorded for the tenant in the covered days.
    pub event_count: u64,
    /// When the tenant's traffic was last recorded.
    pub last_seen: Option<String>,
    /// Every covered day, oldest first, days without traffic included.
    pub series: Vec<UsageDay>,
}

/// Usage against the plan and a per-day series; O(days) whatever the history.
#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", params(DaysQuery),
    responses((status = 200, body = Usage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn usage(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<(StatusCode, Usage), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let days = query::<DaysQuery>(&raw)?.days()?;
    let now = SystemClock.now_ms();
    let t = &caller.tenant;
    let queries = state.core.queries();
    let series = queries.usage_series(&t.id, now, days);
    let totals = queries.tenant_totals(&t.id);
    let live = queries.tunnel_count(&t.id);
    let all_domains = queries.domains_of(&t.id);
    let domains = all_domains.len() as u64;
    let pending = (all_domains.iter())
        .filter(|d| d.status == crate::domain::DomainStatus::Pending)
        .count() as u64;
    ok(Usage {
        plan: t.plan.name.clone(),
        limits: Quota {
            domains: t.plan.max_domains.map(u64::from),
            tunnels: t.plan.max_tunnels.map(u64::from),
            bandwidth_bytes: t.plan.bandwidth_bytes_per_month,
            pending_domains: Some(u64::from(crate::domain::tenant::max_pending_domains(
                &t.plan,
            ))),
        },
        used: Quota {
            domains: Some(domains),
            tunnels: Some(live),
            bandwidth_bytes: Some(queries.month_bytes(&t.id, now)),
            pending_domains: Some(pending),
        },
        total_bytes: series.iter().map(|(_, d)| d.bytes()).sum(),
        peak_tunnels: series
            .iter()
            .map(|(_, d)| d.peak_tunnels)
            .max()
            .unwrap_or(0),
        event_count: series.iter().map(|(_, d)| d.events).sum(),
        last_seen: iso_opt(totals.last_seen),
        series: series
            .iter()
            .map(|(day, d)| UsageDay {
                day: iso(day * DAY_MS),
                bytes: d.bytes(),
                peak_tunnels: d.peak_tunnels,
            })
            .collect(),
    })
}

/// One day's rollup.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryDay {
    /// The day's start (UTC midnight).
    pub day: String,
    /// Bytes from the public toward agents.
    pub bytes_in: u64,
    /// Bytes back to the public.
    pub bytes_out: u64,
    /// Public connections.
    pub connections: u64,
    /// HTTP requests.
    pub requests: u64,
    /// Most tunnels online at once.
    pub peak_tunnels: u64,
    /// Events recorded.
    pub events: u64,
}

/// Daily rollups.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// Every covered day, oldest first.
    pub history: Vec<HistoryDay>,
}

/// Daily usage rollups.
#[utoipa::path(get, path = "/api/v1/usage/history", tag = "usage", params(DaysQuery),
    responses((status = 200, body = History), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn history(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<(StatusCode, History), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let days = query::<DaysQuery>(&raw)?.days()?;
    let series = state
        .core
        .queries()
        .usage_series(&caller.tenant.id, SystemClock.now_ms(), days);
    ok(History {
        history: series
            .into_iter()
            .map(|(day, d)| HistoryDay {
                day: iso(day * DAY_MS),
                bytes_in: d.bytes_in,
                bytes_out: d.bytes_out,
                connections: d.connections,
                requests: d.requests,
                peak_tunnels: d.peak_tunnels,
                events: d.events,
            })
            .collect(),
    })
}

/// A captured request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestView {
    /// The log seq of the event that captured it (the requests of one
    /// window share it; `id` names one).
    pub seq: u64,
    /// When it arrived.
    pub at: String,
    /// The tunnel.
    pub tunnel: String,
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// Time to the end of the response.
    pub duration_ms: u64,
    /// Request plus response body bytes.
    pub bytes: u64,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Client address.
    pub ip: String,
    /// Client user agent.
    pub user_agent: String,
    /// HTTP version.
    pub proto: String,
    /// Host.
    pub host: String,
    /// The gateway route that took it.
    pub route_id: Option<String>,
    /// The gateway consumer that sent it.
    pub consumer_id: Option<String>,
    /// Its id (`req_…`), which names it in `/requests/{id}` and in
    /// `replayOf`; null only for requests captured without full capture
    /// before every request had one (their seq names them).
    pub id: Option<String>,
    /// When it was a replay: the id of the request it replayed (for
    /// replays recorded before requests were named by id, its seq, in
    /// decimal; `/requests/{id}` takes either).
    pub replay_of: Option<String>,
    /// When the edge answered it itself and never passed it on, why:
    /// `no_route`, `missing_key`, `invalid_key`, `service_gone`,
    /// `service_offline`, `rate_limited:<tier or route>:<n>/min` (the
    /// gateway); `credentials`, `network`, `sign_in` (no valid session),
    /// `sign_in_not_allowed` (signed in as someone not let in) (the
    /// tunnel's access rules);
    /// `tenant_connections`, `tunnel_unreachable` (no stream to the agent).
    /// Such a request has no body.
    pub refused: Option<String>,
    /// For a pool tunnel: the member that served it (an id of the
    /// tunnel's `members`).
    pub member: Option<String>,
    /// For a tunnel behind sign-in (OpenID Connect): who had signed in,
    /// by the email the provider gave (else its subject for them).
    pub user: Option<String>,
}

pub(super) fn request_view(r: CapturedRequest) -> RequestView {
    RequestView {
        seq: r.seq,
        at: iso(r.at),
        tunnel: r.tunnel,
        method: r.method,
        path: r.path,
        status: r.status,
        duration_ms: r.duration_ms,
        bytes: r.bytes_in + r.bytes_out,
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        ip: r.ip,
        user_agent: r.user_agent,
        proto: r.proto,
        host: r.host,
        route_id: r.route,
        consumer_id: r.consumer,
        id: (!r.id.is_empty()).then_some(r.id),
        replay_of: r.replay_of_id.or(r.replay_of.map(|seq| seq.to_string())),
        refused: r.refused,
        member: r.member,
        user: r.user,
    }
}

/// `?limit=` of `/requests`.
#[derive(Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecentQuery {
    /// How many, 1–1000 (default 50), newest first.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Recent requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestList {
    /// Newest first.
    pub requests: Vec<RequestView>,
}

/// The most recent requests captured by the inspector.
#[utoipa::path(get, path = "/api/v1/requests", tag = "inspector", params(RecentQuery),
    responses((status = 200, body = RequestList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn requests(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<(StatusCode, RequestList), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let q: RecentQuery = query(&raw)?;
    let limit = match q.limit.unwrap_or(50) {
        n @ 1..=1000 => n,
        n => {
            return Err(ApiError::invalid(
                format!("limit must be 1 to 1000, not {n}"),
                serde_json::json!({ "limit": n }),
            ))
        }
    };
    let recent = state
        .core
        .queries()
        .recent_requests(&caller.tenant.id, limit);
    ok(RequestList {
        requests: recent.into_iter().map(request_view).collect(),
    })
}

/// Filters of `/logs`.
#[derive(Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Earliest arrival, ms since the epoch.
    pub from: Option<u64>,
    /// Latest arrival, ms since the epoch.
    pub to: Option<u64>,
    /// Path prefix.
    pub path: Option<String>,
    /// Exact status code.
    #[param(minimum = 0, maximum = 65535)]
    pub status_code: Option<u16>,
    /// Requests of this gateway consumer (`con_…`) only.
    pub consumer_id: Option<String>,
    /// 1-based page of 50.
    #[param(minimum = 1)]
    pub page: Option<usize>,
}

/// One page of the request history.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogPageView {
    /// Matching requests in all pages.
    pub count: usize,
    /// The next page number, if any.
    pub next: Option<usize>,
    /// The previous page number, if any.
    pub previous: Option<usize>,
    /// This page, newest first.
    pub results: Vec<RequestView>,
}

/// The whole request history, filtered, 50 a page.
#[utoipa::path(get, path = "/api/v1/logs", tag = "inspector", params(LogsQuery),
    responses((status = 200, body = LogPageView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn logs(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<(StatusCode, LogPageView), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let q: LogsQuery = query(&raw)?;
    let page = q.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::invalid(
            "page starts at 1",
            serde_json::json!({ "page": 0 }),
        ));
    }
    let index = state
        .core
        .inspector_index()
        .ok_or_else(|| ApiError::not_found("request history"))?;
    let found = index
        .query(
            &caller.tenant.id,
            &LogQuery {
                from: q.from,
                to: q.to,
                path: q.path,
                status_code: q.status_code,
                consumer_id: q.consumer_id,
                page,
            },
        )
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let pages = found.count.div_ceil(PAGE_SIZE);
    ok(LogPageView {
        count: found.count,
        next: (page < pages).then(|| page + 1),
        previous: (page > 1).then(|| (page - 1).min(pages.max(1))),
        results: found.results.into_iter().map(request_view).collect(),
    })
}
