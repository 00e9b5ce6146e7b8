//! Public HTTP traffic in the simulated world: a public client's request goes
//! through the edge's real HTTP ingress (over an in-memory connection) and
//! the agent's tunnel stream to a small service run by the simulated agent,
//! which counts every byte it reads and writes. Those counts are what the
//! edge's traffic events must add up to.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use beamd_transports::Connection;

use crate::edge::{serve_public_http, EdgeContext};
use crate::protocol::{read_frame, StreamHeader};

/// The header that tells the simulated service how many bytes to answer with.
const SIZE: &str = "x-sim-size";

/// Bytes a tunnel's services read and wrote, over all its agents.
#[derive(Debug, Default)]
pub(super) struct Carried {
    read: AtomicU64,
    written: AtomicU64,
}

impl Carried {
    /// (read, written) so far.
    pub fn now(&self) -> (u64, u64) {
        (
            self.read.load(Ordering::Relaxed),
            self.written.load(Ordering::Relaxed),
        )
    }
}

/// Serves every stream the edge opens on `conn` until the connection ends.
pub(super) async fn serve<C: Connection>(conn: Arc<C>, carried: Arc<Carried>) {
    while let Ok(mut stream) = conn.accept_stream().await {
        let carried = carried.clone();
        tokio::spawn(async move {
            if read_frame::<StreamHeader>(&mut stream).await.is_err() {
                return;
            }
            let io = TokioIo::new(Counting {
                inner: stream,
                carried,
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, hyper::service::service_fn(answer))
                .await;
        });
    }
}

/// Reads the whole request, then answers with as many bytes as it asked for.
async fn answer(
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let size = req
        .headers()
        .get(SIZE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let body = req.into_body().collect().await?.to_bytes();
    let mut out = vec![b'o'; size];
    if let Some(first) = out.first_mut() {
        *first = (body.len() % 251) as u8;
    }
    Ok(Response::new(Full::new(Bytes::from(out))))
}

/// How a public request ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The service's whole answer arrived.
    Served,
    /// The edge answered itself without reaching the service (no route, offline).
    NotRouted(StatusCode),
    /// Something failed on the way; the edge may have counted part of it.
    Failed(String),
}

/// Sends `sent` bytes to `host` through the edge and asks for `wanted` back.
pub(super) async fn request(
    ctx: Arc<EdgeContext>,
    host: &str,
    sent: usize,
    wanted: usize,
) -> Outcome {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let peer = SocketAddr::from(([192, 0, 2, 7], 40_000));
    tokio::spawn(serve_public_http(server, peer, ctx));
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::post("/sim")
            .header(hyper::header::HOST, host)
            .header(SIZE, wanted.to_string())
            .body(Full::new(Bytes::from(vec![b'i'; sent])))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    match tokio::time::timeout(Duration::from_secs(120), exchange).await {
        Err(_) => Outcome::Failed("no answer within 120 s".into()),
        Ok(Err(e)) => Outcome::Failed(e),
        Ok(Ok((StatusCode::OK, body))) => {
            let expected_first = (sent % 251) as u8;
            if body.len() == wanted && (wanted == 0 || body[0] == expected_first) {
                Outcome::Served
            } else {
                Outcome::Failed(format!(
                    "the answer had {} bytes, the service sent {wanted}",
                    body.len()
                ))
            }
        }
        Ok(Ok((status, body))) => {
            let text = String::from_utf8_lossy(&body);
            if text.contains("is offline") || text.contains("no tunnel serves") {
                Outcome::NotRouted(status)
            } else {
                Outcome::Failed(format!("{status}: {}", text.trim()))
            }
        }
    }
}

/// A tunnel stream that counts what the service reads and writes.
struct Counting<S> {
    inner: S,
    carried: Arc<Carried>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.carried.read.fetch_add(n, Ordering::Relaxed);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &polled {
            self.carried.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
