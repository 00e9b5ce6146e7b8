//! HTTP/2 at the public ingress, through a real tunnel over each transport:
//! curl with `--http2-prior-knowledge` on plain HTTP and `--http2` over
//! HTTPS (ALPN) gets the service's body and the inspector records
//! `HTTP/2.0`; on one HTTP/2 connection, 99 fast requests all finish while
//! a slow one beside them is still waiting; an h2c service streams both
//! ways with trailers, and a stream the client cancels is cancelled there.

mod limits;
mod pool;

use crate::common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::api::Api;
use common::http::{http_server, start_http_agent};
use common::tunnel::{https_edge, start_edge, ADMIN_TOKEN};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// curl's body and the HTTP version it used (`2`, `1.1`).
async fn curl(args: &[&str]) -> Result<(String, String)> {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_version}"])
        .args(args)
        .output()
        .await
        .context("curl (Debian's curl, built with nghttp2)")?;
    ensure!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let (body, version) = text.rsplit_once('\n').context("version line")?;
    Ok((body.to_string(), version.to_string()))
}

/// The newest request's protocol in the inspector, once it is listed.
async fn newest_proto(api: &Api, path: &str) -> Result<String> {
    for _ in 0..100 {
        let listed = api.get("/api/v1/requests").await?;
        if listed.body["requests"][0]["path"] == path {
            return Ok(listed.body["requests"][0]["proto"]
                .as_str()
                .unwrap_or_default()
                .to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{path} was not captured")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_over_each_transport() -> Result<()> {
    for transport in ["quic", "ws", "tcp"] {
        let dir = tempfile::tempdir()?;
        let web = http_server().await?;
        let edge = start_edge(
            dir.path(),
            transport,
            "127.0.0.1:0",
            &["--http-listen", "127.0.0.1:0"],
        )?;
        let (_agent, host, public) = start_http_agent(&edge, transport, web, "two", &[])?;
        let name = host.split(':').next().context("name")?;
        let resolve = format!("{name}:{}:127.0.0.1", public.port());
        let url = format!("http://{host}/hello");
        let (body, version) =
            curl(&["--http2-prior-knowledge", "--resolve", &resolve, &url]).await?;
        ensure!(
            (body.as_str(), version.as_str()) == ("hello through the tunnel", "2"),
            "{transport}: {version} {body}"
        );
        // HTTP/1.1 still works on the same port.
        let (body, version) = curl(&["--http1.1", "--resolve", &resolve, &url]).await?;
        ensure!(
            version == "1.1" && body == "hello through the tunnel",
            "{version} {body}"
        );
        let admin = Api::new(edge.api, ADMIN_TOKEN);
        let url = format!("http://{host}/headers");
        curl(&["--http2-prior-knowledge", "--resolve", &resolve, &url]).await?;
        let proto = newest_proto(&admin, "/headers").await?;
        ensure!(proto == "HTTP/2.0", "{transport}: {proto}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_by_alpn_over_https() -> Result<()> {
    let certs = tempfile::tempdir()?;
    let web = http_server().await?;
    for transport in ["quic", "ws", "tcp"] {
        let dir = tempfile::tempdir()?;
        let (edge, _) = https_edge(dir.path(), certs.path(), "secure.localhost", transport)?;
        let (_agent, host, public) = start_http_agent(&edge, transport, web, "secure", &[])?;
        let resolve = format!("secure.localhost:{}:127.0.0.1", public.port());
        let url = format!("https://{host}/hello");
        let (body, version) = curl(&["-k", "--http2", "--resolve", &resolve, &url]).await?;
        ensure!(
            (body.as_str(), version.as_str()) == ("hello through the tunnel", "2"),
            "{transport}: {version} {body}"
        );
        let admin = Api::new(edge.api, ADMIN_TOKEN);
        let proto = newest_proto(&admin, "/hello").await?;
        ensure!(proto == "HTTP/2.0", "{transport}: {proto}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_does_not_hold_up_the_others_on_its_connection() -> Result<()> {
    let web = http_server().await?;
    // The three transports side by side: the slow answer takes 5 s.
    let each = ["quic", "ws", "tcp"].map(|transport| async move {
        let dir = tempfile::tempdir()?;
        let args = ["--http-listen", "127.0.0.1:0"];
        let edge = start_edge(dir.path(), transport, "127.0.0.1:0", &args)?;
        let (_agent, host, public) = start_http_agent(&edge, transport, web, "many", &[])?;
        let order = hundred_streams(public, &host)
            .await
            .with_context(|| format!("over {transport}"))?;
        ensure!(
            order.last() == Some(&"/slow"),
            "{transport}: the slow response was not the last: {order:?}"
        );
        anyhow::Ok(())
    });
    futures::future::try_join_all(each).await?;
    Ok(())
}

/// 100 concurrent streams on one HTTP/2 connection, the first to `/slow`
/// and the others to `/hello`; the paths in the order their answers ended.
async fn hundred_streams(public: std::net::SocketAddr, host: &str) -> Result<Vec<&'static str>> {
    let io = TokioIo::new(TcpStream::connect(public).await?);
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
    tokio::spawn(conn);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..100 {
        let path = if i == 0 { "/slow" } else { "/hello" };
        let req = hyper::Request::get(format!("http://{host}{path}"))
            .body(Empty::<bytes::Bytes>::new())?;
        let mut sender = sender.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let answer = async {
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let body = resp.into_body().collect().await?.to_bytes();
                anyhow::Ok((status.as_u16(), String::from_utf8_lossy(&body).into_owned()))
            }
            .await;
            let _ = done.send((path, answer.map_err(|e| e.to_string())));
        });
    }
    drop(done_tx);
    let mut order = Vec::new();
    while let Some((path, answer)) = done_rx.recv().await {
        let (status, body) = answer.map_err(anyhow::Error::msg)?;
        ensure!(status == 200, "{path}: {status} {body}");
        order.push(path);
    }
    ensure!(order.len() == 100, "{} answers", order.len());
    Ok(order)
}

type Frames = http_body_util::channel::Channel<bytes::Bytes>;

/// A local h2c service (HTTP/2 with prior knowledge, like a gRPC server):
/// `/echo` streams each request chunk back as it arrives and ends with the
/// trailers `grpc-status: 0` and `x-chunks: N`; `/forever` sends `tick`
/// every 20 ms until its client is gone, then says so on `cancelled`;
/// anything else answers `hello over h2c`. Each request's version is sent
/// to `versions`.
async fn h2c_server(
    versions: tokio::sync::mpsc::UnboundedSender<hyper::Version>,
    cancelled: tokio::sync::mpsc::UnboundedSender<()>,
) -> Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (versions, cancelled) = (versions.clone(), cancelled.clone());
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let _ = versions.send(req.version());
                    let cancelled = cancelled.clone();
                    async move {
                        let (mut tx, body) = Frames::new(16);
                        if req.uri().path() == "/forever" {
                            tokio::spawn(async move {
                                while tx.send_data(bytes::Bytes::from("tick")).await.is_ok() {
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                                let _ = cancelled.send(());
                            });
                        } else if req.uri().path() == "/echo" {
                            let mut incoming = req.into_body();
                            tokio::spawn(async move {
                                let mut chunks = 0u32;
                                while let Some(Ok(frame)) = incoming.frame().await {
                                    // (A stream may end with an empty data frame.)
                                    if let Some(data) =
                                        frame.into_data().ok().filter(|d| !d.is_empty())
                                    {
                                        chunks += 1;
                                        let _ = tx.send_data(data).await;
                                    }
                                }
                                let mut trailers = hyper::HeaderMap::new();
                                trailers.insert("grpc-status", "0".parse().expect("value"));
                                trailers
                                    .insert("x-chunks", chunks.to_string().parse().expect("value"));
                                let _ = tx.send_trailers(trailers).await;
                            });
                        } else {
                            tokio::spawn(async move {
                                let _ = tx.send_data(bytes::Bytes::from("hello over h2c")).await;
                            });
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    Ok(port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_service_streams_both_ways_with_its_trailers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (versions_tx, mut versions) = tokio::sync::mpsc::unbounded_channel();
    let web = h2c_server(versions_tx, tokio::sync::mpsc::unbounded_channel().0).await?;
    let edge = start_edge(
        dir.path(),
        "quic",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let (_agent, host, public) =
        start_http_agent(&edge, "quic", web, "grpc", &["--upstream", "h2c"])?;
    let io = TokioIo::new(TcpStream::connect(public).await?);
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
    tokio::spawn(conn);
    // A bidirectional stream: each chunk comes back before the next is sent.
    let (mut tx, body) = Frames::new(4);
    let req = hyper::Request::post(format!("http://{host}/echo"))
        .header("content-type", "application/grpc")
        .body(body)?;
    tx.send_data(bytes::Bytes::from("ping-1"))
        .await
        .map_err(|_| anyhow::anyhow!("send"))?;
    let resp = sender.send_request(req).await?;
    ensure!(resp.status() == 200, "{}", resp.status());
    let mut answer = resp.into_body();
    for i in 1..=3 {
        let frame = tokio::time::timeout(Duration::from_secs(10), answer.frame())
            .await?
            .context("the stream ended early")??;
        let data = frame.into_data().map_err(|_| anyhow::anyhow!("not data"))?;
        ensure!(data == format!("ping-{i}"), "{data:?}");
        if i < 3 {
            let next = bytes::Bytes::from(format!("ping-{}", i + 1));
            tx.send_data(next)
                .await
                .map_err(|_| anyhow::anyhow!("send"))?;
        }
    }
    drop(tx);
    let mut trailers = None;
    while let Some(frame) = answer.frame().await {
        if let Ok(t) = frame?.into_trailers() {
            trailers = Some(t);
        }
    }
    let trailers = trailers.context("no trailers came through")?;
    ensure!(
        trailers["grpc-status"] == "0" && trailers["x-chunks"] == "3",
        "{trailers:?}"
    );
    ensure!(
        versions.recv().await == Some(hyper::Version::HTTP_2),
        "the service heard HTTP/2"
    );
    // An HTTP/1.1 public client reaches the same h2c service.
    let resolve = format!("grpc.localhost:{}:127.0.0.1", public.port());
    let (body, version) = curl(&[
        "--http1.1",
        "--resolve",
        &resolve,
        &format!("http://{host}/hi"),
    ])
    .await?;
    ensure!(
        version == "1.1" && body == "hello over h2c",
        "{version} {body}"
    );
    ensure!(versions.recv().await == Some(hyper::Version::HTTP_2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_client_cancels_is_cancelled_at_the_service() -> Result<()> {
    let (versions, _) = tokio::sync::mpsc::unbounded_channel();
    let (cancelled_tx, mut cancelled) = tokio::sync::mpsc::unbounded_channel();
    let web = h2c_server(versions, cancelled_tx).await?;
    for transport in ["quic", "ws", "tcp"] {
        let dir = tempfile::tempdir()?;
        let args = ["--http-listen", "127.0.0.1:0"];
        let edge = start_edge(dir.path(), transport, "127.0.0.1:0", &args)?;
        let name = format!("cancel-{transport}");
        let upstream = ["--upstream", "h2c"];
        let (_agent, host, public) = start_http_agent(&edge, transport, web, &name, &upstream)?;
        let io = TokioIo::new(TcpStream::connect(public).await?);
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        let req = hyper::Request::get(format!("http://{host}/forever"))
            .body(Empty::<bytes::Bytes>::new())?;
        let mut ticks = sender.send_request(req).await?.into_body();
        for _ in 0..3 {
            let frame = tokio::time::timeout(Duration::from_secs(10), ticks.frame()).await?;
            ensure!(frame.context("ended early")??.is_data());
        }
        ensure!(
            cancelled.try_recv().is_err(),
            "{transport}: not cancelled yet"
        );
        // Dropping the body resets the stream (RST_STREAM CANCEL); the connection stays.
        drop(ticks);
        tokio::time::timeout(Duration::from_secs(10), cancelled.recv())
            .await
            .with_context(|| format!("{transport}: the service never saw the cancel"))?;
        let req = hyper::Request::get(format!("http://{host}/hi")).body(Empty::new())?;
        let resp = sender.send_request(req).await?;
        let body = resp.into_body().collect().await?.to_bytes();
        ensure!(body == "hello over h2c", "{body:?}");
    }
    Ok(())
}
