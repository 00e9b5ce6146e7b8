//! A real HTTP client for the REST API.

use std::net::SocketAddr;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use super::tunnel::{start_edge, Edge};

/// A response: status, headers and the body (JSON when it parses, else a string).
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Value,
    pub text: String,
    /// The body's bytes as received.
    pub raw: Bytes,
}

/// A counter or gauge of the edge's `/metrics` text (`name` with its labels).
pub async fn metric(api: SocketAddr, name: &str) -> Result<u64> {
    let text = call(api, "GET", "/metrics", None, None, &[]).await?.text;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .with_context(|| format!("no {name} in /metrics"))
}

/// Sends one request on a fresh connection.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<Answer> {
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(TcpStream::connect(addr).await?))
            .await?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or("").to_string())))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    Ok(Answer {
        status,
        headers,
        body,
        text,
        raw: bytes,
    })
}

/// An API client for one server and key.
#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl Api {
    pub fn new(addr: SocketAddr, token: &str) -> Self {
        Self {
            addr,
            token: Some(token.to_string()),
        }
    }

    pub async fn get(&self, path: &str) -> Result<Answer> {
        call(self.addr, "GET", path, self.token.as_deref(), None, &[]).await
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<&str>) -> Result<Answer> {
        call(self.addr, method, path, self.token.as_deref(), body, &[]).await
    }
}

/// An edge with HTTP ingress and the API, on 127.0.0.1.
pub fn api_edge() -> Result<(tempfile::TempDir, Edge)> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(
        dir.path(),
        "tcp",
        "127.0.0.1:0",
        &["--http-listen", "127.0.0.1:0"],
    )?;
    Ok((dir, edge))
}

/// A second tenant and its first key (manage scope), made by the admin.
pub async fn tenant(admin: &Api, slug: &str) -> Result<(String, Api)> {
    let made = admin
        .send(
            "POST",
            "/api/v1/tenants",
            Some(&format!(r#"{{"slug":"{slug}"}}"#)),
        )
        .await?;
    ensure!(made.status == 201, "create tenant: {}", made.text);
    let token = made.body["token"].as_str().context("token")?.to_string();
    let id = made.body["tenant"]["id"]
        .as_str()
        .context("id")?
        .to_string();
    Ok((id, Api::new(admin.addr, &token)))
}

/// A new token labelled `label`, made by `api` (201 or an error): the answer
/// carries `id` and the secret `token`.
pub async fn new_token(api: &Api, label: &str) -> Result<Answer> {
    let made = api
        .send(
            "POST",
            "/api/v1/tokens",
            Some(&format!(r#"{{"label":"{label}"}}"#)),
        )
        .await?;
    ensure!(made.status == 201, "create token: {}", made.text);
    Ok(made)
}

/// The ids of every token the caller sees, following the pages.
pub async fn token_ids(api: &Api) -> Result<std::collections::HashSet<String>> {
    let mut ids = std::collections::HashSet::new();
    let mut path = "/api/v1/tokens?limit=100".to_string();
    loop {
        let page = api.get(&path).await?;
        ensure!(page.status == 200, "{}", page.text);
        for t in page.body["tokens"].as_array().context("tokens")? {
            ids.insert(t["id"].as_str().context("id")?.to_string());
        }
        match page.body["next"].as_str() {
            Some(next) => path = format!("/api/v1/tokens?limit=100&cursor={next}"),
            None => return Ok(ids),
        }
    }
}

/// The `error` code of an answer.
pub fn error_of(a: &Answer) -> &str {
    a.body["error"].as_str().unwrap_or("")
}
