//! HTTP tunnels end to end over each transport: a real HTTP server behind the
//! tunnel, a real HTTP client in front, every request captured in the log.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use common::tunnel::{pattern, start_edge, Proc};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// The service behind the tunnel: `/hello`, `/sum` (blake3 and length of the
/// body), `/chunked` (a streamed response of unknown length), `/headers`.
async fn service(mut req: Request<hyper::body::Incoming>) -> Result<Response<Body>, hyper::Error> {
    match req.uri().path() {
        "/ws" => {
            // A WebSocket echo server, upgraded from this HTTP/1.1 connection.
            use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
            let key = req
                .headers()
                .get("sec-websocket-key")
                .map(|k| derive_accept_key(k.as_bytes()))
                .unwrap_or_default();
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    None,
                )
                .await;
                let (mut tx, mut rx) = futures::StreamExt::split(ws);
                while let Some(Ok(msg)) = futures::StreamExt::next(&mut rx).await {
                    if msg.is_text() && futures::SinkExt::send(&mut tx, msg).await.is_err() {
                        break;
                    }
                }
            });
            let mut r = Response::new(full(""));
            *r.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert("upgrade", "websocket".parse().expect("static"));
            r.headers_mut()
                .insert("connection", "upgrade".parse().expect("static"));
            r.headers_mut()
                .insert("sec-websocket-accept", key.parse().expect("base64"));
            Ok(r)
        }
        "/hello" => Ok(Response::new(full("hello through the tunnel"))),
        "/headers" => {
            let xff = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let xfh = req
                .headers()
                .get("x-forwarded-host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            Ok(Response::new(full(format!("{xff} {xfh}"))))
        }
        "/sum" => {
            let mut hasher = blake3::Hasher::new();
            let mut n = 0usize;
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                if let Some(data) = frame?.data_ref() {
                    hasher.update(data);
                    n += data.len();
                }
            }
            Ok(Response::new(full(format!(
                "{n} {}",
                hasher.finalize().to_hex()
            ))))
        }
        "/chunked" => {
            let chunks = (0..20)
                .map(|i| Ok::<_, hyper::Error>(Frame::data(Bytes::from(format!("chunk {i};")))));
            Ok(Response::new(
                StreamBody::new(futures::stream::iter(chunks)).boxed(),
            ))
        }
        _ => {
            let mut r = Response::new(full("nope"));
            *r.status_mut() = hyper::StatusCode::NOT_FOUND;
            Ok(r)
        }
    }
}

async fn http_server() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), hyper::service::service_fn(service))
                    .with_upgrades()
                    .await;
            });
        }
    });
    Ok(port)
}

/// A keep-alive client connection to the edge's public HTTP port.
async fn client(addr: SocketAddr) -> Result<hyper::client::conn::http1::SendRequest<Body>> {
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(TcpStream::connect(addr).await?))
            .await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Body>,
    req: Request<Body>,
) -> Result<(u16, String)> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn get(host: &str, path: &str) -> Result<Request<Body>> {
    Ok(Request::get(path).header("host", host).body(full(""))?)
}

async fn http_through(transport: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let web = http_server().await?;
    let edge = start_edge(
        dir.path(),
        transport,
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let token = edge.token.clone().context("token")?;
    let addr = edge.agent_addr.to_string();
    let agent = Proc::spawn(
        &[
            "http",
            &web.to_string(),
            "--name",
            "app",
            "--edge",
            &addr,
            "--transport",
            transport,
            "--fingerprint",
            &edge.fingerprint,
        ],
        &[("BEAMD_TOKEN", &token)],
    )?;
    let line = agent.expect("beamd http: tunnel http://", Duration::from_secs(30))?;
    let url = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .context("url")?;
    let (host, port) = url.rsplit_once(':').context("port")?;
    ensure!(host == "app.localhost", "{host}");
    let public: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let host = format!("{host}:{port}");

    // GET, then more requests on the same (kept-alive) connection.
    let mut c = client(public).await?;
    ensure!(send(&mut c, get(&host, "/hello")?).await? == (200, "hello through the tunnel".into()));
    let (status, body) = send(&mut c, get(&host, "/chunked")?).await?;
    ensure!(
        status == 200 && body == (0..20).map(|i| format!("chunk {i};")).collect::<String>(),
        "{body}"
    );
    let (_, seen) = send(&mut c, get(&host, "/headers")?).await?;
    ensure!(
        seen == "127.0.0.1 app.localhost",
        "forwarded headers: {seen}"
    );
    // A 32 MiB POST, streamed and checksummed on the far side.
    let data = pattern(3, 32 * 1024 * 1024);
    let expected = format!("{} {}", data.len(), blake3::hash(&data).to_hex());
    let post = Request::post("/sum")
        .header("host", &host)
        .body(full(data))?;
    ensure!(send(&mut c, post).await? == (200, expected));
    // A WebSocket echo through the HTTP tunnel.
    let socket = TcpStream::connect(public).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{host}/ws"), socket).await?;
    for i in 0..5 {
        let text = format!("echo {i}");
        futures::SinkExt::send(
            &mut ws,
            tokio_tungstenite::tungstenite::Message::text(text.clone()),
        )
        .await?;
        let back = futures::StreamExt::next(&mut ws)
            .await
            .context("closed")??;
        ensure!(back.to_text()? == text, "websocket echo: {back:?}");
    }
    // An unknown host is a 404; a tunnel whose agent left is a 502.
    let (status, _) = send(&mut c, get("nobody.localhost", "/hello")?).await?;
    ensure!(status == 404, "unknown host: {status}");
    drop(agent);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut c = client(public).await?;
    let (status, body) = send(&mut c, get(&host, "/hello")?).await?;
    ensure!(status == 502, "offline tunnel: {status} {body}");

    edge.proc.signal(rustix::process::Signal::TERM)?;
    edge.proc.expect("stopped", Duration::from_secs(30))?;
    drop(edge);
    let out = common::beamd(&["replay", "--data-dir", dir.path().to_str().context("dir")?]);
    let captured: Vec<serde_json::Value> = common::text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "RequestCaptured")
        .collect();
    // Four requests were answered; over QUIC the edge may not yet know the
    // killed agent is gone, so the last one can be a captured 502.
    let answered = captured
        .iter()
        .filter(|e| e["event"]["status"] == 200)
        .count();
    ensure!(
        answered == 4,
        "{answered} answered requests captured, 4 went through"
    );
    let upgraded = captured
        .iter()
        .filter(|e| e["event"]["status"] == 101)
        .count();
    ensure!(
        upgraded == 1,
        "{upgraded} WebSocket upgrades captured, 1 went through"
    );
    let allowed = |e: &serde_json::Value| {
        [200, 101, 502].contains(&e["event"]["status"].as_u64().unwrap_or(0))
    };
    ensure!(captured.iter().all(allowed), "unexpected statuses captured");
    let chunked = captured
        .iter()
        .find(|e| e["event"]["path"] == "/chunked")
        .context("the chunked GET")?;
    let chunked_len = (0..20).map(|i| format!("chunk {i};").len()).sum::<usize>();
    ensure!(
        chunked["event"]["bytesOut"] == chunked_len,
        "bytes of a chunked body are counted: {chunked}"
    );
    let post = captured
        .iter()
        .find(|e| e["event"]["method"] == "POST")
        .context("the POST")?;
    ensure!(
        post["event"]["bytesIn"] == 32 * 1024 * 1024 && post["event"]["status"] == 200,
        "{post}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_quic() -> Result<()> {
    http_through("quic").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_websocket() -> Result<()> {
    http_through("ws").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_tcp() -> Result<()> {
    http_through("tcp").await
}
