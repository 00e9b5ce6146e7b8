//! Counting the bytes of streamed HTTP bodies, and capturing the request as
//! one `RequestCaptured` once its response body has been sent (or dropped).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use beamd_events::vocabulary::RequestCaptured;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::meter::Meter;
use crate::actors::Core;
use crate::domain::TunnelCommand;

/// A body that adds the size of every data frame to a counter.
pub struct CountingBody<B> {
    inner: B,
    count: Arc<AtomicU64>,
    // Held by response bodies: the capture is recorded when the body is done.
    _guard: Option<CaptureGuard>,
}

impl<B> CountingBody<B> {
    /// Counts `inner` into `count`; `guard` (if any) records the capture when this body ends.
    pub fn new(inner: B, count: Arc<AtomicU64>, guard: Option<CaptureGuard>) -> Self {
        Self {
            inner,
            count,
            _guard: guard,
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
    pub disk: Arc<super::DiskGuard>,
}

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        if self.disk.short().is_some() {
            metrics::counter!("beamd_captures_dropped_total").increment(1);
            return;
        }
        let mut capture = std::mem::take(&mut self.capture);
        capture.bytes_in = self.bytes_in.load(Ordering::Relaxed);
        capture.bytes_out = self.bytes_out.load(Ordering::Relaxed);
        capture.duration_ms = self.started.elapsed().as_millis() as u64;
        let Some(batch) = self.meter.capture(capture) else {
            return;
        };
        let (core, tunnel) = (self.core.clone(), std::mem::take(&mut self.tunnel));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = core
                    .tunnel_command(&tunnel, TunnelCommand::CaptureRequests(batch))
                    .await
                {
                    tracing::warn!(%tunnel, "captured requests not recorded: {e}");
                }
            });
        }
    }
}
