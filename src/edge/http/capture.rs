//! Counting the bytes of streamed HTTP bodies (teeing them under full
//! capture), and capturing the request as one `RequestCaptured` once its
//! response body has been sent (or dropped).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use beamd_events::vocabulary::{BodySeen, RequestCaptured};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::actors::Core;
use crate::domain::TunnelCommand;
use crate::edge::meter::Meter;
use crate::inspector::{mask_headers, BodyDigest, BodySink, BodyTee, Detail, FullCaptureSettings};
use crate::metric_catalog;

/// A new request id: `req_` and 16 hex digits. Every captured request gets
/// one when it arrives; full capture keeps its detail under it.
pub fn request_id() -> String {
    format!("req_{:016x}", fastrand::u64(..))
}

/// A request under full capture before its response: its masked headers,
/// and where its body's digest lands.
pub struct FullStart {
    settings: FullCaptureSettings,
    request_headers: Vec<(String, String)>,
    request_body: DigestSlot,
}

impl FullCaptureSettings {
    /// Starts capturing a request with these headers.
    pub fn start(&self, headers: &hyper::HeaderMap) -> FullStart {
        FullStart {
            settings: self.clone(),
            request_headers: masked_headers(headers, &self.masked.get()),
            request_body: DigestSlot::default(),
        }
    }
}

impl FullStart {
    /// The request body, teed.
    pub fn tee<B>(&self, body: CountingBody<B>) -> CountingBody<B> {
        body.teed(self.settings.body_limit, self.request_body.clone())
    }

    /// Once the response is known: what the guard stores, and how to tee
    /// the response body (limit, slot).
    pub fn answered(self, headers: &hyper::HeaderMap) -> (FullCapture, (usize, DigestSlot)) {
        let response_body = DigestSlot::default();
        let full = FullCapture {
            sink: self.settings.sink.clone(),
            request_headers: self.request_headers,
            response_headers: masked_headers(headers, &self.settings.masked.get()),
            request_body: self.request_body,
            response_body: response_body.clone(),
        };
        (full, (self.settings.body_limit, response_body))
    }
}

/// What is known of a proxied request by the time its response arrives.
pub struct Pending {
    /// Its metadata so far.
    pub capture: RequestCaptured,
    /// Request body bytes.
    pub bytes_in: Arc<AtomicU64>,
    /// Response body bytes, counted from here on.
    pub bytes_out: Arc<AtomicU64>,
    /// When it arrived.
    pub started: tokio::time::Instant,
    /// Under full capture: its headers and its request body's digest.
    pub full: Option<FullStart>,
}

impl Pending {
    /// The response `body` (with these `headers`) counted into the tunnel,
    /// teed under full capture, and, when `record`, recording the capture
    /// once it is done.
    pub fn respond<B>(
        self,
        body: B,
        headers: &hyper::HeaderMap,
        ctx: &crate::edge::EdgeContext,
        route: &crate::edge::context::Route,
        record: bool,
    ) -> CountingBody<B> {
        let (full, tee) = match self.full {
            Some(f) => {
                let (full, tee) = f.answered(headers);
                (Some(full), Some(tee))
            }
            None => (None, None),
        };
        let guard = record.then(|| CaptureGuard {
            capture: self.capture,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out.clone(),
            started: self.started,
            core: ctx.core.clone(),
            tunnel: route.tunnel.clone(),
            meter: route.meter.clone(),
            disk: ctx.settings.disk.clone(),
            full,
        });
        let body = CountingBody::new(body, self.bytes_out, guard);
        match tee {
            Some((limit, slot)) => body.teed(limit, slot),
            None => body,
        }
    }
}

/// One request under full capture: what the guard stores when it is done.
pub struct FullCapture {
    /// Where the detail is handed over.
    pub sink: BodySink,
    /// Request headers as sent to the service, masked.
    pub request_headers: Vec<(String, String)>,
    /// Response headers, masked.
    pub response_headers: Vec<(String, String)>,
    /// The request body's digest, once it was sent.
    pub request_body: DigestSlot,
    /// The response body's digest, once it was sent.
    pub response_body: DigestSlot,
}

/// Headers as (name, value) pairs, masked.
pub fn masked_headers(headers: &hyper::HeaderMap, masked: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    mask_headers(&mut out, masked);
    out
}

fn seen(d: &BodyDigest) -> BodySeen {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut sha256 = String::with_capacity(64);
    for b in d.sha256 {
        sha256.push(HEX[usize::from(b >> 4)] as char);
        sha256.push(HEX[usize::from(b & 15)] as char);
    }
    BodySeen {
        sha256,
        len: d.len,
        truncated: d.truncated,
    }
}

/// Where a teed body's digest lands when the body ends.
pub type DigestSlot = Arc<Mutex<Option<BodyDigest>>>;

/// A body that adds the size of every data frame to a counter and, with
/// full capture, tees it (hash of all, first bytes kept).
pub struct CountingBody<B> {
    inner: B,
    count: Arc<AtomicU64>,
    tee: Option<(BodyTee, DigestSlot)>,
    // Held by response bodies: the capture is recorded when the body is done
    // (after `drop` below has handed the tee's digest over).
    _guard: Option<CaptureGuard>,
}

impl<B> CountingBody<B> {
    /// Counts `inner` into `count`; `guard` (if any) records the capture when this body ends.
    pub fn new(inner: B, count: Arc<AtomicU64>, guard: Option<CaptureGuard>) -> Self {
        Self {
            inner,
            count,
            tee: None,
            _guard: guard,
        }
    }

    /// The same body, teed into `slot` (its first `limit` bytes kept).
    pub fn teed(mut self, limit: usize, slot: DigestSlot) -> Self {
        self.tee = Some((BodyTee::new(limit), slot));
        self
    }
}

impl<B> Drop for CountingBody<B> {
    fn drop(&mut self) {
        if let Some((tee, slot)) = self.tee.take() {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(tee.finish());
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for CountingBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
                if let Some((tee, _)) = self.tee.as_mut() {
                    tee.feed(data);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Records a request when dropped, with the bytes counted by then: into its
/// tunnel's meter, which the session records once per traffic window (or
/// here, when a batch is full).
pub struct CaptureGuard {
    /// What is known of the request; status and bytes are filled in at the end.
    pub capture: RequestCaptured,
    /// Request body bytes.
    pub bytes_in: Arc<AtomicU64>,
    /// Response body bytes.
    pub bytes_out: Arc<AtomicU64>,
    /// When the request arrived.
    pub started: tokio::time::Instant,
    /// Where to record a full batch.
    pub core: Arc<Core>,
    /// The tunnel it went through.
    pub tunnel: String,
    /// The tunnel's meter, which collects captures.
    pub meter: Arc<Meter>,
    /// Captures are dropped (and counted) while the disk is short of space.
    pub disk: Arc<crate::disk::DiskGuard>,
    /// With full capture: headers and bodies for the body store.
    pub full: Option<FullCapture>,
}

impl CaptureGuard {
    /// Stores headers and body prefixes; puts the bodies' digests in the event.
    fn store_detail(&mut self) {
        self.capture.detail = Some(self.full.is_some());
        let Some(full) = self.full.take() else {
            return;
        };
        let take = |slot: &DigestSlot| slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        // An empty body (a GET's) is no body: nothing to prove or show.
        let take = |slot| take(slot).filter(|d: &BodyDigest| d.len > 0);
        let (req, resp) = (take(&full.request_body), take(&full.response_body));
        self.capture.request_body = req.as_ref().map(|d| Box::new(seen(d)));
        self.capture.response_body = resp.as_ref().map(|d| Box::new(seen(d)));
        let detail = Detail {
            request_headers: full.request_headers,
            response_headers: full.response_headers,
            request_body: req.map(|d| d.kept).unwrap_or_default(),
            response_body: resp.map(|d| d.kept).unwrap_or_default(),
        };
        let at = self.capture.started_at;
        full.sink.send(self.capture.id.clone(), at, detail);
    }
}

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        if self.disk.short().is_some() {
            metrics::counter!(metric_catalog::CAPTURES_DROPPED.name).increment(1);
            return;
        }
        self.store_detail();
        let mut capture = std::mem::take(&mut self.capture);
        capture.bytes_in = self.bytes_in.load(Ordering::Relaxed);
        capture.bytes_out = self.bytes_out.load(Ordering::Relaxed);
        capture.duration_ms = self.started.elapsed().as_millis() as u64;
        hand_over(&self.core, &self.tunnel, &self.meter, capture);
    }
}

/// Hands a finished capture to its tunnel's meter, which the session
/// records once per window; a full batch (or, once the session made its
/// last report, every capture) is recorded from here.
pub(super) fn hand_over(core: &Arc<Core>, tunnel: &str, meter: &Meter, capture: RequestCaptured) {
    let Some(batch) = meter.capture(capture) else {
        return;
    };
    let (core, tunnel) = (core.clone(), tunnel.to_string());
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if let Err(e) = core
                .tunnel_command(&tunnel, TunnelCommand::CaptureRequests(batch.into()))
                .await
            {
                tracing::warn!(%tunnel, "captured requests not recorded: {e}");
            }
        });
    }
}
