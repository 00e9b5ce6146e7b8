//! `/api/v1/metrics?period=1h|24h|7d`: the tenant's requests per time
//! bucket — count, errors (5xx), p50/p95/p99 latency and bytes — computed
//! from the request history. (Prometheus text is `/metrics`, outside `/api/v1`.)

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::http::StatusCode;

use super::super::auth::Scope;
use super::super::error::{ApiError, ErrorBody};
use super::super::http::{iso, ok, query};
use super::super::ApiState;

/// `?period=` of `/metrics`.
#[derive(Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// `1h` (12 buckets of 5 minutes, the default), `24h` (24 of an hour) or `7d` (28 of 6 hours).
    #[param(schema_with = crate::api::schema::period)]
    pub period: Option<String>,
}

/// One time bucket.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    /// Where the bucket starts (inclusive).
    pub bucket_start: String,
    /// Where it ends (exclusive).
    pub bucket_end: String,
    /// Requests that arrived in it.
    pub request_count: u64,
    /// Of those, answered 5xx.
    pub error_count: u64,
    /// Median time to the end of the response, ms (null: no requests).
    pub p50_latency_ms: Option<u64>,
    /// 95th percentile, ms.
    pub p95_latency_ms: Option<u64>,
    /// 99th percentile, ms.
    pub p99_latency_ms: Option<u64>,
    /// Request bytes.
    pub bytes_in: u64,
    /// Response bytes.
    pub bytes_out: u64,
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: u64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as u64).div_ceil(100).max(1) as usize;
    sorted.get(rank - 1).copied()
}

/// The tenant's request metrics over a period, oldest bucket first.
#[utoipa::path(get, path = "/api/v1/metrics", tag = "gateway", params(MetricsQuery),
    responses((status = 200, body = [MetricsSnapshot]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn metrics(
    state: Arc<ApiState>,
    auth: Option<String>,
    raw: String,
) -> Result<(StatusCode, Vec<MetricsSnapshot>), ApiError> {
    let caller = state.caller(auth, Scope::Read).await?;
    let q: MetricsQuery = query(&raw)?;
    const MIN: u64 = 60_000;
    let (bucket, buckets) = match q.period.as_deref().unwrap_or("1h") {
        "1h" => (5 * MIN, 12),
        "24h" => (60 * MIN, 24),
        "7d" => (360 * MIN, 28),
        other => {
            return Err(ApiError::invalid(
                format!("period must be 1h, 24h or 7d, not {other:?}"),
                serde_json::json!({ "period": other }),
            ))
        }
    };
    let index = state
        .core
        .inspector_index()
        .ok_or_else(|| ApiError::not_found("request history"))?;
    let end = (state.core.now_ms() / bucket + 1) * bucket;
    let start = end - bucket * buckets;
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); buckets as usize];
    let mut out: Vec<MetricsSnapshot> = (0..buckets)
        .map(|i| MetricsSnapshot {
            bucket_start: iso(start + i * bucket),
            bucket_end: iso(start + (i + 1) * bucket),
            ..MetricsSnapshot::default()
        })
        .collect();
    index
        .scan(&caller.tenant.id, start, end - 1, |r| {
            let i = ((r.at - start) / bucket) as usize;
            if let (Some(m), Some(l)) = (out.get_mut(i), latencies.get_mut(i)) {
                m.request_count += 1;
                m.error_count += u64::from(r.status >= 500);
                m.bytes_in += r.bytes_in;
                m.bytes_out += r.bytes_out;
                l.push(r.duration_ms);
            }
        })
        .map_err(|e| ApiError::internal(e.to_string()))?;
    for (m, l) in out.iter_mut().zip(latencies.iter_mut()) {
        l.sort_unstable();
        m.p50_latency_ms = percentile(l, 50);
        m.p95_latency_ms = percentile(l, 95);
        m.p99_latency_ms = percentile(l, 99);
    }
    ok(out)
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
