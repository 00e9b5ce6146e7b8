//! Requests the edge answers itself, never passing them to an agent (the
//! gateway's refusals, a tunnel's access rules, no stream to the agent):
//! each is still one of the tunnel's requests, counted and captured for the
//! tunnel it was meant for, the way a proxied request is, with why.

use std::sync::atomic::Ordering;
use std::time::Duration;

use beamd_events::vocabulary::{InspectMode, RequestCaptured};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::header::EXPECT;
use hyper::{Request, Response};

use super::capture::hand_over;
use crate::edge::context::{EdgeContext, Route};

/// Refusals captured per tunnel and minute at most: a burst of as many,
/// refilled continuously. Past it a refusal still counts as a request of
/// the tunnel, but is left out of the inspector (and counted in
/// `beamd_captures_dropped_total`): answering a flood of refusals is
/// cheap for the edge, and must not be a cheap way to grow the log.
pub const REFUSALS_CAPTURED_PER_MINUTE: u32 = 6_000;

/// The rate limiter's scope of refusal captures (one bucket per tunnel).
const SCOPE: &str = "refusal_captures";

/// The most of a refused request's body read before the answer is sent.
const DRAINED: usize = 64 << 10;
/// How long that reading may take.
const DRAIN_FOR: Duration = Duration::from_secs(1);

/// Reads (and drops) what is left of a refused request's body, up to
/// `DRAINED` bytes within `DRAIN_FOR`, before the edge answers it. Answered
/// while the client is still sending, an HTTP/2 request has its stream
/// reset (`NO_ERROR`, as RFC 9113 allows), which some clients, curl 7.88
/// among them, report as a failed request instead of the refusal; over
/// HTTP/1.1 the connection could not be kept either. A larger or slower
/// body is left unread: a refusal never waits long for a client. A client
/// that asked `Expect: 100-continue` has sent no body and waits for leave
/// to: it gets the refusal instead, and sends nothing.
pub(super) async fn drain(req: &mut Request<Incoming>) {
    let waits = req
        .headers()
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let body = req.body_mut();
    if waits || body.is_end_stream() {
        return;
    }
    let mut left = DRAINED;
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, |d| d.len());
            left = left.saturating_sub(n);
            if left == 0 {
                break;
            }
        }
    })
    .await;
}

/// `response`, the edge's own answer to the request `capture` describes,
/// once it is recorded for `tunnel` (the tunnel the request was meant for,
/// if this edge serves one): counted as one of its requests and, unless
/// its inspect mode is `off`, captured with the answer's status and
/// `refused: reason`, without body or detail.
pub(super) fn refuse<B>(
    ctx: &EdgeContext,
    tunnel: Option<&Route>,
    mut capture: RequestCaptured,
    reason: impl Into<String>,
    response: Response<B>,
) -> Response<B> {
    let Some(route) = tunnel else {
        return response;
    };
    route.meter.requests.fetch_add(1, Ordering::Relaxed);
    route.meter.record_late(&ctx.core, &route.tunnel);
    if ctx.inspect_mode(&route.tunnel) == InspectMode::Off {
        return response;
    }
    let over = (ctx.limiter)
        .take(SCOPE, &route.tunnel, REFUSALS_CAPTURED_PER_MINUTE)
        .is_err();
    if over || ctx.settings.disk.short().is_some() {
        metrics::counter!(crate::metric_catalog::CAPTURES_DROPPED.name).increment(1);
        return response;
    }
    capture.status = response.status().as_u16();
    capture.duration_ms = ctx.core.now_ms().saturating_sub(capture.started_at);
    capture.detail = Some(false);
    capture.refused = Some(reason.into());
    hand_over(&ctx.core, &route.tunnel, &route.meter, capture);
    response
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use beamd_events::log::{GroupCommitLog, MemoryStore};
    use beamd_events::{Durability, SystemClock};
    use beamd_snapshots::MemorySnapshotStore;
    use hyper::StatusCode;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::actors::{Core, CoreConfig};
    use crate::edge::context::{Opening, StreamOpener};
    use crate::edge::EdgeSettings;

    /// An agent connection that opens no streams (none is asked for).
    struct NoAgent;

    impl StreamOpener for NoAgent {
        fn open(&self) -> Opening<'_> {
            Box::pin(async { Err(beamd_transports::TransportError::Closed) })
        }

        fn join_socket<'a>(
            &'a self,
            socket: tokio::net::TcpStream,
            _: &'a crate::protocol::StreamHeader,
            _: &'a crate::edge::meter::Meter,
        ) -> crate::edge::context::Joining<'a> {
            Box::pin(async { Err(socket) })
        }
    }

    async fn edge(capture: bool) -> (EdgeContext, Route) {
        let clock = Arc::new(SystemClock);
        let store = Arc::new(MemoryStore::new());
        let (log, _) = GroupCommitLog::open(store, clock.clone(), Durability::Always)
            .expect("an in-memory log");
        let config = CoreConfig::new(Arc::new(log), Arc::new(MemorySnapshotStore::new()), clock);
        let core = Arc::new(Core::start(config).await.expect("a core"));
        let mut settings = EdgeSettings::new(IpAddr::from([127, 0, 0, 1]), "edge.test");
        settings.capture = capture;
        let ctx = EdgeContext::new(core, "node_t".into(), settings, CancellationToken::new());
        let route = Route {
            tunnel: "tun_t".into(),
            tenant: "ten_t".into(),
            custom: false,
            opener: Arc::new(NoAgent),
            meter: Arc::default(),
            access: Arc::default(),
            sign_in: None,
            h2c: false,
            member: None,
            load: Arc::default(),
        };
        (ctx, route)
    }

    fn refuse_n(ctx: &EdgeContext, route: &Route, n: usize) {
        for _ in 0..n {
            let capture = RequestCaptured {
                method: "GET".into(),
                path: "/x".into(),
                started_at: ctx.core.now_ms(),
                ..RequestCaptured::default()
            };
            let answer = Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .body(())
                .expect("a response");
            let answer = refuse(ctx, Some(route), capture, "missing_key", answer);
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_refusal_is_a_request_and_captures_are_capped_per_minute() {
        let (ctx, route) = edge(true).await;
        // Most of the minute's captures are taken already.
        let cap = REFUSALS_CAPTURED_PER_MINUTE;
        for _ in 0..cap - 10 {
            assert!(ctx.limiter.take(SCOPE, &route.tunnel, cap).is_ok());
        }
        refuse_n(&ctx, &route, 30);
        assert_eq!(route.meter.take().requests, 30, "each is a request");
        let captured = route.meter.take_captured();
        assert_eq!(captured.len(), 10, "the rest of the minute's captures");
        for c in &captured {
            assert_eq!(
                (c.status, c.refused.as_deref(), c.detail),
                (401, Some("missing_key"), Some(false))
            );
            assert_eq!((c.bytes_in, c.bytes_out, &c.request_body), (0, 0, &None));
        }
        // A tenth of a minute later, a tenth of the minute's captures.
        tokio::time::advance(Duration::from_secs(6)).await;
        refuse_n(&ctx, &route, 1_000);
        assert_eq!(route.meter.take().requests, 1_000);
        assert_eq!(route.meter.take_captured().len(), cap as usize / 10);
    }

    #[tokio::test]
    async fn an_edge_that_captures_nothing_still_counts_refusals() {
        let (ctx, route) = edge(false).await;
        refuse_n(&ctx, &route, 5);
        assert_eq!(route.meter.take().requests, 5);
        assert!(route.meter.take_captured().is_empty());
        // Without a tunnel there is nothing to count or capture in.
        let answer = Response::new(());
        let answer = refuse(&ctx, None, RequestCaptured::default(), "no_route", answer);
        assert_eq!(answer.status(), StatusCode::OK);
    }
}
