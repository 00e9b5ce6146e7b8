//! `/metrics`: Prometheus text from the `metrics` crate. The families are
//! declared in [`crate::metric_catalog`]; counters and histograms are
//! recorded where things happen (HTTP ingress, traffic reports, log
//! appends); gauges of live things are read from the projections at each
//! scrape.

use std::sync::Arc;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use warp::http::{header, HeaderValue, StatusCode};

use super::error::ApiError;
use super::http::{error, Resp};
use super::ApiState;
use crate::metric_catalog::{
    ACTORS_ALIVE, KEYS_ACTIVE, LOG_HEAD_SEQ, TENANTS, TUNNELS_OFFLINE, TUNNELS_ONLINE,
};

/// Latency buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder and describes and
/// registers every family of the catalog; call once, at start, before
/// anything is recorded.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    crate::metric_catalog::describe_and_register();
    Ok(handle)
}

/// Prometheus text of every metric (public, like most scrape endpoints:
/// bind the API to a private address).
pub async fn render(state: Arc<ApiState>) -> Resp {
    let Some(handle) = &state.metrics else {
        return error(ApiError::not_found(
            "metrics (the recorder is not installed)",
        ));
    };
    {
        let queries = state.core.queries();
        let c = queries.counts();
        metrics::gauge!(TUNNELS_ONLINE.name).set(c.online_tunnels as f64);
        metrics::gauge!(TUNNELS_OFFLINE.name).set(c.offline_tunnels as f64);
        metrics::gauge!(TENANTS.name).set(c.tenants as f64);
        metrics::gauge!(KEYS_ACTIVE.name).set(c.active_keys as f64);
        metrics::gauge!(LOG_HEAD_SEQ.name).set(queries.seq() as f64);
    }
    metrics::gauge!(ACTORS_ALIVE.name).set(state.core.actors_alive() as f64);
    let mut resp = Resp::new(handle.render().into());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}
