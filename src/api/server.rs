//! The API's HTTP server: warp's routes served by hyper over beamd's own
//! accept loop, so the API has the public listeners' defences: a bound on how
//! long a request's headers may take (slowloris, `--header-timeout-secs`),
//! the file-descriptor watermark (a JSON 503 instead of an accept loop that
//! waits for descriptors), and an accept loop no error can end.

use std::sync::Arc;
use std::time::Duration;

use beamd_transports::ListenerKind;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::http::Peer;
use super::{routes, ApiState};

/// The JSON answer past the file-descriptor watermark.
const BUSY: &str = r#"{"error":"unavailable","message":"the edge is at its connection capacity; try again shortly"}"#;

/// Serves the API on `listener` until `shutdown` is cancelled; connections
/// that are open then finish the request they are on.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ApiState>,
    shutdown: CancellationToken,
    header_timeout: Option<Duration>,
) {
    let service = warp::service(routes::all(state));
    let service = TowerToHyperService::new(tower_layer::Layer::layer(&routes::cors(), service));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    if let Some(limit) = header_timeout {
        builder.http1().header_read_timeout(limit);
    }
    let builder = Arc::new(builder);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = beamd_transports::accept_tcp(&listener) => accepted,
            _ = shutdown.cancelled() => return,
        };
        if beamd_transports::over_fd_watermark(&socket, ListenerKind::Api) {
            tokio::spawn(crate::busy::refuse_busy(socket, "application/json", BUSY));
            continue;
        }
        let (service, builder, shutdown) = (service.clone(), builder.clone(), shutdown.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                hyper::service::Service::call(&service, req)
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(socket), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
