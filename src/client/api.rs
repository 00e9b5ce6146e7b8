//! A small HTTP client for the REST API: one request per call, JSON in and
//! out, the API's error turned into one clear line.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// Where the API is and which key to use: shared by every API command.
/// Its `Debug` masks the key.
#[derive(Clone)]
pub struct ApiSettings {
    /// The edge's API, http://HOST:PORT.
    pub api: String,
    /// The API key, tok_<id>.<secret>.
    pub key: Option<String>,
    /// Print the API's JSON answer instead of a table.
    pub json: bool,
}

impl std::fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSettings")
            .field("api", &self.api)
            .field("key", &self.key.as_ref().map(|_| "MASKED"))
            .field("json", &self.json)
            .finish()
    }
}

impl ApiSettings {
    fn authority(&self) -> Result<&str> {
        let rest = self
            .api
            .strip_prefix("http://")
            .with_context(|| format!("--api must be http://HOST:PORT, not {:?}", self.api))?;
        Ok(rest.trim_end_matches('/'))
    }

    /// Sends `method path` with an optional JSON body; the answer's JSON, or
    /// the API's error as the error.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let key = self
            .key
            .as_deref()
            .context("no API key: pass --key or set BEAMD_KEY")?;
        let authority = self.authority()?;
        let stream = TcpStream::connect(authority)
            .await
            .with_context(|| format!("cannot reach the API at {}", self.api))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header("host", authority)
            .header("authorization", format!("Bearer {key}"));
        let payload = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(&v)?)
            }
            None => Bytes::new(),
        };
        let resp = sender.send_request(req.body(Full::new(payload))?).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["message"].as_str().unwrap_or("");
            let code = value["error"].as_str().unwrap_or("error");
            bail!("{method} {path}: {} {code}: {message}", status.as_u16());
        }
        Ok(value)
    }
}

/// One kept-alive connection to the API for many GETs (tile downloads).
pub struct ApiClient {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    authority: String,
    key: String,
    api: String,
}

impl ApiSettings {
    /// Connects once; `ApiClient::get` then reuses the connection.
    pub async fn connect(&self) -> Result<ApiClient> {
        let key = self
            .key
            .clone()
            .context("no API key: pass --key or set BEAMD_KEY")?;
        let authority = self.authority()?.to_string();
        let stream = TcpStream::connect(&authority)
            .await
            .with_context(|| format!("cannot reach the API at {}", self.api))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(ApiClient {
            sender,
            authority,
            key,
            api: self.api.clone(),
        })
    }
}

impl ApiClient {
    /// `GET /api/v1{path}`: the body, or the API's error as the error.
    pub async fn get(&mut self, path: &str) -> Result<Bytes> {
        self.sender
            .ready()
            .await
            .with_context(|| format!("the connection to {} closed", self.api))?;
        let req = Request::builder()
            .method("GET")
            .uri(format!("/api/v1{path}"))
            .header("host", &self.authority)
            .header("authorization", format!("Bearer {}", self.key))
            .body(Full::new(Bytes::new()))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let message = value["message"].as_str().unwrap_or("");
            let code = value["error"].as_str().unwrap_or("error");
            bail!("GET {path}: {} {code}: {message}", status.as_u16());
        }
        Ok(bytes)
    }

    /// `GET /api/v1{path}` as UTF-8 text.
    pub async fn get_text(&mut self, path: &str) -> Result<String> {
        let bytes = self.get(path).await?;
        String::from_utf8(bytes.to_vec()).with_context(|| format!("GET {path}: not UTF-8"))
    }
}
