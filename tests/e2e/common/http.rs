//! A real HTTP service to put behind tunnels, and a real HTTP client.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use super::tunnel::{Edge, Proc};

pub type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// The service behind the tunnel: `/hello`, `/sum` (blake3 and length of the
/// body), `/chunked` (a streamed response of unknown length), `/headers`,
/// `/slow` (answers after 5 s), `/boom` (a 500), `/ws` (a WebSocket echo).
pub async fn service(
    mut req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, hyper::Error> {
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
        "/boom" => {
            let mut r = Response::new(full("it broke"));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            Ok(r)
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(Response::new(full("too late")))
        }
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
            let xfp = req
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            Ok(Response::new(full(format!("{xff} {xfh} {xfp}"))))
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

pub async fn http_server() -> Result<u16> {
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
pub async fn client(addr: SocketAddr) -> Result<hyper::client::conn::http1::SendRequest<Body>> {
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(TcpStream::connect(addr).await?))
            .await?;
    tokio::spawn(conn);
    Ok(sender)
}

pub async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Body>,
    req: Request<Body>,
) -> Result<(u16, String)> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

pub fn get(host: &str, path: &str) -> Result<Request<Body>> {
    Ok(Request::get(path).header("host", host).body(full(""))?)
}

/// Starts `beamd http WEB --name NAME` against an edge; returns it, its
/// public URL's host (`NAME.localhost:PORT`) and the public socket address.
pub fn start_http_agent(
    edge: &Edge,
    transport: &str,
    web: u16,
    name: &str,
    extra: &[&str],
) -> Result<(Proc, String, SocketAddr)> {
    let token = edge.token.clone().context("token")?;
    let addr = edge.agent_addr.to_string();
    let web = web.to_string();
    let mut args = vec![
        "http",
        &web,
        "--name",
        name,
        "--edge",
        &addr,
        "--transport",
        transport,
        "--fingerprint",
        &edge.fingerprint,
    ];
    args.extend_from_slice(extra);
    let agent = Proc::spawn(&args, &[("BEAMD_TOKEN", &token)])?;
    let line = agent.expect("beamd http: tunnel http", Duration::from_secs(30))?;
    let url = line
        .split("://")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .context("url")?
        .to_string();
    let (_, port) = url.rsplit_once(':').context("port")?;
    let public: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    Ok((agent, url, public))
}
